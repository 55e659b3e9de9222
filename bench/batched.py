"""Benchmark: batched k-means, MiniBatchKMeans and streaming (``python -m bench.batched``).

    python -m bench.batched            # full run
    python -m bench.batched --quick    # smaller sizes, one round

1. ``batched_k_means`` (NumPy, torch CPU) on the shapes (B, n, d, k) of :data:`SHAPES`
   against a loop of ``KMeans`` fits (NumPy, torch), a loop of scikit-learn fits,
   fast-pytorch-kmeans ``MultiKMeans`` (random init) and torch-kmeans (where installed);
   each fit in its own process (peak resident-set growth), default parameters, rounds
   interleaved.  Loops (and torch-kmeans, whose memory grows with B n k) are timed on the
   first ``--loop-sample`` problems; everything is reported per problem and per
   iteration, with the inertia of the first ``--loop-sample`` problems.  An implementation
   named ``<impl>-before`` runs the kmeans_xp found at ``$KMEANS_XP_BEFORE`` (an older
   checkout: before/after comparisons in the same interleaved run).
2. ``MiniBatchKMeans`` against scikit-learn's at (1M, 16, 16) and (200k, 128, 256): time
   and inertia of the same fit (same seed: the same mini-batches are drawn).
3. Streaming: one exact Lloyd pass over a host memmap moved chunk by chunk to the device
   (``KMeans.fit(X, device=...)``'s source) next to the same pass on device-resident data
   and the bare host-to-device copy rate, in GB/s of X.

Everything is interleaved round by round and reported as medians and paired ratios (the
machine is shared).  Results: bench/results/<date>-batched.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

# threads pinned before NumPy / torch load their thread pools (the machine has 2 cores)
THREADS = os.environ.get("KMEANS_XP_BENCH_THREADS", "2")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = THREADS

import numpy as np

HERE = Path(__file__).resolve().parent


def _timed(f):
    t = time.perf_counter()
    out = f()
    return time.perf_counter() - t, out


def _problems(B, n, d, k, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=3.0, size=(B, k, d)).astype(np.float32)
    lab = rng.integers(0, k, (B, n))
    return (np.take_along_axis(C, lab[:, :, None], axis=1)
            + rng.normal(size=(B, n, d))).astype(np.float32)


def _backends():
    out = {"numpy": (np, lambda a: a)}
    try:
        import torch

        out["torch"] = (torch, lambda a: torch.from_numpy(a))
        if torch.cuda.is_available():
            out["torch_cuda"] = (torch, lambda a: torch.from_numpy(a).cuda())
    except ImportError:
        pass
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        out["cupy"] = (cupy, lambda a: cupy.asarray(a))
    except Exception:
        pass
    return out


def _sync(name):
    if name == "torch_cuda":
        import torch

        torch.cuda.synchronize()


#: Implementations of the batched benchmark; each runs in its own process (peak memory).
BATCHED_IMPLS = ("batched-numpy", "batched-torch", "loop-KMeans-numpy", "loop-KMeans-torch",
                 "loop-sklearn", "fast-pytorch-kmeans", "torch-kmeans")
#: Shapes (B, n, d, k): flash-kmeans' batched shape (32, 131072, 128, 1024) with n and k
#: reduced on the CPU (its k-means++ alone is ~1e13 float64 operations on 2 cores).
SHAPES = {"small": (1000, 1000, 32, 8), "medium": (200, 10000, 64, 32),
          "flash": (32, 131072, 128, 1024), "flash-cpu": (32, 16384, 128, 128),
          "tiny": (20, 300, 8, 4)}


def _inertia(X, centers, labels):
    """Inertia per problem (float64 host) from centres and labels."""
    C = np.take_along_axis(centers.astype(np.float64), labels[:, :, None], axis=1)
    return ((X.astype(np.float64) - C) ** 2).sum(axis=(1, 2))


def _one(impl, B, n, d, k, sample, max_iter):
    """One timed fit of ``impl`` in this process: (seconds per problem, inertia of the
    first ``sample`` problems, mean iterations, peak resident-set growth in MiB)."""
    import torch

    from kmeans_xp import KMeans, batched_k_means

    X = _problems(B, n, d, k)
    Xs = X[:sample]
    kw = {"max_iter": max_iter}
    if impl.startswith("batched"):
        conv = (lambda a: a) if impl.endswith("numpy") else torch.from_numpy
        batched_k_means(conv(X[:2]), k, random_state=0, **kw)  # warm-up (compiled code)

        def run():
            _, _, inert, it = batched_k_means(conv(X), k, random_state=0, **kw)
            return np.asarray(inert)[:sample].sum(), float(np.asarray(it).mean()), B
    elif impl.startswith("loop-KMeans"):
        conv = (lambda a: a) if impl.endswith("numpy") else torch.from_numpy
        seeds = np.random.RandomState(0).randint(2**31 - 1, size=B)  # batched's seeds
        KMeans(k, random_state=0, **kw).fit(conv(X[0]))

        def run():
            fits = [KMeans(k, random_state=int(seeds[b]), **kw).fit(conv(X[b]))
                    for b in range(sample)]
            return (sum(float(f.inertia_) for f in fits),
                    float(np.mean([f.n_iter_ for f in fits])), sample)
    elif impl == "loop-sklearn":
        from sklearn.cluster import KMeans as SK

        seeds = np.random.RandomState(0).randint(2**31 - 1, size=B)

        def run():
            fits = [SK(k, random_state=int(seeds[b]), **kw).fit(X[b]) for b in range(sample)]
            return (sum(float(f.inertia_) for f in fits),
                    float(np.mean([f.n_iter_ for f in fits])), sample)
    elif impl == "fast-pytorch-kmeans":
        from fast_pytorch_kmeans import MultiKMeans

        Xt = torch.from_numpy(X)

        def run():
            km = MultiKMeans(n_clusters=k, max_iter=max_iter, verbose=0)
            labels = km.fit_predict(Xt)
            inert = _inertia(X[:sample], km.centroids[:sample].numpy(),
                             labels[:sample].numpy())
            return inert.sum(), float("nan"), B
    elif impl == "torch-kmeans":  # its memory grows with B n k: a sample of problems
        from torch_kmeans import KMeans as TK

        Xt = torch.from_numpy(Xs)

        def run():
            res = TK(n_clusters=k, max_iter=max_iter, verbose=False, seed=0)(Xt)
            inert = _inertia(Xs, res.centers.numpy(), res.labels.numpy())
            return inert.sum(), float("nan"), sample
    else:
        raise ValueError(impl)
    base = _reset_peak()
    t = time.perf_counter()
    c = time.process_time()
    inert, it, count = run()
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    peak = _status_kib("VmHWM") if base is not None else None
    return {"s_per_problem": wall / count, "cpu_s_per_problem": cpu / count,
            "inertia_first": float(inert), "mean_n_iter": it,
            "peak_growth_MiB": float("nan") if peak is None else max(0, peak - base) / 1024}


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak():
    """Reset the peak resident set (Linux: ``5 > /proc/self/clear_refs``); the current
    resident set in KiB, or None where this is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmRSS")
    except OSError:
        return None


