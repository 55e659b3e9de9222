"""torch fast paths for the chunk primitives (CPU and CUDA; same signatures as the reference)."""

from __future__ import annotations

from contextlib import nullcontext

from ._buffers import buffer
from ._reference import ReferenceKernels, onehot
from ._sparse_ops import torch_one_thread as _one_thread  # one helper for both sets


class TorchKernels(ReferenceKernels):
    """``addmm`` into reused blocks, ``min(dim=1)``, ``index_add_`` centre sums.

    On CUDA, ``index_add_`` accumulates with float atomics (the order is not fixed): with
    ``deterministic=True`` (the default) the centre sums there are a one-hot product
    instead, which cuBLAS computes in a fixed order.
    """

    name = "torch"

    #: below this many flops per operation, torch CPU runs a loop of them on one thread
    #: (a 1024 x 16 x 16 product took 10 us on one thread, 10 ms on two busy cores)
    SMALL_WORK_FLOPS = 1 << 24

    def small_work(self, flops):
        if getattr(self.device, "type", "cpu") != "cpu" or flops > self.SMALL_WORK_FLOPS:
            return nullcontext()
        return _one_thread()

    def partial_sq_distances(self, Xt, m2t, c_sq, buffers=None):
        import torch

        m, k = Xt.shape[0], m2t.shape[1]
        out = buffer(buffers, "D", (m, k), Xt,
                     lambda shape: torch.empty(shape, dtype=Xt.dtype, device=Xt.device))
        return torch.addmm(c_sq, Xt, m2t, out=out)

    def min_argmin(self, D):
        import torch

        vals, idx = torch.min(D, dim=1)
        return vals, idx

    def argmin_rows(self, D):
        return D.min(dim=1).indices

    def cluster_sums(self, Xt, labels, w, k):
        import torch

        if Xt.device.type != "cpu" and self.deterministic:
            oh = onehot(labels, k, Xt.dtype, torch)
            if w is not None:
                oh = oh * w[:, None]
            return oh.T @ Xt, oh.sum(dim=0)
        # index_add_ is ~15x faster than a one-hot product or a sort on torch CPU
        m, d = Xt.shape
        src = Xt if w is None else Xt * w[:, None]
        sums = torch.zeros((k, d), dtype=Xt.dtype, device=Xt.device).index_add_(0, labels, src)
        ones = torch.ones(m, dtype=Xt.dtype, device=Xt.device) if w is None else w
        counts = torch.zeros(k, dtype=Xt.dtype, device=Xt.device).index_add_(0, labels, ones)
        return sums, counts

    def _acc_chunk(self, Xt, data):
        # a reused block: a fresh float64 copy per chunk grew torch CPU's resident set by
        # ~7x the chunk (glibc fragmentation) in k-means++ on streamed data
        import torch

        acc = data.accumulator_dtype()
        if Xt.dtype == acc:
            return Xt
        buf = buffer(data.buffers, "acc", tuple(Xt.shape), Xt,
                     lambda shape: torch.empty(shape, dtype=acc, device=Xt.device))
        return buf.copy_(Xt)

    def sq_dist_to_assigned_chunk(self, Xt, centers, labels, buffers=None):
        import torch

        m, d = Xt.shape
        buf = buffer(buffers, "G", (m, d), Xt,
                     lambda shape: torch.empty(shape, dtype=Xt.dtype, device=Xt.device))
        torch.index_select(centers, 0, labels, out=buf)
        torch.sub(Xt, buf, out=buf)
        return torch.einsum("ij,ij->i", buf, buf)

    # -- batched primitives ----------------------------------------------------------------
    def batched_partial_sq_distances(self, Xt, centers, buffers=None):
        import torch

        c_sq = (centers * centers).sum(dim=2)[:, None, :]
        return torch.baddbmm(c_sq, Xt, centers.transpose(1, 2), alpha=-2.0)

    def batched_argmin(self, D):
        return D.min(dim=2).indices

    def batched_cluster_sums(self, Xt, labels, w, k):
        import torch

        g, m, d = Xt.shape
        if Xt.device.type != "cpu" and self.deterministic:
            return super().batched_cluster_sums(Xt, labels, w, k)
        # a scatter through flattened (problem, cluster) indices: ~k x cheaper than the
        # one-hot product on the CPU
        flat = (labels + torch.arange(g, device=labels.device)[:, None] * k).reshape(-1)
        src = Xt if w is None else Xt * w[:, :, None]
        sums = torch.zeros((g * k, d), dtype=Xt.dtype, device=Xt.device)
        sums.index_add_(0, flat, src.reshape(g * m, d))
        ones = torch.ones(g * m, dtype=Xt.dtype, device=Xt.device) if w is None \
            else w.reshape(-1)
        counts = torch.zeros(g * k, dtype=Xt.dtype, device=Xt.device).index_add_(0, flat, ones)
        return sums.reshape(g, k, d), counts.reshape(g, k)

    def batched_searchsorted(self, sorted_rows, values):
        import torch

        return torch.searchsorted(sorted_rows.contiguous(), values.contiguous(), side="left")
