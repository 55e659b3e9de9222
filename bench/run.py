"""Benchmark: time per Lloyd iteration of kmeans_xp against its peers.

    python -m bench            # full run (about 15 minutes on 2 cores)
    python -m bench --quick    # under two minutes: two smaller sizes, two rounds
    python -m bench --fit      # whole default fits (k-means++ included), several seeds
    python -m bench --kernel   # micro benchmark: the fused CPU pass vs scikit-learn's iteration

Sizes are ``NxDxK`` with an optional data kind: ``100000x32x32:shifted``.  Kinds:
``gauss`` (a Gaussian mixture around the origin, the default), ``shifted`` (the same blobs
moved away from the origin so every feature is non-negative: centring is active) and
``pixels`` (digits/MNIST-like: mostly-zero integer pixel values in [0, 255]); a kind with
the suffix ``-f64`` is the same data in float64 (``50000x784x10:pixels-f64``).

Every implementation starts from the same initial centres and runs at most ``--iters``
iterations (tol = 0); the time reported is fit time / iterations run.  Each (implementation,
size, round) runs in a fresh subprocess (so peak memory is its own), threads pinned to 2 on
the CPU, implementations interleaved within each round; the ratio to scikit-learn is paired
per round and its median reported.  A peer that is not installed is reported as missing.

Results: bench/results/<date>-<machine>.json, .md (table) and .png (ratio plot).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
THREADS = "2"

CPU_SIZES = [(100_000, 32, 32), (200_000, 128, 256), (1_000_000, 16, 16), (50_000, 784, 10),
             (100_000, 64, 1024)]
GPU_SIZES = [(1_000_000, 128, 1024), (10_000_000, 32, 256)]
QUICK_SIZES = [(50_000, 32, 32), (50_000, 128, 256)]
#: non-centred data, run by default next to CPU_SIZES
NONCENTRED_SIZES = [(100_000, 32, 32, "shifted"), (50_000, 784, 10, "pixels")]
DATA_KINDS = ("gauss", "shifted", "pixels")

# name -> (module that must import, runs on GPU)
IMPLS = {
    "sklearn": ("sklearn", False),
    "kmeans_xp-numpy": ("kmeans_xp", False),
    "kmeans_xp-torch": ("torch", False),
    "sklearnex": ("sklearnex", False),
    "faiss": ("faiss", False),
    "fast-pytorch-kmeans": ("fast_pytorch_kmeans", False),
    "kmeans_xp-jax": ("jax", False),
    "jax-jit": ("jax", False),  # a hand-written jax.jit step (bench/jax_bench.py): the peer
    "kmeans_xp-torch-cuda": ("torch", True),
    "kmeans_xp-cupy": ("cupy", True),
    "faiss-gpu": ("faiss", True),
    "fast-pytorch-kmeans-cuda": ("fast_pytorch_kmeans", True),
}


# --------------------------------------------------------------------------------------
# the worker: one implementation, one size, in its own process
# --------------------------------------------------------------------------------------
def parse_size(spec: str) -> tuple:
    """``"NxDxK"`` or ``"NxDxK:kind"`` -> (n, d, k) or (n, d, k, kind)."""
    dims, _, kind = spec.partition(":")
    size = tuple(int(v) for v in dims.split("x"))
    if kind and kind.removesuffix("-f64") not in DATA_KINDS:
        raise SystemExit(f"unknown data kind {kind!r}; known: {', '.join(DATA_KINDS)}")
    return size + (kind,) if kind and kind != "gauss" else size


def size_key(size: tuple) -> str:
    return "x".join(str(s) for s in size[:3]) + (f":{size[3]}" if len(size) > 3 else "")


def make_data(n: int, d: int, k: int, seed: int = 0, kind: str = "gauss"
              ) -> tuple[np.ndarray, np.ndarray]:
    """float32 data of ``kind`` (see the module docstring) and k initial centres from its rows.

    ``gauss``: a Gaussian mixture (min(k, 64) components) around the origin; ``shifted``:
    the same moved so that every feature is >= 0 (mean far from the origin next to the
    spread); ``pixels``: min(k, 64) sparse prototypes in [0, 255] plus noise, clipped and
    rounded like 8-bit pixels (about 60 % zeros, as MNIST).  ``<kind>-f64``: the same
    values in float64.
    """
    if kind.endswith("-f64"):
        X, init = make_data(n, d, k, seed, kind.removesuffix("-f64"))
        return X.astype(np.float64), init.astype(np.float64)
    rng = np.random.default_rng(seed)
    m = min(k, 64)
    if kind == "pixels":
        protos = rng.uniform(0, 255, size=(m, d)).astype(np.float32)
        protos[rng.random((m, d)) < 0.6] = 0.0
        X = protos[rng.integers(0, m, n)]
        X += rng.normal(scale=40.0, size=(n, d)).astype(np.float32)
        np.clip(X, 0, 255, out=X)
        np.round(X, out=X)
    else:
        centers = rng.normal(scale=2.0, size=(m, d)).astype(np.float32)
        X = centers[rng.integers(0, m, n)]
        X += rng.standard_normal(size=(n, d), dtype=np.float32)
        if kind == "shifted":
            X -= X.min(axis=0)
            X += 10.0
    init = X[rng.choice(n, k, replace=False)].copy()
    return X, init


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process (Linux), so that data generation
    before the baseline does not count as the fit's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _fit_fn(impl: str, X: np.ndarray, init: np.ndarray):
    """(fit(max_iter) -> n_iter, sync, device-memory-peak-fn) for one implementation."""
    k = init.shape[0]
    sync = lambda: None  # noqa: E731
    if impl == "sklearn":
        from sklearn.cluster import KMeans

        def fit(m):
            return KMeans(k, init=init, n_init=1, max_iter=m, tol=0, algorithm="lloyd").fit(X).n_iter_
    elif impl == "sklearnex":
        from sklearnex.cluster import KMeans

        def fit(m):
            return KMeans(k, init=init, n_init=1, max_iter=m, tol=0, algorithm="lloyd").fit(X).n_iter_
    elif impl == "kmeans_xp-numpy":
        from kmeans_xp import KMeans

        def fit(m):
            return KMeans(k, init=init, max_iter=m, tol=0).fit(X).n_iter_
    elif impl.startswith("kmeans_xp-torch") or impl.startswith("fast-pytorch-kmeans"):
        import torch

        torch.set_num_threads(int(THREADS))
        dev = "cuda" if impl.endswith("cuda") else "cpu"
        Xt, it = torch.asarray(X, device=dev), torch.asarray(init, device=dev)
        if dev == "cuda":
            sync = torch.cuda.synchronize
        if impl.startswith("kmeans_xp"):
            from kmeans_xp import KMeans

            def fit(m):
                return KMeans(k, init=it, max_iter=m, tol=0).fit(Xt).n_iter_
        else:
            from fast_pytorch_kmeans import KMeans

            def fit(m):
                KMeans(k, max_iter=m, tol=-1.0).fit_predict(Xt, centroids=it.clone())
                return m
    elif impl == "kmeans_xp-cupy":
        import cupy as cp

        from kmeans_xp import KMeans

        Xc, ic = cp.asarray(X), cp.asarray(init)
        sync = cp.cuda.Device().synchronize

        def fit(m):
            return KMeans(k, init=ic, max_iter=m, tol=0).fit(Xc).n_iter_
    elif impl in ("kmeans_xp-jax", "jax-jit"):
        import jax.numpy as jnp

        Xj, ij = jnp.asarray(X), jnp.asarray(init)
        if impl == "jax-jit":
            from bench.jax_bench import hand_written_fit

            def fit(m):
                hand_written_fit(Xj, ij, m)
                return m
        else:
            from kmeans_xp import KMeans

            def fit(m):
                return KMeans(k, init=ij, max_iter=m, tol=0).fit(Xj).n_iter_
    elif impl.startswith("faiss"):
        import faiss

        faiss.omp_set_num_threads(int(THREADS))

        def fit(m):
            km = faiss.Kmeans(X.shape[1], k, niter=m, seed=0, gpu=impl.endswith("gpu"),
                              max_points_per_centroid=X.shape[0] + 1, min_points_per_centroid=1)
            km.train(X, init_centroids=init)
            return m
    else:
        raise ValueError(impl)
    return fit, sync


def worker(impl: str, size: tuple, iters: int, reps: int) -> dict:
    """Per-iteration time of one implementation's fit (same initial centres, tol = 0)."""
    n, d, k = size[:3]
    X, init = make_data(n, d, k, kind=size[3] if len(size) > 3 else "gauss")
    # warm-up on a small slice: lazy imports and kernel set-up, without the big allocations
    small = max(4 * k, 2048)
    _fit_fn(impl, X[:small].copy(), init)[0](2)
    fit, sync = _fit_fn(impl, X, init)  # moves the data where it must go
    sync()
    # the baseline holds the input and the loaded library: the high-water mark above it
    # during the full-size fits (the first one included) is the fit's own working memory
    rss0 = _rss_bytes()
    peak_reset = _reset_peak_rss()
    fit(2)  # first full-size fit: allocator pools and caches at this size
    sync()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        n_iter = fit(iters)
        sync()
        times.append((time.perf_counter() - t0) / n_iter)
    out = {"impl": impl, "size": size_key(size), "per_iter_s": float(np.median(times)),
           "n_iter": int(n_iter), "peak_mem_above_input_MiB": (_peak_rss_bytes() - rss0) / 2**20,
           "peak_reset": peak_reset}
    if impl.endswith("cuda"):
        import torch

        out["gpu_peak_alloc_MiB"] = torch.cuda.max_memory_allocated() / 2**20
    return out