def _child(impl, B, n, d, k, sample, max_iter, timeout):
    """``_one`` in a fresh process (its own peak memory), or None on failure / timeout."""
    import subprocess
    import sys

    before = None
    if impl.endswith("-before"):  # kmeans_xp of another checkout (KMEANS_XP_BEFORE)
        impl = impl[:-len("-before")]
        before = os.environ["KMEANS_XP_BEFORE"]
    # this bench from this tree; kmeans_xp from ``before`` when given: the child runs in a
    # neutral directory (with cwd = this tree, its '' path entry put this tree's kmeans_xp
    # first and every "-before" run measured the current code)
    code = (f"import json, sys, bench.batched as m; sys.path.insert(0, {before!r}) "
            f"if {before!r} else None; r = m._one({impl!r}, {B}, {n}, {d}, {k}, {sample}, "
            f"{max_iter}); import kmeans_xp; r['kmeans_xp'] = kmeans_xp.__file__; "
            f"print('RESULT', json.dumps(r))")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=timeout, cwd=tmp,
                               env={**os.environ, "PYTHONPATH": str(HERE.parent)})
    except subprocess.TimeoutExpired:
        return {"error": f"timeout {timeout}s"}
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    tail = (r.stderr or "").strip().splitlines()[-1:] or ["no result"]
    return {"error": tail[0][:200]}


