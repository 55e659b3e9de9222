"""Benchmark: k-means and mini-batch k-means on sparse TF-IDF-like data, against scikit-learn.

    python -m bench.sparse            # 100k documents x 2**18 features, ~100 values a row, k=100
    python -m bench.sparse --quick    # 20k x 2**16, ~50 a row, k=32: about a minute

The documents belong to ``k`` topics: most of a document's words come from its topic's
vocabulary, the rest from a Zipf-like background; values are L2-normalised (float64, as
``TfidfVectorizer`` gives).  Two measures, each in a fresh subprocess per implementation
and round (threads pinned to 2; implementations interleaved within a round):

- Lloyd: a fit from the same ``k`` initial rows with ``tol=0`` and at most ``--iters``
  iterations; time = fit time / ``n_iter_`` (validation and the final labelling pass
  included, as in ``bench.run``);
- k-means++: ``kmeans_plusplus(X, k, random_state=0)`` (greedy, 2 + ln k candidates a step);
- MiniBatchKMeans: a fit from the same ``k`` initial rows, ``batch_size=1024``,
  ``max_iter=--mb-passes`` passes over X (``n // 1024`` steps a pass), no early stopping,
  ``random_state=0`` (the same batches for every implementation); time = the whole fit
  (the final labelling pass included), inertia = its ``inertia_`` on all of X.

The ratio to scikit-learn (time of the implementation / time of scikit-learn; lower is
faster) is paired per round; its median is reported.  Peak memory: RSS high-water mark
above the RSS once the input and the library are loaded.  Implementations on a GPU
(torch CUDA sparse CSR, cupyx CSR) run where one is present.

Results: bench/results/<date>-sparse-<machine>.json and .md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import subprocess
import sys
import time

import numpy as np

from .run import (
    ROOT,
    THREADS,
    _cpu_name,
    _env,
    _peak_rss_bytes,
    _reset_peak_rss,
    _rss_bytes,
    _versions,
    has_gpu,
)

FULL = {"n": 100_000, "d": 2 ** 18, "per_row": 100, "k": 100, "iters": 5, "rounds": 2,
        "mb_passes": 1}
QUICK = {"n": 20_000, "d": 2 ** 16, "per_row": 50, "k": 32, "iters": 5, "rounds": 2,
         "mb_passes": 1}

# name -> (module that must import, needs a GPU)
IMPLS = {
    "sklearn": ("sklearn", False),
    "kmeans_xp-scipy": ("scipy", False),
    "kmeans_xp-torch": ("torch", False),
    "kmeans_xp-torch-cuda": ("torch", True),
    "kmeans_xp-cupy": ("cupyx.scipy.sparse", True),
}


def make_docs(n: int, d: int, per_row: int, topics: int, seed: int = 0):
    """(n, d) scipy CSR float64, rows L2-normalised, int32 indices; about ``per_row``
    stored values a row (fewer where words repeat)."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    topic = rng.integers(0, topics, n)
    vocab = rng.integers(0, d, (topics, 2000))  # each topic's words
    own = int(0.6 * per_row)
    cols = np.empty((n, per_row), dtype=np.int64)
    cols[:, :own] = vocab[topic[:, None], rng.integers(0, 2000, (n, own))]
    cols[:, own:] = (d * rng.random((n, per_row - own)) ** 3).astype(np.int64)  # Zipf-like
    vals = rng.integers(1, 4, (n, per_row)).astype(np.float64) * (1.0 + rng.random((n, per_row)))
    rows = np.repeat(np.arange(n), per_row)
    X = sp.csr_matrix((vals.ravel(), (rows, cols.ravel())), shape=(n, d))  # sums repeats
    norms = np.sqrt(np.bincount(np.repeat(np.arange(n), np.diff(X.indptr)),
                                weights=X.data ** 2, minlength=n))
    X.data /= np.repeat(norms, np.diff(X.indptr))
    X.indices = X.indices.astype(np.int32)
    X.indptr = X.indptr.astype(np.int32)
    return X


def _prepare(impl: str, X, init: np.ndarray):
    """(X, init, (KMeans, MiniBatchKMeans), kmeans_plusplus, sync) of one implementation."""
    def sync():
        return None

    if impl == "sklearn":
        from sklearn.cluster import KMeans, MiniBatchKMeans, kmeans_plusplus

        return X, init, (KMeans, MiniBatchKMeans), kmeans_plusplus, sync
    from kmeans_xp import KMeans, MiniBatchKMeans, kmeans_plusplus

    ests = (KMeans, MiniBatchKMeans)
    if impl == "kmeans_xp-scipy":
        return X, init, ests, kmeans_plusplus, sync
    if impl.startswith("kmeans_xp-torch"):
        import warnings

        import torch

        torch.set_num_threads(int(THREADS))
        dev = "cuda" if impl.endswith("cuda") else "cpu"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            T = torch.sparse_csr_tensor(torch.from_numpy(X.indptr), torch.from_numpy(X.indices),
                                        torch.from_numpy(X.data), size=X.shape).to(dev)
        if dev == "cuda":
            sync = torch.cuda.synchronize
        return T, torch.asarray(init, device=dev), ests, kmeans_plusplus, sync
    if impl == "kmeans_xp-cupy":  # pragma: no cover - needs a GPU
        import cupy
        import cupyx.scipy.sparse as cpsp

        return (cpsp.csr_matrix(X), cupy.asarray(init), ests, kmeans_plusplus,
                cupy.cuda.Device().synchronize)
    raise ValueError(impl)


