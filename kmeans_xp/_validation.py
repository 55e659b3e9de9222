"""Input and parameter checks shared by the estimator, the functions and the metrics.

Every check here is cheap (shapes, dtypes, Python scalars): they all run before any pass
over the data.  The one check that has to read every element (NaN / inf) is done chunk
by chunk in :mod:`kmeans_xp._data`, still before any clustering work.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ._compat import (
    array_namespace,
    backend_name,
    compute_dtype,
    device_of,
    is_array,
    plain_array,
    to_device,
    to_numpy,
)
from ._sparse import is_sparse, sparse_dense_message, sparse_to_dense


class InvalidParameterError(ValueError, TypeError):
    """A constructor parameter or argument has a wrong type or value.

    It derives from both ``ValueError`` and ``TypeError`` (as scikit-learn's class of the
    same name does), so code written against either keeps working.
    """


class DataTypeError(TypeError, ValueError):
    """The data has a dtype that cannot be clustered (complex, strings, objects)."""


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``."""


class ConvergenceWarning(UserWarning):
    """The clustering is degenerate (fewer distinct clusters than asked for)."""


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_int(value: Any, name: str, owner: str, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum``, or an :class:`InvalidParameterError`."""
    if not _is_int(value) or value < minimum:
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be an int in the range "
            f"[{minimum}, inf). Got {value!r} instead."
        )
    return int(value)


def check_real(value: Any, name: str, owner: str, *, low: float = 0.0,
               low_open: bool = False) -> float:
    """``value`` as a finite Python float >= ``low`` (> ``low`` when ``low_open``)."""
    if (not _is_real(value) or not np.isfinite(value) or value < low
            or (low_open and value == low)):
        bracket = "(" if low_open else "["
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be a float in the range "
            f"{bracket}{low}, inf). Got {value!r} instead.")
    return float(value)


def check_choice(value: Any, name: str, choices: tuple, owner: str) -> str:
    """``value``, one of the strings ``choices``, or an :class:`InvalidParameterError`."""
    if not isinstance(value, str) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise InvalidParameterError(
            f"The '{name}' parameter of {owner} must be a str among {{{listed}}}. "
            f"Got {value!r} instead.")
    return value


def check_tol(value: Any, owner: str) -> float:
    if not _is_real(value) or not np.isfinite(value) or value < 0:
        raise InvalidParameterError(
            f"The 'tol' parameter of {owner} must be a float in the range [0.0, inf). "
            f"Got {value!r} instead."
        )
    return float(value)


INIT_STRINGS = ("k-means++", "k-means||", "random")


def check_init_kind(init: Any, owner: str) -> str:
    """'k-means++', 'random', 'array' or 'callable'."""
    if isinstance(init, str):
        if init not in INIT_STRINGS:
            raise InvalidParameterError(
                f"The 'init' parameter of {owner} must be a str among "
                f"{{'k-means++', 'k-means||', 'random'}}, a callable or an array of shape "
                f"(n_clusters, n_features). Got {init!r} instead."
            )
        return init
    if callable(init) and not is_array(init):
        return "callable"
    if is_array(init) or hasattr(init, "__array__") or isinstance(init, (list, tuple)):
        return "array"
    raise InvalidParameterError(
        f"The 'init' parameter of {owner} must be 'k-means++', 'k-means||', 'random', a "
        "callable or an "
        f"array of shape (n_clusters, n_features). Got {type(init).__name__} instead."
    )


def check_n_init(n_init: Any, init_kind: str, owner: str, default_n_init: int = 10) -> int:
    """The number of runs, with ``'auto'`` resolved as scikit-learn does."""
    if isinstance(n_init, str):
        if n_init != "auto":
            raise InvalidParameterError(
                f"The 'n_init' parameter of {owner} must be 'auto' or an int in the range "
                f"[1, inf). Got {n_init!r} instead."
            )
        return 1 if init_kind in ("k-means++", "k-means||", "array") else default_n_init
    return check_int(n_init, "n_init", owner)


ALGORITHMS = ("lloyd", "elkan")


def check_algorithm(algorithm: Any, owner: str) -> str:
    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise InvalidParameterError(
            f"The 'algorithm' parameter of {owner} must be a str among {{'lloyd', 'elkan'}}. "
            f"Got {algorithm!r} instead."
        )
    return algorithm


def check_chunk_size(chunk_size: Any, owner: str) -> int | None:
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size", owner)


def check_random_state(seed: Any) -> np.random.RandomState | np.random.Generator:
    """A host NumPy generator from ``random_state`` (scikit-learn's rules, Generators too).

    ``None`` is NumPy's global RandomState, an int seeds a new ``RandomState`` (so the same
    seed draws the same initial centres as scikit-learn), and ``RandomState`` or
    ``Generator`` instances are used as they are.
    """
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if _is_int(seed):
        if not 0 <= seed < 2**32:
            raise InvalidParameterError(
                f"The 'random_state' parameter must be an int in [0, 2**32 - 1], a "
                f"numpy RandomState or Generator, or None. Got {seed!r} instead."
            )
        return np.random.RandomState(int(seed))
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    raise InvalidParameterError(
        "The 'random_state' parameter must be an int, a numpy RandomState or Generator, "
        f"or None. Got {type(seed).__name__} instead."
    )


def _host_array(a: Any, name: str) -> np.ndarray:
    """Lists, tuples, pandas objects and other array-likes as a NumPy array."""
    if is_sparse(a):  # where dense data is required (sparse X goes through _sparse)
        raise TypeError(sparse_dense_message(name))
    try:
        out = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise DataTypeError(f"{name} could not be converted to an array: {exc}") from None
    if out.dtype == object:
        try:
            out = out.astype(np.float64)
        except (ValueError, TypeError):
            raise DataTypeError(
                f"{name} has dtype object with values that are not numbers; "
                "k-means needs numeric data."
            ) from None
    return out


def feature_names_of(X: Any) -> np.ndarray | None:
    """Column names of a DataFrame when they are all strings (scikit-learn's rule)."""
    cols = getattr(X, "columns", None)
    if cols is None or not hasattr(X, "iloc"):
        return None
    names = list(cols)
    if names and all(isinstance(c, str) for c in names):
        return np.asarray(names, dtype=object)
    return None


def as_array(
    X: Any,
    name: str,
    *,
    xp: Any = None,
    device: Any = None,
) -> tuple[Any, Any, Any]:
    """``X`` as an array of a known namespace, with that namespace and device.

    Arrays of a namespace stay in it (no copy).  Anything else (lists, pandas, objects
    with ``__array__``) goes through NumPy and then, when ``xp``/``device`` are given,
    into that namespace on that device.
    """
    if is_array(X) and not (isinstance(X, np.ndarray) and X.dtype == object):
        X = plain_array(X)
        return X, array_namespace(X), device_of(X)
    host = _host_array(X, name)
    if xp is None:
        xp = array_namespace(host)
        return host, xp, device_of(host)
    return xp.asarray(host, device=device), xp, device


def check_dtype(X: Any, xp: Any, device: Any, name: str) -> tuple[Any, Any]:
    """Storage and compute dtypes of ``X``, or a :class:`DataTypeError`."""
    dtypes = compute_dtype(xp, X.dtype, device)
    if dtypes is None:
        kind = "complex" if "complex" in str(X.dtype) else f"dtype {X.dtype}"
        raise DataTypeError(
            f"{name} has {kind} data, which k-means cannot cluster: pass real numbers "
            "(float, integer or bool)."
        )
    return dtypes


def check_2d(X: Any, name: str, owner: str, min_samples: int = 1) -> tuple[int, int]:
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: {name} must have shape "
            f"(n_samples, n_features), got {tuple(X.shape)}. Reshape your data with "
            f"{name}.reshape(-1, 1) for a single feature or {name}.reshape(1, -1) for a "
            "single sample."
        )
    n, d = int(X.shape[0]), int(X.shape[1])
    if n < min_samples:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={tuple(X.shape)}) while a minimum of "
            f"{min_samples} is required by {owner} ({name} has no samples)."
        )
    if d < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of "
            f"1 is required by {owner} ({name} has no features)."
        )
    return n, d


