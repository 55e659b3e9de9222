"""The estimator :class:`KMeans` and the functions ``k_means`` and ``kmeans_plusplus``.

scikit-learn is not imported (it is not a dependency); the estimator follows its conventions
(``get_params``/``set_params``, validation in ``fit``, fitted attributes ending in ``_``), so
``sklearn.base.clone`` and ``Pipeline`` work with it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any


from ._base import BaseKMeans, Input, check_host_input, check_input, make_data
from ._compat import is_dask_array, is_out_of_memory, to_numpy
from ._data import ChunkedData
from ._solvers.init import check_user_centers, initial_centers, kmeans_plusplus_working
from ._solvers.lloyd import best_of
from ._sparse import is_sparse_data
from ._exceptions import ConvergenceWarning, sklearn_compatible
from ._validation import (
    check_random_state,
    check_sample_weight,
    init_kind,
    resolve_n_init,
    validate_params,
)


@dataclass
class _Params:
    n_clusters: int
    init_kind: str
    n_init: int
    max_iter: int
    tol: float
    verbose: int
    chunk_size: int | None
    precision: str = "exact"
    deterministic: bool = True
    init_options: dict | None = None
    metric: str = "euclidean"

    def kernel_options(self) -> dict:
        return {"precision": self.precision, "deterministic": self.deterministic,
                "metric": self.metric}


def _check_params(owner: str, params: dict, default_n_init: int = 10) -> _Params:
    """The parameters ``params`` (an estimator's ``get_params()``) checked by the table of
    :mod:`kmeans_xp._validation`, as the fit uses them."""
    v = validate_params(params, owner)
    kind = init_kind(v["init"])
    n_init = resolve_n_init(v["n_init"], kind, default_n_init)
    if v.get("algorithm") == "elkan" and v["n_clusters"] == 1:
        warnings.warn("algorithm='elkan' doesn't make sense for a single cluster. Using "
                      "'lloyd' instead.", RuntimeWarning, stacklevel=4)
    init_options = None
    if kind == "k-means||":
        init_options = {"oversampling_factor": v.get("oversampling_factor", 2.0),
                        "n_rounds": v.get("init_rounds", 5)}
    if kind == "array" and n_init != 1:
        warnings.warn(
            f"Explicit initial center position passed: performing only one init in {owner} "
            f"instead of n_init={n_init}.", RuntimeWarning, stacklevel=4)
        n_init = 1
    return _Params(v["n_clusters"], kind, n_init, v["max_iter"], v["tol"],
                   v.get("verbose", 0), v.get("chunk_size"), v.get("precision", "exact"),
                   v.get("deterministic", True), init_options, v.get("metric", "euclidean"))


@dataclass
class _Fit:
    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    inp: Input


def _out_of_memory(exc: BaseException, data: ChunkedData) -> MemoryError:
    return MemoryError(
        f"{type(exc).__name__} on {data.device} while clustering {data.n} x {data.d} data in "
        f"chunks of {data.rows} rows: pass a smaller chunk_size (rows per chunk). "
        f"Backend message: {exc}")


def _fit(X, sample_weight, init, random_state, p: _Params, owner: str,
         device: Any = None) -> _Fit:
    """Validate everything, then run ``p.n_init`` Lloyd runs and keep the best."""
    if is_dask_array(X):  # a Dask array: the fit runs per block on the cluster
        from . import _dask

        centers, labels, inertia, n_iter, where = _dask.fit(X, sample_weight, init,
                                                            random_state, p, owner)
        return _Fit(centers, labels, inertia, n_iter, Input(*where))
    inp = check_input(X, "X", owner) if device is None else \
        check_host_input(X, "X", owner, device)
    if inp.n < p.n_clusters:
        raise ValueError(f"n_samples={inp.n} should be >= n_clusters={p.n_clusters}.")
    if inp.sparse and p.metric != "euclidean":
        raise ValueError(
            f"metric={p.metric!r} does not take sparse X yet (only 'euclidean' does): pass "
            "X dense, or for cosine on TF-IDF-like rows, scale the rows to unit length "
            "(sklearn.preprocessing.normalize) and use metric='euclidean', which then "
            "gives the same clusters.")
    xp = inp.xp
    rng = check_random_state(random_state)
    w = check_sample_weight(sample_weight, inp.n, xp, inp.device, inp.compute)
    if p.init_kind == "array":
        init = check_user_centers(init, p.n_clusters, xp, inp.device, inp.compute, inp.d)

    data = make_data(inp, weights=w, n_clusters=p.n_clusters, chunk_size=p.chunk_size,
                     **p.kernel_options())
    try:
        return _run(data, inp, init, rng, p)
    except Exception as exc:
        if is_out_of_memory(exc):
            raise _out_of_memory(exc, data) from exc
        raise


def _run(data: ChunkedData, inp: Input, init: Any, rng: Any, p: _Params) -> _Fit:
    """The passes over X and the ``p.n_init`` Lloyd runs; keeps the best run."""
    w = data.weights
    data.prepare("X")
    tol = p.tol * data.mean_variance
    host_w = to_numpy(w) if (w is not None and p.init_kind == "random") else None

    best = best_of(data, lambda: initial_centers(data, init, p.init_kind, p.n_clusters, rng,
                                                  host_w, p.init_options),
                   p.n_init, n_clusters=p.n_clusters, max_iter=p.max_iter, tol=tol,
                   verbose=p.verbose)
    labels, centers, n_iter = best.labels, best.centers, int(best.n_iter[0])
    inertia = float(best.inertia[0]) * data.distance_factor()[0]

    distinct = data.kernels.n_distinct(labels, p.n_clusters)
    if distinct < p.n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
            f"({p.n_clusters}). Possibly due to duplicate points in X.",
            sklearn_compatible(ConvergenceWarning), stacklevel=4)
    return _Fit(data.to_data_coords(centers, inp.storage), labels, inertia, n_iter, inp)


class KMeans(BaseKMeans):
    """K-Means clustering (Lloyd's algorithm) on any Array API namespace.

    The same parameters, attributes and semantics as :class:`sklearn.cluster.KMeans`;
    the data stays where it is: NumPy in, NumPy out; a ``torch.Tensor`` on ``cuda:0`` in,
    tensors on ``cuda:0`` out; likewise CuPy, array-api-strict and others.

    Parameters
    ----------
    n_clusters : int, default=8
        The number of clusters to form.
    init : {'k-means++', 'k-means||', 'random'}, callable or array (n_clusters, n_features)
        'k-means++' is the greedy variant (2 + ln k candidates per step) weighted by
        ``sample_weight``; 'k-means||' is scalable k-means++ (Bahmani et al. 2012): a few
        rounds of independent sampling, each one pass over X, then weighted k-means++ on
        the candidates; use it for large n x k, where k sequential k-means++ steps
        dominate the fit; 'random' picks ``n_clusters`` distinct rows; an array (any
        namespace) gives the centres; a callable is called as
        ``init(X, n_clusters, random_state=rng)`` and returns them.
    n_init : 'auto' or int, default='auto'
        Runs from different seeds; the one with the lowest inertia is kept.  'auto' is 1
        for 'k-means++', 'k-means||' and arrays, 10 for 'random' and callables.
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
    precision : {'exact', 'tf32', 'bf16'}, default='exact'
        Arithmetic of the distances on GPU tensor cores.  'exact' gives the labels of a
        float64 computation except on proven near-ties; 'tf32' and 'bf16' are faster and
        may flip near-ties (about 0.1 % of labels).  CPU kernels always compute in the
        data's float dtype.
    deterministic : bool, default=True
        Bit-identical results from run to run (fixed-order sums).  False lets GPU kernels
        sum with atomics: faster, reproducible only up to rounding.
    metric : {'euclidean', 'cosine', 'manhattan'}, default='euclidean'
        'euclidean' is k-means.  'cosine' is spherical k-means (the usual choice for
        embeddings): rows and centres are scaled to unit length, a centre is the mean of
        its unit rows scaled back to unit length, ``inertia_`` is the weighted sum of cosine
        distances ``1 - cos`` and ``transform`` returns cosine distances; rows of zeros are
        at distance 1 from every centre.  'manhattan' is k-medians: L1 assignment, each
        centre the coordinate-wise weighted median of its cluster (the lower median for an
        even count), k-means++ seeding weighted by L1 distance, ``inertia_`` the weighted
        sum of L1 distances and ``transform`` L1 distances.
    oversampling_factor : float, default=2.0
        For ``init='k-means||'``: about ``oversampling_factor * n_clusters`` candidates are
        drawn per round.
    init_rounds : int, default=5
        For ``init='k-means||'``: the number of sampling rounds (passes over X).

    Attributes
    ----------
    cluster_centers_ : array (n_clusters, n_features), in X's namespace, device and dtype
    labels_ : integer array (n_samples,), in X's namespace and device
    inertia_ : float
        The weighted sum of the distances of the samples to their closest centre, in the
        metric's sense: squared Euclidean distances for 'euclidean' (the within-cluster sum
        of squares), L1 distances for 'manhattan' (k-medians), cosine distances ``1 - cos``
        for 'cosine' (spherical k-means).
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

    @property
    def _accepts_sparse(self) -> bool:
        """Sparse X is taken with metric='euclidean' (the tag scikit-learn reads)."""
        return getattr(self, "metric", "euclidean") == "euclidean"

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", n_init: Any = "auto",
                 max_iter: int = 300, tol: float = 1e-4, verbose: int = 0,
                 random_state: Any = None, copy_x: bool = True, algorithm: str = "lloyd",
                 chunk_size: int | None = None, precision: str = "exact",
                 deterministic: bool = True, oversampling_factor: float = 2.0,
                 init_rounds: int = 5, metric: str = "euclidean") -> None:
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
        self.precision = precision
        self.deterministic = deterministic
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.metric = metric

    # -- fitting -------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None, *,
            device: Any = None) -> "KMeans":
        """Compute k-means clustering.

        Parameters
        ----------
        X : array of shape (n_samples, n_features), any Array API namespace or array-like,
            or sparse: scipy.sparse matrix or array (any format; CSR is used without a
            copy), torch sparse tensor (CPU or CUDA), cupyx.scipy.sparse matrix.  Results
            are dense, in the namespace and on the device of the sparse arrays (NumPy for
            scipy).  Sparse data is never centred or densified: distances are
            ``||x||^2 - 2 x.c + ||c||^2``, so in float32 their accuracy suffers when
            rows lie far from the origin next to their distances (see ``kmeans_xp._sparse``).
        y : ignored
        sample_weight : array of shape (n_samples,), optional
            Non-negative weights (any namespace, moved to X's device if needed).
        device : torch.device or its name, CuPy or array-api-strict Device, optional
            Stream a host X (a NumPy array or ``np.memmap``, possibly larger than device
            memory) to this device: full, exact Lloyd, X read chunk by chunk at every pass
            (pinned, asynchronous copies on torch CUDA).  Device memory: one chunk and its
            work blocks plus about 24 bytes per row (labels, weights); ``chunk_size`` sets
            the chunk.  The fitted attributes live on ``device``.

        Returns
        -------
        self
        """
        owner = type(self).__name__
        p = _check_params(owner, self.get_params())
        res = _fit(X, sample_weight, self.init, self.random_state, p, owner, device)
        self.cluster_centers_ = res.centers
        self.labels_ = res.labels
        self.inertia_ = res.inertia
        self.n_iter_ = res.n_iter
        self._n_init = p.n_init  # the resolved n_init ('auto'), as scikit-learn keeps it
        self.n_features_in_ = res.inp.d
        self._n_features_out = p.n_clusters
        if res.inp.feature_names is not None:
            self.feature_names_in_ = res.inp.feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        return self


