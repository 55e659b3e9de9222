"""Input and parameter checks shared by the estimator, the functions and the metrics.

Every check here is cheap (shapes, dtypes, Python scalars): they all run before any pass
over the data.  The one check that has to read every element (NaN / inf) is done chunk
by chunk in :mod:`kmeans_xp._data`, still before any clustering work.
"""

from __future__ import annotations

import numbers
import sys
import warnings
from typing import Any

import numpy as np

from ._compat import (
    array_namespace,
    backend_name,
    compute_dtype,
    device_of,
    is_array,
    is_jax_tracer,
    plain_array,
    to_device,
    to_numpy,
)
from ._sparse import is_sparse, sparse_dense_message, sparse_to_dense


# -- exceptions and warnings, joined to scikit-learn's without importing it ------------------
# kmeans_xp never imports scikit-learn (importing ``sklearn.exceptions`` runs sklearn/__init__,
# which imports scikit-learn's base, utils and SciPy: 1.0-2.4 s on the 2-core dev machine,
# 20-45x ``import kmeans_xp`` measured in the same processes).
# Instead:
# - when scikit-learn is already imported as kmeans_xp is, the classes below derive from its
#   classes of the same role directly;
# - otherwise they stand alone, and whatever kmeans_xp raises once scikit-learn has been
#   imported (by anyone) is an instance of a "twin" class deriving from both ours and
#   scikit-learn's (``_PeerMeta.__call__``), so ``except`` clauses of either library catch it.
#   Warnings pass the class itself to the filters, so warning sites pass
#   ``sklearn_compatible(ConvergenceWarning)`` to ``warnings.warn``.
_SKLEARN_PEERS = {
    "NotFittedError": ("sklearn.exceptions", "NotFittedError"),
    "ConvergenceWarning": ("sklearn.exceptions", "ConvergenceWarning"),
    "InvalidParameterError": ("sklearn.utils._param_validation", "InvalidParameterError"),
}
_TWINS: dict = {}


def _sklearn_peer(name: str) -> type | None:
    """scikit-learn's class for the role ``name`` if scikit-learn is imported (never imports)."""
    where = _SKLEARN_PEERS.get(name)
    module = sys.modules.get(where[0]) if where else None
    peer = getattr(module, where[1], None) if module is not None else None
    return peer if isinstance(peer, type) else None


def _bases(name: str, *default: type) -> tuple:
    peer = _sklearn_peer(name)
    return (peer,) if peer is not None else default


def sklearn_compatible(cls: type) -> type:
    """``cls``, or a subclass of ``cls`` and of scikit-learn's class of the same role.

    The subclass exists only once scikit-learn has been imported (by the user, a pipeline,
    ``check_estimator``); it is made once and reused, and keeps ``cls``'s name and module.
    """
    peer = _sklearn_peer(cls.__name__) if cls.__module__ == __name__ else None
    if peer is None or issubclass(cls, peer):
        return cls
    twin = _TWINS.get(cls)
    if twin is None:
        twin = _TWINS[cls] = type(cls)(cls.__name__, (cls, peer), {
            "__module__": cls.__module__, "__qualname__": cls.__qualname__,
            "__doc__": cls.__doc__,
            # pickled as ``cls`` (the twin is not a module attribute): joblib workers
            # send exceptions back to the parent by pickle
            "__reduce__": lambda self: (_remake, (cls, self.args), self.__dict__ or None)})
    return twin


def _remake(cls: type, args: tuple) -> BaseException:
    return cls(*args)  # the twin again where scikit-learn is imported


