"""Batched k-means: many independent problems (B, n, d) solved together.

Every problem follows :class:`~kmeans_xp.KMeans` exactly: its own coordinate frame
(power-of-two scale, centring by the same rule), its own ``tol`` scaled by its own
variance, greedy k-means++ from its own host generator, Lloyd with strict / ``tol``
convergence and empty-cluster relocation.  The work is batched: one batched product per
group of problems, batched centre sums, and ONE host sync per iteration for all problems
(a (B,) code folding strict convergence, the centre shift and empty clusters).  Problems
that converged leave the working set: they stop changing and cost nothing more.

Problems of unequal sizes come padded with a (B, n) ``mask``; masked rows weigh nothing,
are never chosen as centres and get the label -1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._compat import default_chunk_budget, device_of, is_float64_supported, to_numpy
from .._data import LOG2_RANGE, ChunkedData
from .lloyd import relocate_empty_clusters


class BatchedData:
    """X (B, n, d) in per-problem working coordinates ``Xt_b = X_b * inv_scale_b - shift_b``,
    read in groups of problems.

    Parameters
    ----------
    X : array (B, n, d)
    xp, dtype : namespace and compute dtype
    weights : (B, n) compute dtype or None (sample weights times the mask)
    mask : (B, n) bool or None
    n_valid : ndarray (B,) on the host: rows of each problem
    kernels : the kernel set (``kmeans_xp._kernels.select``)
    n_clusters : int
    chunk_size : int or None: problems per group (None: from the memory budget)
    """

    def __init__(self, X: Any, *, xp: Any, dtype: Any, weights: Any, mask: Any,
                 n_valid: np.ndarray, kernels: Any, n_clusters: int,
                 chunk_size: int | None = None) -> None:
        self.X, self.xp, self.dtype = X, xp, dtype
        self.device = device_of(X)
        self.B, self.n, self.d = (int(s) for s in X.shape)
        self.weights, self.mask, self.n_valid = weights, mask, n_valid
        self.kernels = kernels
        self.k = n_clusters
        budget = default_chunk_budget(xp, self.device)
        width = max(n_clusters, self.d, 2 + int(math.log(max(n_clusters, 1))), 1)
        self.group = chunk_size or max(1, min(self.B, budget // (self.n * width)))
        self.inv_scale = None  # (B,) or None (all 1)
        self.scale = np.ones(self.B)  # host
        self.shift = None  # (B, d) or None (no problem centred)
        self.mean_variance = np.zeros(self.B)
        self.f64 = is_float64_supported(xp, self.device)
        self.buffers: dict = {}

    # -- reading -----------------------------------------------------------------------
    def groups(self, ids: np.ndarray) -> list[tuple[int, int]]:
        """``(start, stop)`` positions in ``ids`` of each group of problems."""
        return [(s, min(s + self.group, len(ids))) for s in range(0, len(ids), self.group)]

    def _index(self, ids: np.ndarray) -> Any:
        return self.xp.asarray(np.asarray(ids, dtype=np.int64), device=self.device)

    def _pick(self, a: Any, ids: np.ndarray) -> Any:
        """Rows ``ids`` (host) of a per-problem array: a view for a contiguous range."""
        if a is None:
            return None
        lo = int(ids[0])
        if int(ids[-1]) - lo + 1 == len(ids) and np.all(np.diff(ids) == 1):
            return a[lo:lo + len(ids), ...]
        return self.xp.take(a, self._index(ids), axis=0)

    def raw(self, ids: np.ndarray) -> Any:
        """Problems ``ids`` in the compute dtype, masked rows zeroed, not yet in the frame."""
        xp = self.xp
        c = self._pick(self.X, ids)
        if c.dtype != self.dtype:
            c = xp.astype(c, self.dtype)
        if self.mask is not None:
            c = xp.where(self._pick(self.mask, ids)[:, :, None], c, xp.zeros_like(c))
        return c

    def to_working(self, c: Any, ids: np.ndarray) -> Any:
        """Arrays (g, m, d) of problems ``ids`` from data to working coordinates."""
        if c.dtype != self.dtype:
            c = self.xp.astype(c, self.dtype)
        if self.inv_scale is not None:
            c = c * self._pick(self.inv_scale, ids)[:, None, None]
        if self.shift is not None:
            c = c - self._pick(self.shift, ids)[:, None, :]
        return c

    def rows(self, ids: np.ndarray) -> Any:
        """Problems ``ids`` (g, n, d) in working coordinates."""
        return self.to_working(self.raw(ids), ids)

    def take_rows(self, idx: Any) -> Any:
        """Rows ``idx`` (B, m) of every problem (B, m, d), in working coordinates."""
        xp = self.xp
        B, m = int(idx.shape[0]), int(idx.shape[1])
        offs = xp.arange(B, dtype=idx.dtype, device=self.device)[:, None] * self.n
        flat = xp.reshape(idx + offs, (B * m,))
        rows = xp.take(xp.reshape(self.X, (B * self.n, self.d)), flat, axis=0)
        return self.to_working(xp.reshape(rows, (B, m, self.d)), np.arange(B))

    def weights_of(self, ids: np.ndarray) -> Any:
        return self._pick(self.weights, ids)

    def accumulator_dtype(self) -> Any:
        return self.xp.float64 if self.f64 else self.dtype

    def problem(self, b: int) -> ChunkedData:
        """Problem ``b`` alone as a ChunkedData in its frame (for the rare relocation path)."""
        xp = self.xp
        ids = np.asarray([b])
        Xb = self.rows(ids)[0, ...]
        w = None if self.weights is None else self.weights[b, ...]
        data = ChunkedData(Xb, xp=xp, dtype=self.dtype, weights=w, n_clusters=self.k,
                           kernels=self.kernels)
        return data  # already in working coordinates: scale 1, no shift

    # -- the frame -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Per problem: NaN / inf check, power-of-two scale, centring rule and variance of
        :meth:`kmeans_xp._data.ChunkedData.prepare`.  Three host syncs in all."""
        stats = self.kernels.batched_frame_stats(self)
        if stats is not None:  # compiled reads of X (the fused CPU set), host float64
            self._prepare_host(stats)
            return
        xp = self.xp
        all_ids = np.arange(self.B)
        amax, sums, sqs = [], [], []
        for s, e in self.groups(all_ids):
            c = self.raw(all_ids[s:e, ...])
            # NaN and inf propagate to the maximum: one reduction checks and sizes
            amax.append(xp.max(xp.abs(c), axis=(1, 2)))
            sums.append(xp.sum(c, axis=1))  # discarded below if a problem must be scaled
            sqs.append(xp.sum(c * c, axis=1))
        amax = xp.concat(amax)
        flags = to_numpy(xp.stack([xp.astype(xp.isfinite(amax), self.dtype),
                                   xp.where(xp.isfinite(amax), amax,
                                            xp.zeros_like(amax))]))  # host sync
        bad = np.nonzero(flags[0] == 0)[0]
        if bad.size:
            raise ValueError(f"Input X contains NaN or infinity (problem {int(bad[0])}).")
        amax = flags[1].astype(np.float64)
        out = (amax > 2.0 ** LOG2_RANGE) | ((amax > 0) & (amax < 2.0 ** -LOG2_RANGE))
        sums, sqs = xp.concat(sums), xp.concat(sqs)
        if out.any():
            with np.errstate(divide="ignore"):
                self.scale = np.where(out, 2.0 ** np.round(np.log2(np.where(out, amax, 1.0))),
                                      1.0)
            self.inv_scale = xp.asarray(1.0 / self.scale, dtype=self.dtype,
                                        device=self.device)
            sums, sqs = None, None  # recomputed on scaled data, as ChunkedData does
            parts_s, parts_q = [], []
            for s, e in self.groups(all_ids):
                c = self.to_working(self.raw(all_ids[s:e, ...]), all_ids[s:e, ...])
                parts_s.append(xp.sum(c, axis=1))
                parts_q.append(xp.sum(c * c, axis=1))
            sums, sqs = xp.concat(parts_s), xp.concat(parts_q)
        nv = xp.asarray(self.n_valid.astype(np.float64), dtype=self.dtype,
                        device=self.device)[:, None]
        mean = sums / nv
        total_var = xp.sum(xp.clip(sqs / nv - mean * mean, min=0.0), axis=1)
        stats = to_numpy(xp.stack([total_var, xp.sum(mean * mean, axis=1)]))  # host sync
        centred = stats[1] > stats[0]
        self.mean_variance = stats[0].astype(np.float64) / self.d
        if not centred.any():
            return
        sel = xp.asarray(centred, device=self.device)
        self.shift = xp.where(sel[:, None], mean, xp.zeros_like(mean))
        sq = []
        for s, e in self.groups(all_ids):
            c = self.rows(all_ids[s:e, ...])
            if self.mask is not None:
                c = xp.where(self._pick(self.mask, all_ids[s:e, ...])[:, :, None], c,
                             xp.zeros_like(c))
            sq.append(xp.sum(c * c, axis=1))
        mv = to_numpy(xp.mean(xp.concat(sq) / nv, axis=1)).astype(np.float64)  # host sync
        self.mean_variance = np.where(centred, mv, self.mean_variance)

    def _prepare_host(self, stats: tuple) -> None:
        """:meth:`prepare` from the kernel set's compiled per-problem statistics (one read
        of X, one more for problems to scale, one more for problems to centre)."""
        finite, amax, sums, sqs = stats
        bad = np.nonzero(~np.asarray(finite))[0]
        if bad.size:
            raise ValueError(f"Input X contains NaN or infinity (problem {int(bad[0])}).")
        out = (amax > 2.0 ** LOG2_RANGE) | ((amax > 0) & (amax < 2.0 ** -LOG2_RANGE))
        if out.any():
            self.scale = np.where(out, 2.0 ** np.round(np.log2(np.where(out, amax, 1.0))),
                                  1.0)
            self.inv_scale = self.xp.asarray(1.0 / self.scale, dtype=self.dtype,
                                             device=self.device)
            _, _, sums, sqs = self.kernels.batched_frame_stats(self)
        nv = self.n_valid.astype(np.float64)[:, None]
        mean = sums / nv
        total_var = np.sum(np.clip(sqs / nv - mean * mean, 0.0, None), axis=1)
        centred = np.sum(mean * mean, axis=1) > total_var
        self.mean_variance = total_var / self.d
        if not centred.any():
            return
        self.shift = self.xp.asarray(np.where(centred[:, None], mean, 0.0), dtype=self.dtype,
                                     device=self.device)
        sq = self.kernels.batched_frame_stats(self)[3]
        self.mean_variance = np.where(centred, np.mean(sq / nv, axis=1), self.mean_variance)

    def to_data_coords(self, C: Any, dtype: Any) -> Any:
        xp = self.xp
        if self.shift is not None:
            C = C + self.shift[:, None, :]
        if self.inv_scale is not None:
            C = C * xp.asarray(self.scale, dtype=C.dtype, device=self.device)[:, None, None]
        return C if C.dtype == dtype else xp.astype(C, dtype)


