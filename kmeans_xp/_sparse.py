"""Sparse X: scipy.sparse, torch sparse tensors and cupyx.scipy.sparse, read in row blocks.

A sparse input becomes a :class:`CSR`: its three arrays (``indptr``, ``indices``,
``data``) in the namespace of its library (NumPy for scipy, torch, CuPy), a host copy
of ``indptr`` (row boundaries of chunks without device syncs) and a small
:class:`_Ops` object with the few operations the Array API standard has no word for
(a sparse-dense product, a deterministic scatter-add).  :class:`SparseData` is the
:class:`~kmeans_xp._data.ChunkedData` of such an input: its chunks are
:class:`SparseBlock` views (no copy of X), and the kernel set for sparse data
(:mod:`kmeans_xp._kernels._sparse`) computes distances as ``||x||^2 - 2 x.c + ||c||^2``
with sparse-dense products and row norms computed once.

The frame of sparse data is never centred (a shift would make every entry non-zero):
``Xt = X * inv_scale``.  In float32 the expansion then loses accuracy when the distance
between a row and a centre is small next to their norms (relative error of a distance
about ``1e-7 * ||x||^2 / ||x - c||^2``); TF-IDF and one-hot rows (norms of order 1,
distances of order 1) are not affected; for sparse data far from the origin in float32
pass float64 (or dense, centred) data.  Row norms, per-row distances to the assigned
centre (``||c||^2 + sum_nnz ((x - c)^2 - c^2)``, scikit-learn's formula) and the inertia
are accumulated in float64 where the device has it.

Validation follows scikit-learn's ``check_array(accept_sparse="csr")``: any sparse format
is converted to CSR (CSC, COO, ... : a sparse copy, never a dense one); NaN or infinity
in the stored values raise ``ValueError``; integer and boolean values are computed in the
default float dtype.  Two departures, both supersets: indices of either width (int32 or
int64) are accepted, where scikit-learn's KMeans rejects int64 indices; duplicate entries
(which scikit-learn passes unsummed to its row norms, giving wrong norms) are summed, on a
copy, as ``X.toarray()`` would.  Unsorted column indices are used as they are.

This module names scipy, torch and CuPy, but imports each only when an input of that
library has arrived (``sys.modules`` tells): ``import kmeans_xp`` imports none of them.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._compat import array_namespace, compute_dtype, device_of, to_numpy
from ._data import LOG2_RANGE, ChunkedData

__all__ = ["CSR", "SparseBlock", "SparseData", "is_sparse", "is_sparse_data", "sparse_input"]


# -- recognising a sparse input without importing its library -----------------------------
def _sparse_library(X: Any) -> str | None:
    """'scipy', 'torch' or 'cupy' for a sparse matrix / array / tensor, else None."""
    if "scipy.sparse" in sys.modules and sys.modules["scipy.sparse"].issparse(X):
        return "scipy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(X, torch.Tensor) and X.layout != torch.strided:
        return "torch"
    cpsp = sys.modules.get("cupyx.scipy.sparse")
    if cpsp is not None and cpsp.issparse(X):
        return "cupy"
    return None


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a scipy.sparse matrix/array, a torch sparse tensor or a cupyx
    sparse matrix (imports none of those libraries)."""
    return _sparse_library(X) is not None


def is_sparse_data(data: Any) -> bool:
    """Whether a :class:`ChunkedData` holds sparse X (its chunks are :class:`SparseBlock`)."""
    return isinstance(data, SparseData)


def sparse_dense_message(name: str) -> str:
    return (f"A sparse matrix was passed as {name}, but dense data is required. Use "
            f"'.toarray()' (scipy, cupyx) or '.to_dense()' (torch) to convert {name}.")


def sparse_to_dense(a: Any) -> Any:
    """A small sparse array (initial centres) as a dense array of its library."""
    return a.to_dense() if _sparse_library(a) == "torch" else a.toarray()