def k_means(X: Any, n_clusters: int, *, sample_weight: Any = None, init: Any = "k-means++",
            n_init: Any = "auto", max_iter: int = 300, verbose: bool = False, tol: float = 1e-4,
            random_state: Any = None, copy_x: bool = True, algorithm: str = "lloyd",
            return_n_iter: bool = False, chunk_size: int | None = None,
            precision: str = "exact", deterministic: bool = True,
            oversampling_factor: float = 2.0, init_rounds: int = 5,
            metric: str = "euclidean"):
    """Perform k-means clustering (function form of :class:`KMeans`).

    Returns
    -------
    centroid : array (n_clusters, n_features)
    label : integer array (n_samples,)
    inertia : float
        As :attr:`KMeans.inertia_`: the weighted sum of squared Euclidean, L1 or cosine
        distances to the closest centre, per ``metric``.
    best_n_iter : int, only if ``return_n_iter``
    """
    validate_params(  # before the estimator checks them again: messages name k_means
        {"n_clusters": n_clusters, "init": init, "n_init": n_init, "max_iter": max_iter,
         "verbose": verbose, "tol": tol, "random_state": random_state, "copy_x": copy_x,
         "algorithm": algorithm, "return_n_iter": return_n_iter, "chunk_size": chunk_size,
         "precision": precision, "deterministic": deterministic,
         "oversampling_factor": oversampling_factor, "init_rounds": init_rounds,
         "metric": metric}, "k_means")
    est = KMeans(n_clusters=n_clusters, init=init, n_init=n_init, max_iter=max_iter,
                 verbose=verbose, tol=tol, random_state=random_state, copy_x=copy_x,
                 algorithm=algorithm, chunk_size=chunk_size, precision=precision,
                 deterministic=deterministic, oversampling_factor=oversampling_factor,
                 init_rounds=init_rounds, metric=metric).fit(X, sample_weight=sample_weight)
    out = (est.cluster_centers_, est.labels_, est.inertia_)
    return out + (est.n_iter_,) if return_n_iter else out


