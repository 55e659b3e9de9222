"""Input and parameter checks shared by the estimators, the functions, the CLI and the metrics.

Parameters are checked by one table, :data:`PARAMETERS` (a :class:`Rule` per parameter name),
through :func:`validate_params`.  Every check here is cheap (shapes, dtypes, Python scalars):
they all run before any pass over the data.  The one check that has to read every element
(NaN / inf) is done chunk by chunk in :mod:`kmeans_xp._data`, still before any clustering
work.
"""

from __future__ import annotations

import numbers
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
    is_sparse,
    plain_array,
    sparse_dense_message,
    sparse_to_dense,
    to_device,
    to_numpy,
)
from ._exceptions import (  # re-exported: the modules that import them from here keep working
    DataNamespaceError,
    DataTypeError,
    InvalidParameterError,
)
from ._metric import METRICS as _METRIC_OBJECTS  # a leaf: the registered metric objects


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _is_bool(v: Any) -> bool:
    return isinstance(v, (bool, np.bool_))


# -- the parameter table ----------------------------------------------------------------------
# Every parameter of KMeans, MiniBatchKMeans, BatchedKMeans, k_means, batched_k_means,
# kmeans_plusplus and the CLI is checked by the rule of its name in :data:`PARAMETERS` (one
# table, as scikit-learn's ``_parameter_constraints``), through :func:`validate_params`.  A
# rule says what it accepts (the phrase after "must be" in the message) and how a good value
# is normalised (a numpy integer becomes an int, ...).  An owner that accepts something else
# under a name passes its own table (``{**PARAMETERS, name: Rule(...)}``: see
# :data:`BATCHED_PARAMETERS`).

#: Initialisations by name (``init``).
INIT_STRINGS = ("k-means++", "k-means||", "random")
#: Distances a fit can use (``metric``): the names of the registered metric objects.
METRICS = tuple(_METRIC_OBJECTS)
#: Precision modes of the distance computation (``precision``; only tensor-core kernels
#: tell them apart).
PRECISIONS = ("exact", "tf32", "bf16")
#: ``algorithm`` (scikit-learn's names; 'elkan' runs the Lloyd kernels).
ALGORITHMS = ("lloyd", "elkan")


def _shown(value: Any) -> str:
    """``value`` as a message shows it: its repr if short, else its type's name."""
    if value is None or isinstance(value, (str, numbers.Number, np.bool_)):
        text = repr(value)
        return text if len(text) <= 80 else text[:77] + "..."
    kind = type(value)
    library = kind.__module__.split(".")[0]
    if library in ("builtins", "numpy"):
        return kind.__name__
    name = f"{library}.{kind.__qualname__}"
    if "Generator" in kind.__qualname__ or "RandomState" in kind.__qualname__:
        # torch.Generator, cupy's RandomState, ...: the draws are made on the host
        name += (f" (a {library} generator is not supported: k-means++ draws from a host "
                 "NumPy generator; pass an int seed)")
    return name


class Rule:
    """What one parameter accepts.

    Parameters
    ----------
    expected : str
        The phrase after "must be" in the error message ("an int in the range [1, inf)").
    accepts : callable
        ``accepts(value) -> bool``.
    normalise : callable, optional
        ``normalise(value)`` of an accepted value (default: the value itself).
    """

    __slots__ = ("expected", "accepts", "normalise")

    def __init__(self, expected: str, accepts: Any, normalise: Any = None) -> None:
        self.expected = expected
        self.accepts = accepts
        self.normalise = normalise

    def __repr__(self) -> str:
        return f"Rule({self.expected!r})"

    def __call__(self, value: Any, name: str, owner: str) -> Any:
        """The normalised ``value``, or an :class:`InvalidParameterError` that names the
        parameter, its owner, what it must be and what it got."""
        if not self.accepts(value):
            raise parameter_error(name, owner, self.expected, value)
        return value if self.normalise is None else self.normalise(value)

    def or_none(self) -> Rule:
        """This rule, and ``None`` too."""
        return Rule(f"{self.expected} or None", lambda v: v is None or self.accepts(v),
                    lambda v: v if v is None or self.normalise is None else self.normalise(v))


def parameter_error(name: str, owner: str, expected: str, value: Any) -> InvalidParameterError:
    """The :class:`InvalidParameterError` for parameter ``name`` of ``owner``.

    Its ``param``, ``owner`` and ``expected`` attributes say it again for callers that word
    it their own way (the CLI); the value itself is not kept (an exception travels back
    from joblib workers by pickle, and a callable or an array may not pickle).
    """
    owner_part = f" of {owner}" if owner else ""
    exc = InvalidParameterError(
        f"The '{name}' parameter{owner_part} must be {expected}. Got {_shown(value)} "
        "instead.")
    exc.param, exc.owner, exc.expected = name, owner, expected
    return exc


def integer(low: int, high: int | None = None) -> Rule:
    """An int (not a bool) in ``[low, high]`` (``[low, inf)`` without ``high``)."""
    top = "inf)" if high is None else f"{high}]"
    return Rule(f"an int in the range [{low}, {top}",
                lambda v: _is_int(v) and v >= low and (high is None or v <= high), int)


def real(low: float = 0.0, *, low_open: bool = False) -> Rule:
    """A finite real number > ``low`` (``low_open``) or >= ``low``, normalised to float."""
    return Rule(f"a float in the range {'(' if low_open else '['}{float(low)}, inf)",
                lambda v: (_is_real(v) and bool(np.isfinite(v)) and v >= low
                           and not (low_open and v == low)), float)


def options(*choices: str) -> Rule:
    """One of the strings ``choices``."""
    listed = ", ".join(repr(c) for c in choices)
    return Rule(f"a str among {{{listed}}}", lambda v: isinstance(v, str) and v in choices)


