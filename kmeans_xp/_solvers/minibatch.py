"""Mini-batch k-means (Sculley 2010) with scikit-learn's per-centre learning rate.

Written once on ``xp`` and the fit's kernel set.  A step assigns a mini-batch to the
current centres, then moves each centre that received weight ``s_j`` (sum of the weights of
its batch rows, centre sum ``S_j``) to ``(c_j * W_j + S_j) / (W_j + s_j)``, where ``W_j`` is the
weight the centre has seen so far: the learning rate of centre j is ``s_j / (W_j + s_j)``.
Centres whose accumulated weight falls below ``reassignment_ratio * max(W)`` are moved to
random rows of the batch (scikit-learn's ``_mini_batch_step``).

Randomness (mini-batch rows, reassignment rows) comes from the host generator and is drawn
exactly as scikit-learn draws it, so the same seed selects the same rows on every backend.
One host sync per step: the batch inertia, the number of centres to reassign, whether a
centre is still empty, and (with ``tol``) the squared centre shift travel together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import to_numpy
from .._kernels._reference import center_terms
from .._sparse import is_sparse_data


def uniform_draws(rng: Any, size: int) -> np.ndarray:
    """``size`` uniforms in [0, 1), as ``choice(..., p=...)`` draws them (RandomState or Generator)."""
    if isinstance(rng, np.random.RandomState):
        return rng.random_sample(size)
    return rng.random(size)


class BatchSampler:
    """Mini-batch row indices, identical to ``rng.choice(n, size, p=w / w.sum())``.

    scikit-learn draws each mini-batch with ``choice`` and ``p``, which rebuilds the
    cumulative distribution of the n weights at every step (O(n) per step).  The same
    draws come from one cumulative distribution built once and a ``searchsorted`` of
    ``size`` uniforms (checked against ``choice`` in the tests).

    Parameters
    ----------
    host_weights : ndarray (n,) or None
        The sample weights on the host in the data's dtype (None: unit weights).
    n : int
    dtype : NumPy dtype of the weights (the data's compute dtype), used as scikit-learn
        normalises them.
    """

    def __init__(self, host_weights: np.ndarray | None, n: int, dtype: Any) -> None:
        w = np.ones(n, dtype=dtype) if host_weights is None else host_weights.astype(dtype)
        p = (w / np.sum(w)).astype(np.float64)
        cdf = np.cumsum(p)
        cdf /= cdf[-1]
        self.cdf = cdf

    def draw(self, rng: Any, size: int) -> np.ndarray:
        return self.cdf.searchsorted(uniform_draws(rng, size), side="right").astype(np.int64)


@dataclass
class MiniBatchState:
    """What a sequence of steps carries: centres (working coordinates), accumulated weight
    per centre, samples seen since the last reassignment, and whether a centre is empty."""

    centers: Any
    counts: Any
    batch_size: int
    n_since_last_reassign: int = 0
    has_empty: bool = True  # counts start at zero

    def random_reassign(self, n_clusters: int) -> bool:
        """scikit-learn's ``_random_reassign``: every ``10 * n_clusters`` samples, or while a
        centre has seen no weight."""
        self.n_since_last_reassign += self.batch_size
        if self.has_empty or self.n_since_last_reassign >= 10 * n_clusters:
            self.n_since_last_reassign = 0
            return True
        return False


@dataclass
class StepResult:
    inertia: float  # weighted sum of squared distances of the batch to the centres before the step
    squared_diff: float  # squared Frobenius norm of the centre change (0.0 unless asked)


def batch_statistics(kern: Any, Xt: Any, w: Any, centers: Any, buffers: dict | None
                     ) -> tuple[Any, Any, Any]:
    """Sums (k, d), weights (k,) per nearest centre and the batch inertia (0-d) of one block."""
    xp = kern.xp
    k = int(centers.shape[0])
    m2t, c_sq = center_terms(centers, xp)
    labels, mins = kern.assign_chunk(Xt, m2t, c_sq, need_min=True, buffers=buffers)
    dist = xp.clip(mins + xp.sum(Xt * Xt, axis=1), min=0.0)
    inertia = xp.sum(dist if w is None else dist * w)
    sums, wsum = kern.cluster_sums(Xt, labels, w, k)
    return sums, wsum, inertia


class DenseBatches:
    """Mini-batches of a dense :class:`~kmeans_xp._data.ChunkedData`: the rows, gathered
    in working coordinates as one block, and their statistics from the chunk primitives of
    the fit's kernel set (one block: no chunk loop per step)."""

    def __init__(self, data: Any) -> None:
        self.data, self.xp, self.device, self.kern = data, data.xp, data.device, data.kernels

    def flops(self, batch_size: int, n_clusters: int) -> int:
        """About the work of one step's distances (for ``kernels.small_work``)."""
        return 2 * batch_size * n_clusters * self.data.d

    def statistics(self, idx: np.ndarray, centers: Any) -> tuple[Any, Any, Any, Any]:
        """``(sums, weights, inertia, rows_of)`` of the rows ``idx`` (host int64, unit
        weights) for :func:`minibatch_update`."""
        xp, dev = self.xp, self.device
        Xb = self.data.take_rows(xp.asarray(idx, device=dev))
        sums, wsum, inertia = batch_statistics(self.kern, Xb, None, centers,
                                               self.data.buffers)
        return sums, wsum, inertia, \
            lambda ids: xp.take(Xb, xp.asarray(ids, device=dev), axis=0)


class SparseBatches(DenseBatches):
    """Mini-batches of a :class:`~kmeans_xp._sparse.SparseData`: a batch is its
    ``subset`` (the batch's stored values, never dense), its statistics a pass of the
    sparse kernel set, and reassigned centres its rows made dense."""

    def flops(self, batch_size: int, n_clusters: int) -> int:
        per_row = max(1, self.data.csr.nnz // max(self.data.n, 1))
        return 2 * batch_size * n_clusters * per_row

    def statistics(self, idx, centers):
        sub = self.data.subset(idx)
        _, sums, wsum, inertia = self.kern.lloyd_pass(sub, centers, need_inertia=True)
        return sums, wsum, inertia, sub.take_rows


def batches_of(data: Any) -> DenseBatches:
    """The mini-batch source for ``data`` (chosen once per fit)."""
    return SparseBatches(data) if is_sparse_data(data) else DenseBatches(data)


def minibatch_update(state: MiniBatchState, sums: Any, wsum: Any, inertia: Any, *,
                     xp: Any, rows_of: Any, n_rows: int, rng: Any, random_reassign: bool,
                     reassignment_ratio: float, need_diff: bool, verbose: int = 0
                     ) -> StepResult:
    """Apply one step's statistics to ``state`` (scikit-learn's update and reassignment).

    ``rows_of(indices)`` returns rows of the batch (indices: host int64 array) in working
    coordinates; ``n_rows`` is the batch's number of rows.
    """
    C, counts = state.centers, state.counts
    counts_new = counts + wsum
    has = wsum > 0
    inv = 1.0 / xp.where(has, counts_new, xp.ones_like(counts_new))
    updated = xp.where(has[:, None], (C * counts[:, None] + sums) * inv[:, None], C)

    reassign = random_reassign and reassignment_ratio > 0
    parts = [xp.astype(inertia, counts.dtype),
             xp.astype(xp.any(counts_new == 0), counts.dtype)]
    if reassign:
        to_reassign = counts_new < reassignment_ratio * xp.max(counts_new)
        parts.append(xp.astype(xp.sum(xp.astype(to_reassign, counts.dtype)), counts.dtype))
    if need_diff and not reassign:
        parts.append(xp.sum((updated - C) ** 2))
    host = to_numpy(xp.stack(parts))  # the one host sync of the step
    batch_inertia = float(host[0])

    if reassign:
        n_reassign = int(host[2])
        limit = int(0.5 * n_rows)
        if n_reassign > limit:  # keep the limit smallest counts only
            order = xp.argsort(counts_new, stable=True)
            rank = xp.argsort(order, stable=True)
            to_reassign = xp.logical_and(to_reassign, rank < limit)
            n_reassign = limit
        if n_reassign:
            picked = rng.choice(n_rows, replace=False, size=n_reassign)
            if verbose:
                print(f"[MiniBatchKMeans] Reassigning {n_reassign} cluster centers.")
            new_rows = rows_of(np.asarray(picked, dtype=np.int64))
            pos = xp.cumulative_sum(xp.astype(to_reassign, xp.int64)) - 1
            pos = xp.clip(pos, min=0)
            updated = xp.where(to_reassign[:, None], xp.take(new_rows, pos, axis=0), updated)
        # reset the counts of reassigned centres to the smallest kept count (scikit-learn)
        inf = xp.asarray(float("inf"), dtype=counts_new.dtype, device=_device(counts_new))
        kept_min = xp.min(xp.where(to_reassign, inf, counts_new))
        # (every centre reassigned, reassignment_ratio > 1: scikit-learn fails; keep counts)
        counts_new = xp.where(xp.logical_and(to_reassign, kept_min < inf), kept_min, counts_new)
        state.has_empty = bool(host[1]) and n_reassign == 0
        if n_reassign:
            state.has_empty = bool(xp.any(counts_new == 0))  # rare: a second sync
        diff = float(xp.sum((updated - C) ** 2)) if need_diff else 0.0
    else:
        state.has_empty = bool(host[1])
        diff = float(host[2]) if need_diff else 0.0
    state.centers, state.counts = updated, counts_new
    return StepResult(batch_inertia, diff)


def _device(a: Any) -> Any:
    from .._compat import device_of

    return device_of(a)


@dataclass
class EarlyStopping:
    """scikit-learn's ``_mini_batch_convergence``: EWA of the batch inertia, ``tol`` on the
    centre shift, ``max_no_improvement`` steps without a new EWA minimum."""

    batch_size: int
    n_samples: int
    tol: float
    max_no_improvement: int | None
    verbose: int = 0
    ewa_inertia: float | None = None
    ewa_inertia_min: float | None = None
    no_improvement: int = 0

    def converged(self, step: int, n_steps: int, squared_diff: float,
                  batch_inertia: float) -> bool:
        batch_inertia /= self.batch_size
        step += 1
        if step == 1:  # the first inertia is the initialisation's
            if self.verbose:
                print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}")
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = batch_inertia
        else:
            alpha = min(self.batch_size * 2.0 / (self.n_samples + 1), 1)
            self.ewa_inertia = self.ewa_inertia * (1 - alpha) + batch_inertia * alpha
        if self.verbose:
            print(f"Minibatch step {step}/{n_steps}: mean batch inertia: {batch_inertia}, "
                  f"ewa inertia: {self.ewa_inertia}")
        if self.tol > 0.0 and squared_diff <= self.tol:
            if self.verbose:
                print(f"Converged (small centers change) at step {step}/{n_steps}")
            return True
        if self.ewa_inertia_min is None or self.ewa_inertia < self.ewa_inertia_min:
            self.no_improvement = 0
            self.ewa_inertia_min = self.ewa_inertia
        else:
            self.no_improvement += 1
        if self.max_no_improvement is not None and self.no_improvement >= self.max_no_improvement:
            if self.verbose:
                print(f"Converged (lack of improvement in inertia) at step {step}/{n_steps}")
            return True
        return False
