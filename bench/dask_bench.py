"""Benchmark: kmeans_xp on Dask (1 and 2 worker processes) against scikit-learn in memory and
dask-ml's ``KMeans`` on the same cluster and data.

    python -m bench.dask_bench              # part A (1M x 32, k=16) and part B (2 GiB)
    python -m bench.dask_bench --quick      # smaller: a minute or two
    python -m bench.dask_bench --skip-big   # parts A and C
    python -m bench.dask_bench --stream-only  # part C only

Part A, one data set (float32 Gaussian blobs, generated block by block on the workers and
materialised on the client for the in-memory fits), interleaved rounds; in each round every
contestant fits twice:
- *default*: each library's default initialisation (scikit-learn and kmeans_xp in memory:
  greedy k-means++; kmeans_xp on Dask and dask-ml: k-means||), ``n_init=1``, default tol;
- *same init*: the same initial centres (the first k rows), ``tol=0``, at most ``--iters``
  iterations: the time per Lloyd iteration.
The inertia of every result is re-evaluated by one common float64 computation on the client
(libraries compute theirs differently).  Dask times exclude generating and persisting X.

Part B, a data set of ``--big-gb`` GiB (generated lazily on the workers, never on the
client): kmeans_xp on 1 worker against 2 workers (1 thread each; the machine has 2 cores),
fresh clusters, interleaved, same init (``--iters`` iterations) and default init.

Part C, mini-batch k-means as a stream: one pass over X, one ``partial_fit`` step per row
block (``--stream-rows`` rows), ``compute_labels=False``, k-means++ on the first block's
``init_size`` rows: kmeans_xp ``MiniBatchKMeans.partial_fit(X.blocks[i])`` on the 2-worker
cluster against dask-ml's ``Incremental(sklearn MiniBatchKMeans, shuffle_blocks=False)`` on the
same cluster, and the same loop in memory with scikit-learn and kmeans_xp (X on the client).

The machine is shared: compare ratios within a round, not absolute times across runs.
Results: printed, and written to ``--out`` (JSON) when given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# -- data ----------------------------------------------------------------------------------------
def lazy_blobs(n: int, d: int, k: int, rows_per_block: int, seed: int = 0):
    """float32 blobs (k centres, unit-variance noise) generated block by block where the block
    lives; a block depends only on (seed, block index)."""
    import dask.array as da

    centers = np.random.default_rng(seed).normal(size=(k, d)).astype(np.float32) * 3

    def make(block_info=None):
        loc = block_info[None]["chunk-location"][0]
        m = block_info[None]["chunk-shape"][0]
        rng = np.random.default_rng([seed, loc])
        out = rng.standard_normal((m, d), dtype=np.float32)
        out += centers[rng.integers(0, k, m)]
        return out

    sizes = [rows_per_block] * (n // rows_per_block)
    if n % rows_per_block:
        sizes.append(n % rows_per_block)
    return da.map_blocks(make, chunks=(tuple(sizes), (d,)), dtype=np.float32,
                         meta=np.empty((0, 0), np.float32))


def inertia_of(X: np.ndarray, C: np.ndarray, rows: int = 65536) -> float:
    """sum_i min_j ||x_i - c_j||^2 in float64: the common yardstick."""
    C = np.asarray(C, np.float64)
    c2 = (C * C).sum(1)
    total = 0.0
    for s in range(0, X.shape[0], rows):
        x = X[s:s + rows].astype(np.float64)
        D = (x * x).sum(1)[:, None] - 2 * x @ C.T + c2
        total += float(np.maximum(D.min(1), 0).sum())
    return total


# -- clusters ------------------------------------------------------------------------------------
@contextlib.contextmanager
def cluster(n_workers: int, memory_limit: str):
    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=n_workers, processes=True, threads_per_worker=1,
                      memory_limit=memory_limit, dashboard_address=":0", silence_logs=40)
    cl = Client(lc, set_as_default=False)
    try:
        yield cl
    finally:
        cl.close()
        lc.close()


def worker_processes(client):
    """psutil handles of the cluster's worker processes (local clusters only)."""
    import psutil

    return [psutil.Process(pid) for pid in client.run(os.getpid).values()]


