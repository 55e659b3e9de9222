"""NumPy fast paths for the chunk primitives (same signatures as the reference set)."""

from __future__ import annotations

import numpy as np

from ._buffers import buffer
from ._reference import ReferenceKernels

#: Above this many clusters the centre sums use ``bincount`` instead of a one-hot GEMM
#: (measured crossover on 2 cores: at k=32 the GEMM is 2x faster, at k=256 bincount is 1.6x).
NUMPY_ONEHOT_MAX_K = 64


class NumpyKernels(ReferenceKernels):
    """BLAS products into reused blocks, one-hot GEMM or ``bincount`` centre sums."""

    name = "numpy"

    def partial_sq_distances(self, Xt, m2t, c_sq, buffers=None):
        m, d = Xt.shape
        k = m2t.shape[1]
        new = lambda shape: np.empty(shape, dtype=Xt.dtype)  # noqa: E731
        out = buffer(buffers, "D", (m, k), Xt, new)
        if k >= 2 * d:
            # fold ||c||^2 into the product ([x, 1] @ [-2C^T; ||c||^2]): one pass over the
            # (m, k) output instead of two; 10-13 % faster at k >= 2d, neutral at k = d,
            # slower when k << d (the extra copy of the chunk then dominates)
            A = buffer(buffers, "A", (m, d + 1), Xt, new)
            A[:, :d] = Xt
            A[:, d] = 1.0
            return np.matmul(A, np.concatenate([m2t, c_sq[None, :]]), out=out)
        np.matmul(Xt, m2t, out=out)
        out += c_sq
        return out

    def cluster_sums(self, Xt, labels, w, k):
        m, d = Xt.shape
        if k <= NUMPY_ONEHOT_MAX_K:
            # a (k, m) one-hot built by scattering, then one GEMM
            oh = np.zeros((k, m), dtype=Xt.dtype)
            oh[labels, np.arange(m)] = 1 if w is None else w
            return oh @ Xt, oh.sum(axis=1)
        src = Xt if w is None else Xt * w[:, None]
        flat = (labels[:, None] * d + np.arange(d)).ravel()
        sums = np.bincount(flat, weights=src.ravel(), minlength=k * d).reshape(k, d)
        counts = np.bincount(labels, weights=w, minlength=k)
        return sums.astype(Xt.dtype, copy=False), counts.astype(Xt.dtype, copy=False)

    def _acc_chunk(self, Xt, data):
        acc = data.accumulator_dtype()
        if Xt.dtype == acc:
            return Xt
        buf = buffer(data.buffers, "acc", Xt.shape, Xt, lambda shape: np.empty(shape, acc))
        np.copyto(buf, Xt)
        return buf

    def sq_dist_to_assigned_chunk(self, Xt, centers, labels, buffers=None):
        m, d = Xt.shape
        buf = buffer(buffers, "G", (m, d), Xt, lambda shape: np.empty(shape, dtype=Xt.dtype))
        np.take(centers, labels, axis=0, out=buf)
        np.subtract(Xt, buf, out=buf)
        return np.einsum("ij,ij->i", buf, buf)