# name -> module that must import (the whole-fit benchmark, CPU only)
FIT_IMPLS = {"sklearn": "sklearn", "kmeans_xp-numpy": "kmeans_xp", "kmeans_xp-torch": "torch",
             "kmeans_xp-jax": "jax", "sklearnex": "sklearnex", "faiss": "faiss"}


def _default_fit(impl: str, X: np.ndarray, k: int, seed: int):
    """One fit with the implementation's default parameters: (centres, labels, n_iter)."""
    if impl in ("sklearn", "sklearnex"):
        if impl == "sklearn":
            from sklearn.cluster import KMeans
        else:
            from sklearnex.cluster import KMeans
        km = KMeans(k, random_state=seed).fit(X)
        return km.cluster_centers_, km.labels_, km.n_iter_
    if impl == "kmeans_xp-numpy":
        from kmeans_xp import KMeans

        km = KMeans(k, random_state=seed).fit(X)
        return km.cluster_centers_, km.labels_, km.n_iter_
    if impl == "kmeans_xp-torch":
        import torch

        from kmeans_xp import KMeans

        torch.set_num_threads(int(THREADS))
        km = KMeans(k, random_state=seed).fit(torch.from_numpy(X))
        return km.cluster_centers_.numpy(), km.labels_.numpy(), km.n_iter_
    if impl == "kmeans_xp-jax":
        import jax.numpy as jnp

        from kmeans_xp import KMeans

        km = KMeans(k, random_state=seed).fit(jnp.asarray(X))
        return np.asarray(km.cluster_centers_), np.asarray(km.labels_), km.n_iter_
    if impl == "faiss":
        import faiss

        faiss.omp_set_num_threads(int(THREADS))
        # FAISS's defaults: 25 iterations from random rows, no k-means++, and training on a
        # subsample of 256 points per centroid when n is larger than that
        km = faiss.Kmeans(X.shape[1], k, seed=seed)
        km.train(X)
        labels = km.index.search(X, 1)[1][:, 0]
        return km.centroids, labels, 25
    raise ValueError(impl)