# -- the operations the standard has no word for, per library -----------------------------
class _Ops:
    """Sparse-dense product, scatter-add and segment sums for one library."""

    name = "?"

    def __init__(self, xp: Any, deterministic: bool = True) -> None:
        self.xp = xp
        self.deterministic = deterministic

    def spmm(self, block: SparseBlock, dense: Any) -> Any:  # pragma: no cover - abstract
        """``block @ dense`` (m, c) for a C-contiguous (d, c) ``dense``."""
        raise NotImplementedError

    def contiguous(self, a: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def gram(self, a: SparseBlock, b: SparseBlock) -> Any:  # pragma: no cover
        """``a @ b^T`` (m_a, m_b) as a dense array: a sparse-sparse product."""
        raise NotImplementedError

    def sq_norms(self, C: Any) -> Any:
        """``||c_i||^2`` (m,) of the rows of a dense (m, d) array."""
        return self.xp.vecdot(C, C)

    def take(self, a: Any, index: Any) -> Any:
        """``a[index]`` of a 1-D array (a gather per stored value: the hot path)."""
        return self.xp.take(a, index)

    def transpose(self, C: Any, buffers: dict | None = None) -> Any:
        """``C^T`` as a C-contiguous (d, k) array (in a block kept in ``buffers``)."""
        return self.contiguous(self.xp.matrix_transpose(C))

    def row_ids(self, indptr: Any, nnz: int) -> Any:
        """The row of each stored value (nnz,) int64, from local offsets ``indptr``."""
        xp = self.xp
        pos = xp.arange(nnz, dtype=xp.int64, device=device_of(indptr))
        return xp.searchsorted(xp.astype(indptr[1:], xp.int64), pos, side="right")

    def scatter_add(self, target: Any, index: Any, values: Any) -> Any:  # pragma: no cover
        """``target[index] += values`` in place (repeated indices add up), in a fixed order
        when ``deterministic``; returns ``target`` (1-D)."""
        raise NotImplementedError

    def segment_sums(self, indptr: Any, values: Any, m: int) -> Any:
        """Sums (m,) of ``values`` over each row's segment ``indptr[i]:indptr[i+1]``."""
        xp = self.xp
        out = xp.zeros((m,), dtype=values.dtype, device=device_of(values))
        return self.scatter_add(out, self.row_ids(indptr, int(values.shape[0])), values)


def _flat_buffer(buffers: dict | None, size: int, dtype: Any, empty: Any) -> Any:
    """A 1-D block of at least ``size`` elements, kept in ``buffers`` (one per dtype, grown
    when a pass needs more: centres and k-means|| candidate sets of any size share it)."""
    if buffers is None:
        return empty(size)
    key = ("sparse_CT", str(dtype))
    buf = buffers.get(key)
    if buf is None or buf.shape[0] < size:
        buf = buffers[key] = empty(size)
    return buf


class _ScipyOps(_Ops):
    """scipy.sparse on NumPy arrays (and the template of the cupyx set)."""

    name = "scipy"

    def __init__(self, xp: Any, deterministic: bool = True) -> None:
        super().__init__(xp, deterministic)
        import scipy.sparse

        self.sp = scipy.sparse

    def matrix(self, block: SparseBlock) -> Any:
        # attribute assignment: the constructor copies (and checks) the three arrays
        m = self.sp.csr_matrix(block.shape, dtype=block.data.dtype)
        m.indptr, m.indices, m.data = block.indptr, block.indices, block.data
        return m

    def spmm(self, block, dense):
        return self.matrix(block) @ dense

    def gram(self, a, b):
        return (self.matrix(a) @ self.matrix(b).T).toarray()

    def contiguous(self, a):
        return np.ascontiguousarray(a)

    def sq_norms(self, C):
        # einsum, not vecdot: vecdot calls a BLAS dot per row, and a multi-threaded BLAS
        # then stalls for tenths of a second per call on a busy machine (measured: 0.5 s
        # against 1 ms for (32, 65536))
        return np.einsum("ij,ij->i", C, C)

    def transpose(self, C, buffers=None):
        # NumPy copies a transposed (k, d) array element by element across rows: for
        # (100, 2**18) that is 10x slower than copying blocks of 4096 columns, which stay
        # in cache; and a reused block saves the page faults of a fresh 200 MB array
        k, d = C.shape
        out = _flat_buffer(buffers, d * k, C.dtype, lambda size: np.empty(size, C.dtype))
        out = out[: d * k].reshape(d, k)
        for j in range(0, d, 4096):
            out[j:j + 4096] = C[:, j:j + 4096].T
        return out

    def row_ids(self, indptr, nnz):
        m = int(indptr.shape[0]) - 1
        return np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))

    def scatter_add(self, target, index, values):
        np.add.at(target, index, values)  # a serial loop in index order: deterministic
        return target

    def segment_sums(self, indptr, values, m):
        ids = self.row_ids(indptr, int(values.shape[0]))
        return np.bincount(ids, weights=values, minlength=m).astype(values.dtype, copy=False)


