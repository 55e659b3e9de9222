"""The estimator :class:`MiniBatchKMeans`: scikit-learn's mini-batch k-means on any namespace.

It shares :class:`~kmeans_xp._base.BaseKMeans` (parameters protocol, ``predict``,
``transform``, ``score``), the parameter checks, the initialisations and the kernel set of
:class:`~kmeans_xp.KMeans`; the steps are :mod:`kmeans_xp._solvers.minibatch`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._base import BaseKMeans, check_input, make_data
from ._compat import array_namespace, device_of, to_numpy
from ._data import ChunkedData
from ._kmeans import _check_params, _Params
from ._random import integers
from ._solvers.init import check_user_centers, initial_centers
from ._solvers.minibatch import (
    BatchSampler,
    EarlyStopping,
    MiniBatchState,
    apply_step,
    batches_of,
)
from ._sparse import is_sparse_data
from ._validation import check_random_state, check_same_namespace, check_sample_weight

OWNER = "MiniBatchKMeans"


def _subset(data: ChunkedData, idx: np.ndarray) -> ChunkedData:
    """Rows ``idx`` (host) of ``data``, with their weights, as a small ChunkedData in the
    same frame (for sparse data its ``subset``: sparse too)."""
    xp = data.xp
    idx_dev = xp.asarray(idx, device=data.device)
    w = None if data.weights is None else xp.take(data.weights, idx_dev)
    if is_sparse_data(data):
        return data.subset(idx, w)
    X = xp.take(data.X, idx_dev, axis=0)
    sub = ChunkedData(X, xp=xp, dtype=data.dtype, weights=w, n_clusters=1,
                      kernels=data.kernels)
    sub.use_frame(data.frame)
    return sub


class MiniBatchKMeans(BaseKMeans):
    """Mini-Batch K-Means clustering on any Array API namespace (dense or sparse X).

    The parameters, attributes and semantics of :class:`sklearn.cluster.MiniBatchKMeans`
    (per-centre learning rate, reassignment of small clusters, early stopping on an
    exponentially weighted average of the batch inertia); the data stays on its device.
    The mini-batch rows are drawn from the host generator exactly as scikit-learn draws
    them, so an int ``random_state`` picks the same rows on every backend (and as
    scikit-learn).

    Parameters
    ----------
    n_clusters : int, default=8
    init : {'k-means++', 'k-means||', 'random'}, callable or array (n_clusters, n_features)
        As for :class:`~kmeans_xp.KMeans`, run on ``init_size`` random rows.
    max_iter : int, default=100
        Maximum number of passes over the data (in mini-batch steps:
        ``max_iter * n_samples // batch_size``).
    batch_size : int, default=1024
        Rows per mini-batch.
    verbose : int, default=0
    compute_labels : bool, default=True
        Compute ``labels_`` and ``inertia_`` with a full pass once the centres are found
        (in ``partial_fit``: on the chunk given).
    random_state : int, RandomState, Generator or None
    tol : float, default=0.0
        Stop when the squared change of the centres in a step is at most ``tol`` times
        the mean per-feature variance of X (0 disables it).
    max_no_improvement : int or None, default=10
        Stop after this many steps without improvement of the smoothed batch inertia.
    init_size : int or None, default=None
        Rows used by the initialisation (default ``3 * batch_size``, at least
        ``3 * n_clusters``).
    n_init : 'auto' or int, default='auto'
        Initialisations tried (each on its own ``init_size`` rows, judged on a common
        validation sample); 'auto' is 1 for k-means++ and arrays, 3 otherwise.
    reassignment_ratio : float, default=0.01
        Centres whose accumulated weight is below this fraction of the largest are moved
        to random rows of the batch.
    chunk_size : int or None, default=None
        Rows per chunk of the full passes (``compute_labels``, ``predict``, ...).

    Attributes
    ----------
    cluster_centers_, labels_, n_iter_, n_steps_, n_features_in_,
    feature_names_in_ : as in scikit-learn, in X's namespace, device and dtype
        (the counts are Python / device scalars as documented there).
    inertia_ : float
        The weighted sum of squared Euclidean distances of the samples to their closest
        centre (the within-cluster sum of squares; MiniBatchKMeans is Euclidean only).

    Notes
    -----
    ``partial_fit`` fixes the coordinate frame (the centring shift and power-of-two scale
    that keep float32 distances accurate) on its first chunk and keeps it for every later
    chunk, so a stream of chunks is clustered in one frame.

    Sparse X (scipy.sparse matrices and arrays, torch sparse tensors, cupyx.scipy.sparse)
    is taken by ``fit``, ``partial_fit``, ``predict``, ``transform`` and ``score``, as by
    :class:`~kmeans_xp.KMeans`: never densified nor centred; a mini-batch is the batch's
    stored values (only the rows that become centres are made dense), drawn as for dense
    data, so float64 fits equal scikit-learn's on the same sparse data.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]], dtype=float)
    >>> km = MiniBatchKMeans(n_clusters=2, random_state=0, batch_size=6, n_init=3)
    >>> km = km.partial_fit(X[0:6]).partial_fit(X[6:12])
    >>> km.cluster_centers_.shape
    (2, 2)
    """

    #: sparse X is taken (the tag scikit-learn's ``check_estimator`` reads)
    _accepts_sparse = True

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", max_iter: int = 100,
                 batch_size: int = 1024, verbose: int = 0, compute_labels: bool = True,
                 random_state: Any = None, tol: float = 0.0, max_no_improvement: Any = 10,
                 init_size: Any = None, n_init: Any = "auto", reassignment_ratio: float = 0.01,
                 chunk_size: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.chunk_size = chunk_size

    # -- checks ------------------------------------------------------------------------
    def _check_params(self) -> _Params:
        """Every parameter checked by the table of :mod:`kmeans_xp._validation`."""
        return _check_params(OWNER, self.get_params(), default_n_init=3)

    def _sizes(self, n: int) -> tuple[int, int]:
        """``batch_size`` and ``init_size`` for n rows (scikit-learn's rules)."""
        batch_size = min(self.batch_size, n)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * batch_size
            if init_size < self.n_clusters:
                init_size = 3 * self.n_clusters
        elif init_size < self.n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={self.n_clusters}. "
                "Setting it to min(3*n_clusters, n_samples)", RuntimeWarning, stacklevel=3)
            init_size = 3 * self.n_clusters
        return batch_size, min(init_size, n)

    def _init_centroids(self, data: ChunkedData, init: Any, p: _Params, rng: Any,
                        init_size: int) -> Any:
        """Initial centres (working coordinates) from ``init_size`` random rows of ``data``."""
        sub = data
        if init_size < data.n:
            sub = _subset(data, integers(rng, data.n, init_size))
        host_w = None if sub.weights is None or p.init_kind != "random" \
            else to_numpy(sub.weights)
        return initial_centers(sub, init, p.init_kind, p.n_clusters, rng, host_w,
                               p.init_options)

    def _set_results(self, data: ChunkedData, state: MiniBatchState, inp: Any) -> None:
        self.cluster_centers_ = data.to_data_coords(state.centers, inp.storage)
        state.release()  # cluster_centers_ may be the state's centres: no more writes
        self.n_features_in_ = inp.d
        self._n_features_out = int(state.centers.shape[0])
        if inp.feature_names is not None:
            self.feature_names_in_ = inp.feature_names

    def _labels_inertia(self, data: ChunkedData, centers: Any) -> None:
        labels, inertia = data.kernels.labels_inertia(data, centers)
        self.labels_ = labels
        self.inertia_ = float(inertia) * data.distance_factor()[0]

    def _steps(self, data: ChunkedData, state: MiniBatchState, sampler: BatchSampler,
               stop: EarlyStopping, rng: Any, n_steps: int, tol: float, p: _Params
               ) -> tuple[int, float]:
        """The mini-batch steps of ``fit``; returns the last step's index and batch inertia."""
        xp = data.xp
        batch_size = state.batch_size
        batches = batches_of(data)  # dense rows, or sparse subsets of X
        step, res = 0, None
        with data.kernels.small_work(batches.flops(batch_size, p.n_clusters)):
            for step in range(n_steps):
                idx = sampler.draw(rng, batch_size)
                batch, stats, rows_of = batches.statistics(idx, state.centers, state.work)
                res = apply_step(
                    state, stats, kernels=data.kernels, batch=batch, xp=xp,
                    rows_of=rows_of, n_rows=batch_size, rng=rng,
                    random_reassign=state.random_reassign(p.n_clusters),
                    reassignment_ratio=float(self.reassignment_ratio), need_diff=tol > 0.0,
                    verbose=p.verbose)
                if stop.converged(step, n_steps, res.squared_diff, res.inertia):
                    break
        assert res is not None  # n_steps >= 1: max_iter >= 1 and batch_size <= n
        return step, res.inertia

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> MiniBatchKMeans:
        """Compute the centres on X by mini-batches.

        Parameters
        ----------
        X : array (n_samples, n_features), any Array API namespace or array-like, or sparse
            (scipy.sparse, torch sparse, cupyx.scipy.sparse; see the class notes)
        y : ignored
        sample_weight : array (n_samples,), optional
            Mini-batches are drawn with probability proportional to the weights (and then
            weighted equally), as scikit-learn does.

        Returns
        -------
        self
        """
        from ._compat import is_dask_array

        if is_dask_array(X):  # refused, naming the routes that work (kmeans_xp._dask)
            from . import _dask

            _dask.minibatch_fit(self, X)
        p = self._check_params()
        inp = check_input(X, "X", OWNER)
        if inp.n < p.n_clusters:
            raise ValueError(f"n_samples={inp.n} should be >= n_clusters={p.n_clusters}.")
        xp, dev = inp.xp, inp.device
        rng = check_random_state(self.random_state)
        w = check_sample_weight(sample_weight, inp.n, xp, dev, inp.compute)
        init = self.init
        if p.init_kind == "array":
            init = check_user_centers(init, p.n_clusters, xp, dev, inp.compute, inp.d)
        data = make_data(inp, weights=w, n_clusters=p.n_clusters, chunk_size=p.chunk_size)
        data.prepare("X")
        n = inp.n
        batch_size, init_size = self._sizes(n)
        tol = p.tol * data.mean_variance if p.tol > 0 else 0.0
        kern = data.kernels

        # initialisations, judged on a common validation sample (scikit-learn's order of draws)
        valid = _subset(data, integers(rng, n, init_size))
        best, best_inertia = None, None
        for i in range(p.n_init):
            if p.verbose:
                print(f"Init {i + 1}/{p.n_init} with method {p.init_kind}")
            c0 = self._init_centroids(data, init, p, rng, init_size)
            inertia = float(kern.labels_inertia(valid, c0)[1])  # host sync, once per init
            if p.verbose:
                print(f"Inertia for init {i + 1}/{p.n_init}: "
                      f"{inertia * data.distance_factor()[0]}")
            if best_inertia is None or inertia < best_inertia:
                best, best_inertia = c0, inertia

        host_w = None if w is None else to_numpy(w)
        sampler = BatchSampler(host_w, n, to_numpy(xp.zeros(1, dtype=inp.compute,
                                                             device=dev)).dtype)
        state = MiniBatchState(best, xp.zeros(p.n_clusters, dtype=inp.compute, device=dev),
                               batch_size)
        best = c0 = None  # the state holds them (not owned: the first step copies them)
        stop = EarlyStopping(batch_size, n, tol, self.max_no_improvement, p.verbose)
        n_steps = (p.max_iter * n) // batch_size
        step, last = self._steps(data, state, sampler, stop, rng, n_steps, tol, p)
        labels = None
        if self.compute_labels:  # the last pass, before any attribute changes
            labels, inertia = data.kernels.labels_inertia(data, state.centers)
            inertia = float(inertia) * data.distance_factor()[0]
        else:
            total_w = n if w is None else float(xp.sum(w))
            ewa = stop.ewa_inertia if stop.ewa_inertia is not None else last / batch_size
            inertia = ewa * total_w * data.distance_factor()[0]

        # the attributes, all at the end: an interrupted fit leaves the previous one whole
        for stale in ("_state", "_frame", "feature_names_in_", "labels_"):
            self.__dict__.pop(stale, None)
        self._n_init = p.n_init  # the resolved n_init ('auto'), as scikit-learn keeps it
        self._set_results(data, state, inp)
        self.n_steps_ = step + 1
        self.n_iter_ = int(np.ceil(((step + 1) * batch_size) / n))
        if labels is not None:
            self.labels_ = labels
        self.inertia_ = inertia
        # what partial_fit continues from
        self._state = state
        self._frame = data.frame.freeze()
        return self

    def _fit_where(self) -> tuple[Any, Any, Any]:
        """The namespace, device and compute dtype of the fit (from the state's centres:
        a namespace is a module, which pickle cannot store)."""
        C = self._state.centers
        return array_namespace(C), device_of(C), C.dtype

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None
                    ) -> MiniBatchKMeans:
        """Update the centres with one mini-batch (or one chunk of a stream).

        The first call checks the parameters, fixes the coordinate frame on this chunk and
        initialises the centres on it; later calls reuse that frame.

        Parameters
        ----------
        X : array (n_samples, n_features), dense or sparse; chunks of a stream may mix both
        y : ignored
        sample_weight : array (n_samples,), optional

        Returns
        -------
        self
        """
        from ._compat import is_dask_array

        if is_dask_array(X):  # one map-reduce over the blocks (kmeans_xp._dask)
            from . import _dask

            return _dask.partial_fit(self, X, sample_weight)
        started = hasattr(self, "_state") and hasattr(self, "cluster_centers_")
        if started:
            xp_fit, dev_fit, compute = self._fit_where()
            inp = check_input(X, "X", OWNER, xp=xp_fit, device=dev_fit)
            check_same_namespace(inp.X, inp.xp, inp.device, xp_fit, dev_fit, "X")
            if inp.d != self.n_features_in_:
                raise ValueError(
                    f"X has {inp.d} features, but {OWNER} is expecting {self.n_features_in_} "
                    "features as input.")
            inp.compute = compute
            p = None
        else:
            p = self._check_params()
            self._n_init = p.n_init  # the resolved n_init ('auto'), as scikit-learn keeps it
            inp = check_input(X, "X", OWNER)
        xp, dev = inp.xp, inp.device
        if not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        rng = self._random_state
        w = check_sample_weight(sample_weight, inp.n, xp, dev, inp.compute)
        k = int(self.n_clusters)
        data = make_data(inp, weights=w, n_clusters=k, chunk_size=self.chunk_size)
        if not started:
            if inp.n < k:
                raise ValueError(f"n_samples={inp.n} should be >= n_clusters={k}.")
            assert p is not None  # checked above: not started
            init = self.init
            if p.init_kind == "array":
                init = check_user_centers(init, k, xp, dev, inp.compute, inp.d)
            data.prepare("X")  # the frame of the whole stream
            batch_size, init_size = self._sizes(inp.n)
            c0 = self._init_centroids(data, init, p, rng, init_size)
            self._state = MiniBatchState(c0, xp.zeros(k, dtype=inp.compute, device=dev),
                                         batch_size)
            self._frame = data.frame.freeze()
        else:
            data.check_and_amax("X", moments=False)  # NaN / inf; the frame stays the first's
            data.use_frame(self._frame)
        state = self._state
        state.release()  # its centres were handed out (cluster_centers_): not written into
        # sparse rows are never centred: in the centred frame of a dense first chunk, a
        # sparse chunk's step runs on uncentred centres (the update commutes with a shift)
        offset = data.shift if inp.sparse else None
        if offset is not None:
            state.centers = state.centers + offset
            state.owned = True  # a fresh array
        stats = data.kernels.minibatch_assign(data, state.centers, state.work)
        apply_step(
            state, stats, kernels=data.kernels, batch=data, xp=xp,
            rows_of=lambda ids: data.take_rows(xp.asarray(ids, device=dev)),
            n_rows=inp.n, rng=rng, random_reassign=state.random_reassign(k),
            reassignment_ratio=float(self.reassignment_ratio), need_diff=False,
            verbose=int(self.verbose))
        if self.compute_labels:
            self._labels_inertia(data, state.centers)
        if offset is not None:
            state.centers = state.centers - offset
        self._set_results(data, state, inp)
        self.n_steps_ = getattr(self, "n_steps_", 0) + 1
        return self
