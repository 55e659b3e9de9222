"""Triton kernels for batched k-means (a problem axis): a whole pass in a fixed number of launches.

Imported lazily (it imports torch and triton).  X is (B, n, d) in its storage dtype (float32,
float16, bfloat16), problem b in its own frame ``xt = x * inv_scale[b] - shift[b]`` applied
to each tile in registers; centres (a, k, d) float32 for the active problems ``problems``.

A Lloyd pass is two launches, whatever B:

1. :func:`_assign_kernel` over a (problem, row-block) grid: the distances
   ``||c||^2 - 2 xt.c`` tile by tile on the tensor cores (``tl.dot``, at the set's
   precision: fp32 FMA products for 'exact'), the first argmin, then the squared distance to
   the chosen centre by direct differences in fp32 (the inertia's terms, never negative);
2. :func:`_sums_kernel` over a (problem, centre-tile, feature-tile) grid: each program walks
   its problem's rows in a fixed order and accumulates the weighted one-hot product
   ``onehot(labels)^T @ xt`` in registers: deterministic (no atomics; the same bits from run
   to run), X read ceil(k / BLOCK_K) times.

Rows of weight 0 (masked rows, which may hold anything) are zeroed before they are summed.
The labels of the 'exact' precision are those of an fp32 computation (no float64 re-check of
near-ties yet, unlike the single-problem kernels of :mod:`._triton`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import triton
import triton.language as tl

from ._reference import ReferenceKernels
from ._torch import TorchKernels
from ._triton import INTERPRETED, _dot_acc, supports

__all__ = ["TritonBatchedTorchKernels", "assign", "centre_sums", "config"]


def _p2(v: int) -> int:
    return 1 << max(0, int(v - 1).bit_length())


def config(n: int, d: int, k: int) -> dict:
    """Tile sizes: rows per program, centres and features per tile (powers of two, at
    least 16: the tensor cores' minimum)."""
    return {
        "BLOCK_M": 64 if n >= 64 else max(16, _p2(n)),
        "BLOCK_K": max(16, min(64, _p2(k))),
        "BLOCK_D": max(16, min(64, _p2(d))),
    }


@triton.jit
def _tile(
    X,
    b,
    stride_xb,
    stride_xm,
    rows,
    rmask,
    cols,
    cmask,
    SHIFT,
    INV,
    HAS_SHIFT: tl.constexpr,
    HAS_SCALE: tl.constexpr,
):
    """Rows ``rows`` x columns ``cols`` of problem b in its frame, fp32, 0 where masked."""
    m = rmask[:, None] & cmask[None, :]
    ptr = X + b * stride_xb + rows.to(tl.int64)[:, None] * stride_xm + cols[None, :]
    x = tl.load(ptr, mask=m, other=0.0).to(tl.float32)
    if HAS_SCALE:
        x = x * tl.load(INV + b)
    if HAS_SHIFT:
        x = x - tl.load(SHIFT + cols, mask=cmask, other=0.0)[None, :]  # SHIFT: row b
    return tl.where(m, x, 0.0)


@triton.jit
def _assign_kernel(
    X,
    PROB,
    C,
    SHIFT,
    INV,
    LABELS,
    MINS,
    n,
    k,
    d,
    stride_xb,
    stride_xm,
    HAS_SHIFT: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PREC: tl.constexpr,
    INTERPRET: tl.constexpr,
):
    p = tl.program_id(0)
    blk = tl.program_id(1)
    b = tl.load(PROB + p).to(tl.int64)
    rows = blk * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    Cp = C + p.to(tl.int64) * k * d
    Sb = SHIFT + b * d
    best = tl.full((BLOCK_M,), float("inf"), tl.float32)
    bidx = tl.zeros((BLOCK_M,), tl.int32)
    for k0 in range(0, k, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        kmask = ks < k
        acc = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
        csq = tl.zeros((BLOCK_K,), tl.float32)
        for d0 in range(0, d, BLOCK_D):
            cols = d0 + tl.arange(0, BLOCK_D)
            cmask = cols < d
            x = _tile(
                X, b, stride_xb, stride_xm, rows, rmask, cols, cmask, Sb, INV, HAS_SHIFT, HAS_SCALE
            )
            c = tl.load(
                Cp + ks[:, None] * d + cols[None, :],
                mask=kmask[:, None] & cmask[None, :],
                other=0.0,
            )
            acc = _dot_acc(x, c, acc, PREC, INTERPRET)
            csq += tl.sum(c * c, axis=1)
        D = csq[None, :] - 2.0 * acc
        D = tl.where(kmask[None, :], D, float("inf"))
        m = tl.min(D, axis=1)
        i = tl.argmin(D, axis=1, tie_break_left=True).to(tl.int32)
        upd = m < best  # strict: an earlier tile keeps its ties
        best = tl.where(upd, m, best)
        bidx = tl.where(upd, i + k0, bidx)
    out = p.to(tl.int64) * n + rows
    tl.store(LABELS + out, bidx.to(tl.int64), mask=rmask)
    dist = tl.zeros((BLOCK_M,), tl.float32)
    for d0 in range(0, d, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        cmask = cols < d
        x = _tile(
            X, b, stride_xb, stride_xm, rows, rmask, cols, cmask, Sb, INV, HAS_SHIFT, HAS_SCALE
        )
        c = tl.load(
            Cp + bidx[:, None] * d + cols[None, :], mask=rmask[:, None] & cmask[None, :], other=0.0
        )
        diff = x - c
        dist += tl.sum(diff * diff, axis=1)
    tl.store(MINS + out, dist, mask=rmask)


@triton.jit
def _sums_kernel(
    X,
    PROB,
    LABELS,
    W,
    SHIFT,
    INV,
    SUMS,
    COUNTS,
    n,
    k,
    d,
    stride_xb,
    stride_xm,
    HAS_W: tl.constexpr,
    HAS_SHIFT: tl.constexpr,
    HAS_SCALE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    p = tl.program_id(0)
    kt = tl.program_id(1)
    dtile = tl.program_id(2)
    b = tl.load(PROB + p).to(tl.int64)
    ks = kt * BLOCK_K + tl.arange(0, BLOCK_K)
    kmask = ks < k
    cols = dtile * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < d
    Sb = SHIFT + b * d
    acc = tl.zeros((BLOCK_K, BLOCK_D), tl.float32)
    cnt = tl.zeros((BLOCK_K,), tl.float32)
    for r0 in range(0, n, BLOCK_M):
        rows = r0 + tl.arange(0, BLOCK_M)
        rmask = rows < n
        lab = tl.load(LABELS + p.to(tl.int64) * n + rows, mask=rmask, other=-1)
        if HAS_W:
            w = tl.load(W + b * n + rows, mask=rmask, other=0.0).to(tl.float32)
        else:
            w = tl.where(rmask, 1.0, 0.0)
        x = _tile(
            X, b, stride_xb, stride_xm, rows, rmask, cols, cmask, Sb, INV, HAS_SHIFT, HAS_SCALE
        )
        x = tl.where((w != 0.0)[:, None], x, 0.0)  # masked rows may hold NaN
        oh = tl.where(lab[:, None] == ks[None, :], w[:, None], 0.0)  # (BLOCK_M, BLOCK_K)
        acc = tl.dot(tl.trans(oh), x, acc, input_precision="ieee")
        cnt += tl.sum(oh, axis=0)
    base = p.to(tl.int64) * k
    tl.store(
        SUMS + (base + ks)[:, None] * d + cols[None, :], acc, mask=kmask[:, None] & cmask[None, :]
    )
    if dtile == 0:
        tl.store(COUNTS + base + ks, cnt, mask=kmask)


def _prec(precision: str) -> str:
    return {"exact": "ieee", "exact-tf32": "tf32", "tf32": "tf32", "bf16": "bf16", "ieee": "ieee"}[
        precision
    ]


def _args(data: Any, problems: Any, centers: Any):
    X = data.X
    if X.stride(2) != 1:
        X = X.contiguous()
    B, n, d = (int(s) for s in X.shape)
    dev = X.device
    ids = (
        torch.arange(B, device=dev)
        if problems is None
        else torch.as_tensor(np.asarray(problems, dtype=np.int64), device=dev)
    )
    C = centers.to(torch.float32).contiguous()
    dummy = torch.zeros(1, dtype=torch.float32, device=dev)
    shift = dummy if data.shift is None else data.shift.to(torch.float32).contiguous()
    inv = dummy if data.inv_scale is None else data.inv_scale.to(torch.float32).contiguous()
    return X, ids, C, shift, inv, B, n, d


def assign(data: Any, centers: Any, problems: Any = None, *, precision: str = "exact"):
    """Labels (a, n) int64 and the squared distances (a, n) fp32 to the chosen centres
    (direct differences): one launch over a (problem, row-block) grid."""
    X, ids, C, shift, inv, _, n, d = _args(data, problems, centers)
    a, k = int(C.shape[0]), int(C.shape[1])
    cfg = config(n, d, k)
    labels = torch.empty((a, n), dtype=torch.int64, device=X.device)
    mins = torch.empty((a, n), dtype=torch.float32, device=X.device)
    if a and n:
        _assign_kernel[(a, triton.cdiv(n, cfg["BLOCK_M"]))](
            X,
            ids,
            C,
            shift,
            inv,
            labels,
            mins,
            n,
            k,
            d,
            X.stride(0),
            X.stride(1),
            HAS_SHIFT=data.shift is not None,
            HAS_SCALE=data.inv_scale is not None,
            PREC=_prec(precision),
            INTERPRET=INTERPRETED,
            **cfg,
        )
    return labels, mins


def centre_sums(data: Any, labels: Any, k: int, problems: Any = None):
    """Weighted sums (a, k, d) and counts (a, k) fp32 of the rows per label: one launch
    over a (problem, centre-tile, feature-tile) grid, fixed order."""
    X, ids, _, shift, inv, _, n, d = _args(data, problems, labels[:0, :0, None])
    a = int(labels.shape[0])
    cfg = config(n, d, k)
    sums = torch.empty((a, k, d), dtype=torch.float32, device=X.device)
    counts = torch.empty((a, k), dtype=torch.float32, device=X.device)
    W = data.weights
    if a:
        _sums_kernel[(a, triton.cdiv(k, cfg["BLOCK_K"]), triton.cdiv(d, cfg["BLOCK_D"]))](
            X,
            ids,
            labels.contiguous(),
            shift if W is None else W.contiguous(),
            shift,
            inv,
            sums,
            counts,
            n,
            k,
            d,
            X.stride(0),
            X.stride(1),
            HAS_W=W is not None,
            HAS_SHIFT=data.shift is not None,
            HAS_SCALE=data.inv_scale is not None,
            **cfg,
        )
    return sums, counts


def _inertia(data: Any, mins: Any, problems: Any) -> Any:
    acc = data.accumulator_dtype()
    w = data.weights
    m = mins.to(acc)
    if w is not None:
        if problems is not None:
            w = w[torch.as_tensor(np.asarray(problems, dtype=np.int64), device=w.device)]
        w = w.to(acc)
        m = torch.where(w != 0, m, torch.zeros_like(m)) * w
    return m.sum(dim=1)


class TritonBatchedTorchKernels(TorchKernels):
    """The batched passes through the Triton kernels above (torch CUDA; CPU tensors under
    ``TRITON_INTERPRET=1``); k-means++ and every other pass from the torch set (the
    reference's float64 batched k-means++, one set of calls per step for all problems).

    To serve fits, the Triton set of :mod:`._triton` takes these methods (a mixin base).
    """

    name = "triton-batched"

    def _fits(self, data) -> bool:
        return supports(data.dtype) and str(data.X.dtype).split(".")[-1] in (
            "float32",
            "float16",
            "bfloat16",
        )

    def batched_lloyd_pass(self, data, centers, problems=None, *, need_inertia=False):
        if not self._fits(data):
            return ReferenceKernels.batched_lloyd_pass(
                self, data, centers, problems, need_inertia=need_inertia
            )
        labels, mins = assign(data, centers, problems, precision=self.precision)
        sums, counts = centre_sums(data, labels, int(centers.shape[1]), problems)
        inertia = _inertia(data, mins, problems) if need_inertia else None
        return labels, sums, counts, inertia

    def batched_labels_inertia(self, data, centers, problems=None):
        if not self._fits(data):
            return ReferenceKernels.batched_labels_inertia(self, data, centers, problems)
        labels, mins = assign(data, centers, problems, precision=self.precision)
        return labels, _inertia(data, mins, problems)
