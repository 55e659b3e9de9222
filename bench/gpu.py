"""GPU benchmark of the Triton kernels and of kmeans_xp against its GPU peers.

    python -m bench.gpu                   # on a CUDA machine: every size, every implementation
    python -m bench.gpu --sizes 1         # only the second size (0-based indices into SIZES)
    python -m bench.gpu --no-fit          # skip the whole default fits (the long part)
    python -m bench.gpu --tune            # also sweep the assignment's tile configurations
    python -m bench.gpu --smoke           # CPU torch under TRITON_INTERPRET=1, tiny sizes:
                                          # proves the script runs (timings meaningless)

Per size (float32 blobs, initial centres = k rows of X, the same for everyone): the marginal
cost of one Lloyd iteration, ``(t(M2 iterations) - t(M1)) / (M2 - M1)`` with tol = 0, so that
set-up, validation and the final pass cancel out; medians over ``--reps`` repetitions after a
warm-up (Triton compiles on first launch); the device synchronised before every clock read.
Compared: the cuBLAS fp32 GEMM ``X @ C.T`` alone (TF32 off), ``lloyd_pass`` per precision,
deterministic vs atomic centre sums (and ``index_add_``), kmeans_xp's public API on torch CUDA
and CuPy, a hand-written 10-line torch loop, fast-pytorch-kmeans / faiss-gpu / cuML where
importable (else reported missing).  Also: labels of each precision against a float64
reference on a subset of rows, the fraction of rows the exact precisions re-check, peak
device memory (``torch.cuda.max_memory_allocated`` above the inputs), and whole default fits
at (1M, 128, 1024) and (2M, 256, 4096) with the time spent in initialisation (the library's
k-means++, and a greedy k-means++ built on the fused ``kpp_potentials``/``kpp_update``).

Writes ``bench/results/<date>-<gpu name>.json`` and ``.md`` (``--out`` to change the folder;
``--smoke`` writes to a temporary folder unless ``--out`` is given).  Without CUDA (and
without ``--smoke``) it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent

SIZES = [(10_000_000, 32, 256), (1_000_000, 128, 1024), (2_000_000, 256, 4096),
         (1_000_000, 16, 16)]
FIT_SIZES = [(1_000_000, 128, 1024), (2_000_000, 256, 4096)]
SMOKE_SIZES = [(600, 8, 8), (300, 70, 20)]
SMOKE_FIT_SIZES = [(500, 8, 6)]
PRECISIONS = ("exact", "exact-tf32", "tf32", "bf16", "ieee")
CHECK_ROWS = 65_536  # rows compared with the float64 reference
GEMM_CHUNK = 2 ** 28  # elements of the GEMM output block (1 GiB): the GEMM runs by row chunks


# ----------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------
class Clock:
    def __init__(self, torch, cuda: bool) -> None:
        self.torch = torch
        self.cuda = cuda

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            try:  # CuPy work runs on CuPy's current stream
                import cupy

                cupy.cuda.get_current_stream().synchronize()
            except Exception:
                pass

    def once(self, fn, *a):
        self.sync()
        t0 = time.perf_counter()
        out = fn(*a)
        self.sync()
        return time.perf_counter() - t0, out

    def marginal_ms(self, run, m1: int, m2: int, reps: int) -> dict:
        """ms per iteration: (t(m2) - t(m1)) / (iterations(m2) - iterations(m1)), medians.

        ``run(m)`` runs at most m iterations and returns how many it ran (or None for m).
        """
        run(m1)  # warm-up: compilation, lazy imports, allocator
        t1, t2, i1, i2 = [], [], m1, m2
        for _ in range(reps):
            dt, it = self.once(run, m1)
            t1.append(dt)
            i1 = it if it is not None else m1
            dt, it = self.once(run, m2)
            t2.append(dt)
            i2 = it if it is not None else m2
        a, b = statistics.median(t1), statistics.median(t2)
        if i2 > i1:
            return {"ms_per_iter": 1e3 * (b - a) / (i2 - i1), "iters": [i1, i2]}
        return {"ms_per_iter": 1e3 * b / max(i2, 1), "iters": [i1, i2],
                "note": "stopped early: t(M2) / n_iter, not marginal"}

    def call_ms(self, fn, reps: int, inner: int = 3) -> float:
        fn()
        ts = []
        for _ in range(reps):
            dt, _ = self.once(lambda: [fn() for _ in range(inner)])
            ts.append(dt / inner)
        return 1e3 * statistics.median(ts)

    def peak_mib(self, fn):
        """Peak device memory of ``fn()`` above what was allocated before (torch only)."""
        if not self.cuda:
            return None
        torch = self.torch
        self.sync()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        self.sync()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


# ----------------------------------------------------------------------------------------
# data and implementations
# ----------------------------------------------------------------------------------------
def make_data(torch, n, d, k, device, seed=0):
    """float32 blobs (min(k, 64) components) on ``device``; k initial centres = rows of X."""
    g = torch.Generator(device=device).manual_seed(seed)
    m = min(k, 64)
    centers = 2.0 * torch.randn(m, d, device=device, generator=g)
    X = torch.randn(n, d, device=device, generator=g)
    X += centers[torch.randint(0, m, (n,), device=device, generator=g)]
    init = X[torch.randperm(n, device=device, generator=g)[:k]].clone()
    return X, init


def update_centers(torch, sums, counts, C):
    return torch.where(counts[:, None] > 0, sums / counts.clamp_min(1e-30)[:, None], C)


def impl_gemm(torch, X, C):
    rows = max(1, GEMM_CHUNK // C.shape[0])
    out = torch.empty((min(rows, X.shape[0]), C.shape[0]), device=X.device, dtype=X.dtype)
    Ct = C.t()

    def run(m):
        for _ in range(m):
            for s in range(0, X.shape[0], rows):
                xs = X[s:s + rows]
                torch.mm(xs, Ct, out=out[: xs.shape[0]])

    return run


def impl_lloyd(torch, T, X, C0, **kw):
    def run(m):
        C = C0
        for _ in range(m):
            _, sums, counts, _ = T.lloyd_pass(X, C, None, **kw)
            C = update_centers(torch, sums, counts, C)

    return run


def impl_torch_loop(torch, X, C0):
    """What a user writes by hand (10 lines, n x k distances in memory at once)."""
    def run(m):
        C, k = C0, C0.shape[0]
        for _ in range(m):
            D = torch.addmm((C * C).sum(1), X, C.t(), alpha=-2.0)
            labels = D.argmin(dim=1)
            sums = torch.zeros_like(C).index_add_(0, labels, X)
            counts = torch.bincount(labels, minlength=k).to(X.dtype)
            C = update_centers(torch, sums, counts, C)

    return run


def impl_kmeans_xp(X, C0):
    import kmeans_xp

    k = C0.shape[0]

    def run(m):
        return kmeans_xp.KMeans(k, init=C0, n_init=1, tol=0, max_iter=m).fit(X).n_iter_

    return run


def impl_peer(name, torch, X, C0):
    k, d = C0.shape[0], X.shape[1]
    if name == "fast-pytorch-kmeans":
        from fast_pytorch_kmeans import KMeans

        def run(m):
            KMeans(k, max_iter=m, tol=-1.0).fit_predict(X, centroids=C0.clone())
    elif name == "faiss-gpu":
        import faiss

        if not hasattr(faiss, "StandardGpuResources"):
            raise ImportError("faiss is installed without GPU support")
        Xh, Ch = X.cpu().numpy(), C0.cpu().numpy()

        def run(m):
            km = faiss.Kmeans(d, k, niter=m, seed=0, gpu=True, max_points_per_centroid=X.shape[0],
                              min_points_per_centroid=1)
            km.train(Xh, init_centroids=Ch)
    elif name == "cuml":
        import cupy
        from cuml.cluster import KMeans

        Xc, Cc = cupy.from_dlpack(X), cupy.from_dlpack(C0)

        def run(m):
            KMeans(n_clusters=k, init=Cc, n_init=1, max_iter=m, tol=0.0).fit(Xc)
    else:
        raise ValueError(name)
    return run


def float64_labels(torch, X, C, rows):
    xs = X[:rows].double()
    Cd = C.double()
    out = []
    for s in range(0, xs.shape[0], 8192):
        out.append(torch.cdist(xs[s:s + 8192], Cd).argmin(dim=1))
    return torch.cat(out)


def kpp_fused(torch, T, X, k, seed=0):
    """Greedy k-means++ (scikit-learn's variant, unit weights) on the fused kernels.

    No host sync per step: the uniforms are drawn on the host up front (the same sequence
    as drawing them step by step) and moved once.
    """
    n = X.shape[0]
    rng = np.random.RandomState(seed)
    m = 2 + int(math.log(k))
    first = int(rng.random_sample() * n)
    u = torch.as_tensor(rng.uniform(size=(max(k - 1, 1), m)), device=X.device)
    shift = X.mean(dim=0, dtype=torch.float32)
    center = X[first:first + 1].float() - shift
    centers = [center]
    closest = T.kpp_update(X, None, center, shift=shift)
    pot = closest.double().sum()
    for c in range(1, k):
        cum = torch.cumsum(closest.double(), 0)
        cand = torch.searchsorted(cum, u[c - 1] * pot).clamp_max(n - 1)
        cand_rows = X.index_select(0, cand).float() - shift
        pots = T.kpp_potentials(X, closest, cand_rows, None, shift=shift)
        best = torch.argmin(pots).reshape(1)
        pot = pots.index_select(0, best)[0]
        center = cand_rows.index_select(0, best)
        closest = T.kpp_update(X, closest, center, shift=shift)
        centers.append(center)
    return torch.cat(centers) + shift


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------
def guarded(results: dict, name: str, fn):
    """Run fn() -> dict, storing it (or the reason it could not run) under ``name``."""
    try:
        results[name] = fn()
    except ImportError as exc:
        results[name] = {"missing": str(exc).splitlines()[0]}
    except Exception as exc:  # a failing peer must not stop the benchmark
        results[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
        traceback.print_exc(file=sys.stderr)
    print(f"  {name}: {results[name]}", flush=True)
    _free()


def _free():
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:
        pass


def bench_size(torch, T, clock, n, d, k, args) -> dict:
    dev = "cuda" if clock.cuda else "cpu"
    X, C0 = make_data(torch, n, d, k, dev)
    m1, m2, reps = args.m1, args.m2, args.reps
    res: dict = {"n": n, "d": d, "k": k, "iter": {}, "assign_ms": {}, "sums_ms": {},
                 "checks": {}}
    it = res["iter"]

    def marginal(run, peak=True):
        out = clock.marginal_ms(run, m1, m2, reps)
        if peak:
            out["peak_MiB"] = clock.peak_mib(lambda: run(m1))
        return out

    guarded(it, "gemm_fp32_cublas", lambda: marginal(impl_gemm(torch, X, C0)))
    gemm = it["gemm_fp32_cublas"].get("ms_per_iter")
    for p in PRECISIONS:
        guarded(it, f"triton_lloyd_pass_{p}",
                lambda p=p: marginal(impl_lloyd(torch, T, X, C0, precision=p)))
    guarded(it, "triton_lloyd_pass_exact_atomic",
            lambda: marginal(impl_lloyd(torch, T, X, C0, deterministic=False)))
    guarded(it, "kmeans_xp_torch", lambda: marginal(impl_kmeans_xp(X, C0)))
    if clock.cuda:
        def cupy_run():
            import cupy

            return marginal(impl_kmeans_xp(cupy.from_dlpack(X), cupy.from_dlpack(C0)),
                            peak=False)
        guarded(it, "kmeans_xp_cupy", cupy_run)
    else:
        it["kmeans_xp_cupy"] = {"missing": "no CUDA device"}
    guarded(it, "torch_loop_handwritten", lambda: marginal(impl_torch_loop(torch, X, C0)))
    for peer in ("fast-pytorch-kmeans", "faiss-gpu", "cuml"):
        if clock.cuda or peer == "fast-pytorch-kmeans":
            guarded(it, peer, lambda peer=peer: marginal(impl_peer(peer, torch, X, C0)))
        else:
            it[peer] = {"missing": "no CUDA device"}
    for v in it.values():
        if gemm and "ms_per_iter" in v:
            v["ratio_to_gemm"] = v["ms_per_iter"] / gemm

    # the pieces: assignment alone, centre sums alone
    for p in PRECISIONS:
        guarded(res["assign_ms"], p,
                lambda p=p: {"ms": clock.call_ms(lambda: T.assign(X, C0, precision=p), reps)})
    labels, _ = T.assign(X, C0)
    guarded(res["sums_ms"], "deterministic",
            lambda: {"ms": clock.call_ms(lambda: T.centre_sums(X, labels, None, k), reps)})
    guarded(res["sums_ms"], "atomic_triton", lambda: {"ms": clock.call_ms(
        lambda: T.centre_sums(X, labels, None, k, atomic=True), reps)})

    def index_add():
        s = torch.zeros_like(C0).index_add_(0, labels, X)
        return s, torch.bincount(labels, minlength=k)
    guarded(res["sums_ms"], "torch_index_add", lambda: {"ms": clock.call_ms(index_add, reps)})
    det = res["sums_ms"]["deterministic"].get("ms")
    ref = res["sums_ms"]["torch_index_add"].get("ms")
    if det and ref:
        res["sums_ms"]["deterministic_over_index_add"] = det / ref

    # exactness: labels against float64 on a subset; rows re-checked by the exact modes
    rows = min(n, CHECK_ROWS)
    ref_labels = float64_labels(torch, X, C0, rows)
    for p in PRECISIONS:
        def check(p=p):
            lab, _, count = T.assign(X, C0, precision=p, _return_flag_count=True)
            out = {"rows_checked": rows,
                   "labels_differ_from_float64": int((lab[:rows] != ref_labels).sum())}
            if count is not None:
                out["recheck_fraction"] = int(count.item()) / n
            return out
        guarded(res["checks"], p, check)
    det_runs = [T.lloyd_pass(X, C0, None) for _ in range(2)]
    res["checks"]["lloyd_pass_bit_identical"] = all(
        torch.equal(a, b) for a, b in zip(det_runs[0][:3], det_runs[1][:3]))
    del X, C0, labels, det_runs, ref_labels
    _free()
    return res


def bench_fit(torch, T, clock, n, d, k) -> dict:
    import kmeans_xp

    dev = "cuda" if clock.cuda else "cpu"
    X, _ = make_data(torch, n, d, k, dev)
    out: dict = {"n": n, "d": d, "k": k}
    kmeans_xp.KMeans(min(k, 8), random_state=0, max_iter=2).fit(X[: 20 * k])  # warm-up
    t_fit, km = clock.once(lambda: kmeans_xp.KMeans(k, random_state=0).fit(X))
    out.update(fit_s=t_fit, n_iter=int(km.n_iter_))
    t_init, _ = clock.once(lambda: kmeans_xp.kmeans_plusplus(X, k, random_state=0))
    out.update(init_s=t_init, init_fraction=t_init / t_fit)
    kpp_fused(torch, T, X[: 20 * k], min(k, 8))  # compile
    t_fused, _ = clock.once(lambda: kpp_fused(torch, T, X, k))
    out["init_fused_kpp_s"] = t_fused
    out["init_fraction_with_fused_kpp"] = t_fused / (t_fit - t_init + t_fused)
    out["peak_MiB"] = clock.peak_mib(lambda: kmeans_xp.KMeans(k, random_state=0,
                                                              max_iter=2).fit(X))
    print(f"  fit {n, d, k}: {out}", flush=True)
    del X
    _free()
    return out


def tune_configs(d: int, k: int, smoke: bool) -> list[dict]:
    """A small grid of assignment tile configurations around the heuristic's."""
    out = []
    bns = sorted({64, 128} | ({max(16, 1 << (k - 1).bit_length())} if k < 64 else set()))
    for bm in (64, 128):
        for bn in bns:
            for bk in ((max(16, 1 << (d - 1).bit_length()),) if d <= 64 else (32, 64)):
                for warps in (4, 8):
                    for stages in (2, 3, 4):
                        out.append(dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, X_ONCE=d <= bk,
                                        num_warps=warps, num_stages=stages))
    return out[:2] if smoke else out


