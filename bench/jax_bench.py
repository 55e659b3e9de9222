"""kmeans_xp on JAX arrays against a hand-written ``jax.jit`` Lloyd step and its own NumPy fit.

    python -m bench.jax_bench                       # (100k,16,16) and (200k,128,256)
    python -m bench.jax_bench --sizes 100000x16x16 --rounds 5

Measured, each in this process, implementations interleaved within each round (the machine
may be shared: compare the per-round ratios, not absolute times):

- the warm marginal cost of a Lloyd iteration from given centres (tol = 0):
  ``(t(M2 iterations) - t(M1)) / (M2 - M1)``, which leaves out what a fit pays once (input
  checks, the frame's pass, the final assignment), for kmeans_xp on the JAX array, the
  hand-written jit step (``X @ C.T``, argmin, ``segment_sum``; one host sync per
  iteration, as kmeans_xp has) and kmeans_xp on the same data as a NumPy array;
- a warm default fit (k-means++ included, ``n_init=1``) on JAX and on NumPy;
- the first fit's time in the process (JAX compiles its passes then; a later fit of data
  of the same shape compiles nothing) and the hand-written step's compile.

Threads: run with OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS=2 (``python -m bench`` sets them).
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial

import numpy as np


def _step():
    import jax
    import jax.numpy as jnp

    @partial(jax.jit, static_argnames="k")
    def step(X, C, k):
        D = jnp.sum(C * C, axis=1) - 2.0 * X @ C.T
        labels = jnp.argmin(D, axis=1)
        sums = jax.ops.segment_sum(X, labels, num_segments=k)
        counts = jax.ops.segment_sum(jnp.ones(X.shape[0], X.dtype), labels, num_segments=k)
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1)[:, None], C)
        return new, jnp.sum((new - C) ** 2)

    return step


_STEP = None


def hand_written_fit(X, C, max_iter: int):
    """``max_iter`` Lloyd iterations of the hand-written jit step, one host sync each
    (the centre shift read back, as a convergence test would)."""
    global _STEP
    if _STEP is None:
        _STEP = _step()
    k = int(C.shape[0])
    for _ in range(max_iter):
        C, shift = _STEP(X, C, k)
        float(shift)
    return C


CLOCK = time.perf_counter


def _time(f, *args) -> float:
    t = CLOCK()
    f(*args)
    return CLOCK() - t


def measure(n: int, d: int, k: int, rounds: int, m1: int, m2: int) -> dict:
    import jax.numpy as jnp

    from kmeans_xp import KMeans

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(k, d)) * 3
    Xn = (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
    C0n = Xn[rng.choice(n, k, replace=False)]
    X, C0 = jnp.asarray(Xn), jnp.asarray(C0n)

    def ours(m):
        KMeans(k, init=C0, n_init=1, max_iter=m, tol=0).fit(X)

    def ours_np(m):
        KMeans(k, init=C0n, n_init=1, max_iter=m, tol=0).fit(Xn)

    def hand(m):
        hand_written_fit(X, C0, m)

    out = {"size": f"{n}x{d}x{k}", "clock": CLOCK.__name__, "first_fit_jax_s": _time(ours, 2),
           "first_fit_hand_s": _time(hand, 2), "first_default_fit_jax_s": _time(
               lambda: KMeans(k, random_state=0, n_init=1).fit(X))}
    ours_np(2)
    out["default_fit_n_iter"] = {
        "kmeans_xp-jax": KMeans(k, random_state=0, n_init=1).fit(X).n_iter_,
        "kmeans_xp-numpy": KMeans(k, random_state=0, n_init=1).fit(Xn).n_iter_}
    impls = {"kmeans_xp-jax": ours, "jax-jit": hand, "kmeans_xp-numpy": ours_np}
    marg = {name: [] for name in impls}
    fit_j, fit_n = [], []
    for _ in range(rounds):
        for name, f in impls.items():
            marg[name].append((_time(f, m2) - _time(f, m1)) / (m2 - m1))
        fit_j.append(_time(lambda: KMeans(k, random_state=0, n_init=1).fit(X)))
        fit_n.append(_time(lambda: KMeans(k, random_state=0, n_init=1).fit(Xn)))
    out["marginal_iter_ms"] = {name: [round(t * 1e3, 3) for t in ts] for name, ts in marg.items()}
    out["ratio_jax_to_hand"] = [round(a / b, 2) for a, b in zip(marg["kmeans_xp-jax"],
                                                                 marg["jax-jit"])]
    out["default_fit_ms"] = {"kmeans_xp-jax": [round(t * 1e3, 1) for t in fit_j],
                             "kmeans_xp-numpy": [round(t * 1e3, 1) for t in fit_n]}
    out["ratio_fit_jax_to_numpy"] = [round(a / b, 2) for a, b in zip(fit_j, fit_n)]
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000x16x16,200000x128x256")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--m1", type=int, default=5)
    ap.add_argument("--m2", type=int, default=25)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: the process's CPU time (all threads), steadier on a busy machine")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    for spec in args.sizes.split(","):
        n, d, k = (int(v) for v in spec.split("x"))
        print(json.dumps(measure(n, d, k, args.rounds, args.m1, args.m2)), flush=True)


if __name__ == "__main__":
    main()