def fit_worker(impl: str, size: tuple, seeds: int) -> dict:
    """Whole default fits (k-means++ included) for seeds 0..seeds-1: time, inertia, memory."""
    n, d, k = size[:3]
    X, _ = make_data(n, d, k, kind=size[3] if len(size) > 3 else "gauss")
    _default_fit(impl, X[: max(4 * k, 2048)].copy(), k, 0)  # imports, compiled kernels
    rss0 = _rss_bytes()
    peak_reset = _reset_peak_rss()
    times, inertias, iters = [], [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        C, labels, n_iter = _default_fit(impl, X, k, seed)
        times.append(time.perf_counter() - t0)
        C = np.asarray(C, dtype=np.float64)
        inertia = 0.0
        for s in range(0, n, 65536):  # float64 inertia of the returned labelling
            diff = X[s:s + 65536].astype(np.float64) - C[np.asarray(labels[s:s + 65536])]
            inertia += float(np.einsum("ij,ij->", diff, diff))
        inertias.append(inertia)
        iters.append(int(n_iter))
    return {"impl": impl, "size": size_key(size), "per_iter_s": float(np.median(times)),
            "fit_s": times, "inertia": inertias, "mean_inertia": float(np.mean(inertias)),
            "n_iter": iters, "peak_mem_above_input_MiB": (_peak_rss_bytes() - rss0) / 2**20,
            "peak_reset": peak_reset}


# name -> module that must import (the kernel micro benchmark)
KERNEL_IMPLS = {"sklearn-iter": "sklearn", "cpu-numba": "numba"}


def kernel_worker(impl: str, size: tuple, iters: int, reps: int) -> dict:
    """Time per Lloyd iteration of the bare kernels, from the same centres.

    ``sklearn-iter``: scikit-learn's own iteration (``lloyd_iter_chunked_dense``: labels,
    new centres, shift), on the data centred once as its ``fit`` does.  ``cpu-numba``:
    :func:`kmeans_xp._kernels._cpu.lloyd_pass` on X as given, with the frame's shift (the
    column mean) when the data are far from the origin, plus the division into new
    centres.  Also reported: the first call's time (numba import + compiled-code load, or
    compilation on a cold cache) and the peak memory above the input during the passes.
    """
    n, d, k = size[:3]
    X, init = make_data(n, d, k, kind=size[3] if len(size) > 3 else "gauss")
    mean = X.mean(axis=0, dtype=np.float64)
    far = float(mean @ mean) > float(X.var(axis=0, dtype=np.float64).sum())
    shift = mean.astype(np.float32) if far else None
    if impl == "sklearn-iter":
        from sklearn.cluster._k_means_lloyd import lloyd_iter_chunked_dense

        Xs = X - shift if far else X  # sklearn's fit centres a copy of X once
        w = np.ones(n, np.float32)
        C, C_new = init - (shift if far else 0), np.empty_like(init)
        wic, labels, moved = np.empty(k, np.float32), np.empty(n, np.int32), np.empty(k, np.float32)

        def step(C):
            lloyd_iter_chunked_dense(Xs, w, C, C_new, wic, labels, moved, int(THREADS), True)
            return C_new.copy()
    else:
        from kmeans_xp._kernels import _cpu

        C = (init - shift) if far else init.copy()

        def step(C):
            _, sums, counts, _ = _cpu.lloyd_pass(X, C, None, shift, 1.0)
            return np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], C)
    C0 = C.copy()
    t0 = time.perf_counter()
    step(C0)
    first = time.perf_counter() - t0
    rss0 = _rss_bytes()
    peak_reset = _reset_peak_rss()
    times, each = [], []
    for _ in range(reps):
        C = C0.copy()
        t0 = time.perf_counter()
        for _ in range(iters):
            t1 = time.perf_counter()
            C = step(C)
            each.append(time.perf_counter() - t1)
        times.append((time.perf_counter() - t0) / iters)
    # best_iter_s: the fastest single iteration, a floor that is less sensitive to other
    # processes on a shared machine than the median (reported next to it, never instead)
    return {"impl": impl, "size": size_key(size), "per_iter_s": float(np.median(times)),
            "best_iter_s": float(min(each)),
            "first_call_s": first, "n_iter": iters, "centred_by_frame": far,
            "peak_mem_above_input_MiB": (_peak_rss_bytes() - rss0) / 2**20,
            "peak_reset": peak_reset}