# -- initialisation ------------------------------------------------------------------------
def kpp_uniforms(seeds: np.ndarray, n_draws: int) -> np.ndarray:
    """The first ``n_draws`` uniforms (B, n_draws) float64 of each problem's generator
    ``np.random.RandomState(seeds[b])``: what its ``random_sample()`` and
    ``uniform(size=m)`` calls return, in order (both read the same stream of doubles,
    ``uniform`` as ``0 + 1 * random_sample()``, exactly).  One seeding and one draw per
    problem (a reused generator)."""
    seeds = np.asarray(seeds, dtype=np.int64)
    out = np.empty((seeds.shape[0], n_draws))
    rs = np.random.RandomState()
    for b, seed in enumerate(seeds.tolist()):
        rs.seed(seed)
        out[b] = rs.random_sample(n_draws)
    return out


def kpp_draws(n_clusters: int, n_local_trials: int | None = None) -> tuple[int, int]:
    """``(m, uniforms per k-means++ run)``: m candidates per step (2 + ln k by default)."""
    m = n_local_trials or 2 + int(math.log(n_clusters))
    return m, 1 + (n_clusters - 1) * m


def batched_kmeans_plusplus(data: BatchedData, uniforms: np.ndarray,
                            n_local_trials: int | None = None) -> Any:
    """Greedy k-means++ for every problem at once, as ONE call of the kernel set; problem b
    draws from ``uniforms[b]`` (host, :func:`kpp_uniforms`) exactly as
    :func:`kmeans_xp._solvers.init.kmeans_plusplus_working` would from its generator.
    Returns the centres (B, k) in working coordinates."""
    k, B = data.k, data.B
    m, used = kpp_draws(k, n_local_trials)
    idx = data.kernels.batched_kmeans_plusplus(
        data, k, uniforms[:, 0], uniforms[:, 1:used].reshape(B, k - 1, m), m)
    return data.take_rows(idx)