def tune_size(torch, T, clock, n, d, k, args) -> dict:
    """ms of ``assign`` per configuration and precision; the heuristic's choice marked."""
    dev = "cuda" if clock.cuda else "cpu"
    X, C0 = make_data(torch, n, d, k, dev)
    res: dict = {"n": n, "d": d, "k": k, "by_precision": {}}
    for p in ("exact", "tf32", "bf16"):
        rows = []
        for cfg in tune_configs(d, k, args.smoke):
            try:
                ms = clock.call_ms(lambda: T.assign(X, C0, precision=p, config=cfg), args.reps)
            except Exception as exc:  # e.g. out of shared memory / registers
                ms = None
                cfg = dict(cfg, error=f"{type(exc).__name__}"[:60])
            rows.append(dict(cfg, ms=ms))
        heur = T.assign_config(n, d, k, p)
        heur_ms = clock.call_ms(lambda: T.assign(X, C0, precision=p), args.reps)
        ok = sorted((r for r in rows if r["ms"] is not None), key=lambda r: r["ms"])
        res["by_precision"][p] = {"heuristic": dict(heur, ms=heur_ms), "best": ok[:3],
                                  "all": rows}
        print(f"  tune {p}: heuristic {heur_ms:.3f} ms, best {ok[0] if ok else None}",
              flush=True)
    del X, C0
    _free()
    return res


