"""KMeans on Dask arrays: initialisation (k-means||, k-means++ on a sample, random rows) and
Lloyd with one map-reduce per iteration.

Per Lloyd iteration: the centres travel once to the cluster (one key that the block tasks
share), one task per block, ``ceil(log_8 blocks)`` levels of reduce tasks, and one
synchronisation (the reduced sums come back to the client, which computes the new centres,
the shift and the convergence test exactly as the in-memory solver does).  The labels of the
previous iteration (and the k-means|| distances) stay on the workers, referenced by key, so
the task graph of iteration ``i`` has the same size as that of iteration 1.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._compat import array_namespace, device_of, is_float64_supported, to_numpy
from .._exceptions import ConvergenceWarning
from .._frame import Frame as WorkingFrame
from .._random import integers, uniform01
from .._solvers.lloyd import best_of
from .._validation import check_random_state
from ._blocks import (
    _NP,
    DaskBlocks,
    Frame,
    _block_data,
    _block_labels_inertia,
    _concat_parts,
    _dev,
    _host64,
    _host_data,
    _label_counts,
    _meta_namespace,
    _prepare,
    last_fit_log,
    make_frame,
    to_data,
    to_working,
)

#: k-means++ on a sample ('kmeans_plusplus' on a Dask array, and the k-means|| fallback)
#: draws ``max(SAMPLE_MIN, SAMPLE_PER_CLUSTER * n_clusters)`` rows (with replacement,
#: duplicates dropped).
SAMPLE_MIN = 10_000
SAMPLE_PER_CLUSTER = 100


def _block_lloyd(xb, wb, C, frame, need_inertia, labels_old=None):
    """One Lloyd pass on a block: (labels int32, kept on the worker), (sums, counts,
    inertia, number of labels that changed)."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    labels, sums, counts, inertia = data.kernels.lloyd_pass(data, _dev(data, C),
                                                            need_inertia=need_inertia)
    labels = xp.astype(labels, xp.int32)
    changed = 0 if labels_old is None else int(xp.sum(xp.astype(labels != labels_old,
                                                                 xp.int64)))
    inertia = float(inertia) if need_inertia else 0.0
    return labels, (_host64(sums), _host64(counts), inertia, changed)



def _block_inertia_for_labels(xb, wb, C, frame, labels):
    """Inertia of a block for given labels, and rows per label."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    inertia = data.kernels.inertia_for_labels(data, _dev(data, C), xp.astype(labels, xp.int64))
    return float(inertia), _label_counts(xp, labels, frame.k)


def _block_far(xb, wb, C, frame, n_far, offset, labels):
    """The block's ``n_far`` rows farthest from their centres (ties: lowest index first):
    distances, global indices, rows (working coordinates), weights, labels."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    lab = xp.astype(labels, xp.int64)
    dist = data.kernels.sq_dist_to_assigned(data, _dev(data, C), lab)
    if data.weights is not None:  # a zero-weight point cannot fill a cluster
        dist = xp.where(data.weights > 0, dist, xp.full_like(dist, -1.0))
    top = xp.argsort(dist, descending=True, stable=True)[:n_far]
    w = (np.ones(int(top.shape[0])) if data.weights is None
         else _host64(xp.take(data.weights, top)))
    return (_host64(xp.take(dist, top)), np.asarray(to_numpy(top), np.int64) + offset,
            np.asarray(to_numpy(data.take_rows(top))), w,
            np.asarray(to_numpy(xp.take(lab, top)), np.int64))



def _block_weighted_index(xb, wb, target):
    """The first row whose cumulative weight (in block order) exceeds ``target``."""
    xp = array_namespace(wb)
    acc = xp.float64 if is_float64_supported(xp, device_of(wb)) else wb.dtype
    cdf = xp.cumulative_sum(xp.astype(wb, acc))
    t = xp.asarray([target], dtype=acc, device=device_of(wb))
    i = int(xp.searchsorted(cdf, t, side="right")[0])
    return min(i, int(wb.shape[0]) - 1)


