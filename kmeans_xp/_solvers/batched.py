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
from .._data import ChunkedData
from .._frame import Frame, build_frame


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
        #: the per-problem frame (``_frame.Frame`` with a problem axis), by the one rule
        self.frame = Frame(np.ones(self.B), None, np.zeros(self.B))
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

    # -- the frame (read-only views of ``self.frame``) ------------------------------------
    @property
    def scale(self) -> np.ndarray:
        return self.frame.scale

    @property
    def mean_variance(self) -> np.ndarray:
        return self.frame.mean_variance

    @property
    def shift(self) -> Any:
        return self.frame.shift

    @property
    def inv_scale(self) -> Any:
        """(B,) compute-dtype device array, or None where no problem is scaled."""
        if not self.frame.scaled:
            return None
        cached = self.buffers.get("inv_scale")
        if cached is None or cached[0] is not self.frame:  # made once per frame
            cached = (self.frame, self.xp.asarray(1.0 / self.frame.scale, dtype=self.dtype,
                                                  device=self.device))
            self.buffers["inv_scale"] = cached
        return cached[1]

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

    # -- the moments the frame is built from (``_frame.build_frame``: the rule) ----------
    batched = True
    can_centre = True

    def prepare(self) -> None:
        """Per problem: NaN / inf check, power-of-two scale, centring and variance, by the
        rule of every fit (:func:`kmeans_xp._frame.build_frame`).  Three host syncs in all."""
        self.frame = build_frame(self, self.frame.metric)

    def _compiled_stats(self, frame: Frame) -> tuple | None:
        """``(finite, amax, sums, sqs)`` (host float64, per problem) of the valid rows in
        ``frame`` from one compiled read of X (the fused CPU set), or None."""
        self.frame = frame  # the kernels read the scale and shift of the frame being built
        return self.kernels.batched_frame_stats(self)

    def check_and_amax(self, name: str = "X") -> np.ndarray:
        self._moments = None
        stats = self._compiled_stats(Frame(np.ones(self.B), None, np.zeros(self.B)))
        if stats is not None:
            finite, amax, sums, sqs = stats
            bad = np.nonzero(~np.asarray(finite))[0]
            if bad.size:
                raise ValueError(f"Input {name} contains NaN or infinity "
                                 f"(problem {int(bad[0])}).")
            self._moments = (sums, sqs)  # at scale 1: reused unless a problem is scaled
            return np.asarray(amax, dtype=np.float64)
        xp = self.xp
        all_ids = np.arange(self.B)
        amax = []
        for s, e in self.groups(all_ids):
            # NaN and inf propagate to the maximum: one reduction checks and sizes
            amax.append(xp.max(xp.abs(self.raw(all_ids[s:e, ...])), axis=(1, 2)))
        amax = xp.concat(amax)
        flags = to_numpy(xp.stack([xp.astype(xp.isfinite(amax), self.dtype),
                                   xp.where(xp.isfinite(amax), amax,
                                            xp.zeros_like(amax))]))  # host sync
        bad = np.nonzero(flags[0] == 0)[0]
        if bad.size:
            raise ValueError(f"Input {name} contains NaN or infinity (problem {int(bad[0])}).")
        return flags[1].astype(np.float64)

    def _column_sums(self, scale: np.ndarray, shift: Any) -> tuple[Any, Any]:
        """Per-problem column sums and sums of squares (B, d) of the rows scaled by
        ``1 / scale`` and shifted by ``shift``; masked rows count as zeros."""
        xp = self.xp
        all_ids = np.arange(self.B)
        inv = xp.asarray(1.0 / scale, dtype=self.dtype, device=self.device)
        parts_s, parts_q = [], []
        for s, e in self.groups(all_ids):
            ids = all_ids[s:e, ...]
            c = self.raw(ids) * self._pick(inv, ids)[:, None, None]
            if shift is not None:
                c = c - self._pick(shift, ids)[:, None, :]
                if self.mask is not None:  # masked rows are zeros
                    c = xp.where(self._pick(self.mask, ids)[:, :, None], c, xp.zeros_like(c))
            parts_s.append(xp.sum(c, axis=1))
            parts_q.append(xp.sum(c * c, axis=1))
        return xp.concat(parts_s), xp.concat(parts_q)

    def moments(self, scale: np.ndarray, metric: Any) -> tuple[Any, Any, Any]:
        xp = self.xp
        scale = np.asarray(scale, dtype=np.float64)
        cached, self._moments = getattr(self, "_moments", None), None
        if cached is not None and np.all(scale == 1.0):
            host = np.stack(cached)
        else:
            stats = self._compiled_stats(Frame(scale, None, np.zeros(self.B), metric))
            if stats is not None:
                host = np.stack([stats[2], stats[3]])
            else:
                sums, sqs = self._column_sums(scale, None)
                host = np.asarray(to_numpy(xp.stack([sums, sqs])), dtype=np.float64)  # sync
        n = self.n_valid.astype(np.float64)[:, None]
        mean = host[0] / n
        total = np.sum(np.clip(host[1] / n - mean * mean, 0.0, None), axis=1)
        return self.n_valid, mean, total

    def centred_variance(self, frame: Frame) -> np.ndarray:
        stats = self._compiled_stats(frame)
        if stats is not None:
            return np.sum(stats[3], axis=1) / self.n_valid.astype(np.float64)
        _, sqs = self._column_sums(frame.scale, frame.shift)
        n = self.n_valid.astype(np.float64)
        return np.sum(np.asarray(to_numpy(sqs), dtype=np.float64), axis=1) / n  # host sync

    # -- the row-source interface of the drivers (``_solvers.lloyd``): B problems --------
    @property
    def n_problems(self) -> int:
        return self.B

    @property
    def metric(self) -> Any:
        return self.frame.metric

    def lloyd_pass(self, C: Any, labels_old: Any, active: np.ndarray,
                   need_inertia: bool = False) -> tuple[Any, Any, Any, Any, Any]:
        """One pass over the ``active`` problems: labels, sums, counts, None, and whether
        each problem's labels equal ``labels_old`` on its rows ((a,) bool; None first)."""
        xp = self.xp
        labels, sums, counts = _pass(self, active, C)
        same = None
        if labels_old is not None:
            eq = labels == labels_old
            if self.mask is not None:
                eq = xp.logical_or(eq, xp.logical_not(self._pick(self.mask, active)))
            same = xp.all(eq, axis=1)
        return labels, sums, counts, None, same

    def fused_update(self, labels, sums, counts, C, labels_old):
        return None  # the driver computes the update and the code

    def squared_shift(self, new: Any, old: Any) -> Any:
        diff = new - old
        return self.xp.sum(diff * diff, axis=(1, 2))

    def relocate(self, labels: Any, C: Any, sums: Any, counts: Any, which: np.ndarray,
                 active: np.ndarray) -> tuple[Any, Any, Any]:
        """Empty clusters of the problems ``which`` (positions in ``active``) filled by the
        one-problem rule; a rare path."""
        xp, dev, a = self.xp, self.device, len(active)
        for j in which:
            pdata = self.problem(int(active[j]))
            s_b, c_b, _ = pdata.relocate(labels[j, ...], C[j, ...], sums[j, ...],
                                         counts[j, ...])
            sums = _merge(xp, sums, s_b[None, ...], np.asarray([j]), a, dev)
            counts = _merge(xp, counts, c_b[None, ...], np.asarray([j]), a, dev)
        return sums, counts, labels

    def take(self, a: Any, keep: np.ndarray) -> Any:
        return self.xp.take(a, self.xp.asarray(keep, device=self.device), axis=0)

    def merge(self, full: Any, part: Any, active: np.ndarray) -> Any:
        if len(active) == self.B:
            return part
        return _merge(self.xp, full, part, active, self.B, self.device)

    def final(self, C: Any, labels: Any, strict: Any) -> tuple[Any, Any]:
        """Labels (-1 on masked rows) and inertia of every problem for ``C``: after a
        strict stop a problem's last labels are already those (its centres are the means
        of the same labels as before), so only its inertia is computed (distances to the
        assigned centres, no k-way search); the others get one more assignment."""
        xp = self.xp
        strict = np.asarray(strict, dtype=bool).reshape(-1)
        if labels is None or not strict.any():
            return batched_labels_inertia(self, C)
        if self.mask is not None:
            labels = xp.where(self.mask, labels, xp.full_like(labels, -1))
        ids = np.nonzero(strict)[0]
        kern = self.kernels
        part = ids if len(ids) < self.B else None
        dist = kern.batched_sq_dist_to_assigned(
            self, C if part is None else self.take(C, ids),
            labels if part is None else self.take(labels, ids), part)
        acc = self.accumulator_dtype()
        dist = xp.astype(dist, acc)
        if self.weights is not None:
            dist = dist * xp.astype(self._pick(self.weights, ids), acc)
        inertia = xp.sum(dist, axis=1)
        if part is None:
            return labels, inertia
        rest = np.nonzero(~strict)[0]
        lab_r, in_r = kern.batched_labels_inertia(self, self.take(C, rest), rest)
        if self.mask is not None:
            lab_r = xp.where(self._pick(self.mask, rest), lab_r, xp.full_like(lab_r, -1))
        labels = self.merge(labels, xp.astype(lab_r, labels.dtype), rest)
        inertia = _merge(xp, _merge(xp, xp.zeros(self.B, dtype=inertia.dtype,
                                                 device=self.device),
                                    inertia, ids, self.B, self.device),
                         xp.astype(in_r, inertia.dtype), rest, self.B, self.device)
        return labels, inertia

    def same_clusterings(self, labels1: Any, labels2: Any, n_clusters: int) -> np.ndarray:
        return np.asarray(to_numpy(batched_same_clustering(labels1, labels2, n_clusters, self)))

    def to_data_coords(self, C: Any, dtype: Any) -> Any:
        return self.frame.to_data(C, self.xp, dtype)


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


def batched_sq_distances(data: BatchedData, centers: Any) -> Any:
    """Squared distances (B, n, k) of every row to every centre of its problem, clipped at 0;
    the nearest centre's by direct differences (a row on a centre gets exactly 0)."""
    xp, kern = data.xp, data.kernels
    ids = np.arange(data.B)
    k = int(centers.shape[1])
    ks = xp.arange(k, device=data.device)
    parts = []
    for s, e in data.groups(ids):
        Xt = data.rows(ids[s:e, ...])
        D = kern.batched_partial_sq_distances(Xt, centers[s:e, ...]) \
            + xp.sum(Xt * Xt, axis=2)[:, :, None]
        lab = xp.astype(kern.batched_argmin(D), ks.dtype)
        exact = kern.batched_sq_diff(Xt, centers[s:e, ...], lab)
        D = xp.where(lab[:, :, None] == ks, exact[:, :, None], D)
        parts.append(xp.clip(D, min=0.0))
    return xp.concat(parts)
