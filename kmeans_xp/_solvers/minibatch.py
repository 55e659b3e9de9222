"""Mini-batch k-means (Sculley 2010) with scikit-learn's per-centre learning rate.

Written once on ``xp`` and the fit's kernel set.  A step assigns a mini-batch to the
current centres, then moves each centre that received weight ``s_j`` (sum of the weights of
its batch rows, centre sum ``S_j``) to ``(c_j * W_j + S_j) / (W_j + s_j)``, where ``W_j`` is the
weight the centre has seen so far: the learning rate of centre j is ``s_j / (W_j + s_j)``.
Centres whose accumulated weight falls below ``reassignment_ratio * max(W)`` are moved to
random rows of the batch (scikit-learn's ``_mini_batch_step``).

A step is two calls of the fit's kernel set: ``minibatch_assign`` (labels, weights per
centre, batch inertia; the reference also the centre sums) and ``minibatch_move`` (the
update and the reassignment).  The reference update is functional; the sparse kernel set
updates, in place, the centres the state owns (:attr:`MiniBatchState.owned`: never an array
the user holds) in O(nnz of the batch + k d), without (k, d) temporaries.

Randomness (mini-batch rows, reassignment rows) comes from the host generator and is drawn
exactly as scikit-learn draws it, so the same seed selects the same rows on every backend.
One host sync per step: the batch inertia, the number of centres to reassign, whether a
centre is still empty, and (with ``tol``, on steps that cannot reassign) the squared
centre shift travel together; on steps that may reassign, the reassignment is decided
before the update, and the shift (with ``tol``) is a second sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._compat import device_of, to_numpy
from .._kernels._reference import (
    BatchStats,
    Reassignment,
    ReferenceKernels,
    center_terms,
)
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
    per centre, samples seen since the last reassignment, and whether a centre is empty.

    ``owned``: whether ``centers`` is private to the state (a kernel set may then update it
    in place); false for initial centres (the user's array, maybe) and once the centres
    are handed out (:meth:`release`).  ``work``: what the kernel set keeps from step to
    step for the centres it returned (their squared norms, a block for the shift).
    """

    centers: Any
    counts: Any
    batch_size: int
    n_since_last_reassign: int = 0
    has_empty: bool = True  # counts start at zero
    owned: bool = False
    work: dict = field(default_factory=dict, repr=False)

    def release(self) -> None:
        """The centres are handed out (``cluster_centers_`` may be them): never write into
        them again, and forget what was kept for them."""
        self.owned = False
        self.work.clear()

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

    def statistics(self, idx: np.ndarray, centers: Any, work: dict | None = None
                   ) -> tuple[Any, BatchStats, Any]:
        """``(batch, stats, rows_of)`` of the rows ``idx`` (host int64, unit weights) for
        :func:`apply_step` (``batch``: None, the statistics hold the sums)."""
        xp, dev = self.xp, self.device
        Xb = self.data.take_rows(xp.asarray(idx, device=dev))
        sums, wsum, inertia = batch_statistics(self.kern, Xb, None, centers,
                                               self.data.buffers)
        return None, BatchStats(wsum, inertia, sums=sums), \
            lambda ids: xp.take(Xb, xp.asarray(ids, device=dev), axis=0)


