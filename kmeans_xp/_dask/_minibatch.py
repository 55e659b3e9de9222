"""MiniBatchKMeans on Dask arrays: ``partial_fit`` as one map-reduce over the blocks.

A call is one mini-batch step whose batch is the whole array, exactly as the in-memory
``partial_fit`` on the same rows: each block task assigns its rows to the current centres
with the block's kernel set and returns its centre sums, weight per centre and inertia; a
tree of reduce tasks adds them **in block order** (one synchronisation), and the client
applies :func:`~kmeans_xp._solvers.minibatch.minibatch_update` (the per-centre learning rate,
the reassignment of small clusters) to the centres it holds.  Rows that reassigned centres
move to come from the blocks (:meth:`DaskBlocks.take`); X is never gathered.

The first call fixes the frame (centring shift, power-of-two scale) on its chunk by the block
moments pass (:func:`make_frame`) and initialises the centres on ``init_size`` rows drawn by
the host generator, as the in-memory ``partial_fit`` draws them; those rows come to the
client, where the initialisation runs in memory.  So a stream of ``partial_fit`` calls gives
the same centres on a Dask array as on the same data in memory, up to the dtype's rounding
(the sums are reduced in float64 over blocks).  Calls may mix Dask and in-memory chunks of
the fit's namespace (NumPy blocks: a NumPy model; CuPy blocks: a CuPy model).

``MiniBatchKMeans.fit`` refuses a Dask array (:func:`minibatch_fit`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .._compat import device_of, to_numpy
from .._frame import Frame as WorkingFrame
from .._random import integers
from .._validation import check_dtype, check_random_state, check_same_namespace
from ._blocks import (
    _NP,
    DaskBlocks,
    Frame,
    _block_data,
    _block_labels_inertia,
    _dask_weights,
    _dev,
    _host64,
    _host_data,
    _meta_namespace,
    check_dask_X,
    last_fit_log,
    make_frame,
    to_data,
    to_working,
)

OWNER = "MiniBatchKMeans"

#: the flags a step's pass counts on a chunk after the first (the first chunk's are checked
#: by the frame pass): NaN in X, infinity in X, NaN / infinity / negative weights
_FLAGS = ("X NaN", "X inf", "w NaN", "w inf", "w neg")


def _block_step(xb, wb, C, frame, check):
    """A block's part of a mini-batch step: centre sums (k, d), weight per centre (k,),
    inertia, and (with ``check``) the counts of non-finite values and bad weights plus the
    weight total.  A block that fails a check skips the assignment (its sums are zeros)."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    k, d = int(C.shape[0]), int(C.shape[1])
    flags, wtotal = np.zeros(len(_FLAGS)), 0.0
    if check:
        for s, e in data.ranges():
            c = data._raw(s, e)
            top = float(xp.max(xp.stack([xp.max(c), -xp.min(c)])))  # NaN, inf propagate
            if not np.isfinite(top):
                flags[0 if np.isnan(top) else 1] = 1
                break
        if data.weights is not None:
            w = data.weights
            flags[2:] = [bool(xp.any(xp.isnan(w))), bool(xp.any(xp.isinf(w))),
                         bool(xp.any(w < 0))]
            wtotal = float(xp.sum(xp.astype(w, data.accumulator_dtype())))
        else:
            wtotal = float(data.n)
        if flags.any():
            return np.zeros((k, d)), np.zeros(k), 0.0, flags, wtotal
    _, sums, counts, inertia = data.kernels.lloyd_pass(data, _dev(data, C), need_inertia=True)
    return _host64(sums), _host64(counts), float(inertia), flags, wtotal


def _raise_on_flags(flags: np.ndarray, wtotal: float, weighted: bool) -> None:
    """The in-memory checks' errors, in their order (weights first, then X)."""
    if weighted:
        if flags[2]:
            raise ValueError("Input sample_weight contains NaN.")
        if flags[3]:
            raise ValueError("Input sample_weight contains infinity.")
        if flags[4]:
            raise ValueError(
                "Negative values in data passed to sample_weight: weights must be >= 0.")
        if wtotal <= 0:
            raise ValueError(
                "sample_weight sums to zero: at least one weight must be positive.")
    if flags[0]:
        raise ValueError("Input X contains NaN.")
    if flags[1]:
        raise ValueError("Input X contains infinity.")


