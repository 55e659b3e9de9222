"""The only module that names a backend: fast paths for what the standard lacks or does slowly.

Each public function takes ``fast=True``; ``fast=False`` runs the pure Array API fallback,
which is also what every namespace without a fast path gets.  The tests compare the two on
every backend of the fixture.

Backends are imported inside the functions, only once an array of theirs is seen here.
"""

from __future__ import annotations

from typing import Any

from ._namespace import device_of, is_cupy_namespace, is_numpy_namespace, is_torch_namespace

#: Above this many clusters the NumPy centre sums use ``bincount`` instead of a one-hot GEMM
#: (measured crossover on 2 cores: at k=32 the GEMM is 2x faster, at k=256 bincount is 1.6x).
NUMPY_ONEHOT_MAX_K = 64


def partial_sq_distances(Xt: Any, centers_m2t: Any, c_sq: Any, *, xp: Any, fast: bool = True) -> Any:
    """``||c_j||^2 - 2 x_i . c_j`` for a chunk: squared distances less ``||x_i||^2``.

    ``centers_m2t`` is ``-2 * centers.T`` (d, k), computed once per iteration; the missing
    ``||x_i||^2`` does not change the argmin.
    """
    if fast and is_torch_namespace(xp):
        import torch

        return torch.addmm(c_sq, Xt, centers_m2t)
    if fast and (is_numpy_namespace(xp) or is_cupy_namespace(xp)):
        D = Xt @ centers_m2t
        D += c_sq
        return D
    return xp.matmul(Xt, centers_m2t) + c_sq


def argmin_rows(D: Any, *, xp: Any, fast: bool = True) -> Any:
    """Index of the first minimum of each row (torch's ``min`` is faster than its ``argmin``)."""
    if fast and is_torch_namespace(xp):
        return D.min(dim=1).indices
    return xp.argmin(D, axis=1)


def min_argmin(D: Any, *, xp: Any, fast: bool = True) -> tuple[Any, Any]:
    """Row minima and their first index, in one pass where the backend has it."""
    if fast and is_torch_namespace(xp):
        import torch

        vals, idx = torch.min(D, dim=1)
        return vals, idx
    idx = xp.argmin(D, axis=1)
    return xp.min(D, axis=1), idx


def onehot(labels: Any, n_clusters: int, dtype: Any, xp: Any) -> Any:
    """(m, n_clusters) indicator matrix of ``labels`` in ``dtype`` (pure standard)."""
    ks = xp.arange(n_clusters, dtype=labels.dtype, device=device_of(labels))
    return xp.astype(labels[:, None] == ks[None, :], dtype)


def cluster_sums(
    Xt: Any, labels: Any, weights: Any, n_clusters: int, *, xp: Any, fast: bool = True
) -> tuple[Any, Any]:
    """Weighted sums of the rows of ``Xt`` per label, and the weight per label.

    Parameters
    ----------
    Xt : array (m, d)
    labels : integer array (m,), values in ``[0, n_clusters)``
    weights : array (m,) or None (unit weights)

    Returns
    -------
    sums : array (n_clusters, d), counts : array (n_clusters,), both of ``Xt``'s dtype.
    """
    if fast:
        if is_torch_namespace(xp):
            return _cluster_sums_torch(Xt, labels, weights, n_clusters)
        if is_numpy_namespace(xp):
            return _cluster_sums_numpy(Xt, labels, weights, n_clusters)
        if is_cupy_namespace(xp):
            return _cluster_sums_cupy(Xt, labels, weights, n_clusters)
    oh = onehot(labels, n_clusters, Xt.dtype, xp)
    if weights is not None:
        oh = oh * weights[:, None]
    return xp.matmul(xp.matrix_transpose(oh), Xt), xp.sum(oh, axis=0)


def _cluster_sums_torch(Xt, labels, weights, k):
    # index_add_ is ~15x faster than a one-hot product or a sort on torch (DESIGN.md sec. 6).
    # On CUDA it accumulates with atomics (order not fixed) unless
    # torch.use_deterministic_algorithms(True) is set, which makes it deterministic.
    import torch

    m, d = Xt.shape
    src = Xt if weights is None else Xt * weights[:, None]
    sums = torch.zeros((k, d), dtype=Xt.dtype, device=Xt.device).index_add_(0, labels, src)
    w = torch.ones(m, dtype=Xt.dtype, device=Xt.device) if weights is None else weights
    counts = torch.zeros(k, dtype=Xt.dtype, device=Xt.device).index_add_(0, labels, w)
    return sums, counts


def _cluster_sums_numpy(Xt, labels, weights, k):
    import numpy as np

    m, d = Xt.shape
    if k <= NUMPY_ONEHOT_MAX_K:
        # a (k, m) one-hot built by scattering, then one GEMM
        onehot = np.zeros((k, m), dtype=Xt.dtype)
        onehot[labels, np.arange(m)] = 1 if weights is None else weights
        return onehot @ Xt, onehot.sum(axis=1)
    src = Xt if weights is None else Xt * weights[:, None]
    flat = (labels[:, None] * d + np.arange(d)).ravel()
    sums = np.bincount(flat, weights=src.ravel(), minlength=k * d).reshape(k, d)
    counts = np.bincount(labels, weights=weights, minlength=k)
    return sums.astype(Xt.dtype, copy=False), counts.astype(Xt.dtype, copy=False)


def _cluster_sums_cupy(Xt, labels, weights, k):  # pragma: no cover - needs a GPU
    import cupy
    import cupyx

    m, d = Xt.shape
    src = Xt if weights is None else Xt * weights[:, None]
    sums = cupy.zeros((k, d), dtype=Xt.dtype)
    cupyx.scatter_add(sums, labels, src)
    w = cupy.ones(m, dtype=Xt.dtype) if weights is None else weights
    counts = cupy.zeros(k, dtype=Xt.dtype)
    cupyx.scatter_add(counts, labels, w)
    return sums, counts