class SparseBatches(DenseBatches):
    """Mini-batches of a :class:`~kmeans_xp._sparse.SparseData`: a batch is its
    ``subset`` (the batch's stored values, never dense), its statistics and update the
    sparse kernel set's ``minibatch_assign`` / ``minibatch_move`` (in place, no (k, d)
    sums; reassigned centres written from the picked rows' stored values)."""

    def flops(self, batch_size: int, n_clusters: int) -> int:
        per_row = max(1, self.data.csr.nnz // max(self.data.n, 1))
        return 2 * batch_size * n_clusters * per_row

    def statistics(self, idx, centers, work=None):
        sub = self.data.subset(idx)
        return sub, self.kern.minibatch_assign(sub, centers, work), sub.take_rows


def batches_of(data: Any) -> DenseBatches:
    """The mini-batch source for ``data`` (chosen once per fit)."""
    return SparseBatches(data) if is_sparse_data(data) else DenseBatches(data)


def apply_step(state: MiniBatchState, stats: BatchStats, *, kernels: Any, batch: Any,
               xp: Any, rows_of: Any, n_rows: int, rng: Any, random_reassign: bool,
               reassignment_ratio: float, need_diff: bool, verbose: int = 0) -> StepResult:
    """Apply one step's statistics to ``state`` (scikit-learn's update and reassignment).

    ``stats`` come from ``kernels.minibatch_assign`` on ``batch`` (or hold the sums of a
    dense batch: ``batch`` None); ``kernels.minibatch_move`` moves the centres.
    ``rows_of(indices)`` returns rows of the batch (indices: host int64 array) in working
    coordinates; ``n_rows`` is the batch's number of rows.
    """
    counts = state.counts
    counts_new = counts + stats.wsum
    dtype = counts.dtype
    reassign = random_reassign and reassignment_ratio > 0
    parts = [xp.astype(stats.inertia, dtype), xp.astype(xp.any(counts_new == 0), dtype)]

    def move(reassign=None):
        return kernels.minibatch_move(batch, stats, state.centers, counts, counts_new,
                                      reassign=reassign, need_diff=need_diff,
                                      owned=state.owned, work=state.work)

    if not reassign:
        updated, diff = move()
        if need_diff:
            parts.append(xp.astype(diff, dtype))
        host = to_numpy(xp.stack(parts))  # the one host sync of the step
        state.has_empty = bool(host[1])
        squared_diff = float(host[2]) if need_diff else 0.0
    else:
        to_reassign = counts_new < reassignment_ratio * xp.max(counts_new)
        parts.append(xp.astype(xp.sum(xp.astype(to_reassign, dtype)), dtype))
        host = to_numpy(xp.stack(parts))  # the one host sync of the step
        n_reassign = int(host[2])
        limit = int(0.5 * n_rows)
        if n_reassign > limit:  # keep the limit smallest counts only
            order = xp.argsort(counts_new, stable=True)
            rank = xp.argsort(order, stable=True)
            to_reassign = xp.logical_and(to_reassign, rank < limit)
            n_reassign = limit
        moved = None
        if n_reassign:
            picked = rng.choice(n_rows, replace=False, size=n_reassign)
            if verbose:
                print(f"[MiniBatchKMeans] Reassigning {n_reassign} cluster centers.")
            moved = Reassignment(to_reassign, np.asarray(picked, dtype=np.int64), rows_of)
        updated, diff = move(moved)
        # reset the counts of reassigned centres to the smallest kept count (scikit-learn)
        inf = xp.asarray(float("inf"), dtype=dtype, device=device_of(counts_new))
        kept_min = xp.min(xp.where(to_reassign, inf, counts_new))
        # (every centre reassigned, reassignment_ratio > 1: scikit-learn fails; keep counts)
        counts_new = xp.where(xp.logical_and(to_reassign, kept_min < inf), kept_min, counts_new)
        state.has_empty = bool(host[1]) and n_reassign == 0
        if n_reassign:
            state.has_empty = bool(xp.any(counts_new == 0))  # rare: a second sync
        squared_diff = float(diff) if need_diff else 0.0  # (with tol) a second sync
    state.centers, state.counts = updated, counts_new
    state.owned = True  # the kernel set's result: in place on owned centres, or fresh
    return StepResult(float(host[0]), squared_diff)


def minibatch_update(state: MiniBatchState, sums: Any, wsum: Any, inertia: Any, *,
                     xp: Any, rows_of: Any, n_rows: int, rng: Any, random_reassign: bool,
                     reassignment_ratio: float, need_diff: bool, verbose: int = 0
                     ) -> StepResult:
    """:func:`apply_step` for statistics given as arrays (``sums`` (k, d), ``wsum`` (k,),
    ``inertia`` 0-d), with the reference (functional) update."""
    kernels = ReferenceKernels(xp, device_of(sums), sums.dtype)
    return apply_step(state, BatchStats(wsum, inertia, sums=sums), kernels=kernels,
                      batch=None, xp=xp, rows_of=rows_of, n_rows=n_rows, rng=rng,
                      random_reassign=random_reassign, reassignment_ratio=reassignment_ratio,
                      need_diff=need_diff, verbose=verbose)


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
