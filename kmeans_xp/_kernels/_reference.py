"""The reference kernel set: pure Array API standard, the truth every other set is tested against.

A kernel set has two layers:

- *chunk primitives* (distances of a chunk to the centres, row argmin, centre sums of a chunk,
  distances to the assigned centres): the vendor sets (``_numpy``, ``_torch``, ``_cupy``)
  override these with faster calls of their library;
- *whole passes* over a :class:`~kmeans_xp._data.ChunkedData` (a Lloyd pass, an assignment,
  the inertia, the k-means++ potentials): written here once with a chunk loop on top of the
  primitives; the fused sets (``_cpu``, ``_triton``) override these and own the loop.

Everything here calls only standard functions on ``xp``.  Distances are squared Euclidean in
the working coordinates of ``data`` (``Xt = X * inv_scale - shift``).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import accumulate, chunk_rows, default_chunk_budget, device_of
from ._protocol import KernelData


def fusable(data: KernelData) -> bool:
    """Whether a fused kernel set may read ``data.X`` itself, applying the frame (shift,
    scale) on its own: not for data streamed from the host, nor for 'cosine', whose frame
    also scales each row to unit length.  Otherwise the fused sets take their parent's
    chunk loop."""
    return not data.streamed and data.metric.kernel == "sqeuclidean" and not data.metric.unit_rows


def onehot(labels: Any, n_clusters: int, dtype: Any, xp: Any) -> Any:
    """(m, n_clusters) indicator matrix of ``labels`` in ``dtype``."""
    ks = xp.arange(n_clusters, dtype=labels.dtype, device=device_of(labels))
    return xp.astype(labels[:, None] == ks[None, :], dtype)


def concat(parts: list, xp: Any) -> Any:
    """The chunks' results as one array (no copy for a single chunk)."""
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def center_terms(centers: Any, xp: Any) -> tuple[Any, Any]:
    """``-2 * C.T`` (d, k) and ``||c||^2`` (k,), computed once per pass."""
    return -2.0 * xp.matrix_transpose(centers), xp.sum(centers * centers, axis=1)


def weighted_total(values: Any, w: Any, data: KernelData) -> Any:
    """sum(w * values) of a chunk, as a 0-d array of the accumulator dtype."""
    xp = data.xp
    v = values if w is None else values * w
    return xp.astype(xp.sum(v), data.accumulator_dtype())


@dataclass
class BatchStats:
    """What a mini-batch step's assignment hands to its centre update
    (:meth:`ReferenceKernels.minibatch_assign` -> :meth:`ReferenceKernels.minibatch_move`)."""

    wsum: Any  # (k,) the weight each centre received from the batch
    inertia: Any  # 0-d: weighted squared distances of the batch to the centres before the step
    sums: Any = None  # (k, d) weighted sums of the batch rows per centre, or None
    labels: Any = None  # (m,) int64 nearest centre of each batch row, or None


@dataclass
class Reassignment:
    """Centres of a mini-batch step moved to rows of its batch (scikit-learn's random
    reassignment): the centres where ``mask`` (k,) is true, in order, become the batch rows
    ``picked`` (host int64); ``rows_of(picked)`` gives them as a dense (r, d) array."""

    mask: Any
    picked: Any
    rows_of: Any


