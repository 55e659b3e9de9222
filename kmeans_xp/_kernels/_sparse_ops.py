"""What the Array API standard has no word for, on sparse X, per library.

scipy.sparse (NumPy), torch sparse tensors (CPU, CUDA) and cupyx.scipy.sparse (CuPy): the
canonical CSR form of an input container (:func:`library_csr`) and the few operations the
sparse kernel set and :mod:`kmeans_xp._sparse` need (:class:`SparseOps`: a sparse-dense and a
sparse-sparse product, a deterministic scatter-add, segment sums, and the in-place writes of
the mini-batch step into the centres it owns).  Each library is imported inside the methods,
only once an input of that library has arrived.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from .._compat import device_of

if TYPE_CHECKING:
    from .._sparse import SparseBlock


class SparseOps:
    """Sparse-dense product, scatter-add and segment sums for one library."""

    name = "?"

    #: :meth:`products` multiplies by one centre at a time (no transposed copy of the
    #: centres) when a pass stores at most this many values per feature; see there
    matvec_max_nnz_per_feature = 0.0

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

    def products(self, C: Any, nnz: int, buffers: dict | None = None) -> Any:
        """A function ``block -> block @ C^T`` (m, k) for a pass over ``nnz`` stored values
        with the (k, d) centres ``C``, prepared once per pass.

        Two ways: one transposed copy of the centres (d, k), made here, then one
        sparse-dense product per block (each stored value reads a contiguous row of k
        centre values: the way for passes over many values); or, where the pass stores
        at most ``matvec_max_nnz_per_feature * d`` values (a mini-batch of wide data), one
        sparse matrix-vector product per centre, which reads the centres in place: no
        O(k d) copy per pass.
        """
        k, d = int(C.shape[0]), int(C.shape[1])
        if k > 0 and nnz <= self.matvec_limit(C) * d:
            return lambda block: self.by_centre(block, C)
        ct = self.transpose(C, buffers)
        return lambda block: self.spmm(block, ct)

    def matvec_limit(self, C: Any) -> float:
        """Stored values per feature up to which :meth:`products` goes by centre."""
        return self.matvec_max_nnz_per_feature

    def by_centre(self, block: SparseBlock, C: Any) -> Any:  # pragma: no cover - abstract
        """``block @ C^T`` (m, k) by one sparse matrix-vector product per centre."""
        raise NotImplementedError

    # -- in-place writes into centres the caller owns (the mini-batch step) ---------------
    def private_copy(self, C: Any) -> Any:
        """A C-contiguous copy of ``C`` that nothing else references."""
        return self.contiguous(self.xp.asarray(C, copy=True))  # pragma: no cover - overridden

    def is_contiguous(self, C: Any) -> bool:
        return False  # pragma: no cover - overridden

    def flat_view(self, C: Any) -> Any:
        """The C-contiguous ``C`` as a 1-D view (writes reach ``C``)."""
        return self.xp.reshape(C, (-1,), copy=False)  # pragma: no cover - overridden

    def copy_into(self, dst: Any, src: Any) -> None:
        """``dst[...] = src`` in place (same shape)."""
        dst[...] = src

    def zero_rows(self, C: Any, index: Any) -> None:
        """``C[index] = 0`` in place (``index``: int64 row numbers)."""
        C[index] = 0

    #: rows of at least this many features are scaled / normed one by one (CPU) ...
    ROW_LOOP_MIN_FEATURES = 4096
    #: ... when fewer than this fraction of them change
    row_loop_max_fraction = 1.0

    def rows_of_mask(self, mask: Any, d: int) -> Any:
        """The rows where ``mask`` (k,) as host ints, for :meth:`scale_rows` and
        :meth:`update_sq_norms` to touch only those; or None: whole-array operations (the
        default; on the CPU, libraries loop over wide rows, O(rows x d))."""
        return None

    def scale_rows(self, C: Any, factor: Any, rows: Any) -> None:
        """``C *= factor[:, None]`` in place, where ``factor`` is 1 outside ``rows``."""
        C *= factor[:, None]

    def update_sq_norms(self, C: Any, sq: Any, rows: Any) -> Any:
        """``||c_i||^2`` (k,) of ``C``, given ``sq``, those of C before its ``rows`` changed
        (None: unknown)."""
        return self.sq_norms(C)

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


class _ScipyOps(SparseOps):
    """scipy.sparse on NumPy arrays (and the template of the cupyx set)."""

    name = "scipy"
    # measured on 2 cores (float64, k = 32..500): per-centre products beat transposing the
    # centres + one product from d = 2**12 to 2**18 up to about one stored value per
    # feature (TF-IDF mini-batch of 1024 rows, d = 2**18, k = 100: 32 ms against 51 ms);
    # a pass over many more values than d (a Lloyd pass) reads the transposed copy
    matvec_max_nnz_per_feature = 1.0

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

    def by_centre(self, block, C):
        M = self.matrix(block)
        out = np.empty((C.shape[0], block.shape[0]), dtype=np.result_type(block.dtype, C.dtype))
        for j in range(C.shape[0]):
            out[j] = M @ C[j]
        return out.T

    def private_copy(self, C):
        return np.array(C, order="C", copy=True)

    def is_contiguous(self, C):
        return bool(C.flags.c_contiguous and C.flags.writeable)

    def flat_view(self, C):
        flat = C.reshape(-1)
        assert np.shares_memory(flat, C)
        return flat

    def copy_into(self, dst, src):
        np.copyto(dst, src)

    def rows_of_mask(self, mask, d):
        # one row at a time costs what a whole-array operation does when every row
        # changes (16 ms for (100, 2**18)), and less in proportion when fewer do
        if d < self.ROW_LOOP_MIN_FEATURES:
            return None
        rows = np.flatnonzero(mask)
        return rows if rows.shape[0] <= self.row_loop_max_fraction * mask.shape[0] else None

    def scale_rows(self, C, factor, rows):
        if rows is None:
            C *= factor[:, None]
            return
        for j in rows:
            C[j] *= factor[j]

    def update_sq_norms(self, C, sq, rows):
        if rows is None or sq is None:
            return self.sq_norms(C)
        for j in rows:
            sq[j] = np.einsum("i,i->", C[j], C[j])
        return sq

    def row_ids(self, indptr, nnz):
        m = int(indptr.shape[0]) - 1
        return np.repeat(np.arange(m, dtype=np.int64), np.diff(indptr))

    def scatter_add(self, target, index, values):
        np.add.at(target, index, values)  # a serial loop in index order: deterministic
        return target

    def segment_sums(self, indptr, values, m):
        ids = self.row_ids(indptr, int(values.shape[0]))
        return np.bincount(ids, weights=values, minlength=m).astype(values.dtype, copy=False)


class _TorchOps(SparseOps):
    """torch sparse CSR tensors (CPU and CUDA)."""

    name = "torch"
    row_loop_max_fraction = 0.5
    # CPU, 2 threads: per-centre products 13.7 ms against 62 ms for the transposing copy +
    # product (TF-IDF mini-batch, d = 2**18, k = 100); on CUDA the transposed copy is cheap
    # and k launches are not: see matvec_limit()
    matvec_max_nnz_per_feature = 1.0

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

        if C.device.type == "cpu":
            # vecdot multiplies into a (k, d) temporary, then reduces it: 110 ms for
            # (100, 2**18) float64 on 2 cores, against 8 ms for the norm (squared)
            return torch.linalg.vector_norm(C, dim=-1).square_()
        return torch.linalg.vecdot(C, C)

    def take(self, a, index):
        return a.index_select(0, index)  # array_api_compat's take checks indices first

    def matvec_limit(self, C):
        return self.matvec_max_nnz_per_feature if C.device.type == "cpu" else 0.0

    def by_centre(self, block, C):
        import torch

        # int64 indices: with int32 ones, torch.mv converts them at every call (measured
        # 3-20x slower on a batch of 100k stored values)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            M = torch.sparse_csr_tensor(block.indptr.to(torch.int64),
                                        block.indices.to(torch.int64), block.data,
                                        size=block.shape, check_invariants=False)
        out = torch.empty((C.shape[0], block.shape[0]), dtype=C.dtype, device=C.device)
        # on one thread: k short parallel regions a step wait for descheduled OpenMP
        # threads on a busy machine (k = 100, 100k values, 2 cores shared with a 2-thread
        # job: 192 ms against 56 ms on one thread; 14 ms against 25 ms on idle cores)
        with torch_one_thread():
            for j in range(C.shape[0]):
                torch.mv(M, C[j], out=out[j])
        return out.T

    def private_copy(self, C):
        import torch

        return C.clone(memory_format=torch.contiguous_format)

    def is_contiguous(self, C):
        return bool(C.is_contiguous())

    def flat_view(self, C):
        return C.view(-1)

    def copy_into(self, dst, src):
        dst.copy_(src)

    def zero_rows(self, C, index):
        C.index_fill_(0, index, 0)

    def rows_of_mask(self, mask, d):
        # rows one by one (on one thread: a parallel region per row is the trap of
        # by_centre) only when fewer than half change: else one parallel operation
        if mask.device.type != "cpu" or d < self.ROW_LOOP_MIN_FEATURES:
            return None
        rows = np.flatnonzero(mask.numpy())
        return rows if rows.shape[0] <= self.row_loop_max_fraction * mask.shape[0] else None

    def scale_rows(self, C, factor, rows):
        if rows is None:
            C *= factor[:, None]
            return
        with torch_one_thread():
            f = factor.tolist()
            for j in rows.tolist():
                C[j].mul_(f[j])

    def update_sq_norms(self, C, sq, rows):
        import torch

        if rows is None or sq is None:
            return self.sq_norms(C)
        with torch_one_thread():
            for j in rows.tolist():
                sq[j] = torch.dot(C[j], C[j])
        return sq

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


@contextmanager
def torch_one_thread():
    """torch's intra-op pool on one thread (process-wide), restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class _CupyOps(_ScipyOps):  # pragma: no cover - needs a GPU
    """cupyx.scipy.sparse on CuPy arrays: the scipy set's calls, on the device."""

    name = "cupy"

    def __init__(self, xp: Any, deterministic: bool = True) -> None:
        SparseOps.__init__(self, xp, deterministic)
        import cupyx.scipy.sparse

        self.sp = cupyx.scipy.sparse

    def matrix(self, block):
        return self.sp.csr_matrix((block.data, block.indices, block.indptr),
                                  shape=block.shape, copy=False)

    matvec_max_nnz_per_feature = 0.0  # on a GPU the transposed copy is cheap

    def contiguous(self, a):
        import cupy

        return cupy.ascontiguousarray(a)

    def private_copy(self, C):
        import cupy

        return cupy.array(C, order="C", copy=True)

    def is_contiguous(self, C):
        return bool(C.flags.c_contiguous)

    def flat_view(self, C):
        return C.reshape(-1)

    def copy_into(self, dst, src):
        import cupy

        cupy.copyto(dst, src)

    def rows_of_mask(self, mask, d):
        return None  # whole-array operations on the device (no host sync)

    def row_ids(self, indptr, nnz):
        return SparseOps.row_ids(self, indptr, nnz)

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
        return SparseOps.segment_sums(self, indptr, values, m)


# -- the canonical CSR form of an input container ------------------------------------------
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


def library_csr(X: Any, library: str, name: str) -> tuple[Any, Any, Any, Any]:
    """``(container, indptr, indices, data)`` of the canonical CSR form of a sparse ``X``
    of ``library`` ('scipy', 'torch' or 'cupy'): a copy only when the format or duplicate
    entries require one."""
    if library == "scipy":
        X = _scipy_csr(X, name)
        return X, X.indptr, X.indices, X.data
    if library == "torch":
        X = _torch_csr(X, name)
        return X, X.crow_indices(), X.col_indices(), X.values()
    if library == "cupy":  # pragma: no cover - needs a GPU
        X = _cupy_csr(X, name)
        return X, X.indptr, X.indices, X.data
    raise TypeError(f"{name} is not a sparse matrix.")  # pragma: no cover - checked before


def ops_for(library: str, xp: Any, deterministic: bool = True) -> SparseOps:
    """The operations of ``library`` on arrays of ``xp``."""
    return {"scipy": _ScipyOps, "torch": _TorchOps, "cupy": _CupyOps}[library](xp, deterministic)
