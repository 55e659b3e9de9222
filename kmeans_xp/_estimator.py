"""The scikit-learn-style estimator :class:`KMeans` and the functions ``k_means``,
``kmeans_plusplus``.  scikit-learn is not imported (it is not a dependency); the estimator
follows its conventions (``get_params``/``set_params``, validation in ``fit``, fitted
attributes ending in ``_``), so ``sklearn.base.clone`` and ``Pipeline`` work with it.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._data import ChunkedData
from ._init import check_user_centers, initial_centers, kmeans_plusplus_working
from ._lloyd import (
    kmeans_single_lloyd,
    labels_inertia,
    same_clustering,
    sq_distances,
)
from ._namespace import array_namespace, compute_dtype, device_of, is_out_of_memory, to_numpy
from ._validation import (
    ConvergenceWarning,
    InvalidParameterError,
    NotFittedError,
    as_array,
    check_2d,
    check_algorithm,
    check_chunk_size,
    check_dtype,
    check_init_kind,
    check_int,
    check_n_init,
    check_random_state,
    check_same_namespace,
    check_sample_weight,
    check_tol,
    feature_names_of,
)


@dataclass
class _Input:
    X: Any
    xp: Any
    device: Any
    storage: Any  # dtype results are returned in
    compute: Any  # dtype the arithmetic runs in
    n: int
    d: int
    feature_names: Any


def _check_input(X: Any, name: str, owner: str, *, xp: Any = None, device: Any = None) -> _Input:
    """Cheap checks of X (kind, shape, dtype), before any pass over its values."""
    names = feature_names_of(X)
    X, xp_x, dev_x = as_array(X, name, xp=xp, device=device)
    n, d = check_2d(X, name, owner)
    storage, compute = check_dtype(X, xp_x, dev_x, name)
    return _Input(X, xp_x, dev_x, storage, compute, n, d, names)


@dataclass
class _Params:
    n_clusters: int
    init_kind: str
    n_init: int
    max_iter: int
    tol: float
    verbose: int
    chunk_size: int | None


def _check_params(owner: str, n_clusters, init, n_init, max_iter, tol, verbose, algorithm,
                  chunk_size, copy_x=True) -> _Params:
    n_clusters = check_int(n_clusters, "n_clusters", owner)
    kind = check_init_kind(init, owner)
    n_init = check_n_init(n_init, kind, owner)
    max_iter = check_int(max_iter, "max_iter", owner)
    tol = check_tol(tol, owner)
    if not isinstance(verbose, (bool, int, np.integer)) or verbose < 0:
        raise InvalidParameterError(
            f"The 'verbose' parameter of {owner} must be an int >= 0 or a bool. "
            f"Got {verbose!r} instead.")
    if not isinstance(copy_x, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The 'copy_x' parameter of {owner} must be a bool. Got {copy_x!r} instead.")
    check_algorithm(algorithm, owner)
    chunk_size = check_chunk_size(chunk_size, owner)
    if kind == "array" and n_init != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init in {owner} "
            f"instead of n_init={n_init}.", RuntimeWarning, stacklevel=4)
        n_init = 1
    return _Params(n_clusters, kind, n_init, max_iter, tol, int(verbose), chunk_size)


@dataclass
class _Fit:
    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    inp: _Input


def _out_of_memory(exc: BaseException, data: ChunkedData) -> MemoryError:
    return MemoryError(
        f"{type(exc).__name__} on {data.device} while clustering {data.n} x {data.d} data in "
        f"chunks of {data.rows} rows: pass a smaller chunk_size (rows per chunk). "
        f"Backend message: {exc}")


def _fit(X, sample_weight, init, random_state, p: _Params, owner: str) -> _Fit:
    """Validate everything, then run ``p.n_init`` Lloyd runs and keep the best."""
    inp = _check_input(X, "X", owner)
    if inp.n < p.n_clusters:
        raise ValueError(f"n_samples={inp.n} should be >= n_clusters={p.n_clusters}.")
    xp = inp.xp
    rng = check_random_state(random_state)
    w = check_sample_weight(sample_weight, inp.n, xp, inp.device, inp.compute)
    if p.init_kind == "array":
        init = check_user_centers(init, p.n_clusters, xp, inp.device, inp.compute, inp.d)

    data = ChunkedData(inp.X, xp=xp, dtype=inp.compute, weights=w,
                       n_clusters=p.n_clusters, chunk_size=p.chunk_size)
    try:
        return _run(data, inp, init, rng, p)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise _out_of_memory(exc, data) from exc
        raise


def _run(data: ChunkedData, inp: _Input, init: Any, rng: Any, p: _Params) -> _Fit:
    """The passes over X and the ``p.n_init`` Lloyd runs; keeps the best run."""
    xp, w = data.xp, data.weights
    data.prepare("X")
    tol = p.tol * data.mean_variance
    host_w = to_numpy(w) if (w is not None and p.init_kind == "random") else None

    best = None
    for _ in range(p.n_init):
        c0 = initial_centers(data, init, p.init_kind, p.n_clusters, rng, host_w)
        if p.verbose:
            print("Initialization complete")
        labels, inertia, centers, n_iter = kmeans_single_lloyd(
            data, c0, max_iter=p.max_iter, tol=tol, verbose=p.verbose)
        inertia = float(inertia) * data.scale ** 2  # host sync, once per run
        if best is None or (inertia < best[1]
                            and not same_clustering(labels, best[0], p.n_clusters, data)):
            best = (labels, inertia, centers, n_iter)
    labels, inertia, centers, n_iter = best

    distinct = int(xp.unique_values(labels).shape[0])
    if distinct < p.n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
            f"({p.n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning, stacklevel=4)
    return _Fit(data.to_data_coords(centers, inp.storage), labels, inertia, n_iter, inp)


class KMeans:
    """K-Means clustering (Lloyd's algorithm) on any Array API namespace.

    The same parameters, attributes and semantics as :class:`sklearn.cluster.KMeans`;
    the data stays where it is: NumPy in, NumPy out; a ``torch.Tensor`` on ``cuda:0`` in,
    tensors on ``cuda:0`` out; likewise CuPy, array-api-strict and others.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters to form.
    init : {'k-means++', 'random'}, callable or array of shape (n_clusters, n_features)
        'k-means++' is the greedy variant (2 + ln k candidates per step) weighted by
        ``sample_weight``; 'random' picks ``n_clusters`` distinct rows; an array (any
        namespace) gives the centres; a callable is called as
        ``init(X, n_clusters, random_state=rng)`` and returns them.
    n_init : 'auto' or int, default='auto'
        Runs from different seeds; the one with the lowest inertia is kept.  'auto' is 1
        for 'k-means++' and arrays, 10 for 'random' and callables.
    max_iter : int, default=300
        Maximum number of Lloyd iterations of a run.
    tol : float, default=1e-4
        Relative tolerance: a run stops when the squared Frobenius norm of the centre
        shift is at most ``tol`` times the mean per-feature variance of X.
    verbose : int, default=0
        Print the inertia at each iteration and the reason for stopping.
    random_state : int, numpy RandomState or Generator, or None
        Seeds the host generator: the same int gives the same clustering on every backend.
    copy_x : bool, default=True
        Kept for scikit-learn compatibility.  X is never modified and never copied whole
        (it is centred chunk by chunk), whatever the value.
    algorithm : {'lloyd', 'elkan'}, default='lloyd'
        'elkan' is accepted for compatibility and computes the same clustering with the
        Lloyd kernel (Elkan's bounds save distance evaluations, which matrix products
        make cheap).
    chunk_size : int or None, default=None
        Rows per chunk of the distance computation; None picks it from a budget of
        about 2**20 elements on the CPU (2**26 on a GPU) for the (rows x k) block.

    Attributes
    ----------
    cluster_centers_ : array (n_clusters, n_features), in X's namespace, device and dtype
    labels_ : integer array (n_samples,), in X's namespace and device
    inertia_ : float
        Sum of squared distances of samples to their closest centre, weighted.
    n_iter_ : int
        Iterations of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of str, only when X was a DataFrame with string columns.

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    >>> int(km.predict(np.array([[0, 0], [12, 3]]))[0]) == int(km.labels_[0])
    True
    """

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", n_init: Any = "auto",
                 max_iter: int = 300, tol: float = 1e-4, verbose: int = 0,
                 random_state: Any = None, copy_x: bool = True, algorithm: str = "lloyd",
                 chunk_size: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.chunk_size = chunk_size

    # -- scikit-learn estimator protocol ------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "KMeans":
        """Set parameters (scikit-learn protocol); unknown names raise ``ValueError``."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(
                    f"Invalid parameter {key!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}.")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in
                    inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for k, v in self.get_params().items():
            d = defaults.get(k, inspect.Parameter.empty)
            if isinstance(v, str) or v is None or isinstance(v, (int, float)):
                if v == d and type(v) is type(d):
                    continue
                shown.append(f"{k}={v!r}")
            else:
                shown.append(f"{k}=<{type(v).__name__}>")
        return f"{type(self).__name__}({', '.join(shown)})"

    def __sklearn_tags__(self):  # only called by scikit-learn, so it is installed then
        from sklearn.utils import InputTags, Tags, TargetTags, TransformerTags

        return Tags(estimator_type="clusterer", target_tags=TargetTags(required=False),
                    transformer_tags=TransformerTags(preserves_dtype=["float64", "float32"]),
                    array_api_support=True, input_tags=InputTags())

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    # -- fitting -------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "KMeans":
        """Compute k-means clustering.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), any Array API namespace or array-like
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights (any namespace, moved to X's device if needed).

        Returns
        -------
        self
        """
        owner = type(self).__name__
        p = _check_params(owner, self.n_clusters, self.init, self.n_init, self.max_iter,
                          self.tol, self.verbose, self.algorithm, self.chunk_size, self.copy_x)
        res = _fit(X, sample_weight, self.init, self.random_state, p, owner)
        self.cluster_centers_ = res.centers
        self.labels_ = res.labels
        self.inertia_ = res.inertia
        self.n_iter_ = res.n_iter
        self.n_features_in_ = res.inp.d
        self._n_features_out = p.n_clusters
        if res.inp.feature_names is not None:
            self.feature_names_in_ = res.inp.feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return the distances of X to the centres (n_samples, n_clusters)."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    # -- using a fitted model --------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.")

    def _data_for(self, X: Any, sample_weight: Any = None) -> tuple[ChunkedData, Any]:
        """X checked against the fitted model, and the centres in its working coordinates."""
        self._check_fitted()
        owner = type(self).__name__
        C = self.cluster_centers_
        xp, dev = array_namespace(C), device_of(C)
        names = feature_names_of(X)
        fitted_names = getattr(self, "feature_names_in_", None)
        if fitted_names is not None and names is not None and list(names) != list(fitted_names):
            raise ValueError("The feature names should match those that were passed during fit.")
        inp = _check_input(X, "X", owner, xp=xp, device=dev)
        check_same_namespace(inp.X, inp.xp, inp.device, xp, dev, "X")
        if inp.d != self.n_features_in_:
            raise ValueError(
                f"X has {inp.d} features, but {owner} is expecting {self.n_features_in_} "
                "features as input.")
        compute = compute_dtype(xp, C.dtype, dev)[1]
        w = check_sample_weight(sample_weight, inp.n, xp, dev, compute)
        data = ChunkedData(inp.X, xp=xp, dtype=compute, weights=w,
                           n_clusters=int(C.shape[0]), chunk_size=self.chunk_size)
        data.check_finite_and_scale("X")
        Cs = data.to_working_coords(C)  # scaled, not yet shifted
        data.shift = xp.mean(Cs, axis=0)  # centre on the centres: accurate float32 distances
        return data, Cs - data.shift

    def predict(self, X: Any) -> Any:
        """Index of the closest centre for each sample of X (same namespace and device)."""
        data, C = self._data_for(X)
        return labels_inertia(data, C, return_inertia=False)[0]

    def transform(self, X: Any) -> Any:
        """Euclidean distances (n_samples, n_clusters) of X to every centre."""
        data, C = self._data_for(X)
        D = data.xp.sqrt(sq_distances(data, C))
        if data.scale != 1.0:
            D = D * data.scale
        return D if D.dtype == self.cluster_centers_.dtype else data.xp.astype(
            D, self.cluster_centers_.dtype)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X for the fitted centres."""
        data, C = self._data_for(X, sample_weight)
        inertia = labels_inertia(data, C)[1]
        return -float(inertia) * data.scale ** 2

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``kmeans0``, ``kmeans1``, ... : names of the ``transform`` columns."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)


def k_means(X: Any, n_clusters: int, *, sample_weight: Any = None, init: Any = "k-means++",
            n_init: Any = "auto", max_iter: int = 300, verbose: bool = False, tol: float = 1e-4,
            random_state: Any = None, copy_x: bool = True, algorithm: str = "lloyd",
            return_n_iter: bool = False, chunk_size: int | None = None):
    """Perform k-means clustering (function form of :class:`KMeans`).

    Returns
    -------
    centroid : array (n_clusters, n_features)
    label : integer array (n_samples,)
    inertia : float
    best_n_iter : int, only if ``return_n_iter``
    """
    est = KMeans(n_clusters=n_clusters, init=init, n_init=n_init, max_iter=max_iter,
                 verbose=verbose, tol=tol, random_state=random_state, copy_x=copy_x,
                 algorithm=algorithm, chunk_size=chunk_size).fit(X, sample_weight=sample_weight)
    out = (est.cluster_centers_, est.labels_, est.inertia_)
    return out + (est.n_iter_,) if return_n_iter else out


def kmeans_plusplus(X: Any, n_clusters: int, *, sample_weight: Any = None,
                    x_squared_norms: Any = None, random_state: Any = None,
                    n_local_trials: int | None = None) -> tuple[Any, Any]:
    """Initial centres by greedy k-means++, computed on X's device.

    ``x_squared_norms`` is accepted for scikit-learn compatibility and not needed.

    Returns
    -------
    centers : array (n_clusters, n_features), rows of X, in X's namespace, device, dtype
    indices : integer array (n_clusters,), the row of X each centre was taken from
    """
    owner = "kmeans_plusplus"
    n_clusters = check_int(n_clusters, "n_clusters", owner)
    if n_local_trials is not None:
        n_local_trials = check_int(n_local_trials, "n_local_trials", owner)
    inp = _check_input(X, "X", owner)
    if inp.n < n_clusters:
        raise ValueError(f"n_samples={inp.n} should be >= n_clusters={n_clusters}.")
    rng = check_random_state(random_state)
    w = check_sample_weight(sample_weight, inp.n, inp.xp, inp.device, inp.compute)
    data = ChunkedData(inp.X, xp=inp.xp, dtype=inp.compute, weights=w, n_clusters=n_clusters)
    data.prepare("X")
    _, idx = kmeans_plusplus_working(data, n_clusters, rng, n_local_trials)
    centers = inp.xp.take(inp.X, idx, axis=0)
    return (centers if centers.dtype == inp.storage else inp.xp.astype(centers, inp.storage)), idx
