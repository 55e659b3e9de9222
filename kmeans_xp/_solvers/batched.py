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
        if "inv_scale" not in self.buffers:
            self.buffers["inv_scale"] = self.xp.asarray(1.0 / self.frame.scale,
                                                        dtype=self.dtype, device=self.device)
        return self.buffers["inv_scale"]

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
        self.buffers.pop("inv_scale", None)
        self.frame = build_frame(self, self.frame.metric)
        self.buffers.pop("inv_scale", None)

    def check_and_amax(self, name: str = "X") -> np.ndarray:
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
        sums, sqs = self._column_sums(np.asarray(scale, dtype=np.float64), None)
        host = np.asarray(to_numpy(xp.stack([sums, sqs])), dtype=np.float64)  # host sync
        n = self.n_valid.astype(np.float64)[:, None]
        mean = host[0] / n
        total = np.sum(np.clip(host[1] / n - mean * mean, 0.0, None), axis=1)
        return self.n_valid, mean, total

    def centred_variance(self, frame: Frame) -> np.ndarray:
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
        """Labels (-1 on masked rows) and inertia of every problem for ``C``."""
        return batched_labels_inertia(self, C)

    def same_clusterings(self, labels1: Any, labels2: Any, n_clusters: int) -> np.ndarray:
        return np.asarray(to_numpy(batched_same_clustering(labels1, labels2, n_clusters, self)))

    def to_data_coords(self, C: Any, dtype: Any) -> Any:
        return self.frame.to_data(C, self.xp, dtype)


# -- initialisation ------------------------------------------------------------------------
def _last_valid(data: BatchedData) -> Any:
    """Index (B,) of the last valid row of each problem."""
    xp = data.xp
    if data.mask is None:
        return None
    pos = xp.arange(data.n, dtype=xp.int64, device=data.device)
    return xp.max(xp.where(data.mask, pos, xp.zeros_like(pos)), axis=1)


def _sq_dist(data: BatchedData, Xt: Any, x_sq: Any, C: Any) -> Any:
    """Squared distances (g, n, m) by the expansion, clipped at 0 (k-means++'s formula)."""
    xp = data.xp
    D = x_sq[:, :, None] - 2.0 * xp.matmul(Xt, xp.matrix_transpose(C)) \
        + xp.sum(C * C, axis=2)[:, None, :]
    return xp.clip(D, min=0.0)


