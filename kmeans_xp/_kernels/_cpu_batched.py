"""numba kernels for batched k-means (a problem axis), behind :mod:`kmeans_xp._kernels._cpu`.

Imported only from there, lazily.  X comes as a (B * n, d) view of the (B, n, d) data in its
storage dtype (``uint16`` bits with a float32 lookup table ``lut`` for float16 / bfloat16);
problem b owns rows ``b * n`` to ``(b + 1) * n``.  Its frame is applied on the fly:
``xt = x * inv_scale[b] - shift[b]`` (``inv_scale`` (B,) and ``shift`` (B, d) in the
compute dtype, or None).

The problems are spread over numba's threads (``prange`` over problems); each problem is
done by one thread from start to end, in a fixed order (rows in blocks of ``block``, sums
in float64), so a pass is bit-identical from run to run whatever the thread count, and a
problem's data are read once per pass (its blocks stay in the thread's caches while the
distances, the argmin and the sums are done).  Rows of weight 0 (masked rows: they may hold
anything, NaN included) contribute nothing and are skipped; their labels are unspecified.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._cpu_numba import _JIT, _PJIT, _block_labels, _sq_diff


@njit(**_JIT)
def _load(X, lut, shift, inv_scale, b, i0, m, xb):
    """Rows i0:i0 + m of X (problem b's frame) into xb[:m], in xb's dtype."""
    d = X.shape[1]
    for r in range(m):
        i = i0 + r
        for f in range(d):
            if lut is None:
                v = X[i, f]
            else:
                v = lut[X[i, f]]
            if inv_scale is not None:
                v = v * inv_scale[b]
            if shift is None:
                xb[r, f] = v
            else:
                xb[r, f] = v - shift[b, f]


@njit(**_JIT)
def _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b, i0, m):
    """Rows i0:i0 + m in the frame: a view of ``Xd`` (X itself when it is read in place:
    compute dtype, identity frame) or converted into the buffer ``xflat``."""
    if direct:
        return Xd[i0 : i0 + m]
    d = X.shape[1]
    xb = xflat[: m * d].reshape((m, d))
    _load(X, lut, shift, inv_scale, b, i0, m, xb)
    return xb


@njit(**_JIT)
def _centre_terms(C):
    k, d = C.shape
    Cm2 = np.empty((k, d), C.dtype)
    CT = np.empty((d, k), C.dtype)
    c_sq = np.empty(k, C.dtype)
    for j in range(k):
        s = 0.0
        for f in range(d):
            c = C[j, f]
            Cm2[j, f] = -2 * c
            CT[f, j] = -2 * c
            s += c * c
        c_sq[j] = s
    return Cm2, CT, c_sq


@njit(**_PJIT)
def lloyd_pass(
    X,
    Xd,
    direct,
    n,
    lut,
    shift,
    inv_scale,
    weights,
    problems,
    centers,
    use_gemm,
    rowmajor,
    need_inertia,
    block,
    labels,
    sums_out,
    counts_out,
    inertia_out,
):
    """One Lloyd pass of the problems ``problems`` (a,) against ``centers`` (a, k, d):
    labels (a, n), sums (a, k, d), counts (a, k), inertia (a,) (float64, 0 unless
    ``need_inertia``; direct differences)."""
    d = X.shape[1]
    a = problems.shape[0]
    k = centers.shape[1]
    dt = centers.dtype
    for p in prange(a):
        b = problems[p]
        base = b * n
        C = centers[p]
        Cm2, CT, c_sq = _centre_terms(C)
        xflat = np.empty(block * d, dt)
        xbT = np.empty((d, block), dt)
        Dflat = np.empty(block * k if use_gemm and rowmajor else 0, dt)
        Dtflat = np.empty(block * k, dt)
        best = np.empty(block, dt)
        idx = np.empty(block, np.int64)
        S = np.zeros((k, d))
        cnt = np.zeros(k)
        tot = 0.0
        for b0 in range(0, n, block):
            m = min(block, n - b0)
            xb = _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b, base + b0, m)
            _block_labels(xb, xbT, Cm2, CT, c_sq, use_gemm, rowmajor, Dflat, Dtflat, best, idx)
            for r in range(m):
                j = idx[r]
                labels[p, b0 + r] = j
                if weights is None:
                    cnt[j] += 1.0
                    for f in range(d):
                        S[j, f] += xb[r, f]
                    if need_inertia:
                        tot += _sq_diff(xb, r, C, j)
                else:
                    w = weights[b, b0 + r]
                    if w == 0:
                        continue
                    cnt[j] += w
                    for f in range(d):
                        S[j, f] += w * xb[r, f]
                    if need_inertia:
                        tot += w * _sq_diff(xb, r, C, j)
        inertia_out[p] = tot
        for j in range(k):
            counts_out[p, j] = cnt[j]
            for f in range(d):
                sums_out[p, j, f] = S[j, f]


@njit(**_PJIT)
def labels_inertia(
    X,
    Xd,
    direct,
    n,
    lut,
    shift,
    inv_scale,
    weights,
    problems,
    centers,
    use_gemm,
    rowmajor,
    block,
    labels,
    inertia_out,
):
    """Labels (a, n) and the weighted inertia (a,) (float64) by direct differences."""
    d = X.shape[1]
    a = problems.shape[0]
    k = centers.shape[1]
    dt = centers.dtype
    for p in prange(a):
        b = problems[p]
        base = b * n
        C = centers[p]
        Cm2, CT, c_sq = _centre_terms(C)
        xflat = np.empty(block * d, dt)
        xbT = np.empty((d, block), dt)
        Dflat = np.empty(block * k if use_gemm and rowmajor else 0, dt)
        Dtflat = np.empty(block * k, dt)
        best = np.empty(block, dt)
        idx = np.empty(block, np.int64)
        tot = 0.0
        for b0 in range(0, n, block):
            m = min(block, n - b0)
            xb = _rows(direct, Xd, xflat, X, lut, shift, inv_scale, b, base + b0, m)
            _block_labels(xb, xbT, Cm2, CT, c_sq, use_gemm, rowmajor, Dflat, Dtflat, best, idx)
            for r in range(m):
                j = idx[r]
                labels[p, b0 + r] = j
                if weights is None:
                    tot += _sq_diff(xb, r, C, j)
                else:
                    w = weights[b, b0 + r]
                    if w != 0:
                        tot += w * _sq_diff(xb, r, C, j)
        inertia_out[p] = tot


@njit(**_PJIT)
def sq_dist_to_assigned(X, n, lut, shift, inv_scale, problems, centers, labels, block, out):
    """``||xt_i - c_{labels_i}||^2`` (a, n) by direct differences; 0 where the label is
    outside [0, k) (masked rows)."""
    d = X.shape[1]
    a = problems.shape[0]
    k = centers.shape[1]
    dt = centers.dtype
    for p in prange(a):
        b = problems[p]
        C = centers[p]
        xflat = np.empty(block * d, dt)
        for b0 in range(0, n, block):
            m = min(block, n - b0)
            xb = xflat[: m * d].reshape((m, d))
            _load(X, lut, shift, inv_scale, b, b * n + b0, m, xb)
            for r in range(m):
                j = labels[p, b0 + r]
                out[p, b0 + r] = _sq_diff(xb, r, C, j) if 0 <= j < k else 0.0


@njit(**_JIT)
def _clip0(v):
    return v if v > 0.0 else 0.0  # NaN -> 0, as the reference's clip


@njit(**_JIT)
def _kpp_dist(xs64, x_sq, crow, q, D):
    """Squared distances D[:q, :n] of the rows xs64 (n, d) float64 to the candidates
    crow[:q] by the expansion ``(||x||^2 - 2 x.c) + ||c||^2`` in float64, clipped at 0 (the
    reference's formula).  Four rows at a time: each candidate's values are loaded once for
    four independent dot products (1.4-1.6x the one-row loop here)."""
    n, d = xs64.shape
    c_sq = np.empty(q)
    for j in range(q):
        t = 0.0
        for f in range(d):
            t += crow[j, f] * crow[j, f]
        c_sq[j] = t
    n4 = n - n % 4
    for i in range(0, n4, 4):
        x0, x1, x2, x3 = xs64[i], xs64[i + 1], xs64[i + 2], xs64[i + 3]
        for j in range(q):
            c = crow[j]
            g0 = g1 = g2 = g3 = 0.0
            for f in range(d):
                cf = c[f]
                g0 += x0[f] * cf
                g1 += x1[f] * cf
                g2 += x2[f] * cf
                g3 += x3[f] * cf
            D[j, i] = _clip0((x_sq[i] - 2.0 * g0) + c_sq[j])
            D[j, i + 1] = _clip0((x_sq[i + 1] - 2.0 * g1) + c_sq[j])
            D[j, i + 2] = _clip0((x_sq[i + 2] - 2.0 * g2) + c_sq[j])
            D[j, i + 3] = _clip0((x_sq[i + 3] - 2.0 * g3) + c_sq[j])
    for i in range(n4, n):
        x = xs64[i]
        for j in range(q):
            c = crow[j]
            g = 0.0
            for f in range(d):
                g += x[f] * c[f]
            D[j, i] = _clip0((x_sq[i] - 2.0 * g) + c_sq[j])


@njit(**_PJIT)
def kmeans_plusplus(
    X, n, lut, shift, inv_scale, weights, mask, n_clusters, first_u, step_u, out, proto
):
    """Greedy k-means++ of every problem (one thread per problem, its rows in cache across
    the steps, in float64): the chosen rows ``out`` (B, k).

    Draws exactly as :func:`kmeans_xp._solvers.init.kmeans_plusplus_working`: the first
    row is ``choice(n, p=w / w.sum())`` from ``first_u[b]``; step s's candidates are
    ``searchsorted(cumsum(w * closest), step_u[b, s] * pot)`` (side left) clipped to the
    last valid row; distances in float64 (:func:`_kpp_dist`) of the rows in the frame
    (``proto``'s dtype, the compute dtype); the best candidate has the lowest potential
    (the first on ties).  Rows of weight 0 count as at distance 0 (masked rows may hold
    anything).
    """
    d = X.shape[1]
    B = first_u.shape[0]
    m = step_u.shape[2]
    dt = proto.dtype
    for b in prange(B):
        xs = np.empty((n, d), dt)
        _load(X, lut, shift, inv_scale, b, b * n, n, xs)
        xs64 = np.empty((n, d))
        x_sq = np.empty(n)
        for i in range(n):
            s = 0.0
            for f in range(d):
                v = np.float64(xs[i, f])
                if weights is not None and weights[b, i] == 0:
                    v = 0.0  # masked rows may hold NaN
                xs64[i, f] = v
                s += v * v
            x_sq[i] = s
        last = n - 1
        if mask is not None:
            last = 0
            for i in range(n):
                if mask[b, i]:
                    last = i
        closest = np.empty(n)
        cum = np.empty(n)
        Dc = np.empty((m, n))
        crow = np.empty((m, d))
        cand = np.empty(m, np.int64)
        pots = np.empty(m)
        u = first_u[b]
        if weights is None:
            first = min(int(u * n), n - 1)
        else:
            c = 0.0
            for i in range(n):
                c += np.float64(weights[b, i])
                cum[i] = c
            first = min(np.searchsorted(cum, u * cum[n - 1], side="right"), last)
        out[b, 0] = first
        for f in range(d):
            crow[0, f] = xs64[first, f]
        _kpp_dist(xs64, x_sq, crow, 1, Dc)
        pot = 0.0
        for i in range(n):
            if weights is not None and weights[b, i] == 0:
                closest[i] = 0.0
                continue
            closest[i] = Dc[0, i]
            pot += Dc[0, i] if weights is None else np.float64(weights[b, i]) * Dc[0, i]
        for step in range(n_clusters - 1):
            c = 0.0
            for i in range(n):
                c += closest[i] if weights is None else closest[i] * np.float64(weights[b, i])
                cum[i] = c
            for j in range(m):
                cand[j] = min(np.searchsorted(cum, step_u[b, step, j] * pot), last)
                for f in range(d):
                    crow[j, f] = xs64[cand[j], f]
            _kpp_dist(xs64, x_sq, crow, m, Dc)
            for j in range(m):
                t = 0.0
                for i in range(n):
                    v = min(closest[i], Dc[j, i])
                    t += v if weights is None else np.float64(weights[b, i]) * v
                pots[j] = t
            bj = 0
            for j in range(1, m):
                if pots[j] < pots[bj]:
                    bj = j
            pot = pots[bj]
            out[b, step + 1] = cand[bj]
            for i in range(n):
                if weights is None or weights[b, i] != 0:
                    closest[i] = min(closest[i], Dc[bj, i])


@njit(**_JIT)
def _problem_stats(X, n, lut, shift, inv_scale, mask, b, rows, S, Q, A, careful):
    """Problem b's float64 column sums S, sums of squares Q and largest magnitudes A of its
    valid rows in the frame, blocks of ``rows.shape[0]`` rows at a time (fixed order).
    ``careful``: non-finite values are counted (returned) and left out of S, Q, A;
    otherwise every value goes in (fast: a non-finite value shows in S or Q)."""
    d = X.shape[1]
    block = rows.shape[0]
    bad = 0
    for i0 in range(0, n, block):
        m = min(block, n - i0)
        _load(X, lut, shift, inv_scale, b, b * n + i0, m, rows)
        for r in range(m):
            if mask is not None and not mask[b, i0 + r]:
                continue
            if careful:
                for f in range(d):
                    v = np.float64(rows[r, f])
                    a = abs(v)
                    if a < np.inf:
                        A[f] = max(A[f], a)
                        S[f] += v
                        Q[f] += v * v
                    else:
                        bad += 1
            else:
                for f in range(d):
                    v = np.float64(rows[r, f])
                    A[f] = max(A[f], abs(v))
                    S[f] += v
                    Q[f] += v * v
    return bad


@njit(**_PJIT)
def frame_stats(X, n, lut, shift, inv_scale, mask, proto, finite_out, amax_out, sums_out, sqs_out):
    """Per problem, one read of its valid rows in the frame (values in ``proto``'s dtype):
    whether all are finite, the largest finite magnitude, and the float64 column sums and
    sums of squares (fixed order).  The read sums every value; a problem whose sums or
    sums of squares come out non-finite (a NaN or infinity in its rows, or a square beyond
    float64's range) is read again with the non-finite values left out and counted."""
    d = X.shape[1]
    B = finite_out.shape[0]
    dt = proto.dtype
    block = 256
    for b in prange(B):
        rows = np.empty((block, d), dt)
        S = np.zeros(d)
        Q = np.zeros(d)
        A = np.zeros(d)
        _problem_stats(X, n, lut, shift, inv_scale, mask, b, rows, S, Q, A, False)
        ok = True
        for f in range(d):
            if not (abs(S[f]) < np.inf and Q[f] < np.inf and A[f] < np.inf):
                ok = False
        bad = 0
        if not ok:
            S[:] = 0.0
            Q[:] = 0.0
            A[:] = 0.0
            bad = _problem_stats(X, n, lut, shift, inv_scale, mask, b, rows, S, Q, A, True)
        amax = 0.0
        for f in range(d):
            amax = max(amax, A[f])
            sums_out[b, f] = S[f]
            sqs_out[b, f] = Q[f]
        finite_out[b] = bad == 0
        amax_out[b] = amax