def check_same_namespace(X: Any, xp: Any, device: Any, xp_fit: Any, device_fit: Any,
                         name: str) -> None:
    """Data given to a fitted model must live where the model lives (no silent transfer)."""
    if backend_name(xp) != backend_name(xp_fit) or device != device_fit:
        raise InvalidParameterError(
            f"{name} is a {backend_name(xp)} array on device {device!r}, but the model was "
            f"fitted on {backend_name(xp_fit)} arrays on device {device_fit!r}. Move {name} "
            "there first (no implicit transfer is made)."
        )


def as_namespace(a: Any, name: str, xp: Any, device: Any, dtype: Any) -> Any:
    """``a`` (any namespace, list, scalar) in ``xp`` on ``device`` with ``dtype``.

    Used for small user-given arrays (initial centres, sample weights): an array of
    another namespace or device is copied across, explicitly, once.  Sparse initial
    centres (``init``, e.g. from a callable) are made dense, as scikit-learn does.
    """
    if is_sparse(a) and name == "init":
        a = sparse_to_dense(a)
    elif is_sparse(a):
        raise TypeError(sparse_dense_message(name))
    if is_array(a):
        a = plain_array(a)
        if backend_name(array_namespace(a)) == backend_name(xp):
            a = to_device(a, device)
        else:
            a = xp.asarray(to_numpy(a), device=device)
    else:
        a = xp.asarray(_host_array(a, name), device=device)
    if compute_dtype(xp, a.dtype, device) is None:
        raise DataTypeError(f"{name} must hold real numbers; got dtype {a.dtype}.")
    return xp.astype(a, dtype) if a.dtype != dtype else a


