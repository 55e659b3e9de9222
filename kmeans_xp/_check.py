"""The self-check: versions, devices, the kernel set each backend gets and why, and a run of
every kernel set against the reference on this machine's devices.

``python -m kmeans_xp.check`` (or :func:`kmeans_xp.show_config`) prints what a bug report
should contain.  Nothing here imports a backend at module level, and a backend that is not
installed is never imported (versions come from the installed distributions' metadata).
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import time
from importlib import metadata
from typing import Any, TextIO

from ._compat import backend_devices, gpu_devices, synchronize

#: (label, distributions that provide it, the module it installs)
_PACKAGES = [
    ("numpy", ("numpy",), "numpy"),
    ("array-api-compat", ("array-api-compat", "array_api_compat"), "array_api_compat"),
    ("scipy", ("scipy",), "scipy"),
    ("scikit-learn", ("scikit-learn",), "sklearn"),
    ("torch", ("torch",), "torch"),
    ("cupy", ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"), "cupy"),
    ("jax", ("jax",), "jax"),
    ("numba", ("numba",), "numba"),
    ("tbb", ("tbb",), None),
    ("threadpoolctl", ("threadpoolctl",), "threadpoolctl"),
    ("triton", ("triton",), "triton"),
    ("dask", ("dask",), "dask"),
]

_ENV = (
    "KMEANS_XP_KERNELS",
    "TRITON_INTERPRET",
    "CUDA_VISIBLE_DEVICES",
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
)


def _installed(module: str | None) -> bool:
    return module is None or importlib.util.find_spec(module) is not None


def versions() -> dict:
    """``{label: version or None}`` for Python, kmeans_xp and the packages it can use."""
    from . import __version__

    out: dict[str, str | None] = {"python": platform.python_version(), "kmeans_xp": __version__}
    for label, dists, module in _PACKAGES:
        v = None
        if _installed(module):
            for dist in dists:
                try:
                    v = metadata.version(dist)
                    break
                except metadata.PackageNotFoundError:
                    continue
            if v is None and module is not None:
                v = "installed (version unknown)"
        out[label] = v
    return out


def devices() -> list[str]:
    """One line per device: the CPU, each CUDA device (torch, CuPy) with its description."""
    lines = [
        f"CPU: {platform.machine()}, {os.cpu_count()} logical cores, "
        f"{platform.system()} {platform.release()}"
    ]
    gpus, why = gpu_devices()
    for g in gpus:
        line = f"cuda:{g['index']} ({g['library']}): {g['name']}, sm_{g['major']}{g['minor']}"
        if "memory" in g:
            line += f", {g['memory'] / 2**30:.1f} GiB, {g['sms']} SMs"
        if g["library"] == "torch" and _installed("triton"):
            try:
                from ._kernels import _triton

                spec = _triton.device_spec(g["index"])
                line += f", {spec.smem_per_block // 1024} KiB shared memory per block"
            except Exception as exc:  # noqa: BLE001
                line += f" (Triton: {type(exc).__name__}: {exc})"
        lines.append(line)
    if not gpus:
        lines.append(f"GPU: none -- no GPU seen ({why})")
    return lines


def _why(label: str, xp: Any, device: Any, dtype: Any, chosen: str) -> str:
    """Why ``select`` gave ``chosen`` for this backend and dtype."""
    pref = os.environ.get("KMEANS_XP_KERNELS")
    if pref:
        return f"KMEANS_XP_KERNELS={pref}"
    dname = str(getattr(dtype, "name", dtype)).split(".")[-1]
    gpu = "cuda" in label
    if chosen == "triton":
        from ._kernels import _triton

        spec = _triton.device_spec(
            device if label.startswith("torch") else int(getattr(device, "id", 0))
        )
        ran = _triton.kernel_precision(spec, "exact")
        extra = "" if ran == "exact" else f"; precision 'exact' runs as {ran!r} here"
        failed = [c for (s, _), c in _triton.FAILED.items() if s == spec]
        if failed:
            extra += f"; failed earlier in this process ({failed[0]}): the generic set serves"
        return f"triton installed, CUDA device sm_{spec.arch}, {dname} data{extra}"
    if chosen == "cpu":
        from ._kernels import _fused_cpu_min_elements

        return (
            f"numba installed: the fused CPU pass (data of {_fused_cpu_min_elements()} "
            "elements or more; smaller data: the vendor set, nothing to compile)"
        )
    if gpu:
        if not _installed("triton"):
            return "triton not installed (pip install triton)"
        if dname == "float64":
            return "float64 data: the Triton kernels are for float32/float16/bfloat16"
        return "the Triton set is not available for this data"
    if not _installed("numba"):
        return "numba not installed (pip install numba)"
    return "the fused CPU set does not serve this namespace"


def kernel_sets() -> list[tuple[str, str, str, str]]:
    """(backend, dtype, kernel set, why) for each backend with a device and each dtype."""
    from . import _kernels

    rows = []
    for label, xp, device, _ in backend_devices():
        for dname in ("float32", "float64"):
            dtype = getattr(xp, dname)
            chosen = _kernels.select(xp, device, dtype).name
            rows.append((label, dname, chosen, _why(label, xp, device, dtype, chosen)))
    return rows


def _timed(fn: Any, xp: Any, device: Any, reps: int = 3) -> tuple[Any, float]:
    out = fn()  # warm up (compiles)
    synchronize(xp, device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        synchronize(xp, device)
        times.append(time.perf_counter() - t0)
    return out, sorted(times)[len(times) // 2] * 1e3


def _problem(n: int = 4000, d: int = 16, k: int = 8, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 6.0
    X = centres[rng.integers(0, k, n)] + rng.normal(size=(n, d)) + 25.0
    return X, X[rng.choice(n, k, replace=False)]


def run_checks(out: TextIO) -> list[str]:
    """Every kernel set on every backend here against the reference set (labels equal, sums
    close, timings) and a small default fit against a fit on the reference set.  Prints one
    line per check; returns the failures."""
    import numpy as np

    from . import KMeans, _kernels
    from ._compat import to_numpy
    from ._data import ChunkedData

    failures = []
    X, C0 = _problem()
    k = int(C0.shape[0])
    for label, xp, device, make in backend_devices():
        for dname in ("float32", "float64"):
            dtype = getattr(xp, dname)
            Xb = make(X.astype(dname))
            try:
                sets = _kernels.available_sets(xp, device, dtype)
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{label} {dname}: available_sets: {exc!r}")
                continue
            ref = None
            for name in ["reference"] + [s for s in sets if s != "reference"]:
                kern = sets[name]
                what = f"{label:<14} {dname:<8} {name:<10}"
                try:
                    data = ChunkedData(Xb, xp=xp, dtype=dtype, n_clusters=k, kernels=kern)
                    data.prepare("X")
                    Cw = data.to_working_coords(make(C0.astype(dname)))
                    (lab, sums, counts, inertia), ms = _timed(
                        lambda kern=kern, data=data, Cw=Cw: kern.lloyd_pass(
                            data, Cw, need_inertia=True
                        ),
                        xp,
                        device,
                    )
                    got = (
                        np.asarray(to_numpy(lab)),
                        np.asarray(to_numpy(sums), np.float64),
                        float(inertia),
                    )
                except Exception as exc:  # noqa: BLE001 - reported as a failure
                    failures.append(f"{what} raised {type(exc).__name__}: {exc}")
                    out.write(f"  FAIL {what} raised {type(exc).__name__}: {exc}\n")
                    continue
                if ref is None:
                    ref = got
                    out.write(f"  ok   {what} Lloyd pass {ms:8.2f} ms (the reference)\n")
                    continue
                tol = 1e-4 if dname == "float32" else 1e-9
                problems = []
                if not np.array_equal(got[0], ref[0]):
                    problems.append(f"{int(np.sum(got[0] != ref[0]))} labels differ")
                scale = max(1.0, float(np.abs(ref[1]).max()))
                if not np.allclose(got[1], ref[1], rtol=tol, atol=tol * scale):
                    problems.append(f"sums differ by {float(np.abs(got[1] - ref[1]).max()):.3g}")
                if not np.isclose(got[2], ref[2], rtol=tol):
                    problems.append(f"inertia {got[2]!r} vs {ref[2]!r}")
                if problems:
                    failures.append(f"{what}: " + "; ".join(problems))
                    out.write(f"  FAIL {what} " + "; ".join(problems) + "\n")
                else:
                    out.write(f"  ok   {what} Lloyd pass {ms:8.2f} ms (labels equal, sums close)\n")
            # a small fit: the default kernel set against the reference set
            what = f"{label:<14} {dname:<8} fit       "
            try:
                fit, ms = _timed(
                    lambda Xb=Xb: KMeans(k, random_state=0, n_init=1).fit(Xb), xp, device, reps=1
                )  # after a first fit (compilation)
                saved = os.environ.get("KMEANS_XP_KERNELS")
                os.environ["KMEANS_XP_KERNELS"] = "reference"
                try:
                    slow = KMeans(k, random_state=0, n_init=1).fit(Xb)
                finally:
                    if saved is None:
                        os.environ.pop("KMEANS_XP_KERNELS", None)
                    else:
                        os.environ["KMEANS_XP_KERNELS"] = saved
                same = np.array_equal(
                    np.asarray(to_numpy(fit.labels_)), np.asarray(to_numpy(slow.labels_))
                )
                close = np.isclose(float(fit.inertia_), float(slow.inertia_), rtol=1e-4)
                if same and close:
                    out.write(
                        f"  ok   {what} KMeans({k}).fit {ms:8.2f} ms "
                        f"({fit.n_iter_} iterations, equals the reference fit)\n"
                    )
                else:
                    msg = f"{what}: the fit differs from the reference set's"
                    failures.append(msg)
                    out.write(f"  FAIL {msg}\n")
            except Exception as exc:  # noqa: BLE001
                failures.append(f"{what} raised {type(exc).__name__}: {exc}")
                out.write(f"  FAIL {what} raised {type(exc).__name__}: {exc}\n")
    return failures


def show_config(file: TextIO | None = None, *, run: bool = True) -> bool:
    """Print versions, devices, the kernel set each backend and dtype gets (and why) and, with
    ``run``, check every kernel set against the reference on this machine's devices.

    What a bug report should contain (``python -m kmeans_xp.check`` prints the same).

    Parameters
    ----------
    file : text stream, optional
        Where to print (default: ``sys.stdout``).
    run : bool, default=True
        Also run each kernel set once (a small problem; seconds).

    Returns
    -------
    ok : bool
        False when a check failed.
    """
    out = file or sys.stdout
    out.write("kmeans_xp self-check\n\nVersions\n")
    for label, v in versions().items():
        out.write(f"  {label:<17} {v if v is not None else 'not installed'}\n")
    env = {k: os.environ[k] for k in _ENV if k in os.environ}
    out.write("\nEnvironment\n")
    out.write("".join(f"  {k}={v}\n" for k, v in env.items()) or "  (no relevant variables)\n")
    out.write("\nDevices\n")
    out.write("".join(f"  {line}\n" for line in devices()))
    out.write("\nKernel sets (chosen per fit by backend, device and dtype)\n")
    for label, dname, chosen, why in kernel_sets():
        out.write(f"  {label:<14} {dname:<8} -> {chosen:<10} {why}\n")
    if not run:
        return True
    out.write("\nChecks against the reference set (n=4000, d=16, k=8; median of 3 runs)\n")
    failures = run_checks(out)
    out.write(f"\n{'All checks passed.' if not failures else f'{len(failures)} FAILED.'}\n")
    out.flush()
    return not failures