def _block_closest(xb, wb, frame, new, start, state):
    """k-means||: each row's squared distance to its nearest candidate and that candidate's
    index, updated with the candidates ``new`` (numbered from ``start``) and kept on the
    worker; the block's weighted sum of the distances and its weight per candidate.

    Ties go to the lower candidate index (an earlier candidate keeps a row), as in an
    assignment to all candidates at once; so the candidates' weights come with the last
    update instead of one more pass over X against every candidate.
    """
    data = _block_data(xb, wb, frame, k=int(new.shape[0]))
    xp = data.xp
    lab, dist = data.kernels.assign(data, _dev(data, new))
    lab = xp.astype(lab, xp.int32) + start
    if state is None:
        closest, nearest = dist, lab
    else:
        closest, nearest = state
        better = dist < closest
        closest = xp.where(better, dist, closest)
        nearest = xp.where(better, lab, nearest)
    acc = data.accumulator_dtype()
    weighted = xp.astype(closest if data.weights is None else closest * data.weights, acc)
    w = None if data.weights is None else _host64(data.weights)
    counts = np.bincount(np.asarray(to_numpy(nearest)), weights=w,
                         minlength=start + int(new.shape[0])).astype(np.float64)
    return (closest, nearest), (float(xp.sum(weighted)), counts)


def _block_sample(xb, wb, frame, phi, ell, seed, offset, state):
    """k-means||: keep each row with probability ``min(1, ell * w_i * D_i / phi)``; the
    uniforms come from a generator seeded by (round seed, first row of the block), so the
    draw depends on neither the scheduling nor the number of workers."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    acc = data.accumulator_dtype()
    closest = state[0]
    weighted = xp.astype(closest if data.weights is None else closest * data.weights, acc)
    u = np.random.default_rng([seed, offset]).random(data.n)
    u = xp.asarray(u, dtype=acc, device=data.device)
    picked = xp.nonzero(u * phi < ell * weighted)[0]
    rows = np.asarray(to_numpy(data.take_rows(picked)))
    return (rows,)


def _block_contingency(xb, wb, k, labels1, labels2):
    """(k, k) table of label pairs of a block (for ``same_clustering``)."""
    a = np.asarray(to_numpy(labels1), np.int64)
    b = np.asarray(to_numpy(labels2), np.int64)
    return (np.bincount(a * k + b, minlength=k * k).reshape(k, k),)



# -- initialisation --------------------------------------------------------------------------
def _first_index(dd: DaskBlocks, rng: Any, wsums: np.ndarray | None) -> int:
    """The first centre's row: ``choice(n, p=w / w.sum())`` as NumPy draws it."""
    import dask
    from dask import delayed

    u = uniform01(rng)
    n = sum(dd.sizes)
    if wsums is None:
        return min(int(u * n), n - 1)
    cdf = np.cumsum(wsums)
    target = u * cdf[-1]
    j = min(int(np.searchsorted(cdf, target, side="right")), len(cdf) - 1)
    before = cdf[j - 1] if j else 0.0
    local = dask.compute(delayed(_block_weighted_index, pure=False)(
        dd.xb[j], dd.wb[j], target - before))[0]
    return dd.offsets[dd.live[j]] + int(local)