class _TorchOps(_Ops):
    """torch sparse CSR tensors (CPU and CUDA)."""

    name = "torch"

    def matrix(self, block: SparseBlock) -> Any:
        import torch

        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(block.indptr, block.indices, block.data,
                                           size=block.shape, check_invariants=False)

    def spmm(self, block, dense):
        return self.matrix(block) @ dense

    def gram(self, a, b):
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return (self.matrix(a) @ self.matrix(b).t()).to_dense()

    def contiguous(self, a):
        return a.contiguous()

    def sq_norms(self, C):
        import torch

        return torch.linalg.vecdot(C, C)

    def take(self, a, index):
        return a.index_select(0, index)  # array_api_compat's take checks indices first

    def transpose(self, C, buffers=None):
        import torch

        k, d = C.shape
        out = _flat_buffer(buffers, d * k, C.dtype,
                           lambda size: torch.empty(size, dtype=C.dtype, device=C.device))
        return out[: d * k].view(d, k).copy_(C.T)

    def row_ids(self, indptr, nnz):
        import torch

        m = int(indptr.shape[0]) - 1
        counts = torch.diff(indptr).to(torch.int64)
        return torch.repeat_interleave(torch.arange(m, device=indptr.device), counts,
                                       output_size=nnz)

    def scatter_add(self, target, index, values):
        if target.device.type == "cpu" or not self.deterministic:
            return target.index_add_(0, index, values)
        return self.sorted_scatter_add(target, index, values)

    @staticmethod
    def sorted_scatter_add(target, index, values):
        """``index_add_`` in a fixed order (CUDA's adds with atomics): sort the indices
        (stable), sum each run of equal indices, add the run totals at distinct places."""
        import torch

        if index.shape[0] == 0:
            return target
        order = torch.argsort(index, stable=True)
        idx, vals = index[order], values[order]
        uniq, counts = torch.unique_consecutive(idx, return_counts=True)
        totals = torch.segment_reduce(vals, "sum", lengths=counts)
        target[uniq] += totals
        return target

    def segment_sums(self, indptr, values, m):
        import torch

        if values.shape[0] == 0:
            return torch.zeros(m, dtype=values.dtype, device=values.device)
        return torch.segment_reduce(values, "sum", offsets=indptr.to(torch.int64))


class _CupyOps(_ScipyOps):  # pragma: no cover - needs a GPU
    """cupyx.scipy.sparse on CuPy arrays: the scipy set's calls, on the device."""

    name = "cupy"

    def __init__(self, xp: Any, deterministic: bool = True) -> None:
        _Ops.__init__(self, xp, deterministic)
        import cupyx.scipy.sparse

        self.sp = cupyx.scipy.sparse

    def matrix(self, block):
        return self.sp.csr_matrix((block.data, block.indices, block.indptr),
                                  shape=block.shape, copy=False)

    def contiguous(self, a):
        import cupy

        return cupy.ascontiguousarray(a)

    def row_ids(self, indptr, nnz):
        return _Ops.row_ids(self, indptr, nnz)

    def scatter_add(self, target, index, values):
        import cupy
        import cupyx

        if not self.deterministic:
            cupyx.scatter_add(target, index, values)  # atomics
            return target
        if index.shape[0] == 0:
            return target
        # a fixed order: sort the indices (cupy's argsort is a stable radix sort), take
        # each run's total as a difference of float64 prefix sums (absolute error about
        # 1e-16 x the chunk's total), add the totals at distinct positions
        order = cupy.argsort(index)
        idx, vals = index[order], values[order]
        starts = cupy.flatnonzero(cupy.concatenate([cupy.ones(1, bool), idx[1:] != idx[:-1]]))
        csum = cupy.cumsum(vals.astype(cupy.float64))
        ends = cupy.concatenate([starts[1:], cupy.asarray([idx.shape[0]])]) - 1
        before = cupy.where(starts > 0, csum[starts - 1], 0.0)
        target[idx[starts]] += (csum[ends] - before).astype(target.dtype)
        return target

    def segment_sums(self, indptr, values, m):
        return _Ops.segment_sums(self, indptr, values, m)


