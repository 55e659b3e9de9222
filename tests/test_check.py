"""The self-check (``python -m kmeans_xp.check``, ``kmeans_xp.show_config``): it runs on a
machine without a GPU and says so, and it reports a kernel set that computes wrong results."""

from __future__ import annotations

import io
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_python_m_kmeans_xp_check_runs_and_reports():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TRITON_INTERPRET", None)
    r = subprocess.run(
        [sys.executable, "-m", "kmeans_xp.check"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    for section in ("Versions", "Devices", "Kernel sets", "Checks against the reference"):
        assert section in out
    assert "numpy " in out and "python " in out and "All checks passed." in out
    assert "ok   numpy" in out and "FAIL" not in out
    import torch  # noqa: F401 - only to know what the machine has

    if not torch.cuda.is_available():
        assert "GPU: none" in out and "no CUDA device" in out
    else:
        assert "cuda:0 (torch)" in out


def test_show_config_is_exported_and_imports_no_backend():
    code = (
        "import sys, kmeans_xp; assert callable(kmeans_xp.show_config);"
        "bad = [m for m in ('torch', 'triton', 'numba', 'cupy', 'jax', 'dask')"
        " if m in sys.modules]; assert not bad, bad"
    )
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr


def test_a_wrong_kernel_set_is_reported_as_a_failure(monkeypatch):
    from kmeans_xp import _check, _kernels
    from kmeans_xp._kernels._numpy import NumpyKernels

    class Broken(NumpyKernels):
        name = "broken"

        def lloyd_pass(self, data, centers, *, need_inertia=False):
            labels, sums, counts, inertia = super().lloyd_pass(
                data, centers, need_inertia=need_inertia
            )
            return (labels + 1) % int(centers.shape[0]), sums, counts, inertia

    real = _kernels.available_sets

    def with_broken(xp, device, dtype, **options):
        sets = real(xp, device, dtype, **options)
        if "numpy" in getattr(xp, "__name__", ""):
            sets["broken"] = Broken(xp, device, dtype, **options)
        return sets

    monkeypatch.setattr(_kernels, "available_sets", with_broken)
    backends = _check.backend_devices
    monkeypatch.setattr(
        _check, "backend_devices", lambda: [b for b in backends() if b[0] == "numpy"]
    )
    buf = io.StringIO()
    ok = _check.show_config(buf)
    out = buf.getvalue()
    assert ok is False
    assert "FAIL numpy          float32  broken" in out and "labels differ" in out
    assert "2 FAILED." in out  # float32 and float64
    assert "ok   numpy          float32  numpy" in out  # the healthy sets still pass
