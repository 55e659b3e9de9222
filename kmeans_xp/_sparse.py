"""Sparse X: scipy.sparse, torch sparse tensors and cupyx.scipy.sparse, read in row blocks.

A sparse input becomes a :class:`CSR`: its three arrays (``indptr``, ``indices``,
``data``) in the namespace of its library (NumPy for scipy, torch, CuPy), a host copy
of ``indptr`` (row boundaries of chunks without device syncs) and a small
:class:`SparseOps` object with the few operations the Array API standard has no word for
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

A sparse input is recognised by :func:`kmeans_xp._compat.is_sparse` (through ``sys.modules``:
no library is imported); what each library must do itself (the canonical CSR form of a container,
the
sparse products, scatter-adds) is behind the kernel seam, in
:mod:`kmeans_xp._kernels._sparse_ops`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import numpy as np

from ._compat import (  # is_sparse: re-exported, its home is _compat (it names backends)
    array_namespace,
    compute_dtype,
    device_of,
    is_sparse,
    sparse_library,
    to_numpy,
)
from ._data import ChunkedData
from ._exceptions import DataTypeError
from ._frame import Frame
from ._kernels._sparse_ops import SparseOps, library_csr, ops_for

__all__ = ["CSR", "SparseBlock", "SparseData", "is_sparse", "is_sparse_data", "sparse_input"]


def is_sparse_data(data: Any) -> TypeGuard[SparseData]:
    """Whether a :class:`ChunkedData` holds sparse X (its chunks are :class:`SparseBlock`)."""
    return isinstance(data, SparseData)


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
    host_indptr: np.ndarray = field(repr=False)  # indptr on the host (int64)

    @property
    def nnz(self) -> int:
        return int(self.host_indptr[-1])

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return 2


def to_csr(X: Any, name: str = "X") -> CSR:
    """The canonical CSR form of a sparse ``X`` (a copy only when the format or duplicate
    entries require one)."""
    library = sparse_library(X)
    if library is None:  # pragma: no cover - callers check is_sparse first
        raise TypeError(f"{name} is not a sparse matrix.")
    X, indptr, indices, data = library_csr(X, library, name)
    xp = array_namespace(data)
    return CSR(X, indptr, indices, data, (int(X.shape[0]), int(X.shape[1])), library, xp,
               device_of(data), host_indptr=np.asarray(to_numpy(indptr), dtype=np.int64))


def sparse_input(X: Any, name: str, owner: str) -> tuple[CSR, Any, Any]:
    """``(csr, storage dtype, compute dtype)`` of a sparse X: cheap checks (shape, dtype),
    before any pass over the values.  Raises as the dense checks do."""
    from ._validation import check_2d

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
    ops: SparseOps
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
    can_centre = False

    def __init__(self, csr: CSR, *, xp: Any, dtype: Any, weights: Any = None,
                 n_clusters: int = 1, chunk_size: int | None = None, kernels: Any = None,
                 deterministic: bool = True, ops: SparseOps | None = None) -> None:
        from ._compat import default_chunk_budget, is_float64_supported

        self.csr = csr
        self.X = csr.container
        self.xp = xp
        self.device = csr.device
        self.dtype = dtype
        self.weights = weights
        self.n, self.d = csr.shape
        self.n_clusters = n_clusters
        self.ops = ops or ops_for(csr.library, xp, deterministic)
        self.budget = default_chunk_budget(xp, self.device)
        if chunk_size:
            self.budget = chunk_size * max(n_clusters, 1)
        self.nnz_budget = max(self.budget, 1)
        self.rows = min(self.n, chunk_size or max(1, self.budget // max(n_clusters, 1)))
        self._bounds: dict = {}
        if ops is None:  # a subset (ops given) lies within a checked X: no query per batch
            self.check_memory(n_clusters)
        self.frame = Frame()
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
        out.use_frame(self.frame)
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

    def check_and_amax(self, name: str = "X", *, moments: bool = True) -> float:
        """Raise on NaN / inf among the stored values (scikit-learn checks ``X.data``); the
        largest magnitude.  One pass over the values, one host sync."""
        xp = self.xp
        ok = amax = None
        for a, b in self._value_ranges():
            v = self._values(a, b, self.dtype)
            chunk_ok, chunk_max = xp.all(xp.isfinite(v)), xp.max(xp.abs(v))
            ok = chunk_ok if ok is None else xp.logical_and(ok, chunk_ok)
            amax = chunk_max if amax is None else xp.maximum(amax, chunk_max)
        if ok is None:  # no stored values: an all-zero matrix
            return 0.0
        flags = to_numpy(xp.stack([xp.astype(ok, self.dtype), amax]))  # host sync
        if not bool(flags[0]):
            has_nan = any(bool(xp.any(xp.isnan(self._values(a, b, self.dtype))))
                          for a, b in self._value_ranges())
            raise ValueError(f"Input {name} contains {'NaN' if has_nan else 'infinity'}.")
        return float(flags[1])

    def moments(self, scale: float, metric: Any) -> tuple[Any, Any, Any]:
        """``(n, mean, total variance)`` in working units: the variance as scikit-learn's
        ``mean_variance_axis``: per column, ``(sum over stored (x - mean)^2 + (n - stored) *
        mean^2) / n`` (no cancellation), accumulated in float64 where the device has it.
        (Sparse data is never centred: :attr:`can_centre`.)"""
        xp, ops = self.xp, self.ops
        acc = self.accumulator_dtype()
        d, n = self.d, self.n
        dev = self.device
        col_sum = xp.zeros((d,), dtype=acc, device=dev)
        col_cnt = xp.zeros((d,), dtype=acc, device=dev)
        for a, b in self._value_ranges():
            cols = xp.astype(self.csr.indices[a:b], xp.int64)
            v = self._values(a, b, acc) * (1.0 / scale)
            col_sum = ops.scatter_add(col_sum, cols, v)
            col_cnt = ops.scatter_add(col_cnt, cols, xp.ones_like(v))
        mean = col_sum / n
        sq = xp.zeros((d,), dtype=acc, device=dev)
        for a, b in self._value_ranges():
            cols = xp.astype(self.csr.indices[a:b], xp.int64)
            v = self._values(a, b, acc) * (1.0 / scale) - xp.take(mean, cols)
            sq = ops.scatter_add(sq, cols, v * v)
        var = (sq + (n - col_cnt) * mean * mean) / n
        host = np.asarray(to_numpy(xp.stack([mean, var])), dtype=np.float64)  # host sync
        return n, host[0], float(np.sum(host[1]))