def worker(impl: str, n: int, d: int, per_row: int, k: int, iters: int,
           mb_passes: int = 1) -> dict:
    import warnings

    warnings.simplefilter("ignore")
    X = make_docs(n, d, per_row, topics=k)
    init = X[np.random.default_rng(1).choice(n, k, replace=False)].toarray()
    # warm-up on a slice: imports, kernel set-up
    Xs, inits, (KM, MB), kpp, sync = _prepare(impl, X[: 4 * k], init)
    KM(k, init=inits, n_init=1, max_iter=2, tol=0).fit(Xs)
    MB(k, init=inits, n_init=1, batch_size=2 * k, max_iter=1).fit(Xs)
    Xi, initi, (KM, MB), kpp, sync = _prepare(impl, X, init)
    sync()
    rss0 = _rss_bytes()
    peak_reset = _reset_peak_rss()
    t0 = time.perf_counter()
    km = KM(k, init=initi, n_init=1, max_iter=iters, tol=0).fit(Xi)
    sync()
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, idx = kpp(Xi, k, random_state=0)
    sync()
    kpp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mb = MB(k, init=initi, n_init=1, batch_size=1024, max_iter=mb_passes, tol=0.0,
            max_no_improvement=None, random_state=0).fit(Xi)
    sync()
    mb_s = time.perf_counter() - t0
    return {"impl": impl, "per_iter_s": fit_s / km.n_iter_, "fit_s": fit_s,
            "n_iter": int(km.n_iter_), "inertia": float(km.inertia_), "kpp_s": kpp_s,
            "mb_s": mb_s, "mb_steps": int(mb.n_steps_), "mb_inertia": float(mb.inertia_),
            "kpp_first": [int(i) for i in np.asarray(idx.tolist())[:5]],
            "nnz": int(X.nnz), "peak_mem_above_input_MiB": (_peak_rss_bytes() - rss0) / 2**20,
            "peak_reset": peak_reset}


def run_one(impl: str, cfg: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "bench.sparse", "--worker", impl] + [
        str(cfg[key]) for key in ("n", "d", "per_row", "k", "iters", "mb_passes")]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=_env(), cwd=ROOT,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        return {"impl": impl, "error": ((res.stderr.strip().splitlines() or ["?"])[-1])[:300]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def available(impl: str, gpu: bool) -> str | None:
    mod, needs_gpu = IMPLS[impl]
    if needs_gpu and not gpu:
        return "no GPU"
    code = f"import {mod}"
    if impl == "kmeans_xp-cupy":
        code += "; import cupy; cupy.cuda.runtime.getDeviceCount()"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=_env(), check=False)
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["?"])[-1]


def summarise(rows: list[dict], impls: list[str]) -> dict:
    out = {}
    for impl in impls:
        ok = [r for r in rows if r["impl"] == impl and "per_iter_s" in r]
        if not ok:
            bad = [r for r in rows if r["impl"] == impl]
            out[impl] = {"error": bad[0].get("error", "not run") if bad else "not run"}
            continue
        entry = {"per_iter_s": float(np.median([r["per_iter_s"] for r in ok])),
                 "kpp_s": float(np.median([r["kpp_s"] for r in ok])),
                 "mb_s": float(np.median([r["mb_s"] for r in ok])),
                 "n_iter": ok[-1]["n_iter"], "inertia": ok[-1]["inertia"],
                 "mb_steps": ok[-1]["mb_steps"], "mb_inertia": ok[-1]["mb_inertia"],
                 "kpp_first": ok[-1]["kpp_first"],
                 "peak_mem_above_input_MiB": float(np.median(
                     [r["peak_mem_above_input_MiB"] for r in ok]))}
        for key in ("per_iter_s", "kpp_s", "mb_s"):
            ratios = []
            for rd in {r["round"] for r in ok}:
                mine = [r[key] for r in ok if r["round"] == rd]
                ref = [r[key] for r in rows if r["impl"] == "sklearn" and r["round"] == rd
                       and key in r]
                if mine and ref:
                    ratios.append(mine[0] / ref[0])
            entry[f"{key}_ratio_to_sklearn"] = float(np.median(ratios)) if ratios else None
            entry[f"{key}_ratios_per_round"] = ratios
        out[impl] = entry
    return out


