"""numba kernels behind :mod:`kmeans_xp._kernels._cpu` (imported only from there, lazily).

Every kernel works on row *chunks*: the rows are cut into ``n_chunks`` contiguous ranges
shared out between the worker threads (``prange``), each walked in blocks of ``block``
rows.  A block is read once from X in its storage dtype, converted and put in the frame
(``x * inv_scale - shift``) into a small per-chunk buffer, and everything the pass needs
from it (distances, argmin, centre sums, inertia) is done while it sits in L1/L2.
Per-chunk partial results (float64) are reduced in chunk order at the end, so a pass is
bit-identical from run to run, whatever the number of threads (the number of chunks
depends on n, k and d only).

Half-precision storage comes in as ``uint16`` bits together with a 65536-entry float32
lookup table ``lut`` (exact for float16 and bfloat16); float32/float64 storage comes
with ``lut=None``.  ``shift=None`` and ``weights=None`` are pruned at compile time.

Compiled code is cached on disk (``cache=True``): the first call in a fresh environment
compiles (seconds); later processes load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit, prange

# reassociation lets LLVM vectorise the dot-product style reductions (min is exact in any
# order); the code is still deterministic: one compiled order, the same on every run
_FM = {"reassoc", "contract", "nsz"}
_JIT: dict[str, Any] = dict(cache=True, nogil=True, fastmath=_FM)
_PJIT: dict[str, Any] = dict(cache=True, nogil=True, fastmath=_FM, parallel=True)


@njit(**_JIT)
def _chunk_range(n, n_chunks, t):
    return (n * t) // n_chunks, (n * (t + 1)) // n_chunks


@njit(**_JIT)
def _load(X, lut, shift, inv_scale, r0, r1, xb):
    """Rows r0:r1 of X, converted and in the frame, into xb[:r1 - r0]."""
    d = X.shape[1]
    for r in range(r1 - r0):
        i = r0 + r
        for f in range(d):
            if lut is None:
                v = X[i, f] * inv_scale
            else:
                v = lut[X[i, f]] * inv_scale
            if shift is None:
                xb[r, f] = v
            else:
                xb[r, f] = v - shift[f]


@njit(**_JIT)
def _block_labels(xb, xbT, Cm2, CT, c_sq, use_gemm, rowmajor, Dflat, Dtflat, best, idx):
    """First nearest centre of each row of the block xb (m, d): idx[:m], and the partial
    distance ``||c||^2 - 2 x.c`` to it: best[:m].

    The argmin runs across rows on distances laid out (k, m), centres by rows: an
    elementwise compare-and-select that vectorises (a min along a row does not).
    ``use_gemm``: the products by BLAS, either ``rowmajor``: D = xb @ CT (CT = -2 C.T,
    (d, k); both operands row-major, which single-threaded OpenBLAS runs 1.7-2.3x faster
    than the other layout at small k) transposed into (k, m) with ``||c||^2`` added on the
    way (worth it while k is small: the transpose costs m * k moves), or Dt = Cm2 @ xb.T
    straight into (k, m).  Otherwise a direct loop over the transposed block xbT (d, m),
    filled here.
    """
    m, d = xb.shape
    k = Cm2.shape[0]
    Dt = Dtflat[: k * m].reshape((k, m))
    if use_gemm and rowmajor:
        D = Dflat[: m * k].reshape((m, k))
        np.dot(xb, CT, D)
        for j in range(k):  # strided loads, contiguous stores: the faster order here
            cj = c_sq[j]
            for r in range(m):
                Dt[j, r] = D[r, j] + cj
    elif use_gemm:
        np.dot(Cm2, xb.T, Dt)
        for j in range(k):
            cj = c_sq[j]
            for r in range(m):
                Dt[j, r] += cj
    else:
        for f in range(d):
            for r in range(m):
                xbT[f, r] = xb[r, f]
        for j in range(k):
            cj = c_sq[j]
            for r in range(m):
                Dt[j, r] = cj
            for f in range(d):
                c = Cm2[j, f]
                for r in range(m):
                    Dt[j, r] += c * xbT[f, r]
    for r in range(m):
        best[r] = Dt[0, r]
        idx[r] = 0
    for j in range(1, k):
        for r in range(m):
            v = Dt[j, r]
            if v < best[r]:  # strict: the lowest index wins exact ties
                best[r] = v
                idx[r] = j


@njit(**_JIT)
def _sq_diff(xb, r, C, j):
    """||xb[r] - C[j]||^2 by direct differences."""
    d = xb.shape[1]
    s = 0.0
    for f in range(d):
        t = xb[r, f] - C[j, f]
        s += t * t
    return s


@njit(**_JIT)
def _block(xflat, X, lut, shift, inv_scale, b0, b1):
    """Rows b0:b1 as a C-contiguous (m, d) block (in the frame) in the buffer xflat."""
    d = X.shape[1]
    xb = xflat[: (b1 - b0) * d].reshape((b1 - b0, d))
    _load(X, lut, shift, inv_scale, b0, b1, xb)
    return xb


@njit(**_JIT)
def _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b0, b1):
    """Rows b0:b1 in the frame: a view of ``Xd`` (X itself, C-contiguous, in the compute
    dtype, identity frame) when ``direct``, else converted into the buffer xflat."""
    if direct:
        return Xd[b0:b1]
    return _block(xflat, X, lut, shift, inv_scale, b0, b1)


@njit(**_PJIT)
def lloyd_pass(X, Xd, direct, lut, shift, inv_scale, weights, centers, Cm2, CT, c_sq, use_gemm,
               rowmajor, need_inertia, n_chunks, block, labels, sums_out, counts_out):
    """One Lloyd pass; returns the inertia (float64, 0.0 unless need_inertia)."""
    n, d = X.shape
    k = centers.shape[0]
    dt = centers.dtype
    sums_t = np.zeros((n_chunks, k, d))
    counts_t = np.zeros((n_chunks, k))
    inert_t = np.zeros(n_chunks)
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        xflat = np.empty(block * d, dt)
        xbT = np.empty((d, block), dt)
        Dflat = np.empty(block * k if use_gemm and rowmajor else 0, dt)  # row-major GEMM only
        Dtflat = np.empty(block * k, dt)
        best = np.empty(block, dt)
        idx = np.empty(block, np.int64)
        S = sums_t[t]
        cnt = counts_t[t]
        tot = 0.0
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            xb = _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b0, b1)
            _block_labels(xb, xbT, Cm2, CT, c_sq, use_gemm, rowmajor, Dflat, Dtflat, best, idx)
            for r in range(b1 - b0):
                j = idx[r]
                labels[b0 + r] = j
                if weights is None:
                    cnt[j] += 1.0
                    for f in range(d):
                        S[j, f] += xb[r, f]
                    if need_inertia:
                        tot += _sq_diff(xb, r, centers, j)
                else:
                    w = weights[b0 + r]
                    cnt[j] += w
                    for f in range(d):
                        S[j, f] += w * xb[r, f]
                    if need_inertia:
                        tot += w * _sq_diff(xb, r, centers, j)
        inert_t[t] = tot
    # fixed-order reduction over chunks
    inertia = 0.0
    for t in range(n_chunks):
        inertia += inert_t[t]
    for j in range(k):
        c = 0.0
        for t in range(n_chunks):
            c += counts_t[t, j]
        counts_out[j] = c
        for f in range(d):
            s = 0.0
            for t in range(n_chunks):
                s += sums_t[t, j, f]
            sums_out[j, f] = s
    return inertia


@njit(**_PJIT)
def assign(X, Xd, direct, lut, shift, inv_scale, centers, Cm2, CT, c_sq, use_gemm, rowmajor,
           n_chunks, block, labels, mins):
    """Labels (first nearest centre) and the squared distance to it, by direct differences."""
    n, d = X.shape
    k = centers.shape[0]
    dt = centers.dtype
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        xflat = np.empty(block * d, dt)
        xbT = np.empty((d, block), dt)
        Dflat = np.empty(block * k if use_gemm and rowmajor else 0, dt)  # row-major GEMM only
        Dtflat = np.empty(block * k, dt)
        best = np.empty(block, dt)
        idx = np.empty(block, np.int64)
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            xb = _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b0, b1)
            _block_labels(xb, xbT, Cm2, CT, c_sq, use_gemm, rowmajor, Dflat, Dtflat, best, idx)
            for r in range(b1 - b0):
                j = idx[r]
                labels[b0 + r] = j
                mins[b0 + r] = _sq_diff(xb, r, centers, j)


@njit(**_PJIT)
def sq_dist_to_assigned(X, lut, shift, inv_scale, centers, labels, n_chunks, block, out):
    n, d = X.shape
    dt = centers.dtype
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        xflat = np.empty(block * d, dt)
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            xb = _block(xflat, X, lut, shift, inv_scale, b0, b1)
            for r in range(b1 - b0):
                out[b0 + r] = _sq_diff(xb, r, centers, labels[b0 + r])


@njit(**_PJIT)
def kpp_potentials(X, lut, shift, inv_scale, weights, closest, cand, n_chunks, block, pots,
                   proto):
    """pots[c] = sum_i w_i min(closest_i, ||xt_i - cand_c||^2), float64, fixed order.

    The rows are brought into the frame in ``proto``'s dtype (the compute dtype, as the
    reference kernels do); ``cand`` and ``closest`` may be wider (float64), and the
    differences are then taken in that width.
    """
    n, d = X.shape
    m_c = cand.shape[0]
    dt = proto.dtype
    pots_t = np.zeros((n_chunks, m_c))
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        xflat = np.empty(block * d, dt)
        P = pots_t[t]
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            xb = _block(xflat, X, lut, shift, inv_scale, b0, b1)
            for r in range(b1 - b0):
                i = b0 + r
                for c in range(m_c):
                    v = min(closest[i], _sq_diff(xb, r, cand, c))
                    if weights is None:
                        P[c] += v
                    else:
                        P[c] += weights[i] * v
    for c in range(m_c):
        s = 0.0
        for t in range(n_chunks):
            s += pots_t[t, c]
        pots[c] = s


@njit(**_PJIT)
def kpp_update(X, lut, shift, inv_scale, closest, center, n_chunks, block, out, proto):
    """out_i = min(closest_i, ||xt_i - center||^2); rows in ``proto``'s dtype (see
    :func:`kpp_potentials`)."""
    n, d = X.shape
    dt = proto.dtype
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        xflat = np.empty(block * d, dt)
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            xb = _block(xflat, X, lut, shift, inv_scale, b0, b1)
            for r in range(b1 - b0):
                out[b0 + r] = min(closest[b0 + r], _sq_diff(xb, r, center, 0))


@njit(**_PJIT)
def frame_stats(X, lut, shift, inv_scale, big, n_chunks, proto, sums_out, sqs_out):
    """One read of X for the frame: whether every value is finite, the largest magnitude,
    and the column sums and sums of squares (float64, fixed order) of the rows in the frame
    ``x * inv_scale - shift`` (values in ``proto``'s dtype, as the reference reads them).

    Values whose magnitude exceeds ``big`` (non-finite ones included) are left out of the
    sums, as the reference's one-pass moments do (they force a rescale, which discards
    them).  Returns ``(finite, amax)``; ``amax`` is over the finite values.  Per-column
    running maxima and counts keep the inner loop elementwise (it vectorises).
    """
    n, d = X.shape
    dt = proto.dtype
    sums_t = np.zeros((n_chunks, d))
    sqs_t = np.zeros((n_chunks, d))
    bad_t = np.zeros((n_chunks, d))
    amax_t = np.zeros((n_chunks, d))
    inf = np.inf
    for t in prange(n_chunks):
        lo, hi = _chunk_range(n, n_chunks, t)
        S = sums_t[t]
        Q = sqs_t[t]
        A = amax_t[t]
        N = bad_t[t]
        row = np.empty(d, dt)
        for i in range(lo, hi):
            for f in range(d):
                if lut is None:
                    v = X[i, f] * inv_scale
                else:
                    v = lut[X[i, f]] * inv_scale
                if shift is not None:
                    v = v - shift[f]
                row[f] = v
            for f in range(d):
                v = np.float64(row[f])
                a = abs(v)
                fin = a < inf  # False for NaN and inf
                N[f] += 0.0 if fin else 1.0
                m = a if fin else 0.0
                A[f] = max(A[f], m)
                u = v if a <= big else 0.0
                S[f] += u
                Q[f] += u * u
    finite = True
    amax = 0.0
    for t in range(n_chunks):
        for f in range(d):
            if bad_t[t, f] > 0:
                finite = False
            amax = max(amax, amax_t[t, f])
    for f in range(d):
        s = 0.0
        q = 0.0
        for t in range(n_chunks):
            s += sums_t[t, f]
            q += sqs_t[t, f]
        sums_out[f] = s
        sqs_out[f] = q
    return finite, amax
