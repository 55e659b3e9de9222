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


def _buffer(buffers: dict | None, name: str, shape: tuple, like: Any, empty: Any) -> Any:
    """A reusable (rows, cols) block from ``buffers`` (None: a fresh one), sliced to ``shape``.

    Reusing the block across chunks and iterations avoids an allocation (and its page
    faults) per chunk; on torch CPU, fresh blocks also made glibc grow the resident set by
    about n x k elements in the first pass.
    """
    if buffers is None:
        return empty(shape)
    key = (name, shape[1], str(like.dtype), str(getattr(like, "device", "cpu")))
    buf = buffers.get(key)
    if buf is None or buf.shape[0] < shape[0]:
        buf = buffers[key] = empty(shape)
    return buf[: shape[0]]


def partial_sq_distances(Xt: Any, centers_m2t: Any, c_sq: Any, *, xp: Any, fast: bool = True,
                         buffers: dict | None = None) -> Any:
    """``||c_j||^2 - 2 x_i . c_j`` for a chunk: squared distances less ``||x_i||^2``.

    ``centers_m2t`` is ``-2 * centers.T`` (d, k), computed once per iteration; the missing
    ``||x_i||^2`` does not change the argmin.  With ``buffers`` (a dict the caller keeps for
    a fit), the fast paths write into a block reused from call to call: the result is then
    valid until the next call.
    """
    m, d = Xt.shape
    k = centers_m2t.shape[1]
    if fast and is_torch_namespace(xp):
        import torch

        out = _buffer(buffers, "D", (m, k), Xt,
                      lambda shape: torch.empty(shape, dtype=Xt.dtype, device=Xt.device))
        return torch.addmm(c_sq, Xt, centers_m2t, out=out)
    if fast and is_numpy_namespace(xp):
        import numpy as np

        new = lambda shape: np.empty(shape, dtype=Xt.dtype)  # noqa: E731
        out = _buffer(buffers, "D", (m, k), Xt, new)
        if k >= 2 * d:
            # fold ||c||^2 into the product ([x, 1] @ [-2C^T; ||c||^2]): one pass over the
            # (m, k) output instead of two; 10-13 % faster at k >= 2d, neutral at k = d,
            # slower when k << d (the extra copy of the chunk then dominates)
            A = _buffer(buffers, "A", (m, d + 1), Xt, new)
            A[:, :d] = Xt
            A[:, d] = 1.0
            return np.matmul(A, np.concatenate([centers_m2t, c_sq[None, :]]), out=out)
        np.matmul(Xt, centers_m2t, out=out)
        out += c_sq
        return out
    if fast and is_cupy_namespace(xp):
        D = Xt @ centers_m2t
        D += c_sq
        return D
    return xp.matmul(Xt, centers_m2t) + c_sq


def sq_dist_to_assigned(Xt: Any, centers: Any, labels: Any, *, xp: Any, fast: bool = True,
                        buffers: dict | None = None) -> Any:
    """``||x_i - c_{labels_i}||^2`` for a chunk, by direct differences (accurate in float32).

    The fast paths gather and subtract in place in a reused (chunk x d) block.
    """
    m, d = Xt.shape
    if fast and is_torch_namespace(xp):
        import torch

        buf = _buffer(buffers, "G", (m, d), Xt,
                      lambda shape: torch.empty(shape, dtype=Xt.dtype, device=Xt.device))
        torch.index_select(centers, 0, labels, out=buf)
        torch.sub(Xt, buf, out=buf)
        return torch.einsum("ij,ij->i", buf, buf)
    if fast and is_numpy_namespace(xp):
        import numpy as np

        buf = _buffer(buffers, "G", (m, d), Xt, lambda shape: np.empty(shape, dtype=Xt.dtype))
        np.take(centers, labels, axis=0, out=buf)
        np.subtract(Xt, buf, out=buf)
        return np.einsum("ij,ij->i", buf, buf)
    diff = Xt - xp.take(centers, labels, axis=0)
    return xp.vecdot(diff, diff, axis=-1)


def argmin_rows(D: Any, *, xp: Any, fast: bool = True) -> Any:
    """Index of the first minimum of each row (torch: ``min(dim=1)``, faster than ``argmin``)."""
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