def _ops_for(library: str, xp: Any, deterministic: bool = True) -> _Ops:
    return {"scipy": _ScipyOps, "torch": _TorchOps, "cupy": _CupyOps}[library](xp, deterministic)


# -- the canonical CSR form of an input ---------------------------------------------------
@dataclass
class CSR:
    """A sparse X as CSR arrays in its library's namespace (no copy of a canonical CSR)."""

    container: Any  # the CSR matrix / tensor (what a callable init receives)
    indptr: Any
    indices: Any
    data: Any
    shape: tuple
    library: str
    xp: Any
    device: Any
    host_indptr: np.ndarray = field(repr=False, default=None)

    @property
    def nnz(self) -> int:
        return int(self.host_indptr[-1])

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return 2


def _check_2d_shape(shape: tuple, name: str) -> None:
    if len(shape) != 2:
        raise ValueError(f"Expected 2D sparse {name}, got {len(shape)}D (shape "
                         f"{tuple(shape)}): {name} must have shape (n_samples, n_features).")


def _scipy_csr(X: Any, name: str) -> Any:
    _check_2d_shape(X.shape, name)
    if X.format != "csr":
        X = X.tocsr()  # a sparse copy, as check_array(accept_sparse="csr") makes
    if not X.has_canonical_format:  # O(nnz) check; summing duplicates needs a copy
        X = X.copy()
        X.sum_duplicates()
    return X


def _torch_rows_canonical(indptr: Any, indices: Any) -> bool:
    """Column indices strictly increasing within every row (sorted, no duplicates)."""
    import torch

    nnz = int(indices.shape[0])
    if nnz < 2:
        return True
    increasing = indices[1:] > indices[:-1]
    starts = torch.zeros(nnz, dtype=torch.bool, device=indices.device)
    inner = indptr[1:-1].to(torch.int64)
    starts[inner[inner < nnz]] = True  # positions where a new row begins
    return bool(torch.all(increasing | starts[1:]))


def _torch_csr(X: Any, name: str) -> Any:
    import torch

    _check_2d_shape(tuple(X.shape), name)
    if X.requires_grad:
        X = X.detach()
    if X.layout == torch.sparse_coo:
        return X.coalesce().to_sparse_csr()
    if X.layout != torch.sparse_csr:
        try:
            X = X.to_sparse_csr()
        except (RuntimeError, NotImplementedError) as exc:
            raise TypeError(f"{name} is a torch tensor of layout {X.layout}, which cannot be "
                            f"converted to sparse CSR: {exc}") from None
    if X.dim() != 2 or X.values().dim() != 1:
        raise TypeError(f"{name} is a hybrid or batched sparse tensor; pass a 2-D sparse "
                        "CSR tensor with scalar values.")
    if not _torch_rows_canonical(X.crow_indices(), X.col_indices()):
        X = X.to_sparse_coo().coalesce().to_sparse_csr()  # sorted, duplicates summed (copy)
    return X


def _cupy_csr(X: Any, name: str) -> Any:  # pragma: no cover - needs a GPU
    _check_2d_shape(X.shape, name)
    if X.format != "csr":
        X = X.tocsr()
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def to_csr(X: Any, name: str = "X") -> CSR:
    """The canonical CSR form of a sparse ``X`` (a copy only when the format or duplicate
    entries require one)."""
    library = _sparse_library(X)
    if library == "scipy":
        X = _scipy_csr(X, name)
        indptr, indices, data = X.indptr, X.indices, X.data
    elif library == "torch":
        X = _torch_csr(X, name)
        indptr, indices, data = X.crow_indices(), X.col_indices(), X.values()
    elif library == "cupy":  # pragma: no cover - needs a GPU
        X = _cupy_csr(X, name)
        indptr, indices, data = X.indptr, X.indices, X.data
    else:  # pragma: no cover - callers check is_sparse first
        raise TypeError(f"{name} is not a sparse matrix.")
    xp = array_namespace(data)
    return CSR(X, indptr, indices, data, (int(X.shape[0]), int(X.shape[1])), library, xp,
               device_of(data), host_indptr=np.asarray(to_numpy(indptr), dtype=np.int64))