def environment(torch, cuda: bool) -> dict:
    import triton

    env = {"python": sys.version.split()[0], "torch": torch.__version__,
           "triton": triton.__version__, "cuda": getattr(torch.version, "cuda", None)}
    for mod in ("cupy", "kmeans_xp", "fast_pytorch_kmeans", "faiss", "cuml"):
        try:
            env[mod] = getattr(__import__(mod), "__version__", "?")
        except Exception:
            env[mod] = None
    env["device"] = torch.cuda.get_device_name(0) if cuda else "cpu (TRITON_INTERPRET=1)"
    return env


def write(result: dict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jp, mp = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    jp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    mp.write_text(markdown(result))
    return jp, mp


def _fmt(v, spec=".2f"):
    return "" if v is None else format(v, spec)


def markdown(r: dict) -> str:
    env = r["environment"]
    lines = [f"# kmeans_xp GPU benchmark, {r['date']}", "",
             f"- device: {env['device']}" + ("  **SMOKE RUN: timings meaningless**"
                                             if r["smoke"] else ""),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in env.items() if k != "device"),
             f"- ms per Lloyd iteration = (t(M2) - t(M1)) / (M2 - M1), M1 = {r['m1']}, "
             f"M2 = {r['m2']}, tol = 0, same initial centres; medians of {r['reps']} after a "
             "warm-up; TF32 off for cuBLAS; peak = torch.cuda.max_memory_allocated above the "
             "inputs (torch allocations only).", ""]
    for s in r["sizes"]:
        lines += [f"## (n, d, k) = ({s['n']}, {s['d']}, {s['k']})", "",
                  "| implementation | ms / iter | ratio to fp32 GEMM | peak MiB | note |",
                  "|---|---|---|---|---|"]
        for name, v in s["iter"].items():
            note = v.get("missing") or v.get("error") or v.get("note") or ""
            lines.append(f"| {name} | {_fmt(v.get('ms_per_iter'), '.3f')} | "
                         f"{_fmt(v.get('ratio_to_gemm'))} | {_fmt(v.get('peak_MiB'), '.0f')} | "
                         f"{note} |")
        lines += ["", "| precision | assign alone, ms | labels != float64 (rows) | "
                  "rows re-checked |", "|---|---|---|---|"]
        for p in PRECISIONS:
            a, c = s["assign_ms"].get(p, {}), s["checks"].get(p, {})
            rc = c.get("recheck_fraction")
            lines.append(f"| {p} | {_fmt(a.get('ms'), '.3f')} | "
                         f"{c.get('labels_differ_from_float64', c.get('error', ''))} of "
                         f"{c.get('rows_checked', '')} | "
                         f"{'' if rc is None else f'{100 * rc:.3f} %'} |")
        sm = s["sums_ms"]
        lines += ["", "| centre sums | ms |", "|---|---|"]
        for name in ("deterministic", "atomic_triton", "torch_index_add"):
            v = sm.get(name, {})
            lines.append(f"| {name} | {_fmt(v.get('ms'), '.3f') or v} |")
        lines += [f"| deterministic / index_add_ | "
                  f"{_fmt(sm.get('deterministic_over_index_add'))} |",
                  f"| lloyd_pass bit-identical run to run | "
                  f"{s['checks'].get('lloyd_pass_bit_identical')} |", ""]
    for t in r.get("tuning", []):
        lines += [f"## Tile sweep of assign, (n, d, k) = ({t['n']}, {t['d']}, {t['k']})", "",
                  "| precision | heuristic config | ms | best config | ms |",
                  "|---|---|---|---|---|"]
        for p, v in t["by_precision"].items():
            h = {kk: vv for kk, vv in v["heuristic"].items() if kk != "ms"}
            b = v["best"][0] if v["best"] else {}
            lines.append(f"| {p} | {h} | {_fmt(v['heuristic']['ms'], '.3f')} | "
                         f"{ {kk: vv for kk, vv in b.items() if kk != 'ms'} } | "
                         f"{_fmt(b.get('ms'), '.3f')} |")
        lines.append("")
    if r["fits"]:
        lines += ["## Whole default fits (KMeans(k, random_state=0))", "",
                  "| (n, d, k) | fit s | n_iter | k-means++ s | init share | fused k-means++ s | "
                  "init share with fused | peak MiB |", "|---|---|---|---|---|---|---|---|"]
        for f in r["fits"]:
            if "error" in f:
                lines.append(f"| ({f['n']}, {f['d']}, {f['k']}) | {f['error']} |||||||")
                continue
            lines.append(
                f"| ({f['n']}, {f['d']}, {f['k']}) | {f['fit_s']:.2f} | {f['n_iter']} | "
                f"{f['init_s']:.2f} | {100 * f['init_fraction']:.0f} % | "
                f"{f['init_fused_kpp_s']:.2f} | {100 * f['init_fraction_with_fused_kpp']:.0f} % "
                f"| {_fmt(f.get('peak_MiB'), '.0f')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="tiny sizes on CPU torch under TRITON_INTERPRET=1 (proves the script)")
    ap.add_argument("--sizes", type=int, nargs="*", help="indices into SIZES (default: all)")
    ap.add_argument("--no-fit", action="store_true", help="skip the whole default fits")
    ap.add_argument("--tune", action="store_true", help="sweep the assignment's tile configs")
    ap.add_argument("--m1", type=int, default=None)
    ap.add_argument("--m2", type=int, default=None)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    try:
        import torch
    except ImportError:
        print("bench.gpu: torch is not installed: nothing measured.")
        return 0
    cuda = torch.cuda.is_available() and not args.smoke
    if not cuda and not args.smoke:
        print("bench.gpu: no CUDA device here: nothing measured. (--smoke runs the script on "
              "CPU torch under TRITON_INTERPRET=1 at tiny sizes.)")
        return 0
    try:
        from kmeans_xp._kernels import _triton as T
    except ImportError as exc:
        print(f"bench.gpu: the Triton kernels cannot be imported ({exc}): nothing measured.")
        return 0
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    args.m1 = args.m1 or (1 if args.smoke else 2)
    args.m2 = args.m2 or (2 if args.smoke else 7)
    args.reps = args.reps or (1 if args.smoke else 3)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    if args.sizes:
        sizes = [sizes[i] for i in args.sizes]
    fit_sizes = [] if args.no_fit else (SMOKE_FIT_SIZES if args.smoke else FIT_SIZES)
    clock = Clock(torch, cuda)
    env = environment(torch, cuda)
    print(f"bench.gpu on {env['device']}", flush=True)
    result = {"date": _dt.date.today().isoformat(), "smoke": bool(args.smoke), "m1": args.m1,
              "m2": args.m2, "reps": args.reps, "environment": env, "sizes": [], "fits": [],
              "tuning": []}
    for n, d, k in sizes:
        print(f"(n, d, k) = ({n}, {d}, {k})", flush=True)
        result["sizes"].append(bench_size(torch, T, clock, n, d, k, args))
    if args.tune:
        for n, d, k in sizes:
            print(f"tuning (n, d, k) = ({n}, {d}, {k})", flush=True)
            result["tuning"].append(tune_size(torch, T, clock, n, d, k, args))
    for n, d, k in fit_sizes:
        try:
            result["fits"].append(bench_fit(torch, T, clock, n, d, k))
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            result["fits"].append({"n": n, "d": d, "k": k,
                                   "error": f"{type(exc).__name__}: {exc}"[:200]})
            _free()
    name = re.sub(r"[^A-Za-z0-9]+", "-", env["device"]).strip("-").lower()
    stem = f"{result['date']}-{'smoke-' if args.smoke else ''}{name}"
    out_dir = args.out or (Path(tempfile.gettempdir()) / "kmeans_xp-bench-smoke" if args.smoke
                           else HERE / "results")
    jp, mp = write(result, out_dir, stem)
    print(f"wrote {jp} and {mp}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
