"""The kernel set for ``metric='manhattan'`` (k-medians): L1 distances, any namespace.

The same whole-pass interface as :class:`~._reference.ReferenceKernels`, with every
"squared distance" read as the L1 distance ``sum_f |xt_f - c_f|``.  There is no product to
hand to BLAS: a chunk's (rows x k x d) block of differences is reduced over the features,
so chunks hold ``budget // (k * d)`` rows.  torch has ``cdist(p=1)``, which never builds
that block; every other namespace runs the standard code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._compat import accumulate, is_torch_namespace

if TYPE_CHECKING:  # the sources call the kernels: the kernels import no source
    from .._data import ChunkedData
from ._reference import ReferenceKernels, concat, weighted_total


class ManhattanKernels(ReferenceKernels):
    """L1 distances; the centre sums and counts of a Lloyd pass as in the reference set
    (the solver turns labels into weighted medians)."""

    name = "manhattan"

    def l1_block(self, Xt: Any, C: Any) -> Any:
        """L1 distances (m, k) of the rows of ``Xt`` to the rows of ``C``."""
        xp = self.xp
        if is_torch_namespace(xp):
            import torch

            return torch.cdist(Xt, C, p=1.0)
        m, d = int(Xt.shape[0]), int(Xt.shape[1])
        k = int(C.shape[0])
        step = max(1, (1 << 20) // max(1, k * d))
        parts = [xp.sum(xp.abs(Xt[s:min(s + step, m), None, :] - C[None, :, :]), axis=2)
                 for s in range(0, m, step)]
        return concat(parts, xp)

    def _rows(self, data: ChunkedData, k: int) -> int:
        return max(1, min(data.rows, data.budget // max(1, k)))

    def lloyd_pass(self, data, centers, *, need_inertia=False):
        xp = self.xp
        k = int(centers.shape[0])
        labels, sums, counts, inertia = [], None, None, None
        for _, _, Xt, w in data.chunks(self._rows(data, k)):
            mins, lab = self.min_argmin(self.l1_block(Xt, centers))
            labels.append(lab)
            s, c = self.cluster_sums(Xt, lab, w, k)
            sums, counts = accumulate(sums, s), accumulate(counts, c)
            if need_inertia:
                inertia = accumulate(inertia, weighted_total(mins, w, data))
        return concat(labels, xp), sums, counts, inertia

    def assign(self, data, centers):
        k = int(centers.shape[0])
        labels, mins = [], []
        for _, _, Xt, _ in data.chunks(self._rows(data, k)):
            m, lab = self.min_argmin(self.l1_block(Xt, centers))
            labels.append(lab)
            mins.append(m)
        return concat(labels, self.xp), concat(mins, self.xp)

    def labels_inertia(self, data, centers, *, return_inertia=True):
        k = int(centers.shape[0])
        labels, total = [], None
        for _, _, Xt, w in data.chunks(self._rows(data, k)):
            m, lab = self.min_argmin(self.l1_block(Xt, centers))
            labels.append(lab)
            if return_inertia:
                total = accumulate(total, weighted_total(m, w, data))
        return concat(labels, self.xp), total

    def sq_dist_to_assigned_chunk(self, Xt, centers, labels, buffers=None):
        xp = self.xp
        return xp.sum(xp.abs(Xt - xp.take(centers, labels, axis=0)), axis=1)

    def sq_distances(self, data, centers):
        k = int(centers.shape[0])
        return concat([self.l1_block(Xt, centers)
                       for _, _, Xt, _ in data.chunks(self._rows(data, k))], self.xp)

    def kpp_potentials(self, data, closest, cand):
        xp = self.xp
        acc = data.accumulator_dtype()
        pots = None
        for s, e, Xt, w in data.chunks(self._rows(data, int(cand.shape[0]))):
            D = xp.minimum(self.l1_block(Xt, cand), closest[s:e, None])
            p = xp.sum(D, axis=0) if w is None else xp.matmul(w, D)
            pots = accumulate(pots, xp.astype(p, acc))
        return pots

    def kpp_update(self, data, closest, center):
        xp = self.xp
        parts = []
        for s, e, Xt, _ in data.chunks(self._rows(data, 1)):
            d = self.l1_block(Xt, center)[:, 0]
            parts.append(d if closest is None else xp.minimum(closest[s:e], d))
        return concat(parts, xp)