# --------------------------------------------------------------------------------------
# the driver
# --------------------------------------------------------------------------------------
def _env() -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = THREADS
    # the pool's images set these for other work; a benchmark wants OpenBLAS's own choice
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def available(impl: str, gpu: bool, mode: str = "iter") -> str | None:
    """None if ``impl`` can run here, else why not."""
    if mode == "iter":
        mod, needs_gpu = IMPLS[impl]
    else:
        mod, needs_gpu = (FIT_IMPLS if mode == "fit" else KERNEL_IMPLS)[impl], False
    if needs_gpu and not gpu:
        return "no GPU"
    code = f"import {mod}"
    if impl == "kmeans_xp-cupy":
        code += "; cupy.cuda.runtime.getDeviceCount()"
    if impl == "faiss-gpu":
        code += "; assert faiss.get_num_gpus() > 0"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]


def has_gpu() -> bool:
    res = subprocess.run([sys.executable, "-c", "import torch; assert torch.cuda.is_available()"],
                         capture_output=True, env=_env())
    return res.returncode == 0


def gemm_ceiling(gpu: bool) -> dict:
    """float32 GEMM throughput (GFLOP/s) measured now, 2 threads (GPU: TF32 off)."""
    code = r"""
import time, json, numpy as np
out = {}
a = np.random.default_rng(0).standard_normal((2048, 2048), dtype=np.float32)
a @ a
t = min((lambda s: (a @ a, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(5))
out["numpy"] = 2 * 2048**3 / t / 1e9
try:
    import torch
    torch.set_num_threads(2)
    b = torch.from_numpy(a)
    b @ b
    t = min((lambda s: (b @ b, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(5))
    out["torch_cpu"] = 2 * 2048**3 / t / 1e9
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        g = torch.randn(8192, 8192, device="cuda")
        g @ g; torch.cuda.synchronize()
        ts = []
        for _ in range(5):
            s = time.perf_counter(); g @ g; torch.cuda.synchronize(); ts.append(time.perf_counter() - s)
        out["torch_cuda"] = 2 * 8192**3 / min(ts) / 1e9
        out["gpu_name"] = torch.cuda.get_device_name(0)
except ImportError:
    pass
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_one(mode: str, impl: str, size: tuple, iters: int, reps: int, seeds: int,
            timeout: float) -> dict:
    spec = {"mode": mode, "impl": impl, "size": list(size), "iters": iters, "reps": reps,
            "seeds": seeds}
    cmd = [sys.executable, "-m", "bench.run", "--worker", json.dumps(spec)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "size": size_key(size), "error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        msg = (res.stderr.strip().splitlines() or ["?"])[-1]
        return {"impl": impl, "size": size_key(size), "error": msg[:300]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_worker(spec: dict) -> dict:
    size = tuple(spec["size"])
    if spec["mode"] == "fit":
        return fit_worker(spec["impl"], size, spec["seeds"])
    if spec["mode"] == "kernel":
        return kernel_worker(spec["impl"], size, spec["iters"], spec["reps"])
    return worker(spec["impl"], size, spec["iters"], spec["reps"])


def _versions() -> dict:
    code = r"""