def _initial_centers(dd: DaskBlocks, frame: Frame, init: Any, p: Any, rng: Any, n: int,
                     init_size: int, mean_variance: float) -> np.ndarray:
    """``MiniBatchKMeans._init_centroids`` on the blocks: the same host draws (``init_size``
    row indices, then the initialisation's own), the rows brought to the client and the
    initialisation run there on them.  Returns centres in working coordinates (host)."""
    from .._solvers.init import check_user_centers, initial_centers

    k = p.n_clusters
    whole = init_size >= n  # in memory: the initialisation runs on all the rows
    idx = np.arange(n) if whole else np.asarray(integers(rng, n, init_size), dtype=np.int64)
    if p.init_kind == "array":  # the rows are drawn (as in memory) but not needed
        return to_working(np.asarray(init), frame)
    if p.init_kind == "callable":  # it sees the rows as stored, like in memory
        rows, _ = dd.take(frame, idx, raw=True, phase="init")
        C = check_user_centers(init(rows, k, random_state=rng), k, _NP, "cpu",
                               getattr(_NP, frame.dtype), int(rows.shape[1]))
        return to_working(np.asarray(C), frame)
    rows, w = dd.take(frame, idx, phase="init")
    # the in-memory sample: all rows (chunked as the fit) or a subset (default chunks)
    sample = (_host_data(rows, w, frame, k, frame.chunk_size) if whole
              else _host_data(rows, w, frame, 1))
    sample.use_frame(WorkingFrame(mean_variance=mean_variance))  # rows in working coords
    host_w = None if w is None or p.init_kind != "random" else sample.weights
    return np.asarray(initial_centers(sample, None, p.init_kind, k, rng, host_w,
                                      p.init_options))


