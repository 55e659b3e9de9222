"""What every k-means estimator shares: the scikit-learn estimator protocol, input checks,
and the use of a fitted model (``predict``, ``transform``, ``score``, feature names).

Estimators subclass :class:`BaseKMeans` and set ``cluster_centers_``, ``n_features_in_``
(and ``feature_names_in_``) in ``fit``; the kernel set for a fitted model's passes is chosen
here, once per call, from the centres' namespace, device and dtype.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._compat import array_namespace, compute_dtype, device_of, is_dask_array
from ._data import ChunkedData
from ._kernels import select
from ._validation import (
    NotFittedError,
    as_array,
    check_2d,
    check_dtype,
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


def check_input(X: Any, name: str, owner: str, *, xp: Any = None,
                device: Any = None) -> Input:
    """Cheap checks of X (kind, shape, dtype), before any pass over its values."""
    names = feature_names_of(X)
    X, xp_x, dev_x = as_array(X, name, xp=xp, device=device)
    n, d = check_2d(X, name, owner)
    storage, compute = check_dtype(X, xp_x, dev_x, name)
    return Input(X, xp_x, dev_x, storage, compute, n, d, names)


def make_data(inp: Input, *, weights: Any, n_clusters: int, chunk_size: int | None,
              precision: str = "exact", deterministic: bool = True) -> ChunkedData:
    """The chunked view of ``inp.X`` with the kernel set of this fit (chosen once, here)."""
    kernels = select(inp.xp, inp.device, inp.compute, precision=precision,
                     deterministic=deterministic)
    return ChunkedData(inp.X, xp=inp.xp, dtype=inp.compute, weights=weights,
                       n_clusters=n_clusters, chunk_size=chunk_size, kernels=kernels)


class BaseKMeans:
    """Shared machinery of the k-means estimators (not used directly)."""

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

    # -- using a fitted model --------------------------------------------------------
    def _kernel_options(self) -> dict:
        """Options of the kernel set (``precision``, ``deterministic``) of this estimator."""
        return {"precision": getattr(self, "precision", "exact"),
                "deterministic": getattr(self, "deterministic", True)}

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
        inp = check_input(X, "X", owner, xp=xp, device=dev)
        check_same_namespace(inp.X, inp.xp, inp.device, xp, dev, "X")
        if inp.d != self.n_features_in_:
            raise ValueError(
                f"X has {inp.d} features, but {owner} is expecting {self.n_features_in_} "
                "features as input.")
        compute = compute_dtype(xp, C.dtype, dev)[1]
        w = check_sample_weight(sample_weight, inp.n, xp, dev, compute)
        inp.compute = compute
        data = make_data(inp, weights=w, n_clusters=int(C.shape[0]),
                         chunk_size=self.chunk_size, **self._kernel_options())
        data.check_finite_and_scale("X")
        Cs = data.to_working_coords(C)  # scaled, not yet shifted
        data.shift = xp.mean(Cs, axis=0)  # centre on the centres: accurate float32 distances
        return data, Cs - data.shift

    def predict(self, X: Any) -> Any:
        """Index of the closest centre for each sample of X (same namespace and device)."""
        if is_dask_array(X):  # lazy, one task per block (kmeans_xp._dask)
            from . import _dask

            return _dask.predict(self, X)
        data, C = self._data_for(X)
        return data.kernels.labels_inertia(data, C, return_inertia=False)[0]

    def transform(self, X: Any) -> Any:
        """Euclidean distances (n_samples, n_clusters) of X to every centre."""
        if is_dask_array(X):
            from . import _dask

            return _dask.transform(self, X)
        data, C = self._data_for(X)
        D = data.xp.sqrt(data.kernels.sq_distances(data, C))
        if data.scale != 1.0:
            D = D * data.scale
        return D if D.dtype == self.cluster_centers_.dtype else data.xp.astype(
            D, self.cluster_centers_.dtype)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the (weighted) inertia of X for the fitted centres."""
        if is_dask_array(X):
            from . import _dask

            return _dask.score(self, X, sample_weight)
        data, C = self._data_for(X, sample_weight)
        inertia = data.kernels.labels_inertia(data, C)[1]
        return -float(inertia) * data.scale ** 2

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``kmeans0``, ``kmeans1``, ... : names of the ``transform`` columns."""
        self._check_fitted()
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self._n_features_out)], dtype=object)


