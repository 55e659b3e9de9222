"""The kernel set for sparse X (scipy.sparse, torch sparse CSR, cupyx.scipy.sparse).

Same whole-pass signatures as :class:`~kmeans_xp._kernels._reference.ReferenceKernels`,
so the solvers (Lloyd, relocation, k-means++, k-means||) run unchanged.  On a
:class:`~kmeans_xp._sparse.SparseData` the chunks are :class:`~kmeans_xp._sparse.SparseBlock`
views and

- distances are ``||x||^2 - 2 x.c + ||c||^2``: one sparse-dense product per chunk with the
  (d, k) matrix ``-2 C^T`` (contiguous, made once per pass); the row norms ``||x||^2`` are
  computed once per fit (float64 where the device has it) and kept in ``data.cache``;
- centre sums scatter each stored value into the dense (k, d) sums at (label, column):
  O(nnz) work, no dense chunk (a deterministic scatter on every device, see ``_sparse``);
- distances to the assigned centre (inertia, relocation, ``score``) are computed as
  scikit-learn's ``_inertia_sparse`` does: ``||c||^2 + sum over stored ((x - c)^2 - c^2)``,
  in float64 where the device has it.

On dense data (k-means|| reduces its dense candidates with the fit's kernel set) every
method hands over to the dense kernel set of the namespace.
"""

from __future__ import annotations

from typing import Any

from .._data import accumulate
from .._sparse import is_sparse_data
from ._reference import ReferenceKernels, concat, weighted_total


def _cast(xp: Any, x: Any, dtype: Any) -> Any:
    """``x`` in ``dtype``; no copy when it already is (``astype`` copies by default)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def _dense_fallback(method):
    """Run the dense kernel set's method of the same name on dense data."""
    name = method.__name__

    def wrapper(self, data, *args, **kwargs):
        if not is_sparse_data(data):
            return getattr(self.dense, name)(data, *args, **kwargs)
        return method(self, data, *args, **kwargs)

    wrapper.__name__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