def batched_random(data: BatchedData, rngs: list) -> Any:
    """``k`` distinct rows per problem drawn as ``rng.choice(n_b, k, replace=False, p=w)``."""
    xp, k = data.xp, data.k
    host_w = None if data.weights is None else to_numpy(data.weights)
    host_mask = None if data.mask is None else to_numpy(data.mask)
    idx = np.empty((data.B, k), dtype=np.int64)
    for b, r in enumerate(rngs):
        valid = np.arange(data.n) if host_mask is None else np.nonzero(host_mask[b])[0]
        nb = valid.size
        if host_w is None:
            p = np.full(nb, 1.0 / nb)
        else:
            wb = host_w[b, valid].astype(np.float64)
            p = wb / wb.sum()
        idx[b] = valid[r.choice(nb, size=k, replace=False, p=p)]
    return data.take_rows(xp.asarray(idx, device=data.device))


# -- Lloyd -------------------------------------------------------------------------------
def _merge(xp: Any, full: Any, part: Any, ids: np.ndarray, B: int, device: Any) -> Any:
    """``full`` with rows ``ids`` replaced by ``part`` (standard gather + where, no scatter)."""
    pos = np.zeros(B, dtype=np.int64)
    pos[ids] = np.arange(len(ids))
    sel = np.zeros(B, dtype=bool)
    sel[ids] = True
    picked = xp.take(part, xp.asarray(pos, device=device), axis=0)
    shape = (B,) + (1,) * (full.ndim - 1)
    return xp.where(xp.reshape(xp.asarray(sel, device=device), shape), picked, full)