def sparse_input(X: Any, name: str, owner: str) -> tuple[CSR, Any, Any]:
    """``(csr, storage dtype, compute dtype)`` of a sparse X: cheap checks (shape, dtype),
    before any pass over the values.  Raises as the dense checks do."""
    from ._validation import DataTypeError, check_2d

    csr = to_csr(X, name)
    check_2d(csr, name, owner)
    dtypes = compute_dtype(csr.xp, csr.dtype, csr.device)
    if dtypes is None:
        kind = "complex" if "complex" in str(csr.dtype) else f"dtype {csr.dtype}"
        raise DataTypeError(f"{name} has {kind} data, which k-means cannot cluster: pass "
                            "real numbers (float, integer or bool).")
    return csr, dtypes[0], dtypes[1]


# -- row blocks ---------------------------------------------------------------------------
@dataclass
class SparseBlock:
    """Rows ``start:stop`` of a CSR X in working coordinates: views of X's arrays (the
    values are copied only to change dtype or scale).  ``indptr`` starts at 0."""

    indptr: Any
    indices: Any
    data: Any
    shape: tuple
    ops: _Ops
    _rows: Any = field(default=None, repr=False)

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    def matmul(self, dense: Any) -> Any:
        """``block @ dense`` (m, c) for a C-contiguous (d, c) dense array."""
        return self.ops.spmm(self, dense)

    def row_ids(self) -> Any:
        """The row (0..m-1) of each stored value, int64 (computed once per block)."""
        if self._rows is None:
            self._rows = self.ops.row_ids(self.indptr, self.nnz)
        return self._rows

    def row_sums(self, values: Any) -> Any:
        """Per-row sums (m,) of per-stored-value ``values`` (nnz,)."""
        return self.ops.segment_sums(self.indptr, values, self.shape[0])