def _installed(impl):
    import importlib.util

    if impl.endswith("-before"):
        return bool(os.environ.get("KMEANS_XP_BEFORE"))
    mod = {"fast-pytorch-kmeans": "fast_pytorch_kmeans", "torch-kmeans": "torch_kmeans",
           "loop-sklearn": "sklearn"}.get(impl)
    return mod is None or importlib.util.find_spec(mod) is not None


def bench_batched(shape_names, impls, sample, rounds, max_iter=300, timeout=1200):
    """Every implementation on every shape, interleaved round by round, one process each."""
    rows = []
    for name in shape_names:
        B, n, d, k = SHAPES[name]
        runs = {impl: [] for impl in impls if _installed(impl)}
        for _ in range(rounds):
            for impl in runs:
                r = _child(impl, B, n, d, k, min(sample, B), max_iter, timeout)
                runs[impl].append(r)
                print(name, impl, r, flush=True)
        for impl, rs in runs.items():
            ok = [r for r in rs if "error" not in r]
            if not ok:
                rows.append({"shape": name, "B": B, "n": n, "d": d, "k": k, "impl": impl,
                             "error": rs[-1]["error"]})
                continue
            med = {key: statistics.median([r[key] for r in ok]) for key in ok[0]}
            rows.append({"shape": name, "B": B, "n": n, "d": d, "k": k, "impl": impl,
                         "us_per_problem": 1e6 * med["s_per_problem"],
                         "cpu_us_per_problem": 1e6 * med["cpu_s_per_problem"],
                         "us_per_problem_iteration": 1e6 * med["s_per_problem"]
                         / med["mean_n_iter"] if med["mean_n_iter"] == med["mean_n_iter"]
                         else float("nan"),
                         "inertia_first": med["inertia_first"],
                         "mean_n_iter": med["mean_n_iter"],
                         "peak_growth_MiB": med["peak_growth_MiB"]})
        ref = next((r for r in rows if r["shape"] == name and r["impl"] == "batched-numpy"
                    and "error" not in r), None)
        for r in rows:
            if r["shape"] == name and "error" not in r and ref is not None:
                r["time_vs_batched_numpy"] = r["us_per_problem"] / ref["us_per_problem"]
                r["inertia_vs_batched_numpy"] = r["inertia_first"] / ref["inertia_first"]
    return rows


