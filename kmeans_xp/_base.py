"""What every k-means estimator shares: the scikit-learn estimator protocol, input checks,
and the use of a fitted model (``predict``, ``transform``, ``score``, feature names).

Estimators subclass :class:`BaseKMeans` and set ``cluster_centers_``, ``n_features_in_``
(and ``feature_names_in_``) in ``fit``; the kernel set for a fitted model's passes is chosen
here, once per call, from the centres' namespace, device and dtype.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compat import (
    array_namespace,
    backend_name,
    compute_dtype,
    device_of,
    is_dask_array,
)
from ._data import ChunkedData
from ._exceptions import NotFittedError
from ._kernels import select
from ._metric import get_metric
from ._sparse import is_sparse
from ._validation import (
    as_array,
    check_2d,
    check_dtype,
    check_feature_names,
    check_same_namespace,
    check_sample_weight,
    feature_names_of,
)


@dataclass
class Input:
    X: Any
    xp: Any
    device: Any
    storage: Any  # dtype results are returned in
    compute: Any  # dtype the arithmetic runs in
    n: int
    d: int
    feature_names: Any
    streamed: bool = False  # X stays on the host; chunks move to ``device`` (StreamedData)
    sparse: bool = False  # X is a kmeans_xp._sparse.CSR (scipy, torch or cupyx sparse)


def check_input(X: Any, name: str, owner: str, *, xp: Any = None,
                device: Any = None) -> Input:
    """Cheap checks of X (kind, shape, dtype), before any pass over its values."""
    if is_sparse(X):
        from ._sparse import sparse_input

        csr, storage, compute = sparse_input(X, name, owner)
        return Input(csr, csr.xp, csr.device, storage, compute, csr.shape[0], csr.shape[1],
                     None, sparse=True)
    names = feature_names_of(X)
    X, xp_x, dev_x = as_array(X, name, xp=xp, device=device)
    n, d = check_2d(X, name, owner)
    storage, compute = check_dtype(X, xp_x, dev_x, name)
    return Input(X, xp_x, dev_x, storage, compute, n, d, names)


def check_host_input(X: Any, name: str, owner: str, device: Any) -> Input:
    """Checks of a host X (NumPy array, memmap, array-like) to be streamed to ``device``.

    X is not copied: its rows move to the device chunk by chunk at every pass.  An array
    that already lives in a namespace other than NumPy is checked as usual (no streaming).
    """
    from ._compat import is_numpy_namespace, namespace_for_device

    xp_t, dev_t = namespace_for_device(device)
    names = feature_names_of(X)
    if not isinstance(X, np.ndarray):
        X, xp_x, _ = as_array(X, name)
        if not is_numpy_namespace(xp_x):
            inp = check_input(X, name, owner)
            if inp.device != dev_t:
                raise ValueError(f"{name} lives on {inp.device}, not on device={device!r}: "
                                 "pass a host (NumPy) array to stream it.")
            return inp
    n, d = check_2d(X, name, owner)
    check_dtype(X, np, "cpu", name)  # raises for complex / object data
    target = getattr(xp_t, X.dtype.name, None)
    dtypes = compute_dtype(xp_t, target, dev_t) if target is not None else None
    if dtypes is None:
        raise ValueError(f"{name} has dtype {X.dtype}, which {device!r} cannot hold.")
    return Input(X, xp_t, dev_t, dtypes[0], dtypes[1], n, d, names, streamed=True)


def make_data(inp: Input, *, weights: Any, n_clusters: int, chunk_size: int | None,
              precision: str = "exact", deterministic: bool = True,
              metric: str = "euclidean") -> ChunkedData:
    """The chunked view of ``inp.X`` with the kernel set of this fit (chosen once, here)."""
    kernels = select(inp.xp, inp.device, inp.compute, precision=precision,
                     deterministic=deterministic, metric=get_metric(metric).kernel,
                     sparse=inp.sparse, n_elements=inp.n * inp.d)
    if inp.sparse:
        from ._sparse import SparseData

        return SparseData(inp.X, xp=inp.xp, dtype=inp.compute, weights=weights,
                          n_clusters=n_clusters, chunk_size=chunk_size, kernels=kernels,
                          deterministic=deterministic)
    if inp.streamed:
        from ._data import StreamedData

        return StreamedData(inp.X, xp=inp.xp, device=inp.device, dtype=inp.compute,
                            weights=weights, n_clusters=n_clusters, chunk_size=chunk_size,
                            kernels=kernels, metric=metric)
    return ChunkedData(inp.X, xp=inp.xp, dtype=inp.compute, weights=weights,
                       n_clusters=n_clusters, chunk_size=chunk_size, kernels=kernels,
                       metric=metric)


class BaseKMeans:
    """Shared machinery of the k-means estimators (not used directly)."""

    # what every estimator sets: a parameter, in ``__init__``, and the fitted attributes, in
    # ``fit`` (annotations only: unset, they stay absent, as ``_check_fitted`` reads them)
    chunk_size: int | None
    cluster_centers_: Any
    labels_: Any  # (MiniBatchKMeans: with compute_labels only, as scikit-learn's)
    n_features_in_: int
    _n_features_out: int
    # each estimator's ``fit`` (with its own keyword parameters), which returns it
    fit: Callable[..., BaseKMeans]

    @property
    def _accepts_sparse(self) -> bool:
        """Whether ``fit``/``predict`` take sparse X (scikit-learn's ``input_tags.sparse``;
        ``check_estimator`` then tests sparse fits instead of a clear rejection)."""
        return False

    # -- scikit-learn estimator protocol ------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "BaseKMeans":
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
                    array_api_support=True,
                    input_tags=InputTags(sparse=bool(self._accepts_sparse)))

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "cluster_centers_")

    # -- using a fitted model --------------------------------------------------------
    def _kernel_options(self) -> dict:
        """Options of the kernel set (``precision``, ``deterministic``, ``metric``)."""
        return {"precision": getattr(self, "precision", "exact"),
                "deterministic": getattr(self, "deterministic", True),
                "metric": getattr(self, "metric", "euclidean")}

    def _check_fitted(self) -> None:
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator.")

    def _data_for(self, X: Any, sample_weight: Any = None,
                  method: str = "predict") -> tuple[ChunkedData, Any]:
        """X checked against the fitted model, and the centres in its working coordinates."""
        self._check_fitted()
        owner = type(self).__name__
        C = self.cluster_centers_
        xp, dev = array_namespace(C), device_of(C)
        check_feature_names(feature_names_of(X), getattr(self, "feature_names_in_", None),
                            owner)
        inp = check_input(X, "X", owner, xp=xp, device=dev)
        check_same_namespace(inp.X, inp.xp, inp.device, xp, dev, "X", owner, method)
        if inp.d != self.n_features_in_:
            raise ValueError(
                f"X has {inp.d} features, but {owner} is expecting {self.n_features_in_} "
                "features as input.")
        dtypes = compute_dtype(xp, C.dtype, dev)
        assert dtypes is not None  # the fitted centres are floating
        compute = dtypes[1]
        w = check_sample_weight(sample_weight, inp.n, xp, dev, compute)
        inp.compute = compute
        data = make_data(inp, weights=w, n_clusters=int(C.shape[0]),
                         chunk_size=self.chunk_size, **self._kernel_options())
        frame = data.scale_only("X")
        # centred on the centres: accurate float32 distances (not unit rows, nor sparse data)
        frame = frame.for_centers(frame.scaled_rows(C, xp, compute), xp,
                                  centre=data.can_centre)
        data.use_frame(frame)
        return data, data.to_working_coords(C)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None,
                    **fit_params: Any) -> Any:
        """Fit and return ``labels_`` (``fit_params``: what ``fit`` takes, e.g. ``device``)."""
        return self.fit(X, sample_weight=sample_weight, **fit_params).labels_

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None,
                      **fit_params: Any) -> Any:
        """Fit and return the distances of X to the centres (n_samples, n_clusters)."""
        return self.fit(X, sample_weight=sample_weight, **fit_params).transform(X)

    def predict(self, X: Any) -> Any:
        """Index of the closest centre for each sample of X (same namespace and device)."""
        if is_dask_array(X):  # lazy, one task per block (kmeans_xp._dask)
            from . import _dask

            return _dask.predict(self, X)
        data, C = self._data_for(X, method="predict")
        return data.kernels.labels_inertia(data, C, return_inertia=False)[0]

    def transform(self, X: Any) -> Any:
        """Distances (n_samples, n_clusters) of X to every centre, in the fit's metric:
        Euclidean, cosine distance (1 - cos) or Manhattan, in the compute dtype (float32
        for float16/bfloat16 centres, else the centres' dtype)."""
        if is_dask_array(X):
            from . import _dask

            return _dask.transform(self, X)
        data, C = self._data_for(X, method="transform")
        D = data.kernels.sq_distances(data, C)
        factor, squared = data.distance_factor()
        if squared:
            D = data.xp.sqrt(D)
            factor = data.scale  # the root of scale*scale, which can overflow or underflow
        if factor != 1.0:
            D = D * factor
        # in the compute dtype (data.dtype: float32 for half storage), never cast back to
        # the centres' dtype: distances can leave float16's range, or lose bfloat16's digits
        return self._wrap_output(D, X, "transform")

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X for the fitted centres."""
        if is_dask_array(X):
            from . import _dask

            return _dask.score(self, X, sample_weight)
        data, C = self._data_for(X, sample_weight, method="score")
        inertia = data.kernels.labels_inertia(data, C)[1]
        return -float(inertia) * data.distance_factor()[0]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``kmeans0``, ``kmeans1``, ... : names of the ``transform`` columns.

        ``input_features``, when given, is checked against the names (or the number) of
        the features seen in ``fit``, as scikit-learn does; it does not change the output.
        """
        self._check_fitted()
        if input_features is not None:
            given = list(input_features)
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and given != list(fitted):
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(given) != self.n_features_in_:
                raise ValueError(
                    f"input_features should have length equal to number of features "
                    f"({self.n_features_in_}), got {len(given)}")
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)

    # -- output containers (scikit-learn's set_output API, without importing it) ----------
    #: what ``set_output(transform=...)`` accepts, as scikit-learn
    OUTPUT_CONTAINERS = ("default", "pandas", "polars")

    def set_output(self, *, transform: str | None = None) -> "BaseKMeans":
        """Choose the container ``transform`` and ``fit_transform`` return.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None
            "default": arrays of the input's namespace and device (no conversion);
            "pandas" / "polars": a DataFrame with the columns ``get_feature_names_out()``
            (and, for pandas, the input DataFrame's index). DataFrames hold host memory,
            so they are made only from NumPy results: for torch, CuPy or other arrays the
            call to ``transform`` raises a ``ValueError`` rather than copy the distances off
            their device behind your back.  None leaves the setting unchanged.
            Without a setting here, scikit-learn's global
            ``sklearn.set_config(transform_output=...)`` applies when scikit-learn is
            imported; kmeans_xp never imports it.

        Returns
        -------
        self
        """
        if transform is None:
            return self
        if transform not in self.OUTPUT_CONTAINERS:
            raise ValueError(
                f"output config must be in {set(self.OUTPUT_CONTAINERS)!r}, got "
                f"{transform!r} (parameter 'transform' of set_output).")
        # scikit-learn's attribute name: its clone, Pipeline and ColumnTransformer read it
        config = dict(getattr(self, "_sklearn_output_config", {}))
        config["transform"] = transform
        self._sklearn_output_config = config
        return self

    def _output_container(self, method: str = "transform") -> str:
        config = getattr(self, "_sklearn_output_config", {})
        if method in config:
            return config[method]
        sklearn = sys.modules.get("sklearn")  # a global setting exists only if imported
        get_config = getattr(sklearn, "get_config", None)
        if get_config is None:
            return "default"
        return get_config().get(f"{method}_output", "default")

    def _wrap_output(self, out: Any, X: Any, method: str = "transform") -> Any:
        """``out`` in the container chosen by ``set_output`` or the global config."""
        container = self._output_container(method)
        if container == "default":
            return out
        if not isinstance(out, np.ndarray):
            raise ValueError(
                f"{type(self).__name__}.{method}() is set to return a {container} "
                f"DataFrame (set_output or scikit-learn's transform_output), but its result "
                f"is a {backend_name(array_namespace(out))} array on device "
                f"{device_of(out)!r}; {container} holds host memory and kmeans_xp does not "
                "copy results off their device implicitly. Call "
                f"set_output(transform='default') to get {backend_name(array_namespace(out))}"
                " arrays, or pass NumPy data.")
        names = self.get_feature_names_out()
        if container == "pandas":
            try:
                import pandas as pd
            except ImportError as exc:  # pragma: no cover - depends on the environment
                raise ImportError(
                    "set_output(transform='pandas') needs pandas: pip install pandas") from exc
            index = X.index if hasattr(X, "iloc") and hasattr(X, "index") else None
            return pd.DataFrame(out, index=index, columns=names, copy=False)
        try:
            import polars as pl
        except ImportError as exc:
            raise ImportError(
                "set_output(transform='polars') needs polars: pip install polars") from exc
        return pl.DataFrame(out, schema=[str(n) for n in names], orient="row")