class SparseData(ChunkedData):
    """:class:`ChunkedData` for a sparse X: chunks are :class:`SparseBlock` views.

    Chunks hold at most ``budget // k`` rows (the (rows x k) distance block) and at most
    ``budget`` stored values (the per-value temporaries); no chunk is ever made dense.
    ``shift`` is always None (no centring of sparse data).  ``take_rows`` makes the few
    rows it is asked for dense (centres, candidates).
    """

    sparse = True

    def __init__(self, csr: CSR, *, xp: Any, dtype: Any, weights: Any = None,
                 n_clusters: int = 1, chunk_size: int | None = None, kernels: Any = None,
                 deterministic: bool = True, ops: _Ops | None = None) -> None:
        from ._compat import default_chunk_budget, is_float64_supported

        self.csr = csr
        self.X = csr.container
        self.xp = xp
        self.device = csr.device
        self.dtype = dtype
        self.weights = weights
        self.n, self.d = csr.shape
        self.n_clusters = n_clusters
        self.ops = ops or _ops_for(csr.library, xp, deterministic)
        self.budget = default_chunk_budget(xp, self.device)
        if chunk_size:
            self.budget = chunk_size * max(n_clusters, 1)
        self.nnz_budget = max(self.budget, 1)
        self.rows = min(self.n, chunk_size or max(1, self.budget // max(n_clusters, 1)))
        self._bounds: dict = {}
        if ops is None:  # a subset (ops given) lies within a checked X: no query per batch
            self.check_memory(n_clusters)
        self.scale = 1.0
        self.shift = None
        self.mean_variance = float("nan")
        self.buffers: dict = {}
        self.cache: dict = {}
        self.kernels = kernels
        self.f64 = is_float64_supported(xp, self.device)

    def working_set_bytes(self, n_clusters: int) -> int:
        """A few (rows x k) blocks and per-value temporaries of a chunk, O(n) vectors, and
        the dense (k x d) centres (several copies: centres, sums, the update)."""
        item = 8 if self.dtype == self.xp.float64 else 4
        nnz_chunk = min(self.csr.nnz, self.nnz_budget)
        return (item * (3 * self.rows * n_clusters + 4 * self.n + 5 * n_clusters * self.d)
                + 8 * 4 * nnz_chunk + 8 * 3 * self.n)

    # -- chunks -----------------------------------------------------------------------
    def ranges(self, rows: int | None = None) -> Iterator[tuple[int, int]]:
        """Row ranges of at most ``rows`` rows and ``nnz_budget`` stored values (a row
        with more values than that is a chunk of its own)."""
        rows = min(rows or self.rows, max(self.n, 1))
        if rows not in self._bounds:
            ip = self.csr.host_indptr
            bounds, start = [], 0
            while start < self.n:
                stop = min(start + rows, self.n)
                cap = int(np.searchsorted(ip, ip[start] + self.nnz_budget, side="right")) - 1
                stop = max(start + 1, min(stop, cap))
                bounds.append((start, stop))
                start = stop
            self._bounds[rows] = bounds
        yield from self._bounds[rows]

    def _block(self, start: int, stop: int, dtype: Any, inv_scale: float) -> SparseBlock:
        xp, csr = self.xp, self.csr
        a, b = int(csr.host_indptr[start]), int(csr.host_indptr[stop])
        indptr = csr.indptr[start:stop + 1]
        indptr = indptr - indptr[0] if a else indptr
        values = csr.data[a:b]
        if values.dtype != dtype:
            values = xp.astype(values, dtype)
        if inv_scale != 1.0:
            values = values * inv_scale
        return SparseBlock(indptr, csr.indices[a:b], values, (stop - start, self.d), self.ops)

    def _raw(self, start: int, stop: int) -> SparseBlock:
        return self._block(start, stop, self.dtype, self.inv_scale)

    def rows_at(self, start: int, stop: int) -> SparseBlock:
        return self._raw(start, stop)  # no shift: sparse data is never centred

    def _positions(self, indices: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Host ``(rows, lengths, positions)``: the rows ``indices``, their numbers of stored
        values, and where those values lie in X's arrays (one small host sync)."""
        idx = np.asarray(to_numpy(indices), dtype=np.int64).reshape(-1)
        ip = self.csr.host_indptr
        lengths = ip[idx + 1] - ip[idx]
        total = int(lengths.sum())
        pos = np.repeat(ip[idx] - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        return idx, lengths, pos

    def subset(self, indices: Any, weights: Any = None) -> SparseData:
        """The rows ``indices`` as a SparseData of their own (a copy of their stored values
        only), in the same frame (scale) and with the same kernel set: a mini-batch.

        ``indices``: host or device integers; ``weights``: the batch's weights (None: unit
        weights).  The subset shares this data's sparse operations and work blocks
        (``buffers``), not its per-data results (``cache``).
        """
        xp, csr = self.xp, self.csr
        _, lengths, pos = self._positions(indices)
        pos_d = xp.asarray(pos, device=self.device)
        host_ip = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        indptr = xp.astype(xp.asarray(host_ip, device=self.device), csr.indptr.dtype)
        sub_indices = self.ops.take(csr.indices, pos_d)
        sub_data = self.ops.take(csr.data, pos_d)
        m = int(lengths.shape[0])
        block = SparseBlock(indptr, sub_indices, sub_data, (m, self.d), self.ops)
        container = self.ops.matrix(block) if hasattr(self.ops, "matrix") else None
        sub = CSR(container, indptr, sub_indices, sub_data, (m, self.d), csr.library, xp,
                  self.device, host_indptr=host_ip)
        out = SparseData(sub, xp=xp, dtype=self.dtype, weights=weights,
                         n_clusters=self.n_clusters, kernels=self.kernels,
                         deterministic=self.ops.deterministic, ops=self.ops)
        out.budget, out.nnz_budget = self.budget, self.nnz_budget
        out.rows = min(max(m, 1), self.rows)
        out.scale, out.mean_variance = self.scale, self.mean_variance
        out.buffers = self.buffers  # work blocks (C^T): no fresh (d, k) block per batch
        return out

    def dense_rows(self, indices: Any, dtype: Any = None, *, working: bool = True,
                   transposed: bool = False) -> Any:
        """Rows ``indices`` as a dense (m, d) array (working coordinates, or X's values in
        ``dtype`` with ``working=False``).  For a few rows only: centres, candidates.

        ``transposed``: their C-contiguous transpose (d, m) instead, the right operand of
        a sparse-dense product (made directly: no (m, d) array, no transposing copy).
        """
        xp, csr = self.xp, self.csr
        dtype = dtype or self.dtype
        idx, lengths, pos = self._positions(indices)
        m = int(idx.shape[0])
        out_row = np.repeat(np.arange(m, dtype=np.int64), lengths)
        pos_d = xp.asarray(pos, device=self.device)
        cols = xp.astype(xp.take(csr.indices, pos_d), xp.int64)
        vals = xp.take(csr.data, pos_d)
        vals = vals if vals.dtype == dtype else xp.astype(vals, dtype)
        if working and self.scale != 1.0:
            vals = vals * self.inv_scale
        rows = xp.asarray(out_row, device=self.device)
        flat = cols * m + rows if transposed else rows * self.d + cols
        out = xp.zeros((m * self.d,), dtype=dtype, device=self.device)
        out = self.ops.scatter_add(out, flat, vals)  # distinct positions (canonical CSR)
        return xp.reshape(out, (self.d, m) if transposed else (m, self.d))

    def take_rows(self, indices: Any) -> Any:
        return self.dense_rows(indices)

    # -- passes over the stored values --------------------------------------------------
    def _value_ranges(self) -> Iterator[tuple[int, int]]:
        nnz = self.csr.nnz
        step = max(1, self.nnz_budget)
        for a in range(0, nnz, step):
            yield a, min(a + step, nnz)

    def _values(self, a: int, b: int, dtype: Any) -> Any:
        v = self.csr.data[a:b]
        return v if v.dtype == dtype else self.xp.astype(v, dtype)

    def check_finite_and_scale(self, name: str = "X", *, moments: bool = False) -> None:
        """Raise on NaN / inf among the stored values (scikit-learn checks ``X.data``);
        choose the power-of-two scale.  One pass over the values, one host sync."""
        xp = self.xp
        ok = amax = None
        for a, b in self._value_ranges():
            v = self._values(a, b, self.dtype)
            chunk_ok, chunk_max = xp.all(xp.isfinite(v)), xp.max(xp.abs(v))
            ok = chunk_ok if ok is None else xp.logical_and(ok, chunk_ok)
            amax = chunk_max if amax is None else xp.maximum(amax, chunk_max)
        if ok is None:  # no stored values: an all-zero matrix
            self.scale = 1.0
            return
        flags = to_numpy(xp.stack([xp.astype(ok, self.dtype), amax]))  # host sync
        if not bool(flags[0]):
            has_nan = any(bool(xp.any(xp.isnan(self._values(a, b, self.dtype))))
                          for a, b in self._value_ranges())
            raise ValueError(f"Input {name} contains {'NaN' if has_nan else 'infinity'}.")
        amax = float(flags[1])
        if amax > 2.0 ** LOG2_RANGE or 0.0 < amax < 2.0 ** -LOG2_RANGE:
            self.scale = 2.0 ** round(math.log2(amax))

    def center(self) -> None:
        """No centring; ``mean_variance`` (the scale of ``tol``) as scikit-learn's
        ``mean_variance_axis``: per column, ``(sum over stored (x - mean)^2 + (n - stored) *
        mean^2) / n`` (no cancellation), accumulated in float64 where the device has it."""
        xp, ops = self.xp, self.ops
        acc = self.accumulator_dtype()
        d, n = self.d, self.n
        dev = self.device
        col_sum = xp.zeros((d,), dtype=acc, device=dev)
        col_cnt = xp.zeros((d,), dtype=acc, device=dev)
        for a, b in self._value_ranges():
            cols = xp.astype(self.csr.indices[a:b], xp.int64)
            v = self._values(a, b, acc) * self.inv_scale
            col_sum = ops.scatter_add(col_sum, cols, v)
            col_cnt = ops.scatter_add(col_cnt, cols, xp.ones_like(v))
        mean = col_sum / n
        sq = xp.zeros((d,), dtype=acc, device=dev)
        for a, b in self._value_ranges():
            cols = xp.astype(self.csr.indices[a:b], xp.int64)
            v = self._values(a, b, acc) * self.inv_scale - xp.take(mean, cols)
            sq = ops.scatter_add(sq, cols, v * v)
        var = (sq + (n - col_cnt) * mean * mean) / n
        self.shift = None
        self.mean_variance = float(xp.mean(var))  # host sync