def batched_kmeans_plusplus(data: BatchedData, rngs: list, n_local_trials: int | None = None
                            ) -> Any:
    """Greedy k-means++ for every problem at once; problem b draws from ``rngs[b]`` exactly
    as :func:`kmeans_xp._solvers.init.kmeans_plusplus_working` would.  No host sync: only
    uniforms travel to the device.  Returns the centres (B, k, d) in working coordinates."""
    xp, B, n, k = data.xp, data.B, data.n, data.k
    dev, acc = data.device, data.accumulator_dtype()
    m = n_local_trials or 2 + int(math.log(k))
    ids = np.arange(B)
    w = data.weights
    last = _last_valid(data)
    u = np.asarray([float(r.random_sample() if isinstance(r, np.random.RandomState)
                         else r.random()) for r in rngs])
    if w is None:
        first = xp.asarray(np.minimum((u * n).astype(np.int64), n - 1), device=dev)
    else:
        cdf = xp.cumulative_sum(xp.astype(w, acc), axis=1)
        target = xp.asarray(u, dtype=acc, device=dev) * cdf[:, -1]
        first = xp.sum(xp.astype(cdf <= target[:, None], xp.int64), axis=1)
        first = xp.minimum(first, n - 1) if last is None else xp.minimum(first, last)
    groups = data.groups(ids)
    Xg = [data.rows(ids[s:e, ...]) for s, e in groups] if len(groups) == 1 else None

    def rows(s, e):
        return Xg[0] if Xg is not None else data.rows(ids[s:e, ...])

    x_sq = xp.concat([xp.sum(Xt * Xt, axis=2) for Xt in (rows(s, e) for s, e in groups)])

    def closest_to(centre, closest):  # centre (B, 1, d)
        parts = []
        for s, e in groups:
            dist = _sq_dist(data, rows(s, e), x_sq[s:e, ...], centre[s:e, ...])[:, :, 0]
            parts.append(dist if closest is None else xp.minimum(closest[s:e, ...], dist))
        return xp.concat(parts)

    center = data.take_rows(first[:, None])
    centers = [center]
    closest = closest_to(center, None)
    weighted = closest if w is None else closest * w
    pot = xp.sum(xp.astype(weighted, acc, copy=False), axis=1)
    for _ in range(1, k):
        rand = np.stack([r.uniform(size=m) for r in rngs])
        rand = xp.asarray(rand, dtype=acc, device=dev) * pot[:, None]
        cum = xp.cumulative_sum(xp.astype(weighted, acc, copy=False), axis=1)
        cand = data.kernels.batched_searchsorted(cum, rand)  # side='left', per problem
        cand = xp.minimum(cand, n - 1) if last is None else xp.minimum(cand, last[:, None])
        cand_rows = data.take_rows(cand)  # (B, m, d)
        pots, dists = [], []
        for s, e in groups:
            Dc = _sq_dist(data, rows(s, e), x_sq[s:e, ...], cand_rows[s:e, ...])
            dists.append(Dc)  # kept: the chosen candidate's column updates ``closest``
            D = xp.minimum(Dc, closest[s:e, :, None])
            if w is not None:
                D = D * w[s:e, :, None]
            pots.append(xp.astype(xp.sum(D, axis=1), acc))
        pots = xp.concat(pots)  # (B, m)
        best = xp.argmin(pots, axis=1)
        pot = xp.min(pots, axis=1)
        flat = best + xp.arange(B, dtype=best.dtype, device=dev) * m
        center = xp.take(xp.reshape(cand_rows, (B * m, data.d)), flat, axis=0)[:, None, :]
        centers.append(center)
        pick = xp.astype(best[:, None] == xp.arange(m, dtype=best.dtype, device=dev),
                         closest.dtype)[:, None, :]  # (B, 1, m)
        closest = xp.concat([xp.minimum(closest[s:e, ...],
                                        xp.sum(dists[i] * pick[s:e, ...], axis=2))
                             for i, (s, e) in enumerate(groups)])
        weighted = closest if w is None else closest * w
    return xp.concat(centers, axis=1)


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
    """Labels (a, n), sums (a, k, d), counts (a, k) of the active problems."""
    xp, kern, k = data.xp, data.kernels, data.k
    labels, sums, counts = [], [], []
    for s, e in data.groups(active):
        ids = active[s:e, ...]
        Xt = data.rows(ids)
        lab = kern.batched_argmin(kern.batched_partial_sq_distances(Xt, C[s:e, ...],
                                                                    data.buffers))
        sm, ct = kern.batched_cluster_sums(Xt, lab, data.weights_of(ids), k)
        labels.append(lab)
        sums.append(sm)
        counts.append(ct)
    if len(labels) == 1:
        return labels[0], sums[0], counts[0]
    return xp.concat(labels), xp.concat(sums), xp.concat(counts)


def batched_labels_inertia(data: BatchedData, centers: Any) -> tuple[Any, Any]:
    """Nearest-centre labels (B, n) (-1 on masked rows) and inertia (B,) by direct
    differences, for every problem."""
    xp, kern = data.xp, data.kernels
    ids = np.arange(data.B)
    labels, inertia = [], []
    for s, e in data.groups(ids):
        g = ids[s:e, ...]
        Xt = data.rows(g)
        lab = kern.batched_argmin(kern.batched_partial_sq_distances(Xt, centers[s:e, ...],
                                                                    data.buffers))
        dist = kern.batched_sq_dist_to_assigned(Xt, centers[s:e, ...], lab)
        w = data.weights_of(g)
        if w is not None:
            dist = dist * w
        inertia.append(xp.astype(xp.sum(dist, axis=1), data.accumulator_dtype()))
        if data.mask is not None:
            lab = xp.where(data._pick(data.mask, g), lab, xp.full_like(lab, -1))
        labels.append(lab)
    return xp.concat(labels), xp.concat(inertia)


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
        exact = kern.batched_sq_dist_to_assigned(Xt, centers[s:e, ...], lab)
        D = xp.where(lab[:, :, None] == ks, exact[:, :, None], D)
        parts.append(xp.clip(D, min=0.0))
    return xp.concat(parts)