def boolean(expected: str = "a bool") -> Rule:
    """A Python or NumPy bool, normalised to bool."""
    return Rule(expected, _is_bool, bool)


def _is_init(v: Any) -> bool:
    if isinstance(v, str):
        return v in INIT_STRINGS
    return callable(v) or is_array(v) or hasattr(v, "__array__") or isinstance(v, (list, tuple))


def _is_random_state(v: Any) -> bool:
    if _is_int(v):
        return 0 <= v < 2**32
    return v is None or v is np.random or isinstance(v, (np.random.RandomState,
                                                           np.random.Generator))


#: The rule of every parameter, by name.
PARAMETERS: dict[str, Rule] = {
    "n_clusters": integer(1),
    "init": Rule("a str among {'k-means++', 'k-means||', 'random'}, a callable or an array "
                 "of shape (n_clusters, n_features)", _is_init),
    "n_init": Rule("'auto' or an int in the range [1, inf)",
                   lambda v: v == "auto" if isinstance(v, str) else _is_int(v) and v >= 1,
                   lambda v: v if isinstance(v, str) else int(v)),
    "max_iter": integer(1),
    "tol": real(0.0),
    "verbose": Rule("an int >= 0 or a bool",
                    lambda v: _is_bool(v) or (isinstance(v, numbers.Integral) and int(v) >= 0),
                    int),
    "random_state": Rule("an int in [0, 2**32 - 1], a numpy RandomState or Generator, or None",
                         _is_random_state),
    "copy_x": boolean(),
    "algorithm": options(*ALGORITHMS),
    "chunk_size": integer(1).or_none(),
    "precision": options(*PRECISIONS),
    "deterministic": boolean(),
    "metric": options(*METRICS),
    "oversampling_factor": real(0.0, low_open=True),
    "init_rounds": integer(1),
    # MiniBatchKMeans
    "batch_size": integer(1),
    "compute_labels": boolean("an instance of 'bool' or an instance of 'numpy.bool'"),
    "max_no_improvement": integer(0).or_none(),
    "init_size": integer(1).or_none(),
    "reassignment_ratio": real(0.0),
    # functions
    "return_n_iter": boolean(),
    "n_local_trials": integer(1).or_none(),
}

#: :func:`kmeans_xp.batched_k_means` and :class:`kmeans_xp.BatchedKMeans`: no callable init,
#: no k-means||; ``random_state`` may also be one seed per problem (checked with the data).
BATCHED_PARAMETERS: dict[str, Rule] = {
    **PARAMETERS,
    "init": Rule("a str among {'k-means++', 'random'} or an array of shape (n_problems, "
                 "n_clusters, n_features)",
                 lambda v: v in ("k-means++", "random") if isinstance(v, str)
                 else not callable(v) and (is_array(v) or hasattr(v, "__array__")
                                           or isinstance(v, (list, tuple)))),
    "random_state": Rule("an int in [0, 2**32 - 1], a numpy RandomState or Generator, None, "
                         "or a sequence of one such int per problem",
                         lambda v: isinstance(v, (list, tuple, np.ndarray))
                         or _is_random_state(v)),
}


def validate_params(params: dict, owner: str, table: dict | None = None) -> dict:
    """``params`` checked by the rules of ``table`` (:data:`PARAMETERS`), normalised.

    Parameters
    ----------
    params : dict
        Parameter name -> value, in the order to check them (the first bad one is reported).
    owner : str
        Who takes the parameters ("KMeans", "k_means", ...): named in the messages.
    table : dict, optional
        Parameter name -> :class:`Rule`; default :data:`PARAMETERS`.  A name without a rule
        passes unchecked (a subclass may add parameters), as in scikit-learn.

    Returns
    -------
    dict
        The same names, with normalised values (Python ints, floats and bools).

    Raises
    ------
    InvalidParameterError
        For the first value its rule refuses: "The 'tol' parameter of KMeans must be a float
        in the range [0.0, inf). Got -1 instead."
    """
    rules = PARAMETERS if table is None else table
    out = {}
    for name, value in params.items():
        rule = rules.get(name)
        out[name] = value if rule is None else rule(value, name, owner)
    return out


def init_kind(init: Any) -> str:
    """'k-means++', 'k-means||', 'random' (the strings), 'callable' or 'array', for an
    ``init`` its rule accepted."""
    if isinstance(init, str):
        return init
    return "callable" if callable(init) and not is_array(init) else "array"


def resolve_n_init(n_init: Any, kind: str, default_n_init: int = 10) -> int:
    """The number of runs of a validated ``n_init``: ``'auto'`` resolved as scikit-learn
    does (1 for k-means++, k-means|| and arrays, ``default_n_init`` otherwise)."""
    if n_init == "auto":
        return 1 if kind in ("k-means++", "k-means||", "array") else default_n_init
    return int(n_init)


def check_random_state(seed: Any, owner: str = "") -> np.random.RandomState | np.random.Generator:
    """A host NumPy generator from ``random_state`` (scikit-learn's rules, Generators too).

    ``None`` is NumPy's global RandomState, an int seeds a new ``RandomState`` (so the same
    seed draws the same initial centres as scikit-learn), and ``RandomState`` or
    ``Generator`` instances are used as they are.  Refused values: the message of the
    ``random_state`` rule of :data:`PARAMETERS`.
    """
    PARAMETERS["random_state"](seed, "random_state", owner)
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if _is_int(seed):
        return np.random.RandomState(int(seed))
    return seed


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
                at = ", ".join(map(str, np.unravel_index(bad[0], out.shape)))
                where = f" First at {name}[{at}]: {_describe(bad[1])}."
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