def kmeans_plusplus_sample(dd: DaskBlocks, frame: Frame, k: int, rng: Any,
                           n_local_trials: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ on a uniform sample of rows (weighted by their sample weights).

    Returns the centres in working coordinates and their global row indices.
    """
    from .._solvers.init import kmeans_plusplus_working

    n = sum(dd.sizes)
    m = max(SAMPLE_MIN, SAMPLE_PER_CLUSTER * k)
    idx = np.arange(n) if m >= n else np.unique(integers(rng, n, size=m))
    rows, w = dd.take(frame, idx)
    sample = _host_data(rows, w, frame, k)
    centers, local = kmeans_plusplus_working(sample, k, rng, n_local_trials)
    return np.asarray(centers), idx[np.asarray(local)]


def kmeans_parallel(dd: DaskBlocks, frame: Frame, k: int, rng: Any, wsums: Any,
                    mean_variance: float, *, oversampling_factor: float = 2.0,
                    n_rounds: int = 5) -> np.ndarray:
    """k-means|| (Bahmani et al. 2012) on the blocks; centres in working coordinates.

    As ``_solvers.init.kmeans_parallel_working``, with the sampling done per block: per round
    one pass that updates the distances (kept on the workers) and sums them, and one that
    draws from per-block generators seeded from the host generator; the kept rows come to
    the client.  Each row's nearest candidate is tracked with its distance, so the
    candidates' weights (of the rows nearest to each) come with the last update, not with one
    more pass against all candidates (the in-memory version makes that pass).  The weighted
    candidates are reduced to ``k`` centres on the client by weighted k-means++ and Lloyd.
    """
    from .._solvers.init import kmeans_plusplus_working
    from .._solvers.lloyd import lloyd

    ell = oversampling_factor * k
    first, _ = dd.take(frame, np.array([_first_index(dd, rng, wsums)]))
    parts = [first]
    n_cand = 1
    state, (phi, counts) = dd.run(_block_closest, frame, dd.broadcast(first, "cand"), 0,
                                  per_block=[None] * len(dd.xb), keep=True, phase="init")
    for _ in range(n_rounds):
        seed = int(integers(rng, 2 ** 32 - 1))
        offsets = [dd.offsets[i] for i in dd.live]
        per = [(o, c) for o, c in zip(offsets, state)]
        (new,) = dd.run(_block_sample_pb, frame, phi, ell, seed, per_block=per,
                        reduce=_concat_parts, phase="init")
        if new.shape[0] == 0:
            break
        parts.append(new)
        state, (phi, counts) = dd.run(_block_closest, frame, dd.broadcast(new, "cand"), n_cand,
                                      per_block=state, keep=True, phase="init")
        n_cand += int(new.shape[0])
    del state
    cand = np.concatenate(parts)
    if cand.shape[0] <= k:  # too few distinct candidates: k-means++ on a sample
        return kmeans_plusplus_sample(dd, frame, k, rng)[0]
    cdata = _host_data(cand, counts, frame, k)
    cdata.use_frame(WorkingFrame(mean_variance=mean_variance))  # rows in working coords
    c0 = kmeans_plusplus_working(cdata, k, rng)[0]
    return np.asarray(lloyd(cdata, c0, max_iter=300, tol=0.0)[2])


def _block_sample_pb(xb, wb, frame, phi, ell, seed, per):
    offset, state = per
    return _block_sample(xb, wb, frame, phi, ell, seed, offset, state)


def random_rows(dd: DaskBlocks, frame: Frame, k: int, rng: Any) -> np.ndarray:
    """``k`` distinct rows drawn as scikit-learn draws them (host ``choice`` with ``p``): the
    same rows as the in-memory fit.  Needs O(n) host memory for ``p`` (the weights, if any,
    come to the client)."""
    n = sum(dd.sizes)
    if dd.w is None:
        p = np.full(n, 1.0 / n)
    else:
        hw = np.asarray(to_numpy(dd.w.compute()))
        p = hw / hw.sum()
    seeds = rng.choice(n, size=k, replace=False, p=p)
    return dd.take(frame, np.asarray(seeds, dtype=np.int64))[0]


def initial_centers(dd: DaskBlocks, frame: Frame, X: Any, init: Any, kind: str, k: int,
                    rng: Any, wsums: Any, mean_variance: float, options: dict | None,
                    d: int) -> np.ndarray:
    """Initial centres (working coordinates, host) for one run."""
    from .._solvers.init import check_user_centers

    if kind in ("k-means++", "k-means||"):
        return kmeans_parallel(dd, frame, k, rng, wsums, mean_variance, **(options or {}))
    if kind == "random":
        return random_rows(dd, frame, k, rng)
    if kind == "callable":
        init = check_user_centers(init(X, k, random_state=rng), k, _NP, "cpu",
                                  getattr(_NP, frame.dtype), d)
    return to_working(np.asarray(init), frame)


# -- Lloyd -----------------------------------------------------------------------------------
def relocate_empty(dd: DaskBlocks, frame: Frame, labels: list, centers: np.ndarray,
                   sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_solvers.lloyd.relocate_empty_clusters`` on blocks: each block sends its ``e`` rows
    farthest from their centres (``e`` = number of empty clusters); the client keeps the
    ``e`` farthest of those (ties: lowest row index), the same rows as a global sort."""
    k = centers.shape[0]
    is_empty = counts == 0
    empty = np.nonzero(is_empty)[0]
    e = int(empty.shape[0])
    per = list(zip([dd.offsets[i] for i in dd.live], labels))
    dist, idx, rows, w, lab = dd.run(_block_far_pb, dd.broadcast(centers, "centers"), frame, e,
                                     per_block=per, reduce=_concat_parts, phase="relocate")
    pick = np.lexsort((idx, -dist))[:e]
    moved_w = w[pick].astype(frame.dtype)
    moved = rows[pick] * moved_w[:, None]
    from_old = (lab[pick][:, None] == np.arange(k)[None, :]).astype(frame.dtype)  # (e, k)
    to_new = (empty[:, None] == np.arange(k)[None, :]).astype(frame.dtype)
    sums = sums - from_old.T @ moved
    counts = counts - (from_old.T @ moved_w[:, None])[:, 0]
    sums = np.where(is_empty[:, None], to_new.T @ moved, sums)
    counts = np.where(is_empty, (to_new.T @ moved_w[:, None])[:, 0], counts)
    return sums, counts


def _block_far_pb(xb, wb, C, frame, n_far, per):
    offset, labels = per
    return _block_far(xb, wb, C, frame, n_far, offset, labels)


class DaskSource:
    """The Dask array as a row source of the one Lloyd driver (``_solvers.lloyd``): every
    pass is one map-reduce over the blocks (the one synchronisation of an iteration); the
    labels stay on the workers (a list of keys); centres, sums and counts are host arrays."""

    n_problems = 1
    xp = _NP
    device = "cpu"

    def __init__(self, dd: DaskBlocks, frame: Frame) -> None:
        self.dd, self.spec = dd, frame
        self.frame = frame.frame
        self.metric = frame.frame.metric
        self.dtype = np.dtype(frame.dtype)
        self.final_info = None  # rows per cluster of the last final assignment

    def lloyd_pass(self, C, labels_old, active=None, need_inertia=False):
        dd = self.dd
        labels, (sums, counts, inertia, changed) = dd.run(
            _block_lloyd, dd.broadcast(np.asarray(C, dtype=self.dtype), "centers"), self.spec,
            bool(need_inertia), per_block=labels_old, keep=True, phase="lloyd")
        same = None if labels_old is None else np.asarray(changed == 0)
        return (labels, sums.astype(self.dtype), counts.astype(self.dtype),
                np.asarray(inertia), same)

    def fused_update(self, labels, sums, counts, C, labels_old):
        return None  # the driver computes the update and the code

    def squared_shift(self, new, old):
        return np.sum((new - old) ** 2)

    def relocate(self, labels, C, sums, counts, which=None, active=None):
        sums, counts = relocate_empty(self.dd, self.spec, labels, C, sums, counts)
        return sums, counts, labels

    def final(self, C, labels, strict):
        dd = self.dd
        Cd = dd.broadcast(C, "centers")
        if bool(np.asarray(strict).reshape(-1)[0]):
            inertia, self.final_info = dd.run(_block_inertia_for_labels, Cd, self.spec,
                                             per_block=labels, phase="final")
        else:
            labels, (inertia, self.final_info) = dd.run(_block_labels_inertia, Cd, self.spec,
                                                       keep=True, phase="final")
        return labels, np.asarray(inertia)

    def same_clusterings(self, labels1, labels2, k):
        (table,) = self.dd.run(_block_contingency_pb, k, per_block=list(zip(labels1, labels2)),
                               phase="same")
        return np.asarray([bool(np.all(np.sum(table > 0, axis=1) <= 1))])


def _block_contingency_pb(xb, wb, k, per):
    return _block_contingency(xb, wb, k, *per)


# -- entry points (called by _kmeans / _base when a Dask array arrives) ----------------------
def fit(X: Any, sample_weight: Any, init: Any, random_state: Any, p: Any, owner: str) -> Any:
    """``_kmeans._fit`` for a Dask array: ``(centers, labels, inertia, n_iter, where)``,
    ``where`` the fields of the estimator's ``Input`` record (X, its namespace, device,
    storage and compute dtypes, n, d)."""
    from .._solvers.init import check_user_centers

    if p.metric != "euclidean":
        raise ValueError(
            f"metric={p.metric!r} does not take a Dask array yet (only 'euclidean' does): "
            "compute X (or a sample of it) into memory first.")
    last_fit_log.clear()
    k = p.n_clusters
    rng = check_random_state(random_state)
    X0 = X
    X, w, n, d, storage, compute = _prepare(X, sample_weight, owner, k)
    if p.init_kind == "array":
        init = check_user_centers(init, k, _NP, "cpu", compute, d)
    dd = DaskBlocks(X, w)
    frame, mean_variance, mom = make_frame(dd, compute, k, p)
    tol = p.tol * mean_variance
    wsums = None if mom["w"] is None else mom["w"]["sum"]

    src = DaskSource(dd, frame)
    best = best_of(src, lambda: initial_centers(dd, frame, X0, init, p.init_kind, k, rng, wsums,
                                                mean_variance, p.init_options, d),
                   p.n_init, n_clusters=k, max_iter=p.max_iter, tol=tol, verbose=p.verbose)
    labels, centers, n_iter = best.labels, best.centers, int(best.n_iter[0])
    inertia = float(best.inertia[0]) * frame.frame.distance_factor()[0]
    per_label = best.info  # rows per cluster of the best run's final assignment

    distinct = int(np.count_nonzero(per_label))
    if distinct < k:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
            f"({k}). Possibly due to duplicate points in X.", ConvergenceWarning, stacklevel=4)
    xpm = _meta_namespace(X)
    centers = xpm.asarray(to_data(centers, frame, storage))
    meta = xpm.empty((0,), dtype=xpm.int32)
    return (centers, dd.labels_array(labels, meta), inertia, n_iter,
            (X, xpm, "cpu", storage, compute, n, d, None))


def kmeans_plusplus(X: Any, n_clusters: int, sample_weight: Any, random_state: Any,
                    n_local_trials: int | None) -> tuple[Any, np.ndarray]:
    """``kmeans_plusplus`` on a Dask array: greedy k-means++ on a sample of rows.

    Returns the centres (rows of X, in X's block namespace and dtype) and their row indices
    (a NumPy int64 array).
    """
    from types import SimpleNamespace

    last_fit_log.clear()
    # the options of the frame's block passes (the caller checked the parameters)
    p = SimpleNamespace(chunk_size=None, precision="exact", deterministic=True,
                        metric="euclidean")
    rng = check_random_state(random_state)
    X, w, _, _, storage, compute = _prepare(X, sample_weight, "kmeans_plusplus", n_clusters)
    dd = DaskBlocks(X, w)
    frame, _, _ = make_frame(dd, compute, n_clusters, p)
    centers, idx = kmeans_plusplus_sample(dd, frame, n_clusters, rng, n_local_trials)
    xpm = _meta_namespace(X)
    return xpm.asarray(to_data(centers, frame, storage)), idx


