"""JAX kernels: each whole pass one jitted function over fixed-size chunks (CPU, GPU, TPU).

Each pass (Lloyd pass, assignment, labels + inertia, inertia of given labels, distances to
the assigned centres, all distances, the k-means++ potentials and update, the frame's
moments) is one ``jax.jit`` function: a ``lax.scan`` over the full chunks of ``rows`` rows
of X (``lax.dynamic_slice``), then the short last chunk, so that no (n, k) block is ever
held (only one (rows, k) block per step) and the frame (``X * inv_scale - shift``, the
storage dtype cast to the compute dtype) is applied inside, per chunk.  XLA compiles a pass
once per (n, d, k, rows, dtypes, weighted, centred) and keeps it (``jax.jit``'s cache, at
module level): a second fit of data of the same shape compiles nothing.  Greedy k-means++
after its first centre is one jitted ``lax.scan`` over its steps (the steps' host uniforms
drawn at once); on the CPU, for d <= 32, it holds a transposed (d, n) copy of the rows in the
frame while it runs (see ``_T_MAX_D``), so that its distances vectorise along n.

Determinism: the per-chunk results are added in chunk order; the centre sums are a
``segment_sum`` (a serial scatter on XLA's CPU backend) on the CPU and a one-hot product
elsewhere (a GPU scatter accumulates with atomics), unless ``deterministic=False``.

Precision: ``precision='exact'`` asks XLA for ``Precision.HIGHEST`` products (on a GPU the
default float32 product may round through TF32 or bfloat16); 'tf32'/'bf16' leave XLA's
default.  The k-means++ passes run in the accumulator dtype: float64 when JAX has it
(``jax_enable_x64``), else float32 (JAX's default): then the k-means++ draws are float32
sums, and on data with near-ties a draw may differ from the float64 path's.

Arrays stay on the device of X; results are ``jax.Array`` there.  Data streamed from the
host takes the reference set's chunk loop; the 'cosine' frame scales each row to unit length
inside the passes.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._reference import ReferenceKernels, fusable


# -- the chunk loop ------------------------------------------------------------------------
def _chunked(body: Any, carry: Any, X: Any, extras: tuple, rows: int) -> tuple:
    """Run ``body(carry, Xc, *extras_c) -> (carry, out)`` over the chunks of ``rows`` rows.

    ``extras``: per-row arrays (n, ...) sliced with X, or None.  A ``lax.scan`` over the
    full chunks, then the short last chunk (its own static shape); per-row outputs are
    concatenated in row order.  Returns ``(carry, out)``.
    """
    n = X.shape[0]
    full = n // rows
    outs = []

    def rows_of(a, start, size):
        return None if a is None else lax.dynamic_slice_in_dim(a, start, size, axis=0)

    if full:

        def step(c, i):
            start = i * rows
            return body(c, rows_of(X, start, rows), *(rows_of(a, start, rows) for a in extras))

        carry, out = lax.scan(step, carry, jnp.arange(full))
        outs.append(jax.tree_util.tree_map(lambda o: o.reshape((full * rows,) + o.shape[2:]), out))
    if n - full * rows:
        s = full * rows
        carry, out = body(carry, X[s:], *(None if a is None else a[s:] for a in extras))
        outs.append(out)
    if len(outs) == 1:
        return carry, outs[0]
    return carry, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), *outs)


def _frame(Xc: Any, shift: Any, inv_scale: float, dtype: Any, unit: bool = False) -> Any:
    """A chunk in the compute dtype and the working coordinates; with ``unit`` (cosine) each
    row scaled to unit length, rows of zeros left zero (``_metric.unit_rows``)."""
    x = Xc.astype(dtype)
    if inv_scale != 1.0:
        x = x * jnp.asarray(inv_scale, dtype)
    if shift is not None and not unit:  # the cosine frame has no shift (``Cosine.working_rows``)
        x = x - shift
    if unit:
        norm = jnp.sqrt(jnp.sum(x * x, axis=-1))
        x = x / jnp.where(norm > 0, norm, jnp.ones_like(norm))[..., None]
    return x


def _dot(a: Any, b: Any, exact: bool) -> Any:
    return jnp.matmul(a, b, precision=lax.Precision.HIGHEST if exact else None)


def _index_dtype() -> Any:
    """int64 where JAX has it (``jax_enable_x64``), else int32."""
    # jax sets its flags on Config with setattr: no stub names them
    return jnp.int64 if jax.config.jax_enable_x64 else jnp.int32  # type: ignore[attr-defined]


def _cluster_sums(xt: Any, lab: Any, w: Any, k: int, scatter: bool, exact: bool) -> tuple:
    """Weighted sums (k, d) and weights (k,) per label of a chunk, deterministic."""
    if scatter:
        src = xt if w is None else xt * w[:, None]
        ones = jnp.ones(xt.shape[0], xt.dtype) if w is None else w
        return (
            jax.ops.segment_sum(src, lab, num_segments=k),
            jax.ops.segment_sum(ones, lab, num_segments=k),
        )
    oh = (lab[:, None] == jnp.arange(k, dtype=lab.dtype)[None, :]).astype(xt.dtype)
    if w is not None:
        oh = oh * w[:, None]
    return _dot(oh.T, xt, exact), jnp.sum(oh, axis=0)


def _weighted_total(v: Any, w: Any, acc: Any) -> Any:
    return jnp.sum((v if w is None else v * w).astype(acc))


def _assigned_sq(xt: Any, C: Any, lab: Any) -> Any:
    diff = xt - jnp.take(C, lab, axis=0)
    return jnp.sum(diff * diff, axis=1)


# -- the jitted passes (module level: jax.jit keeps one executable per static signature) ----
_STATIC = ("rows", "inv_scale", "dtype", "acc", "exact", "scatter", "unit")


@partial(jax.jit, static_argnames=_STATIC + ("need_inertia",))
def _lloyd(X, w, shift, C, *, rows, inv_scale, dtype, acc, exact, scatter, unit, need_inertia):
    k, d = C.shape
    m2t, c_sq = -2.0 * C.T, jnp.sum(C * C, axis=1)
    idx = _index_dtype()

    def body(carry, Xc, wc):
        sums, counts, inertia = carry
        xt = _frame(Xc, shift, inv_scale, dtype, unit)
        D = _dot(xt, m2t, exact) + c_sq
        lab = jnp.argmin(D, axis=1)
        s, c = _cluster_sums(xt, lab, wc, k, scatter, exact)
        if need_inertia:
            dist = jnp.maximum(jnp.min(D, axis=1) + jnp.sum(xt * xt, axis=1), 0.0)
            inertia = inertia + _weighted_total(dist, wc, acc)
        return (sums + s, counts + c, inertia), lab.astype(idx)

    init = (jnp.zeros((k, d), dtype), jnp.zeros((k,), dtype), jnp.zeros((), acc))
    (sums, counts, inertia), labels = _chunked(body, init, X, (w,), rows)
    return labels, sums, counts, inertia


@partial(jax.jit, static_argnames=_STATIC + ("direct", "need_total"))
def _assign(
    X, w, shift, C, *, rows, inv_scale, dtype, acc, exact, scatter, unit, direct, need_total
):
    """Labels and: per-row distances (``direct`` False: the expansion, clipped) or the
    weighted total of direct differences (``need_total``)."""
    m2t, c_sq = -2.0 * C.T, jnp.sum(C * C, axis=1)
    idx = _index_dtype()

    def body(total, Xc, wc):
        xt = _frame(Xc, shift, inv_scale, dtype, unit)
        D = _dot(xt, m2t, exact) + c_sq
        lab = jnp.argmin(D, axis=1)
        if direct:
            if need_total:
                total = total + _weighted_total(_assigned_sq(xt, C, lab), wc, acc)
            return total, lab.astype(idx)
        mins = jnp.maximum(jnp.min(D, axis=1) + jnp.sum(xt * xt, axis=1), 0.0)
        return total, (lab.astype(idx), mins)

    return _chunked(body, jnp.zeros((), acc), X, (w,), rows)


@partial(jax.jit, static_argnames=_STATIC + ("need_total",))
def _to_assigned(
    X, w, shift, C, labels, *, rows, inv_scale, dtype, acc, exact, scatter, unit, need_total
):
    """``||xt_i - c_{labels_i}||^2`` per row, or their weighted total (``need_total``)."""

    def body(total, Xc, wc, lc):
        dist = _assigned_sq(_frame(Xc, shift, inv_scale, dtype, unit), C, lc)
        if need_total:
            return total + _weighted_total(dist, wc, acc), None
        return total, dist

    return _chunked(body, jnp.zeros((), acc), X, (w, labels), rows)


@partial(jax.jit, static_argnames=_STATIC)
def _all_sq(X, shift, C, *, rows, inv_scale, dtype, acc, exact, scatter, unit):
    k = C.shape[0]
    m2t, c_sq = -2.0 * C.T, jnp.sum(C * C, axis=1)
    ks = jnp.arange(k)

    def body(carry, Xc):
        xt = _frame(Xc, shift, inv_scale, dtype, unit)
        D = _dot(xt, m2t, exact) + c_sq + jnp.sum(xt * xt, axis=1)[:, None]
        lab = jnp.argmin(D, axis=1)
        exact_d = _assigned_sq(xt, C, lab)
        D = jnp.where(lab[:, None] == ks[None, :], exact_d[:, None], D)
        return carry, jnp.maximum(D, 0.0)

    return _chunked(body, jnp.zeros(()), X, (), rows)[1]


def _kpp_block(Xc, shift, inv_scale, dtype, acc, C, c_sq, exact, unit):
    """Squared distances (rows, m) in the accumulator dtype, clipped at 0 (the reference's
    ``_sq_dist_block``: ``||x||^2 - 2 x.c + ||c||^2`` of the frame's rows cast to acc)."""
    xa = _frame(Xc, shift, inv_scale, dtype, unit).astype(acc)
    D = jnp.sum(xa * xa, axis=1)[:, None] - 2.0 * _dot(xa, C.T, exact) + c_sq[None, :]
    return jnp.maximum(D, 0.0)


def _kpp_pots_d(X, w, shift, closest, cand, *, rows, inv_scale, dtype, acc, exact, unit, keep):
    """Potentials (m,) of the candidates ``cand`` and, with ``keep``, the clipped distances
    (n, m) of every row to them (accumulator dtype: n x m, never n x k)."""
    cand = cand.astype(acc)
    c_sq = jnp.sum(cand * cand, axis=1)

    def body(pots, Xc, wc, cc):
        Dc = _kpp_block(Xc, shift, inv_scale, dtype, acc, cand, c_sq, exact, unit)
        D = jnp.minimum(Dc, cc[:, None])
        p = jnp.sum(D, axis=0) if wc is None else _dot(wc.astype(acc), D, exact)
        return pots + p, (Dc if keep else None)

    return _chunked(body, jnp.zeros(cand.shape[0], acc), X, (w, closest), rows)


@partial(jax.jit, static_argnames=_STATIC)
def _kpp_pots(X, w, shift, closest, cand, *, rows, inv_scale, dtype, acc, exact, scatter, unit):
    return _kpp_pots_d(
        X,
        w,
        shift,
        closest,
        cand,
        rows=rows,
        inv_scale=inv_scale,
        dtype=dtype,
        acc=acc,
        exact=exact,
        unit=unit,
        keep=False,
    )[0]


@partial(jax.jit, static_argnames=_STATIC)
def _kpp_upd(X, shift, closest, center, *, rows, inv_scale, dtype, acc, exact, scatter, unit):
    center = center.astype(acc)
    c_sq = jnp.sum(center * center, axis=1)

    def body(carry, Xc, cc):
        d = _kpp_block(Xc, shift, inv_scale, dtype, acc, center, c_sq, exact, unit)[:, 0]
        return carry, d if cc is None else jnp.minimum(cc, d)

    return _chunked(body, jnp.zeros(()), X, (closest,), rows)[1]


#: on the CPU the greedy k-means++ steps take the transposed layout (a (d, n) copy of the
#: rows in the frame, held while k-means++ runs; the candidates' distances by direct
#: differences, one feature at a time, so each operation runs along n, where XLA's CPU code
#: vectorises) for d up to this many features and a copy up to ``_T_MAX_BYTES``: at
#: (100k, 16) with 4 candidates a step takes 0.7 ms against 3-4 ms for the (rows, d) x
#: (d, m) product in any form; from d = 64 the product is as fast
_T_MAX_D = 32
_T_MAX_BYTES = 1 << 28
#: rows per block of the two-level draw (block sums, then one block's running sum)
_DRAW_BLOCK = 1024


def _draw(weighted: Any, t: Any) -> Any:
    """``searchsorted(cumsum(weighted), t, side='left')`` (m,) for the targets ``t`` (m,), in
    two levels: the running sum of the blocks' sums, then of the one block each target falls
    in (XLA's CPU cumsum over n = 100k costs ~1 ms; this ~0.3 ms).  A target that rounding
    puts past the total, or past its block's last row of positive weight, takes that row
    (never a row of zero weight where any has weight, never past n - 1)."""
    n = weighted.shape[0]
    B = min(_DRAW_BLOCK, n)
    nb = -(-n // B)
    wp = jnp.pad(weighted, (0, nb * B - n)).reshape(nb, B)
    sums = jnp.sum(wp, axis=1)
    ends = jnp.cumsum(sums)
    last_blk = nb - 1 - jnp.argmax((sums > 0)[::-1])  # the last block of positive weight
    blk = jnp.minimum(jnp.searchsorted(ends, t, side="left"), last_blk)
    base = jnp.where(blk > 0, jnp.take(ends, jnp.maximum(blk - 1, 0)), 0.0)
    rows = jnp.take(wp, blk, axis=0)  # (m, B)
    j = jax.vmap(lambda r, tt: jnp.searchsorted(r, tt, side="left"))(
        jnp.cumsum(rows, axis=1), t - base
    )
    last = B - 1 - jnp.argmax((rows > 0)[:, ::-1], axis=1)  # the block's last positive row
    return jnp.minimum(blk * B + jnp.minimum(j, last), n - 1)


def _t_sq_dist(XT: Any, rows: Any) -> Any:
    """Squared distances (q, n) of the rows (q, d) to every column of ``XT`` (d, n) by direct
    differences, one feature at a time (each operation along n: see ``_T_MAX_D``)."""
    D = jnp.zeros((rows.shape[0], XT.shape[1]), XT.dtype)
    for j in range(XT.shape[0]):
        D = D + (XT[j][None, :] - rows[:, j][:, None]) ** 2
    return D


def _kpp_scan(dist: Any, closest: Any, weighted: Any, pot: Any, U: Any, wa: Any, hi: Any) -> Any:
    """The greedy k-means++ steps after the first centre, a ``lax.scan`` over the steps'
    uniforms ``U`` (k - 1, m): the candidates ``searchsorted(cumsum(weighted), u * pot)``
    (clipped to ``hi``, the last valid row, where given), their distances ``dist(cand)``
    (m, n), their potentials, the best one (first on ties), the closest-distance update.
    Returns the chosen rows (k - 1,)."""

    def step(carry, u):
        closest, weighted, pot = carry
        cand = _draw(weighted, u * pot)
        if hi is not None:
            cand = jnp.minimum(cand, hi)
        Dm = jnp.minimum(dist(cand), closest[None, :])
        pots = jnp.sum(Dm if wa is None else Dm * wa[None, :], axis=1)
        best = jnp.argmin(pots)
        closest = jnp.take(Dm, best, axis=0)
        weighted = closest if wa is None else closest * wa
        return (closest, weighted, jnp.min(pots)), jnp.take(cand, best)

    return lax.scan(step, (closest, weighted, pot), U)[1]


@partial(jax.jit, static_argnames=_STATIC + ("tlayout",))
def _kpp_all(
    X,
    w,
    shift,
    closest,
    weighted,
    pot,
    U,
    *,
    rows,
    inv_scale,
    dtype,
    acc,
    exact,
    scatter,
    unit,
    tlayout,
):
    """Every greedy k-means++ step after the first centre in one jitted ``lax.scan`` over the
    steps' host uniforms ``U`` (k - 1, m): per step the candidates ``searchsorted(cumsum(
    weighted), u * pot)``, their potentials, the best one, the closest-distance update.
    Returns the chosen rows' indices (k - 1,)."""
    wa = None if w is None else w.astype(acc)

    def cand_rows(cand):
        return _frame(jnp.take(X, cand, axis=0), shift, inv_scale, dtype, unit).astype(acc)

    if tlayout:
        XT = _frame(X, shift, inv_scale, dtype, unit).astype(acc).T  # (d, n)
        chosen = _kpp_scan(
            lambda cand: _t_sq_dist(XT, cand_rows(cand)), closest, weighted, pot, U, wa, None
        )
        return chosen.astype(_index_dtype())

    def step(carry, u):
        closest, weighted, pot = carry
        cand = _draw(weighted, u * pot)
        # the candidates' distances are kept (n, m): the best one's column updates
        # ``closest`` without a second pass over X
        pots, Dn = _kpp_pots_d(
            X,
            w,
            shift,
            closest,
            cand_rows(cand),
            rows=rows,
            inv_scale=inv_scale,
            dtype=dtype,
            acc=acc,
            exact=exact,
            unit=unit,
            keep=True,
        )
        best = jnp.argmin(pots)
        closest = jnp.minimum(closest, jnp.take(Dn, best, axis=1))
        weighted = closest if wa is None else closest * wa
        return (closest, weighted, jnp.min(pots)), jnp.take(cand, best)

    return lax.scan(step, (closest, weighted, pot), U)[1].astype(_index_dtype())


@partial(jax.jit, static_argnames=("rows", "inv_scale", "dtype", "acc", "big"))
def _frame_moments(X, shift, *, rows, inv_scale, dtype, acc, big):
    d = X.shape[1]

    def body(carry, Xc):
        ok, amax, sums, sqs = carry
        c = _frame(Xc, shift, inv_scale, dtype)
        a = jnp.abs(c)
        cz = jnp.where(a <= big, c, 0.0).astype(acc)
        return (
            ok & jnp.all(jnp.isfinite(c)),
            jnp.maximum(amax, jnp.max(a)),
            sums + jnp.sum(cz, axis=0),
            sqs + jnp.sum(cz * cz, axis=0),
        ), None

    init = (jnp.asarray(True), jnp.zeros((), dtype), jnp.zeros((d,), acc), jnp.zeros((d,), acc))
    return _chunked(body, init, X, (), rows)[0]


@jax.jit
def _lloyd_update(sums, counts, C, labels, labels_old):
    has = counts > 0
    updated = jnp.where(has[:, None], sums / jnp.where(has, counts, 1)[:, None], C)
    code = jnp.sum((updated - C) ** 2)
    if labels_old is not None:
        code = jnp.where(jnp.all(labels == labels_old), -1.0, code)
    return updated, jnp.where(jnp.any(~has), -2.0, code).astype(C.dtype)


@jax.jit
def _labels_equal(a, b):
    return jnp.all(a == b)


@partial(jax.jit, static_argnames=("k",))
def _n_distinct(labels, k):
    return jnp.count_nonzero(jnp.bincount(labels, length=k))


# -- batched passes: a leading axis of independent problems (one jit per group shape) ------
def _pow2_groups(a: int, cap: int) -> list[tuple[int, int]]:
    """``(start, stop)`` groups of ``a`` problems whose sizes are powers of two: groups of
    the largest power of two within ``cap``, then the rest by its binary digits.  The number
    of active problems shrinks as problems converge, and each new group shape would compile
    every batched pass again (~0.1-1 s); so at most log2(cap) + 1 shapes ever compile, and
    no problem is computed twice."""
    top = 1 << (max(cap, 1).bit_length() - 1)
    out, s = [], 0
    while s < a:
        g = top
        while g > a - s:
            g >>= 1
        out.append((s, s + g))
        s += g
    return out


def _bframe(Xg: Any, mask: Any, inv: Any, shift: Any, dtype: Any) -> Any:
    """Problems (g, n, d) in working coordinates and the compute dtype, masked rows zeroed
    before the frame (the reference's ``_batched_rows``)."""
    c = Xg.astype(dtype)
    if mask is not None:
        c = jnp.where(mask[:, :, None], c, jnp.zeros((), dtype))
    if inv is not None:
        c = c * inv[:, None, None]
    return c if shift is None else c - shift[:, None, :]


def _bassigned_sq(xt: Any, C: Any, lab: Any) -> Any:
    """``||xt_i - c_{lab_i}||^2`` (g, n) by direct differences."""
    diff = xt - jnp.take_along_axis(C, lab[:, :, None].astype(jnp.int32), axis=1)
    return jnp.sum(diff * diff, axis=2)


def _btotal(dist: Any, w: Any, acc: Any) -> Any:
    dist = dist.astype(acc)
    return jnp.sum(dist if w is None else dist * w.astype(acc), axis=1)


@partial(jax.jit, static_argnames=("dtype", "acc", "exact", "scatter", "sums", "inertia"))
def _blloyd(Xg, mask, inv, shift, w, C, *, dtype, acc, exact, scatter, sums, inertia):
    """Labels (g, n) and, as asked, the weighted sums (g, k, d) and counts (g, k) per label
    and the weighted inertia (g,) (accumulator dtype, direct differences) of a group."""
    xt = _bframe(Xg, mask, inv, shift, dtype)
    g, n, d = xt.shape
    k = C.shape[1]
    D = _dot(xt, -2.0 * jnp.swapaxes(C, 1, 2), exact) + jnp.sum(C * C, axis=2)[:, None, :]
    lab = jnp.argmin(D, axis=2).astype(_index_dtype())
    out = [lab, None, None, None]
    if sums:
        if scatter:  # one deterministic serial scatter on the CPU
            flat = (lab + (jnp.arange(g, dtype=lab.dtype) * k)[:, None]).reshape(g * n)
            src = xt if w is None else xt * w[:, :, None]
            ones = jnp.ones((g, n), dtype) if w is None else w
            out[1] = jax.ops.segment_sum(src.reshape(g * n, d), flat, g * k).reshape(g, k, d)
            out[2] = jax.ops.segment_sum(ones.reshape(g * n), flat, g * k).reshape(g, k)
        else:  # one-hot products elsewhere (a GPU scatter accumulates with atomics)
            oh = (lab[:, :, None] == jnp.arange(k, dtype=lab.dtype)).astype(dtype)
            if w is not None:
                oh = oh * w[:, :, None]
            out[1], out[2] = _dot(jnp.swapaxes(oh, 1, 2), xt, exact), jnp.sum(oh, axis=1)
    if inertia:
        out[3] = _btotal(_bassigned_sq(xt, C, lab), w, acc)
    return tuple(out)


@partial(jax.jit, static_argnames=("dtype",))
def _bto_assigned(Xg, mask, inv, shift, C, lab, *, dtype):
    """``||xt_i - c_{lab_i}||^2`` (g, n), 0 where a label lies outside [0, k)."""
    xt = _bframe(Xg, mask, inv, shift, dtype)
    ok = (lab >= 0) & (lab < C.shape[1])
    dist = _bassigned_sq(xt, C, jnp.where(ok, lab, 0))
    return jnp.where(ok, dist, jnp.zeros((), dist.dtype))


@partial(jax.jit, static_argnames=("dtype", "acc", "exact", "tlayout"))
def _bkpp(Xg, mask, inv, shift, w, first, first_u, U, *, dtype, acc, exact, tlayout):
    """Greedy k-means++ of a group of problems (the reference's ``_batched_kpp_group``):
    the chosen rows (g, k).  ``first`` (g,): the first rows of unweighted problems (host);
    weighted ones draw theirs from ``first_u`` (g,) here; ``U`` (g, k - 1, m)."""
    xa = _bframe(Xg, mask, inv, shift, dtype).astype(acc)
    g, n, d = xa.shape
    idx_t = _index_dtype()
    wa = None if w is None else w.astype(acc)
    pos = jnp.arange(n, dtype=idx_t)
    hi = jnp.full((g,), n - 1, idx_t) if mask is None else jnp.max(jnp.where(mask, pos, 0), axis=1)
    if wa is not None:  # searchsorted(cdf, u * total, side='right'), clipped to the last row
        cdf = jnp.cumsum(wa, axis=1)
        target = first_u.astype(acc) * cdf[:, -1]
        first = jnp.minimum(jnp.sum(cdf <= target[:, None], axis=1).astype(idx_t), hi)

    def one(x, wp, h, f, Up):
        if tlayout:
            XT = x.T

            def dist(cand):  # (m,) -> (m, n)
                return _t_sq_dist(XT, jnp.take(x, cand, axis=0))
        else:
            x_sq = jnp.sum(x * x, axis=1)

            def dist(cand):  # the expansion, clipped at 0
                rows = jnp.take(x, cand, axis=0)
                D = x_sq[None, :] - 2.0 * _dot(rows, x.T, exact)
                return jnp.maximum(D + jnp.sum(rows * rows, 1)[:, None], 0.0)

        closest = dist(f[None])[0]
        weighted = closest if wp is None else closest * wp
        chosen = _kpp_scan(dist, closest, weighted, jnp.sum(weighted), Up.astype(acc), wp, h)
        return jnp.concatenate([f[None], chosen.astype(idx_t)])

    return jax.vmap(one)(xa, wa, hi, first.astype(idx_t), U)


class JaxKernels(ReferenceKernels):
    """Whole passes as jitted JAX functions over chunks (see the module's docstring).

    The mini-batch step's assignment (the reference's ``minibatch_assign``) is a call of
    the jitted :meth:`lloyd_pass` on the batch."""

    name = "jax"

    def _static(self, data: Any, rows: int | None = None) -> dict:
        on_cpu = getattr(self.device, "platform", "cpu") == "cpu"
        rows = max(1, min(int(rows or data.rows), data.n))
        # chunks of equal size (at most ``rows``): no long short last chunk, which made the
        # pass 1.25x slower at n = 100k, rows = 65536 (a second, badly sized product)
        rows = -(-data.n // -(-data.n // rows))
        return {
            "rows": rows,
            "inv_scale": float(data.inv_scale),
            "dtype": jnp.dtype(self.dtype),
            "acc": jnp.dtype(data.accumulator_dtype()),
            "exact": self.precision == "exact",
            "scatter": on_cpu or not self.deterministic,
            "unit": bool(data.metric.unit_rows),
        }

    def _tlayout(self, rows: int, d: int, acc: Any) -> bool:
        """Whether k-means++ takes the transposed layout for ``rows`` rows of ``d`` features
        in the accumulator dtype ``acc`` (the CPU, d <= ``_T_MAX_D``, the copy within
        ``_T_MAX_BYTES``)."""
        on_cpu = getattr(self.device, "platform", "cpu") == "cpu"
        return on_cpu and d <= _T_MAX_D and rows * d * jnp.dtype(acc).itemsize <= _T_MAX_BYTES

    def _fusable(self, data: Any) -> bool:
        """Whether the jitted passes read ``data.X`` themselves: as ``fusable``, and for the
        cosine frame too (the rows scaled to unit length inside, per chunk)."""
        return not data.streamed and data.metric.kernel == "sqeuclidean"

    def lloyd_pass(self, data, centers, *, need_inertia=False):
        if not self._fusable(data):
            return super().lloyd_pass(data, centers, need_inertia=need_inertia)
        labels, sums, counts, inertia = _lloyd(
            data.X,
            data.weights,
            data.shift,
            centers,
            need_inertia=bool(need_inertia),
            **self._static(data),
        )
        return labels, sums, counts, (inertia if need_inertia else None)

    def assign(self, data, centers):
        if not self._fusable(data):
            return super().assign(data, centers)
        return _assign(
            data.X, None, data.shift, centers, direct=False, need_total=False, **self._static(data)
        )[1]

    def labels_inertia(self, data, centers, *, return_inertia=True):
        if not self._fusable(data):
            return super().labels_inertia(data, centers, return_inertia=return_inertia)
        total, labels = _assign(
            data.X,
            data.weights,
            data.shift,
            centers,
            direct=True,
            need_total=bool(return_inertia),
            **self._static(data),
        )
        return labels, (total if return_inertia else None)

    def sq_dist_to_assigned(self, data, centers, labels):
        if not self._fusable(data):
            return super().sq_dist_to_assigned(data, centers, labels)
        return _to_assigned(
            data.X, None, data.shift, centers, labels, need_total=False, **self._static(data)
        )[1]

    def inertia_for_labels(self, data, centers, labels):
        if not self._fusable(data):
            return super().inertia_for_labels(data, centers, labels)
        return _to_assigned(
            data.X, data.weights, data.shift, centers, labels, need_total=True, **self._static(data)
        )[0]

    def sq_distances(self, data, centers):
        if not self._fusable(data):
            return super().sq_distances(data, centers)
        return _all_sq(data.X, data.shift, centers, **self._static(data))

    def kpp_potentials(self, data, closest, cand):
        if not self._fusable(data):
            return super().kpp_potentials(data, closest, cand)
        rows = self._kpp_rows(data, int(cand.shape[0]))
        return _kpp_pots(
            data.X, data.weights, data.shift, closest, cand, **self._static(data, rows)
        )

    def kpp_update(self, data, closest, center):
        if not self._fusable(data):
            return super().kpp_update(data, closest, center)
        return _kpp_upd(
            data.X, data.shift, closest, center, **self._static(data, self._kpp_rows(data, 1))
        )

    def kpp_steps(self, data, closest, weighted, pot, U):
        """Every greedy k-means++ step after the first in one jitted call (a ``lax.scan``
        over the steps), or None (then the solver's loop runs): ``U`` (k - 1, m) the steps'
        host uniforms in [0, 1), cast to the accumulator dtype on the device (handed to the
        jitted call as NumPy: ``jnp.asarray(U, device=...)`` costs a dispatch).  Returns the
        chosen rows' indices (k - 1,)."""
        if not self._fusable(data):
            return None
        m = int(U.shape[1])
        static = self._static(data, self._kpp_rows(data, m))
        acc = jnp.dtype(data.accumulator_dtype())
        tlayout = self._tlayout(data.n, data.d, acc)
        U = np.asarray(U, dtype=acc)
        return _kpp_all(
            data.X, data.weights, data.shift, closest, weighted, pot, U, tlayout=tlayout, **static
        )

    def frame_stats(self, data, shift=None, big=float("inf")):
        if not fusable(data):
            return None
        ok, amax, sums, sqs = jax.device_get(
            _frame_moments(
                data.X,
                shift,
                rows=max(1, data.rows),
                inv_scale=float(data.inv_scale),
                dtype=jnp.dtype(self.dtype),
                acc=jnp.dtype(data.accumulator_dtype()),
                big=float(big),
            )
        )  # the one host sync
        return (bool(ok), float(amax), np.asarray(sums, np.float64), np.asarray(sqs, np.float64))

    # -- batched passes (a problem axis): one jitted call per group of problems ----------
    def _batched_fusable(self, data: Any) -> bool:
        return data.metric.kernel == "sqeuclidean" and not data.metric.unit_rows

    def _bgroups(self, data, problems, width):
        """``(start, stop, X, mask, inv_scale, shift, weights)`` of each group of the active
        problems: within the reference's memory budget, of power-of-two sizes
        (``_pow2_groups``)."""
        ids = self._batched_ids(data, problems)
        cap = self._batched_groups(data, len(ids), width)[0][1]
        for s, e in _pow2_groups(len(ids), cap):
            g = ids[s:e]
            yield (
                s,
                e,
                *(
                    self._batched_take(a, g)
                    for a in (data.X, data.mask, data.inv_scale, data.shift, data.weights)
                ),
            )

    def _bstatic(self, data):
        return {
            "dtype": jnp.dtype(data.dtype),
            "acc": jnp.dtype(data.accumulator_dtype()),
            "exact": self.precision == "exact",
            "scatter": getattr(self.device, "platform", "cpu") == "cpu" or not self.deterministic,
        }

    def _bpass(self, data, centers, problems, sums, inertia):
        k, d = int(centers.shape[1]), int(centers.shape[2])
        parts = []
        for s, e, Xg, mg, ig, sg, wg in self._bgroups(data, problems, max(k, d)):
            parts.append(
                _blloyd(
                    Xg,
                    mg,
                    ig,
                    sg,
                    wg,
                    centers[s:e],
                    sums=sums,
                    inertia=inertia,
                    **self._bstatic(data),
                )
            )
        return [
            None
            if parts[0][i] is None
            else (parts[0][i] if len(parts) == 1 else jnp.concatenate([p[i] for p in parts]))
            for i in range(4)
        ]

    def batched_lloyd_pass(self, data, centers, problems=None, *, need_inertia=False):
        if not self._batched_fusable(data):
            return super().batched_lloyd_pass(data, centers, problems, need_inertia=need_inertia)
        return tuple(self._bpass(data, centers, problems, True, bool(need_inertia)))

    def batched_labels_inertia(self, data, centers, problems=None):
        if not self._batched_fusable(data):
            return super().batched_labels_inertia(data, centers, problems)
        labels, _, _, inertia = self._bpass(data, centers, problems, False, True)
        return labels, inertia

    def batched_sq_dist_to_assigned(self, data, centers, labels, problems=None):
        if not self._batched_fusable(data):
            return super().batched_sq_dist_to_assigned(data, centers, labels, problems)
        k, d = int(centers.shape[1]), int(centers.shape[2])
        parts = [
            _bto_assigned(Xg, mg, ig, sg, centers[s:e], labels[s:e], dtype=jnp.dtype(data.dtype))
            for s, e, Xg, mg, ig, sg, _ in self._bgroups(data, problems, max(k, d))
        ]
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    def batched_kmeans_plusplus(self, data, n_clusters, first_u, step_u, n_local_trials):
        if not self._batched_fusable(data):
            return super().batched_kmeans_plusplus(
                data, n_clusters, first_u, step_u, n_local_trials
            )
        n, d = int(data.X.shape[1]), int(data.X.shape[2])
        static = self._bstatic(data)
        del static["scatter"]
        acc = static["acc"]
        first_host = np.minimum((np.asarray(first_u) * n).astype(np.int64), n - 1)
        parts = []
        for s, e, Xg, mg, ig, sg, wg in self._bgroups(data, None, 2 * d + 2 * n_local_trials + 4):
            tlayout = self._tlayout((e - s) * n, d, acc)
            parts.append(
                _bkpp(
                    Xg,
                    mg,
                    ig,
                    sg,
                    wg,
                    first_host[s:e],
                    np.asarray(first_u[s:e], dtype=acc),
                    np.asarray(step_u[s:e], dtype=acc),
                    tlayout=tlayout,
                    **static,
                )
            )
        return parts[0] if len(parts) == 1 else jnp.concatenate(parts)

    def lloyd_update(self, data, labels, sums, counts, centers, labels_old):
        if data.metric.name != "euclidean":  # cosine: unit-length means (the solver's path)
            return None
        return _lloyd_update(sums, counts, centers, labels, labels_old)

    def labels_equal(self, a, b):
        return _labels_equal(a, b)

    def n_distinct(self, labels, n_clusters):
        return int(_n_distinct(labels, int(n_clusters)))


# -- a functional Lloyd iteration for use inside jax.jit / jax.vmap ---------------------------
def lloyd(X: Any, centers: Any, max_iter: int = 300, tol: float = 1e-4) -> tuple:
    """Lloyd's iteration from ``centers`` as a pure JAX function (``lax.while_loop`` over the
    kernel set's jitted pass): traceable, so it runs under ``jax.jit`` and ``jax.vmap``.

    The same stopping rules as :class:`kmeans_xp.KMeans` (strict convergence: unchanged
    labels; or a squared centre shift <= ``tol`` times the mean per-feature variance of X),
    without what needs the host: no centring of far-from-origin data, no power-of-two
    rescaling, no relocation of empty clusters (an empty cluster keeps its centre), no
    checks of the input.  Under ``vmap`` each problem stops on its own rule (JAX runs the
    loop until every problem has stopped, leaving the finished ones unchanged).

    Parameters
    ----------
    X : jax.Array (n, d), float32 or float64
    centers : jax.Array (k, d), the initial centres
    max_iter : int (static)
    tol : float

    Returns
    -------
    centers (k, d), labels (n,), inertia (0-d), n_iter (0-d int)
        ``labels`` and ``inertia`` belong to the returned centres.
    """
    from .._compat import chunk_rows

    X = jnp.asarray(X)
    dtype = X.dtype if jnp.issubdtype(X.dtype, jnp.floating) else jnp.dtype(jnp.float32)
    X = X.astype(dtype)
    C = jnp.asarray(centers).astype(dtype)
    (n, d), k = X.shape, C.shape[0]
    static = {
        "rows": chunk_rows(n, d, k, 1 << 20),
        "inv_scale": 1.0,
        "dtype": jnp.dtype(dtype),
        "acc": jnp.dtype(dtype),
        "exact": True,
        "scatter": jax.default_backend() == "cpu",
        "unit": False,
    }
    tol_abs = tol * jnp.mean(jnp.var(X, axis=0))
    idx = _index_dtype()

    def cond(state):
        i, _, _, done = state
        return (i < max_iter) & ~done

    def body(state):
        i, C, old, _ = state
        labels, sums, counts, _ = _lloyd(X, None, None, C, need_inertia=False, **static)
        has = counts > 0
        new = jnp.where(has[:, None], sums / jnp.where(has, counts, 1)[:, None], C)
        shift = jnp.sum((new - C) ** 2)
        done = jnp.all(labels == old) | (shift <= tol_abs)
        return i + 1, new, labels, done

    init = (jnp.asarray(0), C, jnp.full((n,), -1, idx), jnp.asarray(False))
    n_iter, C, _, _ = lax.while_loop(cond, body, init)
    inertia, labels = _assign(X, None, None, C, direct=True, need_total=True, **static)
    return C, labels, inertia, n_iter