class _PeerMeta(type):
    """Instantiating one of our exceptions makes the scikit-learn-compatible twin."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return type.__call__(sklearn_compatible(cls), *args, **kwargs)


class InvalidParameterError(*_bases("InvalidParameterError", ValueError, TypeError),
                            metaclass=_PeerMeta):
    """A constructor parameter or argument has a wrong type or value.

    It derives from both ``ValueError`` and ``TypeError`` (as scikit-learn's class of the
    same name does), so code written against either keeps working; where scikit-learn is
    imported, what kmeans_xp raises is also an instance of scikit-learn's class.
    """


class DataTypeError(TypeError, ValueError):
    """The data has a dtype that cannot be clustered (complex, strings, objects)."""


class DataNamespaceError(ValueError, TypeError):
    """The data lives in another namespace or on another device than the fitted model."""


class NotFittedError(*_bases("NotFittedError", ValueError, AttributeError),
                     metaclass=_PeerMeta):
    """The estimator is used before ``fit``.

    A ``ValueError`` and an ``AttributeError``; where scikit-learn is imported, what
    kmeans_xp raises is also a ``sklearn.exceptions.NotFittedError``.
    """


class ConvergenceWarning(*_bases("ConvergenceWarning", UserWarning), metaclass=_PeerMeta):
    """The clustering is degenerate (fewer distinct clusters than asked for).

    Where scikit-learn is imported, the warnings kmeans_xp emits are also scikit-learn's
    ``ConvergenceWarning`` (its filters and ``pytest.warns`` see them).
    """


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


def _first_non_number(values: np.ndarray) -> tuple[int, Any, str] | None:
    """(position, value, why) of the first value that is not a number, or None."""
    for i, v in enumerate(values.ravel()):
        try:
            float(v)
        except (TypeError, ValueError) as exc:
            return i, v, str(exc)
    return None


def _describe(v: Any) -> str:
    if type(v).__name__ == "NAType":
        return "a missing value (pd.NA)"
    if v is None:
        return "a missing value (None)"
    return f"{v!r} ({type(v).__name__})"


def _frame_column(col: Any, label: Any, name: str) -> np.ndarray:
    """One DataFrame column as a NumPy vector, or an error naming the column and the cause."""
    import pandas as pd  # the column is a pandas object, so pandas is imported already

    dt = col.dtype
    if isinstance(dt, np.dtype) and dt.kind in "biuf":
        return col.to_numpy()
    if pd.api.types.is_bool_dtype(dt) or pd.api.types.is_numeric_dtype(dt):
        missing = col.isna()
        if bool(missing.any()):  # nullable / pyarrow dtypes: pd.NA has no float value
            rows = list(col.index[missing.to_numpy()][:3])
            raise ValueError(
                f"{name} column {label!r} (dtype {dt}) holds missing values (pd.NA) in "
                f"{int(missing.sum())} row(s), first at index {rows}: k-means needs a number "
                "in every cell. Drop those rows or impute the values first.")
        target = getattr(dt, "numpy_dtype", np.dtype(np.float64))
        return col.to_numpy(dtype=target)
    values = col.to_numpy(dtype=object)
    bad = _first_non_number(values)
    if bad is not None:
        i, v, why = bad
        raise DataTypeError(
            f"{name} column {label!r} has dtype {dt} and holds values that are not numbers: "
            f"{_describe(v)} at index {col.index[i]!r} ({why}). k-means needs numeric "
            "columns: encode, convert or drop this column first.")
    return values.astype(np.float64)


def _frame_to_numpy(df: Any, name: str) -> np.ndarray:
    """A pandas DataFrame as one NumPy array; errors name the column at fault."""
    dtypes = list(df.dtypes)
    if all(isinstance(dt, np.dtype) and dt.kind in "biuf" for dt in dtypes):
        # the common case, one copy; NumPy's common dtype given explicitly, since pandas
        # makes bool columns beside numbers (pd.get_dummies) an object array
        return df.to_numpy(dtype=np.result_type(*dtypes) if dtypes else None)
    cols = [_frame_column(df.iloc[:, j], label, name) for j, label in enumerate(df.columns)]
    if not cols:
        return np.empty((len(df), 0))
    dtype = np.result_type(*cols)
    return np.stack([c.astype(dtype, copy=False) for c in cols], axis=1)


def _host_array(a: Any, name: str) -> np.ndarray:
    """Lists, tuples, pandas objects and other array-likes as a NumPy array."""
    if is_sparse(a):  # where dense data is required (sparse X goes through _sparse)
        raise TypeError(sparse_dense_message(name))
    if hasattr(a, "iloc") and hasattr(a, "columns") and hasattr(a, "dtypes"):
        return _frame_to_numpy(a, name)
    if type(a).__module__.startswith("polars") and hasattr(a, "to_numpy"):
        a = a.to_numpy()  # polars DataFrame / Series: NumPy of the common dtype
    try:
        out = np.asarray(a)
    except (ValueError, TypeError) as exc:
        raise DataTypeError(f"{name} could not be converted to an array: {exc}") from None
    if out.dtype == object:
        try:
            out = out.astype(np.float64)
        except (ValueError, TypeError) as exc:
            bad = _first_non_number(out)
            where = ""
            if bad is not None and out.ndim >= 1:
                where = (f" First at {name}[{', '.join(map(str, np.unravel_index(bad[0], out.shape)))}]"
                         f": {_describe(bad[1])}.")
            raise DataTypeError(
                f"{name} has dtype object with values that are not numbers ({exc}).{where} "
                "k-means needs numeric data."
            ) from None
    return out


def feature_names_of(X: Any) -> np.ndarray | None:
    """Column names of a DataFrame when they are all strings (scikit-learn's rule).

    Non-string names (pandas' default integer columns) mean "no feature names"; a mix of
    string and non-string names is a ``TypeError``, as in scikit-learn.
    """
    cols = getattr(X, "columns", None)
    if cols is None or not (hasattr(X, "iloc") or type(X).__module__.startswith("polars")):
        return None
    names = list(cols)
    if not names:
        return None
    kinds = sorted({type(c).__name__ for c in names})
    is_str = [isinstance(c, str) for c in names]
    if all(is_str):
        return np.asarray(names, dtype=object)
    if any(is_str):
        raise TypeError(
            "Feature names are only supported if all input features have string names, "
            f"but your input has {kinds} as feature name / column name types. If you want "
            "feature names to be stored and validated, you must convert them all to "
            "strings, by using X.columns = X.columns.astype(str) for example. Otherwise "
            "you can remove feature / column names from your input data, or convert them "
            "all to a non-string data type.")
    return None


def check_feature_names(X_names: Any, fitted_names: Any, owner: str) -> None:
    """scikit-learn's feature-name rules between ``fit`` and a later call, its messages too.

    Warns (``UserWarning``) when only one side has names; raises ``ValueError`` naming the
    unseen and missing columns, or the order problem, when both have names that differ.
    """
    if X_names is None and fitted_names is None:
        return
    if X_names is not None and fitted_names is None:
        warnings.warn(f"X has feature names, but {owner} was fitted without feature names",
                      UserWarning, stacklevel=4)
        return
    if X_names is None:
        warnings.warn(f"X does not have valid feature names, but {owner} was fitted with "
                      "feature names", UserWarning, stacklevel=4)
        return
    if len(X_names) == len(fitted_names) and all(
            a == b for a, b in zip(X_names, fitted_names)):
        return
    seen, now = set(fitted_names), set(X_names)
    unseen, missing = sorted(now - seen), sorted(seen - now)
    message = "The feature names should match those that were passed during fit.\n"

    def listed(title: str, names: list) -> str:
        shown = "".join(f"- {c}\n" for c in names[:5])
        more = "- ...\n" if len(names) > 5 else ""
        return f"{title}\n{shown}{more}"

    if unseen:
        message += listed("Feature names unseen at fit time:", unseen)
    if missing:
        message += listed("Feature names seen at fit time, yet now missing:", missing)
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)


def check_not_traced(a: Any, name: str) -> None:
    """A clear TypeError for a JAX tracer: kmeans_xp's estimators cannot run inside
    ``jax.jit``/``jax.vmap`` (their host syncs and data-dependent shapes need values)."""
    if is_jax_tracer(a):
        raise TypeError(
            f"{name} is a JAX tracer ({type(a).__name__}): kmeans_xp was called inside "
            "jax.jit, jax.vmap or another JAX transformation, where its fits cannot run (each "
            "iteration reads a convergence test back to the host, and shapes depend on the "
            "data). Call it outside the transformation on a concrete jax.Array (its passes "
            "are compiled with jax.jit already), or, inside jit/vmap, use "
            "kmeans_xp.jax.lloyd(X, centers, max_iter, tol), a functional Lloyd iteration.")


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
    into that namespace on that device.  A JAX tracer raises :func:`check_not_traced`'s
    TypeError.
    """
    check_not_traced(X, name)
    if getattr(X, "is_meta", False) is True:  # a torch 'meta' tensor: shape, no data
        raise ValueError(
            f"{name} is a tensor on torch's 'meta' device, which has a shape but no data to "
            f"cluster; pass {name} on a real device (e.g. 'cpu' or 'cuda')."
        )
    if is_sparse(X):
        # sparse X of the estimators goes through kmeans_xp._sparse before this; here a
        # dense array is required (metrics, sample weights, centres)
        raise DataTypeError(sparse_dense_message(name))
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
        if "complex" in str(X.dtype):
            raise DataTypeError(
                f"{name} has complex data, which k-means cannot cluster: Complex data not "
                "supported. Pass real numbers (float, integer or bool), e.g. the real and "
                "imaginary parts as separate features.")
        raise DataTypeError(
            f"{name} has dtype {X.dtype} data, which k-means cannot cluster: pass real "
            "numbers (float, integer or bool)."
        )
    return dtypes


def check_2d(X: Any, name: str, owner: str, min_samples: int = 1) -> tuple[int, int]:
    """``(n_samples, n_features)`` of a 2-D ``X``, or a ``ValueError`` that says what to do."""
    shape = tuple(int(s) for s in X.shape)
    if X.ndim == 0:
        raise ValueError(
            f"Expected 2D array, got scalar array instead: {name} must have shape "
            f"(n_samples, n_features), got a single value {name}={X!r}.")
    if X.ndim == 1:
        raise ValueError(
            f"Expected 2D array, got 1D array instead: {name} must have shape "
            f"(n_samples, n_features), got {shape}. Reshape your data with "
            f"{name}.reshape(-1, 1) if it has a single feature or {name}.reshape(1, -1) if "
            "it contains a single sample."
        )
    if X.ndim > 2:
        raise ValueError(
            f"Expected 2D array, got {X.ndim}D array instead: found array with dim "
            f"{X.ndim}, {owner} expected <= 2. {name} must have shape (n_samples, "
            f"n_features), got {shape}. If each sample is the {shape[1:]} block, flatten it "
            f"with {name}.reshape({name}.shape[0], -1)."
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
                         name: str, owner: str = "KMeans", method: str = "predict") -> None:
    """Data given to a fitted model must live where the model lives (no silent transfer).

    A ``ValueError`` about the data (scikit-learn's ``check_same_namespace`` wording), not a
    parameter error: the model's arrays are not moved behind the user's back.
    """
    if backend_name(xp) == backend_name(xp_fit) and device == device_fit:
        return
    if backend_name(xp) != backend_name(xp_fit):
        what = (f"Array namespaces used during fit ({backend_name(xp_fit)}) and {method} "
                f"({backend_name(xp)}) differ.")
    else:
        what = f"Devices used during fit ({device_fit}) and {method} ({device}) differ."
    raise DataNamespaceError(
        f"Inputs passed to {owner}.{method}() must use the same namespace and the same "
        f"device as those passed to fit(). {what} {name} is a {backend_name(xp)} array on "
        f"device {device!r}, but the model was fitted on {backend_name(xp_fit)} arrays on "
        f"device {device_fit!r}. Move {name} there first (no implicit transfer is made)."
    )


def as_namespace(a: Any, name: str, xp: Any, device: Any, dtype: Any) -> Any:
    """``a`` (any namespace, list, scalar) in ``xp`` on ``device`` with ``dtype``.

    Used for small user-given arrays (initial centres, sample weights): an array of
    another namespace or device is copied across, explicitly, once.  Sparse initial
    centres (``init``, e.g. from a callable) are made dense, as scikit-learn does.
    """
    check_not_traced(a, name)
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
        if float(sample_weight) == 1.0:
            return None
        # scikit-learn's rule: the weight of every sample (the clustering is that of unit
        # weights, inertia_ and score are scaled)
        return xp.full((n_samples,), float(sample_weight), dtype=dtype, device=device)
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
