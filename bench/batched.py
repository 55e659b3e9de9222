"""Benchmark: batched k-means, MiniBatchKMeans and streaming (``python -m bench.batched``).

    python -m bench.batched            # full run
    python -m bench.batched --quick    # smaller sizes, one round

1. ``batched_k_means`` on B problems of (n, d), k clusters (default B=1000, (1000, 32), k=8)
   against a Python loop of ``KMeans`` fits on NumPy and torch CPU (torch CUDA / CuPy where
   present).  The loops are timed on the first ``--loop-sample`` problems and reported per
   problem (a loop's cost is linear in B).
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


def bench_batched(B, n, d, k, loop_sample, rounds):
    from kmeans_xp import KMeans, batched_k_means

    X = _problems(B, n, d, k)
    rows = []
    for name, (_, conv) in _backends().items():
        Xb = conv(X)
        # warm-up of both paths (kernel selection, numba's cached compilation)
        batched_k_means(conv(X[:4]), k, random_state=0)
        KMeans(k, random_state=0).fit(Xb[0, ...])
        per_b, per_l = [], []
        for _ in range(rounds):
            _sync(name)
            tb, res = _timed(lambda: (batched_k_means(Xb, k, random_state=0), _sync(name)))
            tl, _ = _timed(lambda: ([KMeans(k, random_state=b).fit(Xb[b, ...])
                                     for b in range(loop_sample)], _sync(name)))
            per_b.append(tb / B)
            per_l.append(tl / loop_sample)
        n_iter = np.asarray(res[0][3].cpu() if hasattr(res[0][3], "cpu") else res[0][3])
        rows.append({
            "backend": name, "B": B, "n": n, "d": d, "k": k,
            "batched_ms_per_problem": 1e3 * statistics.median(per_b),
            "loop_ms_per_problem": 1e3 * statistics.median(per_l),
            "speedup": statistics.median([l_ / b_ for l_, b_ in zip(per_l, per_b)]),
            "mean_n_iter": float(n_iter.mean()),
        })
        print(rows[-1], flush=True)
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
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 2)
    parts = args.parts.split(",")
    res = {"machine": platform.node(), "date": _dt.date.today().isoformat(),
           "threads": THREADS}
    if "batched" in parts:
        B = 100 if args.quick else 1000
        res["batched"] = bench_batched(B, 1000, 32, 8, args.loop_sample or (20 if args.quick
                                                                            else 100), rounds)
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
            cols = list(res[key][0])
            lines.append("| " + " | ".join(cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for r in res[key]:
                lines.append("| " + " | ".join(
                    f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()) + " |")
            lines.append("")
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