class SparseKernels(ReferenceKernels):
    """Kernels for sparse X; ``dense`` is the namespace's kernel set for dense data.

    The chunk primitives on dense blocks (argmin of the distance block) are the dense
    set's.
    """

    name = "sparse"

    def __init__(self, xp: Any, device: Any, dtype: Any, *, precision: str = "exact",
                 deterministic: bool = True, dense: ReferenceKernels | None = None) -> None:
        super().__init__(xp, device, dtype, precision=precision, deterministic=deterministic)
        self.dense = dense or ReferenceKernels(xp, device, dtype, precision=precision,
                                               deterministic=deterministic)

    def __repr__(self) -> str:
        return f"<SparseKernels over {self.dense!r}>"

    def small_work(self, flops):
        return self.dense.small_work(flops)

    # -- dense primitives: the dense set's ---------------------------------------------
    def partial_sq_distances(self, Xt, m2t, c_sq, buffers=None):
        return self.dense.partial_sq_distances(Xt, m2t, c_sq, buffers)

    def min_argmin(self, D):
        return self.dense.min_argmin(D)

    def argmin_rows(self, D):
        return self.dense.argmin_rows(D)

    def cluster_sums(self, Xt, labels, w, k):
        return self.dense.cluster_sums(Xt, labels, w, k)

    def sq_dist_to_assigned_chunk(self, Xt, centers, labels, buffers=None):
        return self.dense.sq_dist_to_assigned_chunk(Xt, centers, labels, buffers)

    # -- helpers on sparse blocks -------------------------------------------------------
    def _terms(self, data: Any, centers: Any) -> tuple[Any, Any]:
        """``C^T`` (d, k), C-contiguous for the sparse-dense product (a block reused from
        pass to pass), and ``||c||^2`` (k,).

        With d in the hundreds of thousands these (k, d) operations cost as much as the
        products: the transpose is cache-blocked and the factor -2 is applied to the
        (rows, k) product instead of the (d, k) centres.
        """
        return data.ops.transpose(centers, data.buffers), data.ops.sq_norms(centers)

    def row_sq_norms(self, data: Any) -> Any:
        """``||xt_i||^2`` (n,) in the accumulator dtype, computed once per fit."""
        xp = self.xp
        if "sparse_x_sq" not in data.cache:
            acc = data.accumulator_dtype()
            parts = []
            for _, _, B, _ in data.chunks():
                v = _cast(xp, B.data, acc)
                parts.append(B.row_sums(v * v))
            data.cache["sparse_x_sq"] = concat(parts, xp)
        return data.cache["sparse_x_sq"]

    def _partial(self, B: Any, ct: Any, c_sq: Any) -> Any:
        """``||c_j||^2 - 2 x_i.c_j`` (m, k) of a block, from ``ct = C^T``."""
        D = B.matmul(ct)
        D *= -2.0
        D += c_sq
        return D

    def _assigned_sq(self, B: Any, centers: Any, c_sq_acc: Any, labels: Any) -> Any:
        """``||x_i - c_{labels_i}||^2`` (m,) in the accumulator dtype, clipped at 0:
        ``||c||^2 + sum over stored ((x - c)^2 - c^2)`` (scikit-learn's formula)."""
        xp = self.xp
        d = int(centers.shape[1])
        acc = c_sq_acc.dtype
        take = B.ops.take
        lab = take(labels, B.row_ids())
        cv = take(xp.reshape(centers, (-1,)), lab * d + _cast(xp, B.indices, xp.int64))
        cv = _cast(xp, cv, acc)
        diff = _cast(xp, B.data, acc) - cv
        per_row = B.row_sums(diff * diff - cv * cv) + take(c_sq_acc, labels)
        return xp.clip(per_row, min=0.0)

    def _c_sq_acc(self, data: Any, centers: Any) -> Any:
        """``||c||^2`` (k,) in the accumulator dtype."""
        xp = self.xp
        acc = data.accumulator_dtype()
        c = centers if centers.dtype == acc else _cast(xp, centers, acc)
        return data.ops.sq_norms(c)

    # -- whole passes -------------------------------------------------------------------
    @_dense_fallback
    def lloyd_pass(self, data, centers, *, need_inertia=False):
        xp, ops = self.xp, data.ops
        k, d = int(centers.shape[0]), int(centers.shape[1])
        ct, c_sq = self._terms(data, centers)
        x_sq = self.row_sq_norms(data) if need_inertia else None
        sums = xp.zeros((k * d,), dtype=data.dtype, device=data.device)
        counts = xp.zeros((k,), dtype=data.dtype, device=data.device)
        labels, inertia = [], None
        for s, e, B, w in data.chunks():
            D = self._partial(B, ct, c_sq)
            if need_inertia:
                mins, lab = self.dense.min_argmin(D)
                dist = xp.clip(_cast(xp, mins, x_sq.dtype) + x_sq[s:e], min=0.0)
                inertia = accumulate(inertia, weighted_total(
                    dist, None if w is None else _cast(xp, w, x_sq.dtype), data))
            else:
                lab = self.dense.argmin_rows(D)
            del D
            lab = _cast(xp, lab, xp.int64)
            labels.append(lab)
            rows = B.row_ids()
            vals = B.data if w is None else B.data * ops.take(w, rows)
            flat = ops.take(lab, rows) * d + _cast(xp, B.indices, xp.int64)
            sums = ops.scatter_add(sums, flat, vals)
            cw = xp.ones((e - s,), dtype=data.dtype, device=data.device) if w is None else w
            counts = ops.scatter_add(counts, lab, cw)
        return concat(labels, xp), xp.reshape(sums, (k, d)), counts, inertia

    @_dense_fallback
    def assign(self, data, centers):
        xp = self.xp
        ct, c_sq = self._terms(data, centers)
        x_sq = self.row_sq_norms(data)
        labels, mins = [], []
        for s, e, B, _ in data.chunks():
            m, lab = self.dense.min_argmin(self._partial(B, ct, c_sq))
            labels.append(_cast(xp, lab, xp.int64))
            dist = xp.clip(_cast(xp, m, x_sq.dtype) + x_sq[s:e], min=0.0)
            mins.append(_cast(xp, dist, data.dtype))
        return concat(labels, xp), concat(mins, xp)

    @_dense_fallback
    def labels_inertia(self, data, centers, *, return_inertia=True):
        xp = self.xp
        ct, c_sq = self._terms(data, centers)
        c_sq_acc = self._c_sq_acc(data, centers) if return_inertia else None
        labels, total = [], None
        for _, _, B, w in data.chunks():
            lab = _cast(xp, self.dense.argmin_rows(self._partial(B, ct, c_sq)), xp.int64)
            labels.append(lab)
            if return_inertia:
                dist = self._assigned_sq(B, centers, c_sq_acc, lab)
                total = accumulate(total, weighted_total(
                    dist, None if w is None else _cast(xp, w, dist.dtype), data))
        return concat(labels, xp), total

    @_dense_fallback
    def sq_dist_to_assigned(self, data, centers, labels):
        xp = self.xp
        c_sq_acc = self._c_sq_acc(data, centers)
        return concat([_cast(xp, self._assigned_sq(B, centers, c_sq_acc, labels[s:e]),
                                 data.dtype)
                       for s, e, B, _ in data.chunks()], xp)

    @_dense_fallback
    def inertia_for_labels(self, data, centers, labels):
        xp = self.xp
        c_sq_acc = self._c_sq_acc(data, centers)
        total = None
        for s, e, B, w in data.chunks():
            dist = self._assigned_sq(B, centers, c_sq_acc, labels[s:e])
            total = accumulate(total, weighted_total(
                dist, None if w is None else _cast(xp, w, dist.dtype), data))
        return total

    @_dense_fallback
    def sq_distances(self, data, centers):
        """Squared distances (n, k); the nearest centre's by the direct formula."""
        xp = self.xp
        k = int(centers.shape[0])
        ct, c_sq = self._terms(data, centers)
        c_sq_acc = self._c_sq_acc(data, centers)
        x_sq = self.row_sq_norms(data)
        ks = xp.arange(k, dtype=xp.int64, device=self.device)
        parts = []
        for s, e, B, _ in data.chunks():
            D = self._partial(B, ct, c_sq) + _cast(xp, x_sq[s:e], data.dtype)[:, None]
            lab = _cast(xp, self.dense.argmin_rows(D), xp.int64)
            exact = _cast(xp, self._assigned_sq(B, centers, c_sq_acc, lab), data.dtype)
            D = xp.where(lab[:, None] == ks[None, :], exact[:, None], D)
            parts.append(xp.clip(D, min=0.0))
        return concat(parts, xp)

    # -- greedy k-means++ ---------------------------------------------------------------
    def _kpp_dist(self, data, B, s, e, cand_t, c_sq_acc):
        """Squared distances (m, c) of a block to candidates (``cand_t``: their (d, c)
        transpose, contiguous), assembled in the accumulator dtype, clipped at 0."""
        xp = self.xp
        x_sq = self.row_sq_norms(data)
        prod = B.matmul(cand_t)
        D = x_sq[s:e, None] - 2.0 * _cast(xp, prod, x_sq.dtype) + c_sq_acc[None, :]
        return xp.clip(D, min=0.0)

    @_dense_fallback
    def kpp_potentials(self, data, closest, cand):
        xp = self.xp
        m = int(cand.shape[0])
        c_sq_acc = self._c_sq_acc(data, cand)
        cand_t = data.ops.contiguous(xp.matrix_transpose(cand))  # once, not per chunk
        acc = data.accumulator_dtype()
        pots = None
        for s, e, B, w in data.chunks(max(1, data.budget // max(m, 1))):
            D = _cast(xp, self._kpp_dist(data, B, s, e, cand_t, c_sq_acc), data.dtype)
            D = xp.minimum(D, closest[s:e, None])
            p = xp.sum(D, axis=0) if w is None else xp.matmul(w, D)
            pots = accumulate(pots, _cast(xp, p, acc))
        return pots

    @_dense_fallback
    def kpp_update(self, data, closest, center):
        xp = self.xp
        c_sq_acc = self._c_sq_acc(data, center)
        center_t = data.ops.contiguous(xp.matrix_transpose(center))
        parts = []
        for s, e, B, _ in data.chunks(data.budget):
            d = _cast(xp, self._kpp_dist(data, B, s, e, center_t, c_sq_acc)[:, 0], data.dtype)
            parts.append(d if closest is None else xp.minimum(closest[s:e], d))
        return concat(parts, xp)
