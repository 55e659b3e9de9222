"""Memory measurement shared by the tests (not a test module)."""

import tracemalloc


def peak_traced(fn) -> int:
    """Peak bytes traced by tracemalloc (Python and NumPy allocations) while ``fn()`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


#: The child of :func:`fit_peak_rss`: X filled in place (no temporary copy), a warm-up fit
#: (compiled code, thread pools), the high-water mark reset, then the measured fit.
_FIT_SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
n, d, k = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
backend, est = sys.argv[5], sys.argv[6]
from kmeans_xp import KMeans, MiniBatchKMeans


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


X = np.empty((n, d), dtype=np.float32)
rng = np.random.default_rng(0)
centers = rng.normal(scale=4.0, size=(k, d)).astype(np.float32)
step = 1 << 16
for i in range(0, n, step):
    m = min(step, n - i)
    rng.standard_normal(size=(m, d), dtype=np.float32, out=X[i:i + m])
    X[i:i + m] += centers[rng.integers(0, k, m)]
make = (lambda: KMeans(k, random_state=0, max_iter=3)) if est == "KMeans" else \
    (lambda: MiniBatchKMeans(k, random_state=0, max_iter=1, batch_size=4096))
if backend == "torch":
    import torch
    X = torch.from_numpy(X)  # the same memory
make().fit(X[:20_000])  # warm-up
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    reset = True
except OSError:
    reset = False
base = status("VmRSS")
hwm_before = status("VmHWM")
make().fit(X)
print(json.dumps({"base": base, "hwm": status("VmHWM"), "hwm_before": hwm_before,
                  "reset": reset, "x_bytes": n * d * 4}))
"""


def fit_peak_rss(
    n: int, d: int, k: int, backend: str = "numpy", estimator: str = "KMeans", timeout: float = 900
) -> dict:
    """Peak resident memory of one fit on a float32 (n, d) array, in a fresh process.

    Linux only (``/proc/self/status``).  Returns ``base`` (RSS before the fit, X included),
    ``hwm`` (the high-water mark after it), ``extra = hwm - base`` (what the fit added
    beyond X), ``x_bytes``; ``reset`` tells whether the mark could be reset before the
    fit (``/proc/self/clear_refs``), else the mark before it (``hwm_before``) bounds what
    the set-up itself reached.
    """
    import json
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", _FIT_SCRIPT, root, str(n), str(d), str(k), backend, estimator],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["extra"] = out["hwm"] - out["base"]
    return out