import json, importlib
out = {}
for m in ("numpy", "torch", "sklearn", "sklearnex", "faiss", "fast_pytorch_kmeans", "cupy", "kmeans_xp"):
    try:
        out[m] = getattr(importlib.import_module(m), "__version__", "?")
    except Exception:
        pass
print(json.dumps(out))
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env())
    return json.loads(res.stdout.strip().splitlines()[-1])


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _best_by_round(rows: list[dict], key: str) -> list[dict]:
    by_round: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["size"] == key and "best_iter_s" in r:
            by_round.setdefault(r["round"], {})[r["impl"]] = r["best_iter_s"]
    return list(by_round.values())


def summarise(rows: list[dict], sizes: list, impls: list[str], base: str = "sklearn") -> dict:
    """Median time (per iteration; per fit with --fit), paired ratio to ``base``,
    GFLOP/s, memory, best peer (and mean inertia, first-call time where measured)."""
    summary = {}
    for size in sizes:
        key = size_key(size)
        n, d, k = size[:3]
        by_round: dict[int, dict[str, float]] = {}
        for r in rows:
            if r["size"] == key and "per_iter_s" in r:
                by_round.setdefault(r["round"], {})[r["impl"]] = r["per_iter_s"]
        entry = {}
        for impl in impls:
            mine = [r for r in rows if r["size"] == key and r["impl"] == impl]
            ok = [r for r in mine if "per_iter_s" in r]
            if not ok:
                entry[impl] = {"error": mine[0].get("error") if mine else "not run"}
                continue
            t = float(np.median([r["per_iter_s"] for r in ok]))
            ratios = [rd[impl] / rd[base] for rd in by_round.values()
                      if impl in rd and base in rd]
            entry[impl] = {
                "per_iter_ms": t * 1e3,
                "ratio_to_sklearn": float(np.median(ratios)) if ratios else None,
                "ratios_per_round": ratios,
                "gflops": 2 * n * k * d / t / 1e9,
                "peak_mem_above_input_MiB": float(np.median([r["peak_mem_above_input_MiB"]
                                                             for r in ok])),
                "n_iter": ok[-1]["n_iter"],
            }
            for extra in ("gpu_peak_alloc_MiB", "centred_by_frame"):
                if extra in ok[-1]:
                    entry[impl][extra] = ok[-1][extra]
            if "mean_inertia" in ok[-1]:
                entry[impl]["mean_inertia"] = ok[-1]["mean_inertia"]
            if "first_call_s" in ok[-1]:
                entry[impl]["first_call_s"] = float(np.median([r["first_call_s"] for r in ok]))
            if "best_iter_s" in ok[-1]:
                best = [rd_best[impl] / rd_best[base] for rd_best in _best_by_round(rows, key)
                        if impl in rd_best and base in rd_best]
                entry[impl]["best_iter_ms"] = 1e3 * min(r["best_iter_s"] for r in ok)
                entry[impl]["best_ratio_to_base"] = float(np.median(best)) if best else None
        if "mean_inertia" in entry.get(base, {}):
            for e in entry.values():
                if "mean_inertia" in e:
                    e["inertia_vs_base"] = e["mean_inertia"] / entry[base]["mean_inertia"] - 1
        ours = ("kmeans_xp", "cpu-")
        peers = {i: e["per_iter_ms"] for i, e in entry.items()
                 if "per_iter_ms" in e and not i.startswith(ours)}
        if peers:
            best = min(peers, key=peers.get)
            for i, e in entry.items():
                if i.startswith(ours) and "per_iter_ms" in e:
                    e["ratio_to_best_peer"] = e["per_iter_ms"] / peers[best]
                    e["best_peer"] = best
        summary[key] = entry
    return summary