def to_markdown(meta: dict, summary: dict) -> str:
    c = meta["config"]
    lines = [
        f"# kmeans_xp sparse benchmark, {meta['date']}", "",
        f"- machine: {meta['cpu']}; threads pinned to {THREADS}; GPU: {meta['gpu']}",
        (f"- data: {c['n']} documents x {c['d']} features, {meta['nnz']} stored values "
         f"({meta['nnz'] / c['n']:.1f} a row), float64, L2-normalised rows; k = {c['k']}"),
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        (f"- {c['rounds']} interleaved rounds, fresh process each; Lloyd: at most "
         f"{c['iters']} iterations from the same initial rows, tol=0, time = fit / n_iter_; "
         "k-means++: kmeans_plusplus(X, k, random_state=0); MiniBatchKMeans: the same "
         f"initial rows, batch_size=1024, {c['mb_passes']} pass(es), no early stopping, "
         "random_state=0, time = whole fit; ratio = median over rounds of the paired "
         "ratio to scikit-learn (lower is faster)"), "",
        ("| implementation | s / Lloyd iter | ratio | k-means++ s | ratio | n_iter | inertia "
         "| first k-means++ rows | peak MiB above input |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    mb_lines = ["", "| implementation | MiniBatchKMeans fit s | ratio | steps | inertia |",
                "|---|---|---|---|---|"]
    for impl, e in summary.items():
        if "error" in e:
            lines.append(f"| {impl} | {e['error']} |  |  |  |  |  |  |  |")
            mb_lines.append(f"| {impl} | {e['error']} |  |  |  |")
            continue

        def fmt(v):
            return "" if v is None else f"{v:.2f}"
        lines.append(
            f"| {impl} | {e['per_iter_s']:.3f} | {fmt(e['per_iter_s_ratio_to_sklearn'])} | "
            f"{e['kpp_s']:.2f} | {fmt(e['kpp_s_ratio_to_sklearn'])} | {e['n_iter']} | "
            f"{e['inertia']:.6g} | {e['kpp_first']} | {e['peak_mem_above_input_MiB']:.0f} |")
        mb_lines.append(f"| {impl} | {e['mb_s']:.2f} | {fmt(e['mb_s_ratio_to_sklearn'])} | "
                        f"{e['mb_steps']} | {e['mb_inertia']:.8g} |")
    return "\n".join(lines + mb_lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--worker", nargs=7,
                   metavar=("IMPL", "N", "D", "PER_ROW", "K", "ITERS", "MB_PASSES"))
    p.add_argument("--rounds", type=int)
    p.add_argument("--iters", type=int)
    p.add_argument("--mb-passes", type=int, help="MiniBatchKMeans max_iter (default 1)")
    p.add_argument("--impls", help="comma-separated subset of " + ", ".join(IMPLS))
    p.add_argument("--timeout", type=float, default=1800.0)
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args(argv)
    if args.worker:
        impl, *nums = args.worker
        print(json.dumps(worker(impl, *(int(v) for v in nums))))
        return 0

    cfg = dict(QUICK if args.quick else FULL)
    cfg["rounds"] = args.rounds or cfg["rounds"]
    cfg["iters"] = args.iters or cfg["iters"]
    cfg["mb_passes"] = args.mb_passes or cfg["mb_passes"]
    gpu = has_gpu()
    impls = args.impls.split(",") if args.impls else list(IMPLS)
    if "sklearn" not in impls:
        impls.insert(0, "sklearn")
    missing = {i: why for i in impls if (why := available(i, gpu))}
    runnable = [i for i in impls if i not in missing]
    rows = []
    for rd in range(cfg["rounds"]):
        for impl in (runnable if rd % 2 == 0 else runnable[::-1]):
            r = run_one(impl, cfg, args.timeout)
            r["round"] = rd
            rows.append(r)
            shown = (f"{r['per_iter_s']:.3f} s/iter, k-means++ {r['kpp_s']:.2f} s, "
                     f"MiniBatchKMeans {r['mb_s']:.2f} s, "
                     f"{r['peak_mem_above_input_MiB']:.0f} MiB" if "per_iter_s" in r
                     else r["error"])
            print(f"round {rd} {impl}: {shown}", flush=True)
    rows += [{"impl": i, "error": why} for i, why in missing.items()]
    summary = summarise(rows, impls)
    nnz = next((r["nnz"] for r in rows if "nnz" in r), 0)
    meta = {"date": _dt.date.today().isoformat(), "cpu": _cpu_name(), "gpu": gpu,
            "config": cfg, "nnz": nnz, "versions": _versions()}
    md = to_markdown(meta, summary)
    print(md)
    if not args.no_save:
        out = ROOT / "bench" / "results"
        out.mkdir(exist_ok=True)
        stem = f"{meta['date']}-sparse-{'gpu' if gpu else 'cpu'}{'-quick' if args.quick else ''}"
        (out / f"{stem}.json").write_text(json.dumps(
            {"meta": meta, "summary": summary, "rows": rows}, indent=1))
        (out / f"{stem}.md").write_text(md)
        print(f"saved bench/results/{stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
