"""The kernel set for sparse X (scipy.sparse, torch sparse CSR, cupyx.scipy.sparse).

Same whole-pass signatures as :class:`~kmeans_xp._kernels._reference.ReferenceKernels`,
so the solvers (Lloyd, relocation, k-means++, k-means||) run unchanged.  On a
:class:`~kmeans_xp._sparse.SparseData` the chunks are :class:`~kmeans_xp._sparse.SparseBlock`
views and

- distances are ``||x||^2 - 2 x.c + ||c||^2``: one sparse-dense product per chunk with the
  (d, k) matrix ``C^T`` (contiguous, made once per pass), or, for a pass over fewer stored
  values than about d (a mini-batch of wide data), one sparse matrix-vector product per
  centre (no copy of the centres; ``SparseOps.products``); the row norms ``||x||^2`` are
  computed once per fit (float64 where the device has it) and kept in ``data.cache``;
- centre sums scatter each stored value into the dense (k, d) sums at (label, column):
  O(nnz) work, no dense chunk (a deterministic scatter on every device, see ``_sparse``);
- distances to the assigned centre (inertia, relocation, ``score``) are computed as
  scikit-learn's ``_inertia_sparse`` does: ``||c||^2 + sum over stored ((x - c)^2 - c^2)``,
  in float64 where the device has it;
- a mini-batch step (:meth:`SparseKernels.minibatch_move`) updates the centres it owns in
  place, as scikit-learn's ``_minibatch_update_sparse``: the centres that received points
  are scaled by ``W / W'`` and the batch's stored values are scattered into them (O(nnz)),
  no (k, d) sums nor temporaries; the centres' squared norms are carried to the next step.

On dense data (k-means|| reduces its dense candidates with the fit's kernel set) every
method hands over to the dense kernel set of the namespace.
"""

from __future__ import annotations

import functools
from typing import Any

from .._compat import accumulate
from ._reference import BatchStats, ReferenceKernels, concat, weighted_total


def is_sparse_data(data: Any) -> bool:
    """Whether ``data`` holds sparse X (:class:`kmeans_xp._sparse.SparseData` says so with its
    class attribute ``sparse``), read without importing the source layer above the kernels."""
    return bool(getattr(data, "sparse", False))


def _cast(xp: Any, x: Any, dtype: Any) -> Any:
    """``x`` in ``dtype``; no copy when it already is (``astype`` copies by default)."""
    return x if x.dtype == dtype else xp.astype(x, dtype)