def kmeans_plusplus(X: Any, n_clusters: int, *, sample_weight: Any = None,
                    x_squared_norms: Any = None, random_state: Any = None,
                    n_local_trials: int | None = None) -> tuple[Any, Any]:
    """Initial centres by greedy k-means++, computed on X's device.

    ``x_squared_norms`` (scikit-learn's precomputed ``||x_i||^2``) is validated (shape
    ``(n_samples,)``, finite, non-negative) and otherwise not needed: the distances are
    computed on centred data, whose norms differ.  ``X`` may be sparse (as in
    :meth:`KMeans.fit`); the centres are then dense rows.

    Returns
    -------
    centers : array (n_clusters, n_features), rows of X, in X's namespace, device, dtype
    indices : integer array (n_clusters,), the row of X each centre was taken from
    """
    owner = "kmeans_plusplus"
    v = validate_params({"n_clusters": n_clusters, "random_state": random_state,
                         "n_local_trials": n_local_trials}, owner)
    n_clusters, n_local_trials = v["n_clusters"], v["n_local_trials"]
    if is_dask_array(X):  # greedy k-means++ on a sample of the rows (kmeans_xp._dask)
        from . import _dask

        return _dask.kmeans_plusplus(X, n_clusters, sample_weight, random_state,
                                     n_local_trials)
    inp = check_input(X, "X", owner)
    if inp.n < n_clusters:
        raise ValueError(f"n_samples={inp.n} should be >= n_clusters={n_clusters}.")
    check_x_squared_norms(x_squared_norms, inp)
    rng = check_random_state(random_state)
    w = check_sample_weight(sample_weight, inp.n, inp.xp, inp.device, inp.compute)
    data = make_data(inp, weights=w, n_clusters=n_clusters, chunk_size=None)
    data.prepare("X")
    # (the working centres are dropped at once: only the rows in X's values are returned)
    idx = kmeans_plusplus_working(data, n_clusters, rng, n_local_trials)[1]
    if inp.sparse:  # the k chosen rows, dense, in X's values
        assert is_sparse_data(data)  # make_data's SparseData
        centers = data.dense_rows(idx, inp.storage, working=False)
    else:
        centers = inp.xp.take(inp.X, idx, axis=0)
    return (centers if centers.dtype == inp.storage else inp.xp.astype(centers, inp.storage)), idx


def check_x_squared_norms(x_squared_norms: Any, inp: Input) -> None:
    """scikit-learn's checks of ``x_squared_norms``: one finite, non-negative value per row."""
    if x_squared_norms is None:
        return
    from ._validation import as_namespace

    v = as_namespace(x_squared_norms, "x_squared_norms", inp.xp, inp.device, inp.compute)
    if v.ndim != 1 or int(v.shape[0]) != inp.n:
        raise ValueError(
            f"The length of x_squared_norms {tuple(v.shape)} should be equal to the length "
            f"of n_samples {inp.n}.")
    xp = inp.xp
    if not bool(xp.all(xp.isfinite(v))) or bool(xp.any(v < 0)):
        raise ValueError("x_squared_norms must be finite and non-negative.")