def partial_fit(est: Any, X: Any, sample_weight: Any = None) -> Any:
    """``MiniBatchKMeans.partial_fit`` for a Dask array: one step, the array being the batch.

    Synchronisations: the step's statistics (one map-reduce); with ``compute_labels``, the
    labels and inertia for the updated centres (a second); when centres are reassigned, the
    rows they move to.  The first call adds the frame pass and the initialisation's rows.
    """
    from .._solvers.minibatch import MiniBatchState, minibatch_update

    last_fit_log.clear()
    started = hasattr(est, "_state") and hasattr(est, "cluster_centers_")
    p = None if started else est._check_params()  # parameters first, as in memory
    X = check_dask_X(X, "X", OWNER)
    n, d = int(X.shape[0]), int(X.shape[1])
    xpm = _meta_namespace(X)
    dev = device_of(X._meta)
    storage, compute = check_dtype(X, _NP, "cpu", "X")
    if started:
        xp_fit, dev_fit, compute = est._fit_where()
        check_same_namespace(X._meta, xpm, dev, xp_fit, dev_fit, "X", OWNER, "partial_fit")
        if d != est.n_features_in_:
            raise ValueError(
                f"X has {d} features, but {OWNER} is expecting {est.n_features_in_} "
                "features as input.")
    else:
        assert p is not None  # checked above: not started
        est._n_init = p.n_init  # the resolved n_init ('auto'), as scikit-learn keeps it
        xp_fit, dev_fit = xpm, dev
        if n < p.n_clusters:
            raise ValueError(f"n_samples={n} should be >= n_clusters={p.n_clusters}.")
    if not hasattr(est, "_random_state"):
        est._random_state = check_random_state(est.random_state)
    rng = est._random_state
    k = int(est.n_clusters)
    w = _dask_weights(sample_weight, X, compute)
    if not started or est.compute_labels:  # X is read twice or more in this call: computed
        X = X.persist()  # once, kept on the workers (a later step alone reads it once)
        if w is not None:
            w = w.persist()
    dd = DaskBlocks(X, w)
    dtype = np.dtype(compute)

    if not started:
        assert p is not None
        init = est.init
        if p.init_kind == "array":
            from .._solvers.init import check_user_centers

            init = check_user_centers(init, k, _NP, "cpu", compute, d)
        frame, mean_variance, _ = make_frame(dd, compute, k, p)  # checks X and the weights
        batch_size, init_size = est._sizes(n)
        c0 = _initial_centers(dd, frame, init, p, rng, n, init_size, mean_variance)
        state = MiniBatchState(np.asarray(c0, dtype=dtype), np.zeros(k, dtype=dtype),
                               batch_size)
        shift = frame.frame.shift
        shift = None if shift is None else xp_fit.asarray(shift, device=dev_fit)
        frame_fit = dataclasses.replace(frame.frame, shift=shift).freeze()
    else:
        frame_fit = est._frame
        shift = frame_fit.shift
        host_shift = None if shift is None else np.asarray(to_numpy(shift), dtype=dtype)
        frame = Frame(dataclasses.replace(frame_fit, shift=host_shift), dtype.name, k,
                      est.chunk_size, getattr(est, "precision", "exact"),
                      getattr(est, "deterministic", True))
        state = dataclasses.replace(est._state,
                                    centers=np.asarray(to_numpy(est._state.centers), dtype),
                                    counts=np.asarray(to_numpy(est._state.counts), dtype))

    # the step's statistics: one map-reduce, the one synchronisation of the step
    sums, wsum, inertia, flags, wtotal = dd.run(
        _block_step, dd.broadcast(state.centers, "centers"), frame, started, phase="step")
    if started:
        _raise_on_flags(flags, wtotal, w is not None)  # before anything changes
    minibatch_update(
        state, sums.astype(dtype), wsum.astype(dtype), np.asarray(inertia), xp=_NP,
        rows_of=lambda ids: dd.take(frame, ids, phase="reassign")[0],
        n_rows=n, rng=rng, random_reassign=state.random_reassign(k),
        reassignment_ratio=float(est.reassignment_ratio), need_diff=False,
        verbose=int(est.verbose))

    est._state = dataclasses.replace(
        state, centers=xp_fit.asarray(state.centers, device=dev_fit),
        counts=xp_fit.asarray(state.counts, device=dev_fit))
    est._frame = frame_fit
    est.cluster_centers_ = xp_fit.asarray(to_data(state.centers, frame, storage), device=dev_fit)
    est.n_features_in_ = d
    est._n_features_out = k
    if est.compute_labels:
        labels, (inertia, _) = dd.run(_block_labels_inertia,
                                      dd.broadcast(state.centers, "centers"), frame,
                                      keep=True, phase="labels")
        est.labels_ = dd.labels_array(labels, xpm.empty((0,), dtype=xpm.int32))
        est.inertia_ = float(inertia) * frame.frame.distance_factor()[0]
    est.n_steps_ = getattr(est, "n_steps_", 0) + 1
    return est


def minibatch_fit(est: Any, X: Any) -> None:
    """``MiniBatchKMeans.fit`` on a Dask array: refused, with the routes that work.

    Its steps draw random mini-batches of rows from the host generator, one after the other:
    on a cluster, one round trip per step (thousands per fit) that gathers X's rows to the
    client, ``max_iter`` times over; prefetching batches would change the draws.
    """
    raise TypeError(
        f"{OWNER}.fit does not take a Dask array: its mini-batches are random rows drawn one "
        "step after another, which on a cluster costs one round trip per step (and brings "
        "max_iter passes of X's rows to the client). Use KMeans(n_clusters).fit(X), which runs "
        "Lloyd on the blocks (one map-reduce per iteration, k-means|| initialisation), or "
        f"{OWNER}.partial_fit(X): one mini-batch step with the whole array as the batch; for "
        "a pass over X in batches of its row chunks, call it on each block in turn "
        "(for i in range(X.numblocks[0]): km.partial_fit(X.blocks[i])). Or compute a sample "
        "of X into memory and fit on it.")
