"""A fitted model (KMeans or MiniBatchKMeans) on Dask arrays: ``predict`` and ``transform``
lazy (one task per block, by the in-memory code), ``score`` computed (per-block sums added in
block order).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._compat import array_namespace, device_of, to_numpy
from ._blocks import (
    _dask_weights,
    _meta_namespace,
    _name,
    _sum_parts,
    _tree_reduce,
    check_dask_X,
)


def _block_apply(xb, C, opts, what, wb=None):
    """predict / transform / score of a fitted model on one block, by the in-memory code."""
    xp = array_namespace(xb)
    k, d, cls, params = opts
    if int(xb.shape[0]) == 0:
        if what == "predict":
            return xp.zeros((0,), dtype=xp.int64, device=device_of(xb))
        if what == "transform":
            return xp.zeros((0, k), dtype=getattr(xp, _distance_dtype(C).name),
                            device=device_of(xb))
        return np.zeros(1)
    km = cls(**params)  # the fitted model's class and parameters (metric, precision, ...)
    km.cluster_centers_ = xp.asarray(C, device=device_of(xb))
    km.n_features_in_, km._n_features_out = d, k
    if what == "predict":
        return km.predict(xb)
    if what == "transform":
        return km.transform(xb)
    return np.array([-km.score(xb, sample_weight=wb)])



def _distance_dtype(C: np.ndarray) -> np.dtype:
    """The dtype of distances to centres ``C``: the compute dtype (float32 for float16)."""
    dt = np.dtype(C.dtype)
    return np.dtype(np.float32) if dt == np.float16 else dt


def _fitted_opts(est: Any, X: Any) -> tuple:
    est._check_fitted()
    owner = type(est).__name__
    X = check_dask_X(X, "X", owner)
    d = int(X.shape[1])
    if d != est.n_features_in_:
        raise ValueError(
            f"X has {d} features, but {owner} is expecting {est.n_features_in_} "
            "features as input.")
    C = np.asarray(to_numpy(est.cluster_centers_))
    # the block runs a model of the fitted one's class and parameters: every option of its
    # passes (precision, determinism, the metric) with it
    opts = (int(C.shape[0]), d, type(est), est.get_params(deep=False))
    return X, C, opts


def predict(est: Any, X: Any) -> Any:
    """Labels of a Dask array (a lazy Dask array, one task per block)."""
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    xpm = _meta_namespace(X)
    return X.map_blocks(_block_apply, delayed(C, name=_name("centers")), opts, "predict",
                        drop_axis=1, dtype=np.int64, meta=xpm.empty((0,), dtype=xpm.int64))


def transform(est: Any, X: Any) -> Any:
    """Distances of a Dask array to the centres (a lazy Dask array (n, k))."""
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    xpm = _meta_namespace(X)
    dt = _distance_dtype(C)
    return X.map_blocks(_block_apply, delayed(C, name=_name("centers")), opts, "transform",
                        chunks=(X.chunks[0], (opts[0],)), dtype=dt,
                        meta=xpm.empty((0, 0), dtype=getattr(xpm, dt.name)))


def score(est: Any, X: Any, sample_weight: Any = None) -> float:
    """Opposite of the inertia of a Dask array (computed; per-block sums in block order)."""
    import dask
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    w = _dask_weights(sample_weight, X, C.dtype if C.dtype.kind == "f" else np.float64)
    Cd = delayed(C, name=_name("centers"))
    xb = list(X.to_delayed().ravel())
    wb = [None] * len(xb) if w is None else list(w.to_delayed().ravel())
    parts = [delayed(_score_block, pure=False)(x, Cd, opts, wv) for x, wv in zip(xb, wb)]
    (inertia,) = dask.compute(_tree_reduce(parts, _sum_parts))[0]
    return -float(inertia)


def _score_block(xb, C, opts, wb):
    return (float(_block_apply(xb, C, opts, "score", wb)[0]),)