def _dense_fallback(method):
    """Run the dense kernel set's method of the same name on dense data."""
    name = method.__name__

    @functools.wraps(method)  # the signature seen by inspect is the method's
    def wrapper(self, data, *args, **kwargs):
        if not is_sparse_data(data):
            return getattr(self.dense, name)(data, *args, **kwargs)
        return method(self, data, *args, **kwargs)

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
    def _terms(self, data: Any, centers: Any, c_sq: Any = None) -> tuple[Any, Any]:
        """``block -> block @ C^T`` for the pass (``data.ops.products``: a transposed copy
        of the centres in a block reused from pass to pass, or products by centre), and
        ``||c||^2`` (k,) (unless given).

        With d in the hundreds of thousands these (k, d) operations cost as much as the
        products: the transpose is cache-blocked and the factor -2 is applied to the
        (rows, k) product instead of the (d, k) centres.
        """
        product = data.ops.products(centers, data.csr.nnz, data.buffers)
        return product, data.ops.sq_norms(centers) if c_sq is None else c_sq

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

    def _partial(self, B: Any, product: Any, c_sq: Any) -> Any:
        """``||c_j||^2 - 2 x_i.c_j`` (m, k) of a block (``product``: from :meth:`_terms`)."""
        D = product(B)
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
    def _pass(self, data: Any, centers: Any, *, need_sums: bool, need_inertia: bool,
              c_sq: Any = None) -> tuple[Any, Any, Any, Any]:
        """Labels, sums (with ``need_sums``, else None), weights per centre and inertia
        (with ``need_inertia``, else None) of a pass over sparse ``data``."""
        xp, ops = self.xp, data.ops
        k, d = int(centers.shape[0]), int(centers.shape[1])
        product, c_sq = self._terms(data, centers, c_sq)
        x_sq = self.row_sq_norms(data) if need_inertia else None
        sums = xp.zeros((k * d,), dtype=data.dtype, device=data.device) if need_sums else None
        counts = xp.zeros((k,), dtype=data.dtype, device=data.device)
        labels, inertia = [], None
        for s, e, B, w in data.chunks():
            D = self._partial(B, product, c_sq)
            if need_inertia:
                assert x_sq is not None  # computed above with need_inertia
                mins, lab = self.dense.min_argmin(D)
                dist = xp.clip(_cast(xp, mins, x_sq.dtype) + x_sq[s:e], min=0.0)
                inertia = accumulate(inertia, weighted_total(
                    dist, None if w is None else _cast(xp, w, x_sq.dtype), data))
            else:
                lab = self.dense.argmin_rows(D)
            del D
            lab = _cast(xp, lab, xp.int64)
            labels.append(lab)
            if need_sums:
                rows = B.row_ids()
                vals = B.data if w is None else B.data * ops.take(w, rows)
                flat = ops.take(lab, rows) * d + _cast(xp, B.indices, xp.int64)
                sums = ops.scatter_add(sums, flat, vals)
            cw = xp.ones((e - s,), dtype=data.dtype, device=data.device) if w is None else w
            counts = ops.scatter_add(counts, lab, cw)
        if need_sums:
            sums = xp.reshape(sums, (k, d))
        return concat(labels, xp), sums, counts, inertia

    @_dense_fallback
    def lloyd_pass(self, data, centers, *, need_inertia=False):
        return self._pass(data, centers, need_sums=True, need_inertia=need_inertia)

    @_dense_fallback
    def assign(self, data, centers):
        xp = self.xp
        product, c_sq = self._terms(data, centers)
        x_sq = self.row_sq_norms(data)
        labels, mins = [], []
        for s, e, B, _ in data.chunks():
            m, lab = self.dense.min_argmin(self._partial(B, product, c_sq))
            labels.append(_cast(xp, lab, xp.int64))
            dist = xp.clip(_cast(xp, m, x_sq.dtype) + x_sq[s:e], min=0.0)
            mins.append(_cast(xp, dist, data.dtype))
        return concat(labels, xp), concat(mins, xp)

    @_dense_fallback
    def labels_inertia(self, data, centers, *, return_inertia=True):
        xp = self.xp
        product, c_sq = self._terms(data, centers)
        c_sq_acc = self._c_sq_acc(data, centers) if return_inertia else None
        labels, total = [], None
        for _, _, B, w in data.chunks():
            lab = _cast(xp, self.dense.argmin_rows(self._partial(B, product, c_sq)), xp.int64)
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
        product, c_sq = self._terms(data, centers)
        c_sq_acc = self._c_sq_acc(data, centers)
        x_sq = self.row_sq_norms(data)
        ks = xp.arange(k, dtype=xp.int64, device=self.device)
        parts = []
        for s, e, B, _ in data.chunks():
            D = self._partial(B, product, c_sq) + _cast(xp, x_sq[s:e], data.dtype)[:, None]
            lab = _cast(xp, self.dense.argmin_rows(D), xp.int64)
            exact = _cast(xp, self._assigned_sq(B, centers, c_sq_acc, lab), data.dtype)
            D = xp.where(lab[:, None] == ks[None, :], exact[:, None], D)
            parts.append(xp.clip(D, min=0.0))
        return concat(parts, xp)

    # -- mini-batch steps ---------------------------------------------------------------
    @staticmethod
    def _carried_sq_norms(work: dict | None, centers: Any) -> Any:
        """``||c||^2`` (k,) that :meth:`minibatch_move` left in ``work`` for ``centers``
        (None if it holds none for that very array)."""
        if work is not None and work.get("sq_of") is centers:
            return work["sq"]
        return None

    @_dense_fallback
    def minibatch_assign(self, data, centers, work=None):
        """Labels, weights per centre and inertia of a sparse batch; no centre sums (the
        update scatters the batch into the centres), and the centres' squared norms carried
        from the previous step when ``work`` holds them."""
        c_sq = self._carried_sq_norms(work, centers)
        if c_sq is None:
            c_sq = data.ops.sq_norms(centers)
            if work is not None:  # for minibatch_move to update the changed rows only
                work["sq"], work["sq_of"] = c_sq, centers
        labels, _, wsum, inertia = self._pass(data, centers, need_sums=False,
                                              need_inertia=True, c_sq=c_sq)
        return BatchStats(wsum, inertia, labels=labels)

    def minibatch_move(self, data, stats, centers, counts, counts_new, *, reassign=None,
                       need_diff=False, owned=False, work=None):
        """scikit-learn's update of the centres by a sparse batch, in place.

        On the centres the caller owns (else on one private copy, made once: the solver
        then owns it), as ``_minibatch_update_sparse``: the centres j that received weight
        are scaled by ``W_j / W'_j``, then each stored value x of a batch row i is added,
        times ``w_i / W'_{l_i}``, at (l_i, column): O(nnz), no (k, d) sums, no (k, d)
        temporaries.  The result equals the reference's ``(c W + S) / W'`` up to rounding.
        Reassigned centres are overwritten in place by their batch rows' stored values (no
        dense copy of the rows).  The squared norms of the changed centres are updated in
        ``work`` for the next :meth:`minibatch_assign`.  On the CPU the scaling and the norms
        go row by row over the changed centres only (``SparseOps.rows_of_mask``): a step
        costs O(k_changed d + nnz of the batch + k nnz for the products); elsewhere they are
        whole-array operations (the other centres scaled by 1: exactly unchanged).  With
        ``need_diff`` (``tol > 0``) the centres before the step are copied into a (k, d)
        block kept in ``work`` (one per fit), and the shift is read from it: O(k d).

        Statistics that carry the sums (a dense batch, the reference's assignment) take
        the reference's update.
        """
        if stats.sums is not None or stats.labels is None or not is_sparse_data(data):
            return super().minibatch_move(data, stats, centers, counts, counts_new,
                                          reassign=reassign, need_diff=need_diff,
                                          owned=owned, work=work)
        xp, ops = self.xp, data.ops
        d = int(centers.shape[1])
        c_sq = self._carried_sq_norms(work, centers)  # (the copy's, too)
        C = centers if owned and ops.is_contiguous(centers) else ops.private_copy(centers)
        prev = None
        if need_diff:
            prev = None if work is None else work.get("prev")
            if prev is None or prev.shape != C.shape or prev.dtype != C.dtype:
                prev = ops.private_copy(C)
                if work is not None:
                    work["prev"] = prev
            else:
                ops.copy_into(prev, C)
        has = stats.wsum > 0
        one = xp.ones_like(counts_new)
        inv = 1.0 / xp.where(has, counts_new, one)
        rows = ops.rows_of_mask(has, d)  # host row numbers (CPU: O(touched x d)) or None
        ops.scale_rows(C, xp.where(has, counts * inv, one), rows)  # W / W'; 1 for the others
        flat = ops.flat_view(C)
        for s, e, B, w in data.chunks():
            lab = stats.labels[s:e]
            f = ops.take(inv, lab)  # w_i / W'_{l_i} per row (0 for a zero weight)
            if w is not None:
                f = f * w
            of_value = B.row_ids()
            ops.scatter_add(flat, ops.take(lab, of_value) * d + _cast(xp, B.indices, xp.int64),
                            B.data * ops.take(f, of_value))
        if reassign is not None:  # zero the rows, then scatter the picked rows' values
            target = _cast(xp, xp.nonzero(reassign.mask)[0], xp.int64)
            ops.zero_rows(C, target)
            picked = data.subset(reassign.picked)
            for s, e, B, _ in picked.chunks():
                flat_rows = ops.take(target[s:e], B.row_ids()) * d
                ops.scatter_add(flat, flat_rows + _cast(xp, B.indices, xp.int64), B.data)
            rows = ops.rows_of_mask(xp.logical_or(has, reassign.mask), d)
        c_sq = ops.update_sq_norms(C, c_sq, rows)
        diff = None
        if need_diff:
            prev -= C
            diff = xp.sum(ops.sq_norms(prev))
        if work is not None:
            work["sq"], work["sq_of"] = c_sq, C
        return C, diff

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