MODE_NOTES = {
    "iter": "time = median fit time / n_iter_ (at most {iters} iterations per fit from the same "
            "initial centres, tol = 0)",
    "fit": "time = median over seeds 0..{seeds_1} of a whole fit with default parameters "
           "(k-means++ for sklearn and kmeans_xp, oneDAL's own init for sklearnex, FAISS's "
           "defaults: random init, 25 iterations, 256 points per centroid); inertia "
           "= mean over the seeds, in float64, of the returned labelling, relative to sklearn",
    "kernel": "time per Lloyd iteration of the bare kernels ({iters} iterations from the same "
              "centres): scikit-learn's lloyd_iter_chunked_dense on the data centred once (as "
              "its fit does) vs kmeans_xp._kernels._cpu.lloyd_pass on X as given with the "
              "frame's shift when the data are far from the origin; first call = numba import "
              "+ loading the cached compiled code (or compiling, on a cold cache); best = the "
              "fastest single iteration (a floor less sensitive to other processes on a shared "
              "machine), with the median over rounds of its paired ratio",
}


def markdown(meta: dict, summary: dict, impls: list[str]) -> str:
    mode = meta.get("mode", "iter")
    base = meta.get("base", "sklearn")
    unit = "s / fit" if mode == "fit" else "ms / iter"
    note = MODE_NOTES[mode].format(iters=meta["iters"], seeds_1=meta.get("seeds", 1) - 1)
    lines = [f"# kmeans_xp benchmark ({mode}), {meta['date']}", "",
             f"- machine: {meta['machine']}; threads pinned to {THREADS}",
             "- GEMM ceiling (float32, measured in this run): "
             + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in meta["gemm_gflops"].items()
                         if isinstance(v, float)),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
             f"- {meta['rounds']} interleaved rounds, each (implementation, size, round) in a "
             f"fresh process; {note}; ratio = median over rounds of the paired ratio to {base} "
             "(lower is faster); memory = peak RSS during the timed work above the RSS once the "
             "input and the library are loaded (after a warm-up).",
             ""]
    for key, entry in summary.items():
        dims, _, kind = key.partition(":")
        lines += [f"## (n, d, k) = ({dims.replace('x', ', ')}){', ' + kind + ' data' if kind else ''}",
                  "",
                  f"| implementation | {unit} | ratio to {base} | ratio to best peer | GFLOP/s | "
                  "peak MiB above input | inertia vs sklearn | first call s | best ms / iter "
                  "(ratio) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for impl in impls:
            e = entry.get(impl)
            if e is None:
                continue
            if "per_iter_ms" not in e:
                lines.append(f"| {impl} | missing: {e['error']} | | | | | | | |")
                continue
            r = e["ratio_to_sklearn"]
            b = e.get("ratio_to_best_peer")
            r_txt = "" if r is None else f"{r:.2f}"
            b_txt = "" if b is None else f"{b:.2f} ({e['best_peer']})"
            t_txt = (f"{e['per_iter_ms'] / 1e3:.2f}" if mode == "fit"
                     else f"{e['per_iter_ms']:.2f}")
            g_txt = "" if mode == "fit" else f"{e['gflops']:.1f}"
            i_txt = f"{100 * e['inertia_vs_base']:+.2f} %" if "inertia_vs_base" in e else ""
            f_txt = f"{e['first_call_s']:.2f}" if "first_call_s" in e else ""
            br = e.get("best_ratio_to_base")
            m_txt = (f"{e['best_iter_ms']:.2f} ({br:.2f})" if br is not None
                     else f"{e['best_iter_ms']:.2f}" if "best_iter_ms" in e else "")
            lines.append(
                f"| {impl} | {t_txt} | {r_txt} | {b_txt} | {g_txt} | "
                f"{e['peak_mem_above_input_MiB']:.0f} | {i_txt} | {f_txt} | {m_txt} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict, impls: list[str], path: Path, title: str, base: str = "sklearn",
         ylabel: str = "time per iteration / scikit-learn's (lower is faster)") -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = list(summary)
    shown = [i for i in impls if i != base and any(
        summary[k].get(i, {}).get("ratio_to_sklearn") for k in keys)]
    fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(keys)), 4.5), constrained_layout=True)
    width = 0.8 / max(1, len(shown))
    for j, impl in enumerate(shown):
        vals = [summary[k].get(impl, {}).get("ratio_to_sklearn") or np.nan for k in keys]
        ax.bar(np.arange(len(keys)) + j * width, vals, width, label=impl)
    ax.axhline(1.0, color="black", lw=1, ls="--")
    ax.set_xticks(np.arange(len(keys)) + width * (len(shown) - 1) / 2)
    ax.set_xticklabels([f"({k.replace('x', ', ')})" for k in keys], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="two small sizes, two rounds (< 2 min)")
    ap.add_argument("--fit", action="store_true",
                    help="whole fits with default parameters (k-means++), several seeds")
    ap.add_argument("--kernel", action="store_true",
                    help="micro benchmark of the fused CPU pass vs scikit-learn's iteration")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--iters", type=int, default=None, help="max Lloyd iterations per fit")
    ap.add_argument("--reps", type=int, default=None, help="timed fits per process")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per process with --fit")
    ap.add_argument("--impls", default=None, help="comma-separated subset of implementations")
    ap.add_argument("--sizes", default=None,
                    help="e.g. 100000x32x32,50000x784x10:pixels (kinds: gauss, shifted, pixels; "
                         "a -f64 suffix: float64 data)")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--tag", default=None, help="file name stem (default: date-machine)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per worker process")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(run_worker(json.loads(args.worker))))
        return 0

    mode = "fit" if args.fit else "kernel" if args.kernel else "iter"
    gpu = has_gpu() if mode == "iter" else False
    sizes = (QUICK_SIZES if args.quick
             else CPU_SIZES + NONCENTRED_SIZES + (GPU_SIZES if gpu else []))
    if args.sizes:
        sizes = [parse_size(s) for s in args.sizes.split(",")]
    rounds = args.rounds or (2 if args.quick else 3)
    iters = args.iters or (10 if args.quick else 20)
    reps = args.reps or (1 if args.quick else 2)
    base = {"iter": "sklearn", "fit": "sklearn", "kernel": "sklearn-iter"}[mode]
    table = {"iter": IMPLS, "fit": FIT_IMPLS, "kernel": KERNEL_IMPLS}[mode]
    wanted = args.impls.split(",") if args.impls else list(table)
    if base not in wanted:
        wanted.insert(0, base)
    impls, missing = [], {}
    for impl in wanted:
        why = available(impl, gpu, mode)
        if why:
            missing[impl] = why
        else:
            impls.append(impl)
    for impl, why in missing.items():
        print(f"missing: {impl} ({why})", flush=True)

    ceiling = gemm_ceiling(gpu)
    machine = ceiling.get("gpu_name", _cpu_name())
    print(f"machine: {machine}; GEMM ceiling {ceiling}", flush=True)
    rows = []
    for r in range(rounds):
        for size in sizes:
            # GPU-only sizes are too big for the CPU implementations
            run_here = [i for i in impls
                        if mode != "iter" or IMPLS[i][1] or size not in GPU_SIZES]
            order = run_here[r % len(run_here):] + run_here[:r % len(run_here)]
            for impl in order:
                res = run_one(mode, impl, size, iters, reps, args.seeds, args.timeout)
                res["round"] = r
                rows.append(res)
                if "per_iter_s" not in res:
                    shown = f"error: {res['error']}"
                elif mode == "fit":
                    shown = (f"{res['per_iter_s']:9.2f} s/fit  mean inertia "
                             f"{res['mean_inertia']:.6g}  n_iter {res['n_iter']}")
                else:
                    shown = f"{res['per_iter_s'] * 1e3:9.2f} ms/iter"
                print(f"round {r} {size_key(size):24s} {impl:26s} {shown}", flush=True)

    summary = summarise(rows, sizes, impls, base)
    date = _dt.date.today().isoformat()
    suffix = {"iter": "", "fit": "-fit", "kernel": "-kernel"}[mode]
    tag = args.tag or f"{date}-{'gpu' if gpu else 'cpu'}{suffix}{'-quick' if args.quick else ''}"
    meta = {"date": date, "machine": machine, "gemm_gflops": ceiling, "versions": _versions(),
            "rounds": rounds, "reps": reps, "iters": iters, "threads": int(THREADS),
            "missing": missing, "quick": args.quick, "mode": mode, "base": base,
            "seeds": args.seeds}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{tag}.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": rows},
                                                indent=1))
    md = markdown(meta, summary, impls + list(missing))
    for impl, why in missing.items():
        md += f"\n- {impl}: missing ({why})"
    (out / f"{tag}.md").write_text(md + "\n")
    ylabel = ("fit time / scikit-learn's (lower is faster)" if mode == "fit" else
              f"time per iteration / {base}'s (lower is faster)")
    plotted = plot(summary, impls, out / f"{tag}.png", f"kmeans_xp vs peers ({mode}), {machine}",
                   base, ylabel)
    print(md)
    print(f"\nwritten: {out / (tag + '.json')}, {tag}.md" + (f", {tag}.png" if plotted else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