class ReferenceKernels:
    """Pure-standard kernels for any namespace; the base class of every other kernel set.

    Parameters
    ----------
    xp : namespace
    device : device of the data
    dtype : the compute dtype (float32 or float64)
    precision : {'exact', 'tf32', 'bf16'}
        Only the tensor-core kernels distinguish them; everything else computes in ``dtype``.
    deterministic : bool
        Bit-identical results from run to run (fixed-order reductions).  Only kernels that
        can use atomics look at it.
    """

    name = "reference"

    def __init__(self, xp: Any, device: Any, dtype: Any, *, precision: str = "exact",
                 deterministic: bool = True) -> None:
        self.xp = xp
        self.device = device
        self.dtype = dtype
        self.precision = precision
        self.deterministic = deterministic

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    def small_work(self, flops: int) -> Any:
        """A context for a loop of small operations (mini-batch steps) of about ``flops``
        each: vendor sets may run them on one thread, where waking a thread pool costs more
        than the work (scikit-learn limits BLAS to one thread there too)."""
        return nullcontext()

    # -- chunk primitives (vendor sets override) -----------------------------------
    def partial_sq_distances(self, Xt: Any, m2t: Any, c_sq: Any,
                             buffers: dict | None = None) -> Any:
        """``||c_j||^2 - 2 xt_i . c_j`` (m, k): squared distances less ``||xt_i||^2``.

        With ``buffers``, a vendor set may return a block reused from call to call (valid
        until the next call).
        """
        return self.xp.matmul(Xt, m2t) + c_sq

    def min_argmin(self, D: Any) -> tuple[Any, Any]:
        """Row minima and the first index where each is reached."""
        xp = self.xp
        idx = xp.argmin(D, axis=1)
        return xp.min(D, axis=1), idx

    def argmin_rows(self, D: Any) -> Any:
        """The first index of each row's minimum."""
        return self.xp.argmin(D, axis=1)

    def cluster_sums(self, Xt: Any, labels: Any, w: Any, k: int) -> tuple[Any, Any]:
        """Weighted sums (k, d) of the rows of ``Xt`` per label, and weights per label (k,).

        A one-hot product: deterministic on every backend.
        """
        xp = self.xp
        oh = onehot(labels, k, Xt.dtype, xp)
        if w is not None:
            oh = oh * w[:, None]
        return xp.matmul(xp.matrix_transpose(oh), Xt), xp.sum(oh, axis=0)

    def sq_dist_to_assigned_chunk(self, Xt: Any, centers: Any, labels: Any,
                                  buffers: dict | None = None) -> Any:
        """``||xt_i - c_{labels_i}||^2`` of a chunk by direct differences (float32-accurate)."""
        xp = self.xp
        diff = Xt - xp.take(centers, labels, axis=0)
        return xp.vecdot(diff, diff, axis=-1)

    # -- whole passes (fused sets override) ------------------------------------------
    def assign_chunk(self, Xt: Any, m2t: Any, c_sq: Any, *, need_min: bool = False,
                     buffers: dict | None = None) -> tuple[Any, Any]:
        """Labels of a chunk and, with ``need_min``, ``min_j ||c_j||^2 - 2 xt.c_j``."""
        D = self.partial_sq_distances(Xt, m2t, c_sq, buffers)
        if need_min:
            mins, labels = self.min_argmin(D)
            return labels, mins
        return self.argmin_rows(D), None

    def lloyd_pass(self, data: KernelData, centers: Any, *,
                   need_inertia: bool = False) -> tuple[Any, Any, Any, Any]:
        """One assignment + accumulation pass.

        Returns labels (n,), sums (k, d), counts (k,) and, with ``need_inertia``, the
        weighted inertia (0-d, accumulator dtype; else None).
        """
        xp = self.xp
        k = int(centers.shape[0])
        m2t, c_sq = center_terms(centers, xp)
        labels, sums, counts, inertia = [], None, None, None
        for _, _, Xt, w in data.chunks():
            lab, mins = self.assign_chunk(Xt, m2t, c_sq, need_min=need_inertia,
                                          buffers=data.buffers)
            labels.append(lab)
            s, c = self.cluster_sums(Xt, lab, w, k)
            sums, counts = accumulate(sums, s), accumulate(counts, c)
            if need_inertia:
                dist = xp.clip(mins + xp.sum(Xt * Xt, axis=1), min=0.0)
                inertia = accumulate(inertia, weighted_total(dist, w, data))
        return concat(labels, xp), sums, counts, inertia

    def assign(self, data: KernelData, centers: Any) -> tuple[Any, Any]:
        """Nearest-centre labels (n,) and the squared distances to them (n,), clipped at 0."""
        xp = self.xp
        m2t, c_sq = center_terms(centers, xp)
        labels, mins = [], []
        for _, _, Xt, _ in data.chunks():
            lab, m = self.assign_chunk(Xt, m2t, c_sq, need_min=True, buffers=data.buffers)
            labels.append(lab)
            mins.append(xp.clip(m + xp.sum(Xt * Xt, axis=1), min=0.0))
        return concat(labels, xp), concat(mins, xp)

    def labels_inertia(self, data: KernelData, centers: Any, *,
                       return_inertia: bool = True) -> tuple[Any, Any]:
        """Nearest-centre labels (n,) and the weighted inertia (0-d) by direct differences."""
        xp = self.xp
        m2t, c_sq = center_terms(centers, xp)
        labels, total = [], None
        for _, _, Xt, w in data.chunks():
            lab, _ = self.assign_chunk(Xt, m2t, c_sq, buffers=data.buffers)
            labels.append(lab)
            if return_inertia:
                dist = self.sq_dist_to_assigned_chunk(Xt, centers, lab, data.buffers)
                total = accumulate(total, weighted_total(dist, w, data))
        return concat(labels, xp), total

    def sq_dist_to_assigned(self, data: KernelData, centers: Any, labels: Any) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (n,) by direct differences."""
        return concat([self.sq_dist_to_assigned_chunk(Xt, centers, labels[s:e], data.buffers)
                       for s, e, Xt, _ in data.chunks()], self.xp)

    def inertia_for_labels(self, data: KernelData, centers: Any, labels: Any) -> Any:
        """sum_i w_i ||xt_i - c_{labels_i}||^2 (0-d, accumulator dtype)."""
        total = None
        for s, e, Xt, w in data.chunks():
            dist = self.sq_dist_to_assigned_chunk(Xt, centers, labels[s:e], data.buffers)
            total = accumulate(total, weighted_total(dist, w, data))
        return total

    def sq_distances(self, data: KernelData, centers: Any) -> Any:
        """Squared distances (n, k) to every centre (``transform`` asks for them all).

        A row equal to a centre gets exactly 0 there: the expansion is corrected by the
        direct difference to the nearest centre.
        """
        xp = self.xp
        k = int(centers.shape[0])
        m2t, c_sq = center_terms(centers, xp)
        ks = xp.arange(k, device=self.device)
        parts = []
        for _, _, Xt, _ in data.chunks():
            D = self.partial_sq_distances(Xt, m2t, c_sq) + xp.sum(Xt * Xt, axis=1)[:, None]
            lab = xp.astype(self.argmin_rows(D), ks.dtype)
            exact = self.sq_dist_to_assigned_chunk(Xt, centers, lab)
            D = xp.where(lab[:, None] == ks[None, :], exact[:, None], D)
            parts.append(xp.clip(D, min=0.0))
        return concat(parts, xp)

    # -- mini-batch steps (scikit-learn's per-centre learning rate) --------------------
    def minibatch_assign(self, data: KernelData, centers: Any, work: dict | None = None
                         ) -> BatchStats:
        """Statistics of a mini-batch ``data`` against ``centers``: one Lloyd pass.

        ``work``: a dict kept with the centres from step to step (the solver's state), where
        a kernel set may keep what it derived from the centres it returned from
        :meth:`minibatch_move`; the reference keeps nothing.
        """
        labels, sums, wsum, inertia = self.lloyd_pass(data, centers, need_inertia=True)
        return BatchStats(wsum, inertia, sums=sums, labels=labels)

    def minibatch_move(self, data: Any, stats: BatchStats, centers: Any, counts: Any,
                       counts_new: Any, *, reassign: Reassignment | None = None,
                       need_diff: bool = False, owned: bool = False,
                       work: dict | None = None) -> tuple[Any, Any]:
        """The centres after a mini-batch step, and the squared Frobenius norm of the change.

        Each centre j that received weight (``stats.wsum[j] > 0``) moves to
        ``(c_j W_j + S_j) / W'_j``, with ``W = counts`` its weight before the step,
        ``W' = counts_new = W + wsum`` after, ``S_j = stats.sums[j]``; the others stay.  Then
        the centres ``reassign`` names become rows of the batch.  ``data``: the batch (None
        where the statistics hold the sums).  The difference (0-d) is computed with
        ``need_diff`` only (else None).

        The reference is functional.  A kernel set may instead write into ``centers`` when
        ``owned`` (an array private to the caller, contiguous) and return it.
        """
        xp = self.xp
        C = centers
        has = stats.wsum > 0
        inv = 1.0 / xp.where(has, counts_new, xp.ones_like(counts_new))
        updated = xp.where(has[:, None], (C * counts[:, None] + stats.sums) * inv[:, None], C)
        if reassign is not None:
            mask, rows = reassign.mask, reassign.rows_of(reassign.picked)
            pos = xp.clip(xp.cumulative_sum(xp.astype(mask, xp.int64)) - 1, min=0)
            updated = xp.where(mask[:, None], xp.take(rows, pos, axis=0), updated)
        diff = xp.sum((updated - C) ** 2) if need_diff else None
        return updated, diff

    # -- small whole-array tests of the solver (fused sets answer on host views) ---------
    def frame_stats(self, data: KernelData, shift: Any = None, big: float = float("inf")
                    ) -> tuple | None:
        """``(finite, amax, sums, sqs)`` of X in the frame from one compiled pass, or None:
        then :class:`~kmeans_xp._data.ChunkedData` runs its pure-standard chunk loop."""
        return None

    def lloyd_update(self, data: KernelData, labels: Any, sums: Any, counts: Any,
                     centers: Any, labels_old: Any) -> tuple | None:
        """A Lloyd iteration's centre update and convergence code in one call, or None
        (then the solver computes them op by op): ``(updated, code)``, the means (an empty
        cluster keeps its centre) and a 0-d array: -2 if a cluster is empty, else -1 if
        ``labels`` equal ``labels_old`` (not None), else the squared centre shift.  Sets
        whose eager operations cost more than the passes (JAX) provide it."""
        return None

    def labels_equal(self, a: Any, b: Any) -> Any:
        """0-d bool array: whether two labellings are equal (strict convergence)."""
        return self.xp.all(a == b)

    def n_distinct(self, labels: Any, n_clusters: int) -> int:
        """How many distinct labels ``labels`` holds.  One host sync."""
        return int(self.xp.unique_values(labels).shape[0])

    # -- greedy k-means++ ---------------------------------------------------------------
    def _kpp_rows(self, data: KernelData, m: int) -> int:
        """Rows per chunk for a pass against ``m`` candidates: the budget over max(m, d)."""
        return chunk_rows(data.n, data.d, m, data.budget)

    # The k-means++ distances are computed in the accumulator dtype (float64 where the device
    # has it), from the working-coordinate rows: every backend then draws the same centres
    # from the same uniforms (in float32, BLAS-dependent rounding moved a draw across a
    # boundary within ~10 steps at n = 100k).  These passes are memory-bound (m ~ 2 + ln k
    # columns), so the wider arithmetic costs little.
    def _acc(self, a: Any, data: KernelData) -> Any:
        acc = data.accumulator_dtype()
        return a if a.dtype == acc else self.xp.astype(a, acc)

    def _acc_chunk(self, Xt: Any, data: KernelData) -> Any:
        """A chunk in the accumulator dtype (vendor sets convert into a reused block)."""
        return self._acc(Xt, data)

    def _x_sq(self, data: KernelData, rows: int) -> Any:
        """||xt_i||^2 (n,), accumulator dtype, computed once per fit and kept on ``data``."""
        xp = self.xp
        if "x_sq" not in data.cache:
            parts = []
            for _, _, Xt, _ in data.chunks(rows):
                Xa = self._acc_chunk(Xt, data)
                parts.append(xp.vecdot(Xa, Xa, axis=-1))
            data.cache["x_sq"] = concat(parts, xp)
        return data.cache["x_sq"]

    def _sq_dist_block(self, Xt: Any, x_sq: Any, C: Any, c_sq: Any, data: KernelData) -> Any:
        """Squared distances (rows, m) in the accumulator dtype, clipped at 0."""
        xp = self.xp
        D = (x_sq[:, None] - 2.0 * xp.matmul(self._acc_chunk(Xt, data), xp.matrix_transpose(C))
             + c_sq[None, :])
        return xp.clip(D, min=0.0)

    def kpp_potentials(self, data: KernelData, closest: Any, cand: Any) -> Any:
        """``pots_c = sum_i w_i min(closest_i, ||xt_i - cand_c||^2)`` (m,), accumulator dtype.

        One pass over X for all ``m`` candidates, chunked by ``max(m, d)``, not by k.
        """
        xp = self.xp
        m = int(cand.shape[0])
        rows = self._kpp_rows(data, m)
        x_sq = self._x_sq(data, rows)
        cand = self._acc(cand, data)
        c_sq = xp.sum(cand * cand, axis=1)
        acc = data.accumulator_dtype()
        pots = None
        for s, e, Xt, w in data.chunks(rows):
            D = xp.minimum(self._sq_dist_block(Xt, x_sq[s:e], cand, c_sq, data),
                           closest[s:e, None])
            p = xp.sum(D, axis=0) if w is None else xp.matmul(self._acc(w, data), D)
            pots = accumulate(pots, xp.astype(p, acc))
        return pots

    def kpp_steps(self, data: KernelData, closest: Any, weighted: Any, pot: Any,
                  U: Any) -> Any | None:
        """Every greedy k-means++ step after the first centre in one call, or None: then the
        solver runs the steps from the passes below.  ``U`` (k - 1, m): the steps' uniforms
        in [0, 1) (host float64 NumPy array); each step draws the candidates
        ``searchsorted(cumsum(weighted), u * pot)`` and keeps the one of least potential.
        Returns the chosen rows' indices (k - 1,).  Sets whose eager operations cost more
        than the passes (JAX) provide it."""
        return None

    def kpp_update(self, data: KernelData, closest: Any, center: Any) -> Any:
        """Squared distance (n,) of each row to ``center`` (1, d), or its minimum with
        ``closest`` when given; accumulator dtype."""
        xp = self.xp
        rows = self._kpp_rows(data, 1)
        x_sq = self._x_sq(data, rows)
        center = self._acc(center, data)
        c_sq = xp.sum(center * center, axis=1)
        parts = []
        for s, e, Xt, _ in data.chunks(rows):
            d = self._sq_dist_block(Xt, x_sq[s:e], center, c_sq, data)[:, 0]
            parts.append(d if closest is None else xp.minimum(closest[s:e], d))
        return concat(parts, xp)

    # -- batched primitives: a leading batch axis of independent problems --------------
    # Xt (g, m, d), centres (g, k, d), labels (g, m), weights (g, m) or None.
    def batched_partial_sq_distances(self, Xt: Any, centers: Any,
                                     buffers: dict | None = None) -> Any:
        """``||c_j||^2 - 2 xt_i . c_j`` (g, m, k) for each problem: one batched product."""
        xp = self.xp
        m2t = -2.0 * xp.matrix_transpose(centers)
        return xp.matmul(Xt, m2t) + xp.sum(centers * centers, axis=2)[:, None, :]

    def batched_argmin(self, D: Any) -> Any:
        """First index of each row's minimum (g, m)."""
        return self.xp.argmin(D, axis=2)

    def batched_cluster_sums(self, Xt: Any, labels: Any, w: Any, k: int) -> tuple[Any, Any]:
        """Weighted sums (g, k, d) and weights (g, k) per label: a batched one-hot product."""
        xp = self.xp
        ks = xp.arange(k, dtype=labels.dtype, device=device_of(labels))
        oh = xp.astype(labels[:, :, None] == ks, Xt.dtype)  # (g, m, k)
        if w is not None:
            oh = oh * w[:, :, None]
        return xp.matmul(xp.matrix_transpose(oh), Xt), xp.sum(oh, axis=1)

    def batched_sq_diff(self, Xt: Any, centers: Any, labels: Any) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (g, m) by direct differences (a flattened gather)."""
        xp = self.xp
        g, m, d = (int(s) for s in Xt.shape)
        k = int(centers.shape[1])
        offs = xp.arange(g, dtype=labels.dtype, device=device_of(labels))[:, None] * k
        flat = xp.reshape(labels + offs, (g * m,))
        assigned = xp.reshape(xp.take(xp.reshape(centers, (g * k, d)), flat, axis=0),
                              (g, m, d))
        diff = Xt - assigned
        return xp.sum(diff * diff, axis=2)

    def batched_searchsorted(self, sorted_rows: Any, values: Any) -> Any:
        """``searchsorted(sorted_rows[b], values[b], side='left')`` for each row b (B, m):
        the number of entries below each value, counted (one (B, n) comparison per value)."""
        xp = self.xp
        m = int(values.shape[1])
        return xp.stack([xp.astype(xp.count_nonzero(sorted_rows < values[:, j:j + 1], axis=1),
                                   xp.int64) for j in range(m)], axis=1)


    # -- whole batched passes over a problem axis (the truth of the fast sets) -----------
    # ``data`` is a batched source (``kmeans_xp._solvers.batched.BatchedData``): ``.X``
    # (B, n, d) in its storage dtype, ``.weights`` (B, n) compute dtype or None (the mask
    # folded in: masked rows weigh 0), ``.mask`` (B, n) bool or None, ``.inv_scale`` (B,)
    # or None, ``.shift`` (B, d) or None, ``.dtype``, ``.buffers``,
    # ``.accumulator_dtype()``; problem b's working coordinates are
    # ``Xt_b = X_b * inv_scale_b - shift_b``.  ``problems``: the active problems, a host
    # int64 array of ids (None: all B); centres (a, k, d) in working coordinates, compute
    # dtype, one row of centres per active problem.  Masked rows contribute nothing; their
    # labels are unspecified (the driver sets -1).
    def _batched_ids(self, data: Any, problems: Any) -> np.ndarray:
        if problems is None:
            return np.arange(int(data.X.shape[0]), dtype=np.int64)
        return np.asarray(problems, dtype=np.int64)

    def _batched_groups(self, data: Any, a: int, width: int) -> list[tuple[int, int]]:
        """(start, stop) positions of groups of problems, each within the memory budget
        of (problems x n x width) elements."""
        n = int(data.X.shape[1])
        g = max(1, min(a, default_chunk_budget(self.xp, self.device) // max(n * width, 1)))
        return [(s, min(s + g, a)) for s in range(0, a, g)]

    def _batched_take(self, a: Any, ids: np.ndarray) -> Any:
        """Rows ``ids`` of a per-problem array (a view for a contiguous range)."""
        if a is None:
            return None
        lo = int(ids[0])
        if int(ids[-1]) - lo + 1 == len(ids) and bool(np.all(np.diff(ids) == 1)):
            return a[lo:lo + len(ids), ...]
        return self.xp.take(a, self.xp.asarray(ids, device=self.device), axis=0)

    def _batched_rows(self, data: Any, ids: np.ndarray) -> Any:
        """Problems ``ids`` (g, n, d) in working coordinates and the compute dtype; masked
        rows are zeroed before the frame (they may hold anything)."""
        xp = self.xp
        c = self._batched_take(data.X, ids)
        if c.dtype != data.dtype:
            c = xp.astype(c, data.dtype)
        if data.mask is not None:
            c = xp.where(self._batched_take(data.mask, ids)[:, :, None], c, xp.zeros_like(c))
        if data.inv_scale is not None:
            c = c * self._batched_take(data.inv_scale, ids)[:, None, None]
        if data.shift is not None:
            c = c - self._batched_take(data.shift, ids)[:, None, :]
        return c

    def _batched_total(self, dist: Any, w: Any, data: Any) -> Any:
        """sum_i w_i dist_i per problem (g,), in the accumulator dtype."""
        xp = self.xp
        acc = data.accumulator_dtype()
        dist = xp.astype(dist, acc) if dist.dtype != acc else dist
        if w is not None:
            dist = dist * (xp.astype(w, acc) if w.dtype != acc else w)
        return xp.sum(dist, axis=1)

    def batched_lloyd_pass(self, data: Any, centers: Any, problems: Any = None, *,
                           need_inertia: bool = False) -> tuple[Any, Any, Any, Any]:
        """One Lloyd pass of the active problems.

        Returns labels (a, n) int64 (first nearest centre), sums (a, k, d) and counts
        (a, k) (weighted, compute dtype) and, with ``need_inertia``, the weighted inertia
        (a,) by direct differences in the accumulator dtype (else None).
        """
        xp = self.xp
        ids = self._batched_ids(data, problems)
        k, d = int(centers.shape[1]), int(centers.shape[2])
        labels, sums, counts, inertia = [], [], [], []
        for s, e in self._batched_groups(data, len(ids), max(k, d)):
            g = ids[s:e]
            Xt, C = self._batched_rows(data, g), centers[s:e, ...]
            lab = self.batched_argmin(self.batched_partial_sq_distances(Xt, C, data.buffers))
            w = self._batched_take(data.weights, g)
            sm, ct = self.batched_cluster_sums(Xt, lab, w, k)
            labels.append(lab)
            sums.append(sm)
            counts.append(ct)
            if need_inertia:
                inertia.append(self._batched_total(self.batched_sq_diff(Xt, C, lab), w, data))
        return (concat(labels, xp), concat(sums, xp), concat(counts, xp),
                concat(inertia, xp) if need_inertia else None)

    def batched_labels_inertia(self, data: Any, centers: Any, problems: Any = None
                               ) -> tuple[Any, Any]:
        """Labels (a, n) and the weighted inertia (a,) (accumulator dtype) by direct
        differences: the final assignment."""
        xp = self.xp
        ids = self._batched_ids(data, problems)
        k, d = int(centers.shape[1]), int(centers.shape[2])
        labels, inertia = [], []
        for s, e in self._batched_groups(data, len(ids), max(k, d)):
            g = ids[s:e]
            Xt, C = self._batched_rows(data, g), centers[s:e, ...]
            lab = self.batched_argmin(self.batched_partial_sq_distances(Xt, C, data.buffers))
            labels.append(lab)
            inertia.append(self._batched_total(self.batched_sq_diff(Xt, C, lab),
                                               self._batched_take(data.weights, g), data))
        return concat(labels, xp), concat(inertia, xp)

    def batched_sq_dist_to_assigned(self, data: Any, centers: Any, labels: Any,
                                    problems: Any = None) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (a, n) by direct differences, compute dtype; 0
        where a label lies outside [0, k) (masked rows: -1)."""
        xp = self.xp
        ids = self._batched_ids(data, problems)
        k, d = int(centers.shape[1]), int(centers.shape[2])
        parts = []
        for s, e in self._batched_groups(data, len(ids), max(k, d)):
            lab = labels[s:e, ...]
            ok = xp.logical_and(lab >= 0, lab < k)
            dist = self.batched_sq_diff(self._batched_rows(data, ids[s:e]), centers[s:e, ...],
                                        xp.where(ok, lab, xp.zeros_like(lab)))
            parts.append(xp.where(ok, dist, xp.zeros_like(dist)))
        return concat(parts, xp)

    def batched_frame_stats(self, data: Any) -> tuple | None:
        """Per problem ``(finite, amax, sums, sqs)`` of its valid rows in the frame from one
        compiled pass (host float64), or None: then the batched source runs its
        pure-standard reductions."""
        return None

    def batched_kmeans_plusplus(self, data: Any, n_clusters: int, first_u: np.ndarray,
                                step_u: np.ndarray, n_local_trials: int) -> Any:
        """Greedy k-means++ for every problem: the chosen rows (B, k) int64.

        Problem b draws as :func:`kmeans_xp._solvers.init.kmeans_plusplus_working` does
        from a generator whose uniforms are ``first_u[b]`` (host (B,) float64: the first
        row, ``choice(n, p=w / w.sum())``) then ``step_u[b, s]`` (host (B, k - 1, m)
        float64, m = ``n_local_trials``: the candidates of step s).  Distances are taken in
        the accumulator dtype from the rows in working coordinates; the candidates of a
        step are ``searchsorted(cumsum(w * closest), u * pot)`` clipped to the last valid
        row, the best one has the lowest potential (first on ties).
        """
        xp = self.xp
        B, d = int(data.X.shape[0]), int(data.X.shape[2])
        out = [self._batched_kpp_group(data, np.arange(s, e), n_clusters, first_u[s:e],
                                       step_u[s:e], n_local_trials)
               for s, e in self._batched_groups(data, B, 2 * d + 2 * n_local_trials + 4)]
        return concat(out, xp)

    def _batched_kpp_group(self, data: Any, ids: np.ndarray, k: int, first_u: np.ndarray,
                           step_u: np.ndarray, m: int) -> Any:
        xp, dev = self.xp, self.device
        acc = data.accumulator_dtype()
        g = len(ids)
        n, d = int(data.X.shape[1]), int(data.X.shape[2])
        Xa = self._batched_rows(data, ids)
        Xa = xp.astype(Xa, acc) if Xa.dtype != acc else Xa
        x_sq = xp.sum(Xa * Xa, axis=2)
        w = self._batched_take(data.weights, ids)
        wa = None if w is None else (xp.astype(w, acc) if w.dtype != acc else w)
        if data.mask is None:
            hi = None
        else:  # the last valid row of each problem: draws past it are clipped to it
            pos = xp.arange(n, dtype=xp.int64, device=dev)
            hi = xp.max(xp.where(self._batched_take(data.mask, ids), pos,
                                 xp.zeros_like(pos)), axis=1)

        def clip(idx: Any) -> Any:
            return xp.minimum(idx, n - 1) if hi is None else \
                xp.minimum(idx, xp.reshape(hi, (g,) + (1,) * (idx.ndim - 1)))

        offs = xp.arange(g, dtype=xp.int64, device=dev)[:, None] * n
        flat_rows = xp.reshape(Xa, (g * n, d))

        def sq_dist(idx: Any) -> Any:  # rows idx (g, q) -> distances (g, n, q), clipped
            q = int(idx.shape[1])
            C = xp.reshape(xp.take(flat_rows, xp.reshape(idx + offs, (g * q,)), axis=0),
                           (g, q, d))
            D = (x_sq[:, :, None] - 2.0 * xp.matmul(Xa, xp.matrix_transpose(C))
                 + xp.sum(C * C, axis=2)[:, None, :])
            return xp.clip(D, min=0.0)

        if wa is None:
            first = xp.asarray(np.minimum((np.asarray(first_u) * n).astype(np.int64), n - 1),
                               device=dev)
        else:  # searchsorted(cdf, u * total, side='right'): the rows with cdf <= target
            cdf = xp.cumulative_sum(wa, axis=1)
            target = xp.asarray(np.asarray(first_u, dtype=np.float64), dtype=acc,
                                device=dev) * cdf[:, -1]
            first = clip(xp.astype(xp.count_nonzero(cdf <= target[:, None], axis=1),
                                   xp.int64))
        chosen = [first]
        closest = sq_dist(first[:, None])[:, :, 0]
        weighted = closest if wa is None else closest * wa
        pot = xp.sum(weighted, axis=1)
        ms = xp.arange(m, dtype=xp.int64, device=dev)
        for step in range(k - 1):
            rand = xp.asarray(np.asarray(step_u[:, step, :], dtype=np.float64), dtype=acc,
                              device=dev) * pot[:, None]
            cand = clip(xp.astype(self.batched_searchsorted(
                xp.cumulative_sum(weighted, axis=1), rand), xp.int64))
            Dc = sq_dist(cand)  # (g, n, m)
            Dm = xp.minimum(Dc, closest[:, :, None])
            pots = xp.sum(Dm, axis=1) if wa is None else xp.sum(Dm * wa[:, :, None], axis=1)
            best = xp.argmin(pots, axis=1)
            pot = xp.min(pots, axis=1)
            pick = best[:, None] == ms  # (g, m)
            chosen.append(xp.sum(xp.where(pick, cand, xp.zeros_like(cand)), axis=1))
            closest = xp.minimum(closest, xp.sum(xp.where(pick[:, None, :], Dc,
                                                          xp.zeros_like(Dc)), axis=2))
            weighted = closest if wa is None else closest * wa
        return xp.stack(chosen, axis=1)