def cpu_seconds(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# -- contestants ---------------------------------------------------------------------------------
def fit_sklearn(X, k, C0, iters):
    from sklearn.cluster import KMeans

    if C0 is None:
        return KMeans(k, n_init=1, random_state=0).fit(X)
    return KMeans(k, init=C0, n_init=1, max_iter=iters, tol=0.0).fit(X)


def fit_xp(X, k, C0, iters):
    from kmeans_xp import KMeans

    if C0 is None:
        return KMeans(k, random_state=0).fit(X)
    return KMeans(k, init=C0, max_iter=iters, tol=0.0).fit(X)


def fit_daskml(X, k, C0, iters):
    from dask_ml.cluster import KMeans

    if C0 is None:
        return KMeans(k, random_state=0).fit(X)
    return KMeans(k, init=C0, max_iter=iters, tol=0.0).fit(X)


def run_on(client, fn, *args):
    """``fn(*args)`` with ``client`` as the default scheduler."""
    with client.as_current():
        import dask

        with dask.config.set(scheduler=client):
            return timed(lambda: fn(*args))


def stream_xp_dask(X, k):
    from kmeans_xp import MiniBatchKMeans

    km = MiniBatchKMeans(k, random_state=0, compute_labels=False)
    for i in range(X.numblocks[0]):
        km.partial_fit(X.blocks[i])
    km.n_iter_ = km.n_steps_
    return km


def stream_daskml(X, k):
    from dask_ml.wrappers import Incremental
    from sklearn.cluster import MiniBatchKMeans

    inc = Incremental(MiniBatchKMeans(k, random_state=0, compute_labels=False),
                      shuffle_blocks=False, random_state=0)
    est = inc.fit(X).estimator_
    est.n_iter_ = est.n_steps_
    return est


def stream_in_memory(cls, blocks, k):
    est = cls(k, random_state=0, compute_labels=False)
    for b in blocks:
        est.partial_fit(b)
    est.n_iter_ = est.n_steps_
    return est


def daskml_available() -> bool:
    try:
        import dask_ml.cluster  # noqa: F401
        return True
    except ImportError:
        return False


# -- parts ---------------------------------------------------------------------------------------
def part_a(n, d, k, rounds, iters, rows_per_block, results):
    from distributed import wait

    print(f"\n== part A: ({n}, {d}) float32, k={k}, {rows_per_block} rows per block ==")
    with_dml = daskml_available()
    if not with_dml:
        print("dask-ml is not installed: its rows are missing")
    Xd = lazy_blobs(n, d, k, rows_per_block)
    with cluster(1, "4GB") as c1, cluster(2, "2GB") as c2:
        X1, X2 = c1.persist(Xd), c2.persist(Xd)
        with c1.as_current():
            wait(X1)
        with c2.as_current():
            wait(X2)
        X = c2.compute(Xd).result()  # the same data on the client, for the in-memory fits
        C0 = X[:k].copy()
        for r in range(rounds):
            for mode, init in (("default", None), ("same init", C0)):
                runs = [("sklearn in memory", lambda init=init: timed(lambda: fit_sklearn(X, k, init, iters))),
                        ("kmeans_xp in memory", lambda init=init: timed(lambda: fit_xp(X, k, init, iters))),
                        ("kmeans_xp dask 1 worker", lambda init=init: run_on(c1, fit_xp, X1, k, init, iters)),
                        ("kmeans_xp dask 2 workers", lambda init=init: run_on(c2, fit_xp, X2, k, init, iters))]
                if with_dml:
                    runs += [("dask-ml 1 worker", lambda init=init: run_on(c1, fit_daskml, X1, k, init, iters)),
                             ("dask-ml 2 workers", lambda init=init: run_on(c2, fit_daskml, X2, k, init, iters))]
                for name, go in runs:
                    t, est = go()
                    n_iter = int(est.n_iter_)
                    row = {"part": "A", "round": r, "mode": mode, "impl": name, "n": n, "d": d,
                           "k": k, "seconds": t, "n_iter": n_iter,
                           "inertia": inertia_of(X, np.asarray(est.cluster_centers_))}
                    results.append(row)
                    print(f"round {r} {mode:9s} {name:26s} {t:8.2f} s  {n_iter:3d} it  "
                          f"{t / max(n_iter, 1) * 1e3:8.1f} ms/it  inertia {row['inertia']:.6e}",
                          flush=True)


def part_c(n, d, k, rounds, rows_per_block, results):
    from distributed import wait
    from sklearn.cluster import MiniBatchKMeans as SKMiniBatch

    from kmeans_xp import MiniBatchKMeans as XPMiniBatch

    print(f"\n== part C: ({n}, {d}) float32, k={k}, partial_fit per block of "
          f"{rows_per_block} rows (one pass) ==")
    with_dml = daskml_available()
    Xd = lazy_blobs(n, d, k, rows_per_block, seed=2)
    with cluster(2, "2GB") as c2:
        X2 = c2.persist(Xd)
        with c2.as_current():
            wait(X2)
        X = c2.compute(Xd).result()
        blocks = [X[s:s + rows_per_block] for s in range(0, n, rows_per_block)]
        runs = [("sklearn partial_fit loop in memory",
                 lambda: timed(lambda: stream_in_memory(SKMiniBatch, blocks, k))),
                ("kmeans_xp partial_fit loop in memory",
                 lambda: timed(lambda: stream_in_memory(XPMiniBatch, blocks, k))),
                ("kmeans_xp partial_fit dask 2 workers",
                 lambda: run_on(c2, stream_xp_dask, X2, k))]
        if with_dml:
            runs.append(("dask-ml Incremental 2 workers",
                         lambda: run_on(c2, stream_daskml, X2, k)))
        for _, go in runs:  # warm-up, not recorded: imports and compilation on the workers
            go()
        for r in range(rounds):
            for name, go in (runs if r % 2 == 0 else runs[::-1]):
                t, est = go()
                row = {"part": "C", "round": r, "impl": name, "n": n, "d": d, "k": k,
                       "seconds": t, "n_steps": int(est.n_steps_),
                       "inertia": inertia_of(X, np.asarray(est.cluster_centers_))}
                results.append(row)
                print(f"round {r} {name:38s} {t:8.2f} s  {row['n_steps']:3d} steps  "
                      f"{t / row['n_steps'] * 1e3:8.1f} ms/step  inertia {row['inertia']:.6e}",
                      flush=True)


def part_b(gb, d, k, rounds, iters, rows_per_block, results):
    from distributed import wait

    n = int(gb * 2**30 / (4 * d))
    print(f"\n== part B: ({n}, {d}) float32 = {n * d * 4 / 2**30:.2f} GiB, k={k} ==")
    Xd = lazy_blobs(n, d, k, rows_per_block, seed=1)
    C0 = None
    for r in range(rounds):
        for nw in ((1, 2) if r % 2 == 0 else (2, 1)):
            limit = f"{(gb * 2.2 / nw) + 1.0:.1f}GiB"
            with cluster(nw, limit) as c:
                Xp = c.persist(Xd)
                with c.as_current():
                    wait(Xp)
                if C0 is None:
                    C0 = c.compute(Xd[:k]).result()
                procs = worker_processes(c)
                for mode, init in (("same init", C0), ("default", None)):
                    cpu0 = [cpu_seconds(p) for p in procs]
                    t, est = run_on(c, fit_xp, Xp, k, init, iters)
                    cpu = [cpu_seconds(p) - c0 for p, c0 in zip(procs, cpu0)]
                    row = {"part": "B", "round": r, "mode": mode, "workers": nw, "n": n, "d": d,
                           "k": k, "seconds": t, "n_iter": int(est.n_iter_),
                           "inertia": float(est.inertia_), "worker_cpu_seconds": cpu}
                    results.append(row)
                    print(f"round {r} {mode:9s} kmeans_xp dask {nw} worker(s) {t:8.2f} s  "
                          f"{row['n_iter']:3d} it  {t / row['n_iter'] * 1e3:8.1f} ms/it  "
                          f"inertia {row['inertia']:.6e}  worker CPU s "
                          f"{', '.join(f'{x:.1f}' for x in cpu)}", flush=True)
                del Xp


def summarise(results):
    """Median ratios, paired within a round."""
    out = {}
    A = [r for r in results if r["part"] == "A"]
    for mode in ("default", "same init"):
        rows = [r for r in A if r["mode"] == mode]
        impls = sorted({r["impl"] for r in rows})
        for ref in ("sklearn in memory", "dask-ml 2 workers", "dask-ml 1 worker"):
            if ref not in impls:
                continue
            for impl in impls:
                ratios, iratios = [], []
                for rnd in sorted({r["round"] for r in rows}):
                    a = [r for r in rows if r["round"] == rnd and r["impl"] == impl]
                    b = [r for r in rows if r["round"] == rnd and r["impl"] == ref]
                    if a and b:
                        key = "seconds" if mode == "default" else None
                        ta = a[0]["seconds"] / (1 if key else a[0]["n_iter"])
                        tb = b[0]["seconds"] / (1 if key else b[0]["n_iter"])
                        ratios.append(ta / tb)
                        iratios.append(a[0]["inertia"] / b[0]["inertia"])
                out[f"A {mode}: {impl} / {ref}"] = (float(np.median(ratios)),
                                                    float(np.median(iratios)))
    B = [r for r in results if r["part"] == "B"]
    for mode in ("same init", "default"):
        ratios = []
        for rnd in sorted({r["round"] for r in B}):
            one = [r for r in B if r["round"] == rnd and r["mode"] == mode and r["workers"] == 1]
            two = [r for r in B if r["round"] == rnd and r["mode"] == mode and r["workers"] == 2]
            if one and two:
                per = "seconds" if mode == "default" else None
                t1 = one[0]["seconds"] / (1 if per else one[0]["n_iter"])
                t2 = two[0]["seconds"] / (1 if per else two[0]["n_iter"])
                ratios.append(t1 / t2)
        if ratios:
            out[f"B {mode}: 1 worker / 2 workers (speed-up)"] = (float(np.median(ratios)), None)
        # on a shared machine the wall clock measures this session's CPU share as much as the
        # code: the busiest worker's CPU time is the wall time on dedicated cores
        cp = []
        for rnd in sorted({r["round"] for r in B}):
            one = [r for r in B if r["round"] == rnd and r["mode"] == mode and r["workers"] == 1]
            two = [r for r in B if r["round"] == rnd and r["mode"] == mode and r["workers"] == 2]
            if one and two and "worker_cpu_seconds" in one[0]:
                cp.append(sum(one[0]["worker_cpu_seconds"]) / max(two[0]["worker_cpu_seconds"]))
        if cp:
            out[f"B {mode}: 1 worker CPU s / busiest of 2 workers CPU s"] = (
                float(np.median(cp)), None)
    C = [r for r in results if r["part"] == "C"]
    for ref in ("sklearn partial_fit loop in memory", "dask-ml Incremental 2 workers"):
        for impl in sorted({r["impl"] for r in C}):
            ratios, iratios = [], []
            for rnd in sorted({r["round"] for r in C}):
                a = [r for r in C if r["round"] == rnd and r["impl"] == impl]
                b = [r for r in C if r["round"] == rnd and r["impl"] == ref]
                if a and b:
                    ratios.append(a[0]["seconds"] / b[0]["seconds"])
                    iratios.append(a[0]["inertia"] / b[0]["inertia"])
            if ratios:
                out[f"C: {impl} / {ref}"] = (float(np.median(ratios)), float(np.median(iratios)))
    print("\n== summary (median over rounds; time ratio, inertia ratio; same init: per "
          "iteration) ==")
    for key, (t, i) in out.items():
        print(f"{key:60s} time {t:6.2f}" + ("" if i is None else f"  inertia {i:.6f}"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--skip-small", action="store_true", help="part B only")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--stream-rows", type=int, default=50_000,
                    help="rows per block (per partial_fit step) in part C")
    ap.add_argument("--stream-only", action="store_true", help="part C only")
    ap.add_argument("--out", type=str, default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.big_gb, args.rounds = 200_000, 0.25, 1
    if args.stream_only:
        args.skip_small = args.skip_big = True
    results: list = []
    if not args.skip_small:
        part_a(args.n, args.d, args.k, args.rounds, args.iters, 125_000, results)
    if not args.skip_small or args.stream_only:
        part_c(args.n, args.d, args.k, max(2, args.rounds), args.stream_rows, results)
    if not args.skip_big:
        part_b(args.big_gb, args.d, args.k, args.rounds, args.iters, 500_000, results)
    summary = summarise(results)
    if args.out:
        Path(args.out).write_text(json.dumps({"results": results, "summary": summary},
                                             indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