def bench_minibatch(sizes, rounds):
    from sklearn.cluster import MiniBatchKMeans as SK

    from kmeans_xp import MiniBatchKMeans

    rows = []
    for n, d, k in sizes:
        rng = np.random.default_rng(0)
        C = rng.normal(scale=4.0, size=(k, d))
        X = (C[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
        impls = {"sklearn": lambda: SK(k, random_state=0).fit(X),
                 "numpy": lambda: MiniBatchKMeans(k, random_state=0).fit(X)}
        try:
            import torch

            Xt = torch.from_numpy(X)
            impls["torch"] = lambda: MiniBatchKMeans(k, random_state=0).fit(Xt)
        except ImportError:
            pass
        times = {name: [] for name in impls}
        inertia, steps = {}, {}
        for _ in range(rounds):
            for name, f in impls.items():
                t, m = _timed(f)
                times[name].append(t)
                inertia[name], steps[name] = m.inertia_, m.n_steps_
        for name in impls:
            if name == "sklearn":
                continue
            rows.append({
                "size": [n, d, k], "impl": name,
                "time_s": statistics.median(times[name]),
                "sklearn_time_s": statistics.median(times["sklearn"]),
                "time_ratio_to_sklearn": statistics.median(
                    [a / b for a, b in zip(times[name], times["sklearn"])]),
                "inertia": inertia[name], "sklearn_inertia": inertia["sklearn"],
                "inertia_ratio": inertia[name] / inertia["sklearn"],
                "n_steps": steps[name], "sklearn_n_steps": steps["sklearn"],
            })
            print(rows[-1], flush=True)
    return rows


def bench_streaming(n, d, k, rounds):
    import torch

    from kmeans_xp._base import check_host_input, check_input, make_data

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "X.f32"
        mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, d))
        for s in range(0, n, 100_000):
            e = min(s + 100_000, n)
            mm[s:e] = rng.normal(size=(e - s, d))
        mm.flush()
        del mm
        X = np.memmap(path, dtype=np.float32, mode="r", shape=(n, d))
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        gb = n * d * 4 / 1e9
        streamed = make_data(check_host_input(X, "X", "bench", device), weights=None,
                             n_clusters=k, chunk_size=None)
        resident = make_data(check_input(torch.from_numpy(np.array(X)).to(device), "X",
                                         "bench"), weights=None, n_clusters=k,
                             chunk_size=None)
        C = torch.from_numpy(np.array(X[:k])).to(device)
        out = {"stream": [], "resident": [], "copy": []}
        for _ in range(rounds):
            out["stream"].append(_timed(lambda: (streamed.kernels.lloyd_pass(streamed, C),
                                                 _sync(device.type)))[0])
            out["resident"].append(_timed(lambda: (resident.kernels.lloyd_pass(resident, C),
                                                   _sync(device.type)))[0])
            out["copy"].append(_timed(lambda: ([streamed.upload(X[s:e])
                                                for s, e in streamed.ranges()],
                                               _sync(device.type)))[0])
        row = {"n": n, "d": d, "k": k, "device": str(device), "chunk_rows": streamed.rows,
               **{f"{key}_GBps": gb / statistics.median(v) for key, v in out.items()}}
        print(row, flush=True)
        return [row]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--loop-sample", type=int, default=None)
    ap.add_argument("--parts", default="batched,minibatch,streaming")
    ap.add_argument("--shapes", default="small,medium,flash-cpu",
                    help=f"batched shapes, of {sorted(SHAPES)}")
    ap.add_argument("--impls", default=",".join(BATCHED_IMPLS))
    ap.add_argument("--max-iter", type=int, default=300)
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    parts = args.parts.split(",")
    res = {"machine": platform.node(), "date": _dt.date.today().isoformat(),
           "threads": THREADS}
    if "batched" in parts:
        res["batched"] = bench_batched(args.shapes.split(","), args.impls.split(","),
                                       args.loop_sample or (4 if args.quick else 20), rounds,
                                       max_iter=args.max_iter)
    if "minibatch" in parts:
        sizes = [(100_000, 16, 16)] if args.quick else [(1_000_000, 16, 16),
                                                         (200_000, 128, 256)]
        res["minibatch"] = bench_minibatch(sizes, rounds)
    if "streaming" in parts:
        res["streaming"] = bench_streaming(200_000 if args.quick else 2_000_000, 32, 16,
                                           rounds)
    out = HERE / "results" / f"{res['date']}-batched"
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    lines = [f"# bench.batched {res['date']} on {res['machine']}", ""]
    for key in ("batched", "minibatch", "streaming"):
        if key in res:
            lines.append(f"## {key}")
            cols = list(dict.fromkeys(c for r in res[key] for c in r))
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for r in res[key]:
                lines.append("| " + " | ".join(
                    f"{r[c]:.4g}" if isinstance(r.get(c), float) else str(r.get(c, ""))
                    for c in cols) + " |")
            lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