def check_sample_weight(sample_weight: Any, n_samples: int, xp: Any, device: Any,
                        dtype: Any) -> Any:
    """Weights as a 1-D array of length ``n_samples``, or ``None`` for unit weights.

    Returning ``None`` for unit weights lets the kernels skip the multiplication.
    The NaN / negative / zero-sum checks are reductions over n values (one host sync).
    """
    if sample_weight is None:
        return None
    if _is_real(sample_weight):
        if not np.isfinite(sample_weight) or sample_weight <= 0:
            raise ValueError(
                f"sample_weight must be positive and finite; got {sample_weight!r}."
            )
        return None  # a constant weight does not change the clustering
    w = as_namespace(sample_weight, "sample_weight", xp, device, dtype)
    if w.ndim != 1 or int(w.shape[0]) != n_samples:
        raise ValueError(
            f"sample_weight.shape == {tuple(w.shape)}, expected ({n_samples},): "
            "sample_weight needs one weight per sample."
        )
    bad = xp.stack([
        xp.any(xp.isnan(w)), xp.any(xp.isinf(w)), xp.any(w < 0), xp.sum(w) <= 0,
    ])
    has_nan, has_inf, has_neg, zero_sum = (bool(v) for v in to_numpy(bad))  # one host sync
    if has_nan:
        raise ValueError("Input sample_weight contains NaN.")
    if has_inf:
        raise ValueError("Input sample_weight contains infinity.")
    if has_neg:
        raise ValueError("Negative values in data passed to sample_weight: weights must be >= 0.")
    if zero_sum:
        raise ValueError("sample_weight sums to zero: at least one weight must be positive.")
    return w


def check_centers_shape(centers: Any, n_clusters: int, n_features: int) -> None:
    shape = tuple(int(s) for s in centers.shape)
    if centers.ndim != 2 or shape[0] != n_clusters:
        raise ValueError(
            f"The shape of the initial centers {shape} does not match the number of "
            f"clusters {n_clusters} (parameter 'init')."
        )
    if shape[1] != n_features:
        raise ValueError(
            f"The shape of the initial centers {shape} does not match the number of "
            f"features of the data {n_features} (parameter 'init')."
        )
