"""CuPy fast paths for the chunk primitives (same signatures as the reference set)."""

from __future__ import annotations

from ._reference import ReferenceKernels


class CupyKernels(ReferenceKernels):  # pragma: no cover - needs a GPU
    """In-place bias add after the product; ``scatter_add`` centre sums when the user allows
    atomics (``deterministic=False``), else the reference one-hot product."""

    name = "cupy"

    def partial_sq_distances(self, Xt, m2t, c_sq, buffers=None):
        D = Xt @ m2t
        D += c_sq
        return D

    def cluster_sums(self, Xt, labels, w, k):
        if self.deterministic:
            return super().cluster_sums(Xt, labels, w, k)
        import cupy
        import cupyx

        m, d = Xt.shape
        src = Xt if w is None else Xt * w[:, None]
        sums = cupy.zeros((k, d), dtype=Xt.dtype)
        cupyx.scatter_add(sums, labels, src)
        ones = cupy.ones(m, dtype=Xt.dtype) if w is None else w
        counts = cupy.zeros(k, dtype=Xt.dtype)
        cupyx.scatter_add(counts, labels, ones)
        return sums, counts