def _pass(data: BatchedData, active: np.ndarray, C: Any) -> tuple[Any, Any, Any]:
    """Labels (a, n), sums (a, k, d), counts (a, k) of the active problems: one call."""
    labels, sums, counts, _ = data.kernels.batched_lloyd_pass(data, C, active)
    return labels, sums, counts


def _new_centers(xp: Any, sums: Any, counts: Any, old: Any) -> Any:
    has = counts > 0
    safe = xp.where(has, counts, xp.ones_like(counts))
    return xp.where(has[:, :, None], sums / safe[:, :, None], old)


def batched_lloyd(data: BatchedData, centers: Any, *, max_iter: int, tol: np.ndarray
                  ) -> tuple[Any, Any, Any, np.ndarray]:
    """Lloyd's algorithm on every problem from ``centers`` (B, k, d), working coordinates.

    Returns labels (B, n) (-1 on masked rows), inertia (B,) (working units, accumulator
    dtype), centres (B, k, d) and n_iter (B,) on the host.  Per iteration, ONE host sync
    for all problems; problems leave the working set when they converge.
    """
    xp, B, dev = data.xp, data.B, data.device
    active = np.arange(B)
    final = centers
    C = centers
    labels_old = None
    n_iter = np.zeros(B, dtype=np.int64)
    mask = data.mask
    for it in range(max_iter):
        labels, sums, counts = _pass(data, active, C)
        updated = _new_centers(xp, sums, counts, C)
        shift = xp.sum((updated - C) ** 2, axis=(1, 2))
        if labels_old is None:
            code = shift
        else:
            same = labels == labels_old
            if mask is not None:
                same = xp.logical_or(same, xp.logical_not(data._pick(mask, active)))
            code = xp.where(xp.all(same, axis=1), -1.0, shift)
        code = xp.where(xp.any(counts == 0, axis=1), -2.0, code)
        host = to_numpy(code).astype(np.float64)  # the one host sync of the iteration
        empty = np.nonzero(host == -2.0)[0]
        if empty.size:  # rare: relocate problem by problem, then re-test those
            for j in empty:
                b = int(active[j])
                pdata = data.problem(b)
                s_b, c_b, _ = relocate_empty_clusters(pdata, labels[j, ...], C[j, ...],
                                                   sums[j, ...], counts[j, ...])
                sums = _merge(xp, sums, s_b[None, ...], np.asarray([j]), len(active), dev)
                counts = _merge(xp, counts, c_b[None, ...], np.asarray([j]), len(active), dev)
            updated = _new_centers(xp, sums, counts, C)
            shift = xp.sum((updated - C) ** 2, axis=(1, 2))
            redo = to_numpy(shift).astype(np.float64)
            if labels_old is not None:
                same_h = to_numpy(xp.all(same, axis=1))
                redo = np.where(same_h, -1.0, redo)
            host[empty] = redo[empty]
        C = updated
        n_iter[active] = it + 1
        done = (host == -1.0) | (host <= tol[active])
        if it == max_iter - 1:
            done[:] = True
        if done.any():
            final = _merge(xp, final, C, active, B, dev) if len(active) < B or not done.all() \
                else C
            keep = np.nonzero(~done)[0]
            if keep.size == 0:
                break
            keep_dev = xp.asarray(keep, device=dev)
            C = xp.take(C, keep_dev, axis=0)
            labels_old = xp.take(labels, keep_dev, axis=0)
            active = active[keep]
        else:
            labels_old = labels
    labels, inertia = batched_labels_inertia(data, final)
    return labels, inertia, final, n_iter


def batched_labels_inertia(data: BatchedData, centers: Any) -> tuple[Any, Any]:
    """Nearest-centre labels (B, n) (-1 on masked rows) and inertia (B,) by direct
    differences, for every problem: one call of the kernel set."""
    xp = data.xp
    labels, inertia = data.kernels.batched_labels_inertia(data, centers, None)
    if data.mask is not None:
        labels = xp.where(data.mask, labels, xp.full_like(labels, -1))
    return labels, inertia


def batched_same_clustering(labels1: Any, labels2: Any, k: int, data: BatchedData) -> Any:
    """(B,) bool: whether each cluster of ``labels1`` lies inside one of ``labels2``."""
    xp = data.xp
    ks = xp.arange(k, dtype=labels1.dtype, device=data.device)
    a = xp.astype(labels1[:, :, None] == ks, data.dtype)
    b = xp.astype(labels2[:, :, None] == ks, data.dtype)
    table = xp.matmul(xp.matrix_transpose(a), b)
    return xp.all(xp.sum(xp.astype(table > 0, xp.int32), axis=2) <= 1, axis=1)
