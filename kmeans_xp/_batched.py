"""Batched k-means: ``batched_k_means`` and the estimator :class:`BatchedKMeans`.

Thousands of small independent clusterings (per image, per user, per shard, per attention
head) in one job: X of shape (B, n, d), one ``KMeans`` per problem, computed together with
batched products and one host sync per Lloyd iteration for all problems.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._base import BaseKMeans
from ._compat import array_namespace, device_of, to_numpy
from ._frame import Frame, power_of_two_scales
from ._kernels import select
from ._random import integers
from ._solvers.batched import (
    BatchedData,
    batched_kmeans_plusplus,
    batched_labels_inertia,
    batched_random,
    batched_sq_distances,
    kpp_draws,
    kpp_uniforms,
)
from ._solvers.lloyd import best_of
from ._validation import (
    BATCHED_PARAMETERS,
    InvalidParameterError,
    as_array,
    as_namespace,
    check_dtype,
    check_random_state,
    init_kind,
    resolve_n_init,
    validate_params,
)

OWNER = "batched_k_means"


def problem_seeds(random_state: Any, n_problems: int) -> np.ndarray:
    """The per-problem seeds: problem b is clustered as ``KMeans(random_state=seeds[b])``.

    ``random_state`` may be a sequence of ``n_problems`` ints (used as they are), or
    anything ``KMeans`` accepts: then the seeds are
    ``check_random_state(random_state).randint(2**31 - 1, size=n_problems)`` (a
    Generator: ``integers(0, 2**31 - 1, size=n_problems)``).
    """
    if isinstance(random_state, (list, tuple, np.ndarray)):
        seeds = np.asarray(random_state)
        if seeds.shape != (n_problems,) or not np.issubdtype(seeds.dtype, np.integer) \
                or (seeds < 0).any() or (seeds >= 2**32).any():
            raise InvalidParameterError(
                f"A sequence 'random_state' of {OWNER} must hold one int in [0, 2**32 - 1] "
                f"per problem ({n_problems}); got shape {seeds.shape}, dtype {seeds.dtype}.")
        return seeds.astype(np.int64)
    rng = check_random_state(random_state)
    return np.asarray(integers(rng, np.iinfo(np.int32).max, size=n_problems), dtype=np.int64)


@dataclass
class BatchedResult:
    centers: Any
    labels: Any
    inertia: Any
    n_iter: Any
    seeds: np.ndarray


def _check_mask(mask: Any, B: int, n: int, xp: Any, device: Any) -> tuple[Any, np.ndarray]:
    """A (B, n) bool mask (or per-problem lengths) as a device mask and host row counts."""
    if mask is None:
        return None, np.full(B, n, dtype=np.int64)
    host = np.asarray(to_numpy(mask)) if not isinstance(mask, (list, tuple)) \
        else np.asarray(mask)
    if host.ndim == 1:  # lengths: the first lengths[b] rows of problem b
        if host.shape != (B,) or not np.issubdtype(host.dtype, np.integer) \
                or (host < 0).any() or (host > n).any():
            raise ValueError(f"mask given as lengths must be {B} ints in [0, {n}]; got "
                             f"shape {host.shape}, dtype {host.dtype}.")
        host = np.arange(n)[None, :] < host[:, None]
    if host.shape != (B, n) or host.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array of shape ({B}, {n}) or {B} lengths; "
                         f"got shape {host.shape}, dtype {host.dtype}.")
    return xp.asarray(host, device=device), host.sum(axis=1).astype(np.int64)


def _check_rows_per_problem(n_valid: np.ndarray, n_clusters: Any) -> None:
    """Every problem has at least its k valid rows (``n_clusters`` an int or (B,) ints)."""
    ks = np.broadcast_to(np.asarray(n_clusters), n_valid.shape)
    small = np.nonzero(n_valid < ks)[0]
    if small.size:
        b = int(small[0])
        raise ValueError(f"n_samples={int(n_valid[b])} should be >= n_clusters={int(ks[b])} "
                         f"(problem {b}).")


def _per_problem(n_clusters: Any) -> bool:
    """Whether ``n_clusters`` is one k per problem (a sequence or a 1-d array)."""
    return isinstance(n_clusters, (list, tuple)) or getattr(n_clusters, "ndim", 0) == 1


def _rows_of(a: Any, ids: np.ndarray) -> Any:
    """Problems ``ids`` (host) of a per-problem argument (array of any namespace, or a
    sequence), in its own namespace and device."""
    if a is None:
        return None
    try:
        xp = array_namespace(a)
    except TypeError:
        return np.asarray(a)[ids]
    return xp.take(a, xp.asarray(ids, device=device_of(a)), axis=0)


def _fit_per_problem_k(X: Any, n_clusters: Any, *, init: Any, random_state: Any,
                       sample_weight: Any, mask: Any, owner: str,
                       **options: Any) -> BatchedResult:
    """``n_clusters`` one int per problem: the problems of each k are fitted together (one
    batched fit per distinct k: the kernel calls grow with the number of distinct k, not
    with B); centres padded with NaN to the largest k."""
    if owner != OWNER:
        raise InvalidParameterError(
            f"The 'n_clusters' parameter of {owner} must be an int; one k per problem is "
            f"taken by batched_k_means (its centres are padded with NaN to the largest k).")
    X, xp, dev = as_array(X, "X")
    if X.ndim != 3:
        raise ValueError(f"X must have shape (n_problems, n_samples, n_features); got "
                         f"{X.ndim}D array of shape {tuple(X.shape)}.")
    B, d = int(X.shape[0]), int(X.shape[2])
    ks = np.asarray(to_numpy(n_clusters) if hasattr(n_clusters, "shape") else n_clusters)
    if ks.shape != (B,) or not np.issubdtype(ks.dtype, np.integer) or (ks < 1).any():
        raise InvalidParameterError(
            f"A sequence 'n_clusters' of {owner} must hold one int >= 1 per problem ({B}); "
            f"got shape {ks.shape}, dtype {ks.dtype}"
            + (f", smallest {ks.min()}." if ks.size and ks.dtype.kind in "iu" else "."))
    if init_kind(init) == "array":
        raise InvalidParameterError(
            f"The 'init' parameter of {owner} must be 'k-means++' or 'random' when "
            f"'n_clusters' gives one k per problem (initial centres have one k).")
    # every check that can fail before any problem is fitted
    validate_params({"n_clusters": int(ks.max()), "init": init, "random_state": random_state,
                     **options}, owner, BATCHED_PARAMETERS)
    n = int(X.shape[1])
    n_valid = _check_mask(mask, B, n, xp, dev)[1]
    _check_rows_per_problem(n_valid, ks)
    if sample_weight is not None and tuple(np.shape(sample_weight)) != (B, n):
        raise ValueError(f"sample_weight.shape == {tuple(np.shape(sample_weight))}, expected "
                         f"({B}, {n}).")
    seeds = problem_seeds(random_state, B)
    k_max = int(ks.max())
    order, parts = [], []
    for k in np.unique(ks).tolist():
        ids = np.nonzero(ks == k)[0]
        r = _fit(_rows_of(X, ids), int(k), init=init, random_state=seeds[ids],
                 sample_weight=_rows_of(sample_weight, ids), mask=_rows_of(mask, ids),
                 owner=owner, **options)
        C = r.centers
        if k < k_max:
            pad = xp.full((len(ids), k_max - k, d), xp.nan, dtype=C.dtype, device=dev)
            C = xp.concat([C, pad], axis=1)
        order.append(ids)
        parts.append((C, r.labels, r.inertia, r.n_iter))
    back = xp.asarray(np.argsort(np.concatenate(order), kind="stable"), device=dev)
    C, labels, inertia, n_iter = (
        xp.take(xp.concat([p[i] for p in parts], axis=0), back, axis=0) for i in range(4))
    return BatchedResult(C, labels, inertia, n_iter, seeds)


def _fit(X: Any, n_clusters: Any, *, init: Any, n_init: Any, max_iter: Any, tol: Any,
         random_state: Any, sample_weight: Any, mask: Any, chunk_size: Any,
         owner: str = OWNER) -> BatchedResult:
    if _per_problem(n_clusters):
        return _fit_per_problem_k(X, n_clusters, init=init, n_init=n_init,
                                  max_iter=max_iter, tol=tol, random_state=random_state,
                                  sample_weight=sample_weight, mask=mask,
                                  chunk_size=chunk_size, owner=owner)
    v = validate_params({"n_clusters": n_clusters, "init": init, "n_init": n_init,
                         "max_iter": max_iter, "tol": tol, "random_state": random_state,
                         "chunk_size": chunk_size}, owner, BATCHED_PARAMETERS)
    n_clusters, max_iter, tol, chunk_size = (v[name] for name in (
        "n_clusters", "max_iter", "tol", "chunk_size"))
    kind = init_kind(init)
    n_init = resolve_n_init(v["n_init"], kind)
    if kind == "array" and n_init != 1:
        import warnings

        warnings.warn(f"Explicit initial center position passed: performing only one init in "
                      f"{owner} instead of n_init={n_init}.", RuntimeWarning, stacklevel=3)
        n_init = 1

    X, xp, dev = as_array(X, "X")
    if X.ndim != 3:
        raise ValueError(f"X must have shape (n_problems, n_samples, n_features); got "
                         f"{X.ndim}D array of shape {tuple(X.shape)}.")
    B, n, d = (int(s) for s in X.shape)
    if B < 1 or n < 1 or d < 1:
        raise ValueError(f"X has an empty dimension: shape {tuple(X.shape)}.")
    storage, compute = check_dtype(X, xp, dev, "X")
    mask_dev, n_valid = _check_mask(mask, B, n, xp, dev)
    _check_rows_per_problem(n_valid, n_clusters)
    seeds = problem_seeds(random_state, B)
    w = None
    if sample_weight is not None:
        w = as_namespace(sample_weight, "sample_weight", xp, dev, compute)
        if tuple(w.shape) != (B, n):
            raise ValueError(f"sample_weight.shape == {tuple(w.shape)}, expected ({B}, {n}).")
        bad = to_numpy(xp.stack([xp.any(xp.logical_not(xp.isfinite(w))), xp.any(w < 0)]))
        if bad.any():
            raise ValueError("sample_weight must be finite and non-negative.")
    if mask_dev is not None:
        m = xp.astype(mask_dev, compute)
        w = m if w is None else w * m
    C_init = None
    if kind == "array":
        C_init = as_namespace(init, "init", xp, dev, compute)
        if tuple(C_init.shape) != (B, n_clusters, d):
            raise ValueError(f"The shape of the initial centers {tuple(C_init.shape)} does not "
                             f"match (n_problems, n_clusters, n_features) = "
                             f"{(B, n_clusters, d)} (parameter 'init').")
        if not bool(xp.all(xp.isfinite(C_init))):
            raise ValueError("The initial centers given in 'init' contain NaN or infinity.")

    kernels = select(xp, dev, compute)
    data = BatchedData(X, xp=xp, dtype=compute, weights=w, mask=mask_dev, n_valid=n_valid,
                       kernels=kernels, n_clusters=n_clusters, chunk_size=chunk_size)
    data.prepare()
    tol_b = tol * data.mean_variance
    if kind == "k-means++":  # every run's uniforms, drawn once from the per-problem seeds
        used = kpp_draws(n_clusters)[1]
        uniforms = kpp_uniforms(seeds, n_init * used)
    elif kind == "random":
        rngs = [np.random.RandomState(int(s)) for s in seeds]

    runs = iter(range(n_init))

    def initial() -> Any:
        run = next(runs)
        if kind == "k-means++":
            return batched_kmeans_plusplus(data, uniforms[:, run * used:(run + 1) * used])
        if kind == "random":
            return batched_random(data, rngs)
        return data.to_working(C_init, np.arange(B))

    # the driver's operations touch about B * n elements each: small work, which torch CPU
    # runs on one thread (its spinning workers slowed the compiled passes 2-3x)
    with kernels.small_work(B * n):
        best = best_of(data, initial, n_init, n_clusters=n_clusters, max_iter=max_iter,
                       tol=tol_b)
    labels, centers, n_iter = best.labels, best.centers, best.n_iter
    inertia = xp.asarray(best.inertia, dtype=data.accumulator_dtype(), device=dev)
    if data.frame.scaled:
        inertia = inertia * xp.asarray(data.frame.distance_factor()[0], dtype=inertia.dtype,
                                       device=dev)
    return BatchedResult(data.to_data_coords(centers, storage), labels, inertia,
                         xp.asarray(n_iter, device=dev), seeds)


def batched_k_means(X: Any, n_clusters: int, *, init: Any = "k-means++", n_init: Any = "auto",
                    max_iter: int = 300, tol: float = 1e-4, random_state: Any = None,
                    sample_weight: Any = None, mask: Any = None,
                    chunk_size: int | None = None) -> tuple[Any, Any, Any, Any]:
    """K-means on each of B independent problems at once, on any namespace and device.

    Problem b gets exactly what ``KMeans(n_clusters, init=..., n_init=..., max_iter=...,
    tol=..., random_state=int(seeds[b])).fit(X[b][mask[b]])`` would give (up to
    floating-point near-ties), where ``seeds = problem_seeds(random_state, B)``; the work
    is batched over problems (batched products and centre sums, one host sync per
    iteration for all problems; a problem that converged stops changing and costs
    nothing more).

    Parameters
    ----------
    X : array (B, n, d), any Array API namespace
    n_clusters : int or sequence of B ints
        One k for every problem, or one per problem (as torch-kmeans offers): then the
        problems of each k are fitted together, problem b's centres fill the first
        ``n_clusters[b]`` rows of ``centers[b]`` and the other rows are NaN (padding to
        the largest k), and ``init`` must be 'k-means++' or 'random'.
    init : {'k-means++', 'random'} or array (B, n_clusters, d)
    n_init : 'auto' or int
        'auto' is 1 for k-means++ and arrays, 10 for 'random'.  The best run is kept per
        problem.
    max_iter : int, default=300
    tol : float, default=1e-4
        Relative to each problem's own mean per-feature variance.
    random_state : None, int, RandomState, Generator or a sequence of B ints
        See :func:`problem_seeds`.
    sample_weight : array (B, n), optional
    mask : bool array (B, n) or B ints, optional
        Rows that belong to each problem (or the lengths of each problem's leading rows),
        for problems of unequal sizes padded to n.  Masked rows may hold anything
        finite or not; they get the label -1.
    chunk_size : int or None
        Problems per group of the batched products (None: from the memory budget,
        about 2**20 elements per (group x n x max(k, d)) block on the CPU, 2**26 on a GPU).

    Returns
    -------
    centers : array (B, n_clusters, d) ((B, max(n_clusters), d) for per-problem k), X's
        namespace, device and dtype
    labels : int64 array (B, n)
    inertia : array (B,) (float64 where the device has it)
    n_iter : int64 array (B,)

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import batched_k_means
    >>> X = np.random.default_rng(0).normal(size=(3, 50, 2))
    >>> centers, labels, inertia, n_iter = batched_k_means(X, 4, random_state=0)
    >>> centers.shape, labels.shape, inertia.shape, n_iter.shape
    ((3, 4, 2), (3, 50), (3,), (3,))
    """
    r = _fit(X, n_clusters, init=init, n_init=n_init, max_iter=max_iter, tol=tol,
             random_state=random_state, sample_weight=sample_weight, mask=mask,
             chunk_size=chunk_size)
    return r.centers, r.labels, r.inertia, r.n_iter


class BatchedKMeans(BaseKMeans):
    """Estimator form of :func:`batched_k_means`: ``fit``/``predict`` on (B, n, d).

    Attributes
    ----------
    cluster_centers_ : array (B, n_clusters, d)
    labels_ : int64 array (B, n), -1 on masked rows
    inertia_ : array (B,)
    n_iter_ : int64 array (B,)
    seeds_ : ndarray (B,): problem b was fitted as ``KMeans(random_state=seeds_[b])``
    """

    def __init__(self, n_clusters: int = 8, *, init: Any = "k-means++", n_init: Any = "auto",
                 max_iter: int = 300, tol: float = 1e-4, random_state: Any = None,
                 chunk_size: int | None = None) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.chunk_size = chunk_size

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None,
            mask: Any = None) -> "BatchedKMeans":
        """Fit one k-means per problem of X (B, n, d); see :func:`batched_k_means`."""
        r = _fit(X, self.n_clusters, init=self.init, n_init=self.n_init,
                 max_iter=self.max_iter, tol=self.tol, random_state=self.random_state,
                 sample_weight=sample_weight, mask=mask, chunk_size=self.chunk_size,
                 owner=type(self).__name__)
        self.cluster_centers_, self.labels_, self.inertia_, self.n_iter_ = (
            r.centers, r.labels, r.inertia, r.n_iter)
        self.seeds_ = r.seeds
        self.n_features_in_ = int(r.centers.shape[2])
        self._n_features_out = int(r.centers.shape[1])  # transform's columns (per problem)
        return self

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None,
                    mask: Any = None, **fit_params: Any) -> Any:
        return self.fit(X, sample_weight=sample_weight, mask=mask, **fit_params).labels_

    def _batch_data_for(self, X: Any, mask: Any, sample_weight: Any = None) -> tuple[Any, Any]:
        """X (B, n, d) checked against the fitted model, in the fitted scale centred on each
        problem's centres, and the centres in those working coordinates."""
        self._check_fitted()
        C = self.cluster_centers_
        xp, dev = array_namespace(C), device_of(C)
        X = as_array(X, "X", xp=xp, device=dev)[0]
        B, k, d = (int(s) for s in C.shape)
        if X.ndim != 3 or int(X.shape[0]) != B or int(X.shape[2]) != d:
            raise ValueError(f"X must have shape ({B}, n_samples, {d}); got "
                             f"{tuple(X.shape)}.")
        n = int(X.shape[1])
        compute = check_dtype(X, xp, dev, "X")[1]
        compute = C.dtype if C.dtype in (xp.float32, xp.float64) else compute
        mask_dev, n_valid = _check_mask(mask, B, n, xp, dev)
        w = None
        if sample_weight is not None:
            w = as_namespace(sample_weight, "sample_weight", xp, dev, compute)
            if tuple(w.shape) != (B, n):
                raise ValueError(f"sample_weight.shape == {tuple(w.shape)}, expected "
                                 f"({B}, {n}).")
        if mask_dev is not None:
            m = xp.astype(mask_dev, compute)
            w = m if w is None else w * m
        data = BatchedData(X, xp=xp, dtype=compute, weights=w, mask=mask_dev,
                           n_valid=n_valid, kernels=select(xp, dev, compute), n_clusters=k,
                           chunk_size=self.chunk_size)
        # the fitted rule's scale for these data (finite checked), centred on the centres:
        # accurate float32 distances
        scale = power_of_two_scales(data.check_and_amax("X"), xp.finfo(compute))
        frame = Frame(scale, None, np.zeros(B))
        frame = frame.for_centers(frame.to_working(C, xp, compute), xp)
        data.frame = frame
        return data, frame.to_working(C, xp, compute)

    def predict(self, X: Any, mask: Any = None) -> Any:
        """Nearest centre of each row of each problem (B, n); -1 on masked rows."""
        data, C = self._batch_data_for(X, mask)
        return batched_labels_inertia(data, C)[0]

    def transform(self, X: Any, mask: Any = None) -> Any:
        """Euclidean distances (B, n, n_clusters) of each row to its problem's centres, in
        the centres' namespace, device and dtype (float32 for half-precision storage); NaN
        on masked rows."""
        data, C = self._batch_data_for(X, mask)
        xp = data.xp
        D = batched_sq_distances(data, C)
        D = xp.sqrt(D)
        if data.frame.scaled:
            D = D * xp.asarray(data.scale, dtype=D.dtype, device=data.device)[:, None, None]
        if data.mask is not None:
            D = xp.where(data.mask[:, :, None], D, xp.full_like(D, float("nan")))
        out = self.cluster_centers_.dtype
        return D if out not in (xp.float32, xp.float64) or D.dtype == out \
            else xp.astype(D, out)

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None,
                      mask: Any = None, **fit_params: Any) -> Any:
        return self.fit(X, sample_weight=sample_weight, mask=mask,
                        **fit_params).transform(X, mask=mask)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None,
              mask: Any = None) -> Any:
        """Opposite of each problem's (weighted) inertia for the fitted centres: an array
        (B,) in the centres' namespace (float64 where the device has it)."""
        data, C = self._batch_data_for(X, mask, sample_weight)
        xp = data.xp
        inertia = batched_labels_inertia(data, C)[1]
        if data.frame.scaled:
            inertia = inertia * xp.asarray(data.frame.distance_factor()[0],
                                           dtype=inertia.dtype, device=data.device)
        return -inertia
