"""The backend fixture: one set of tests over namespaces x devices.

Backends (ids): numpy, array_api_strict, array_api_strict_device1 (a second device of
array-api-strict, which refuses arrays mixed across devices: it proves that everything we
create is made on the input's device), torch (CPU), torch_cuda, cupy, jax (JAX's CPU device,
with ``jax_enable_x64`` so that float64 tests get float64; tests/test_jax.py covers JAX's
default 32-bit mode).

Environment:
- ``KMEANS_XP_BACKENDS=numpy,torch`` restricts the set;
- ``KMEANS_XP_REQUIRE=numpy,array_api_strict,torch`` turns a listed backend that cannot run
  here into a failure instead of a skip (CI uses it to prove the backends really ran).
"""

from __future__ import annotations

import importlib
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

# The suites run the fused CPU set on small data too: the size rule that keeps a small fit
# from waiting for numba's compiler (kmeans_xp._kernels.FUSED_CPU_MIN_ELEMENTS) is off here
# and tested on its own (tests/test_cpu_kernels.py).
os.environ.setdefault("KMEANS_XP_FUSED_CPU_MIN_ELEMENTS", "0")

ALL_BACKENDS = ("numpy", "array_api_strict", "array_api_strict_device1", "torch",
                "torch_cuda", "cupy", "jax")


def _env_list(name: str) -> list[str]:
    raw = os.environ.get(name, "")
    return [s.strip() for s in raw.split(",") if s.strip()]


#: JAX runs when named (KMEANS_XP_BACKENDS=jax): CI runs eight suites on it (.ci/run)
#: in a step of their own (a whole-suite run on JAX is not yet proven)
DEFAULT_BACKENDS = [b for b in ALL_BACKENDS if b != "jax"]
SELECTED = _env_list("KMEANS_XP_BACKENDS") or DEFAULT_BACKENDS
REQUIRED = _env_list("KMEANS_XP_REQUIRE")
for _name in SELECTED + REQUIRED:
    if _name not in ALL_BACKENDS:
        raise pytest.UsageError(f"unknown backend {_name!r} in KMEANS_XP_BACKENDS/REQUIRE; "
                                f"known: {', '.join(ALL_BACKENDS)}")


@dataclass
class Backend:
    """How a test makes arrays of one backend on one device and reads them back."""

    name: str
    kind: str  # the namespace's name as kmeans_xp._compat.backend_name gives it
    module: Any  # the array library as users import it (numpy, torch, cupy, array_api_strict)
    device: Any
    asarray: Callable[[np.ndarray], Any]

    def to_numpy(self, a: Any) -> np.ndarray:
        from kmeans_xp._compat import to_numpy

        return np.asarray(to_numpy(a))

    def dtype(self, name: str) -> Any:
        return getattr(self.module, name)

    def assert_native(self, a: Any, dtype: Any = None) -> None:
        """``a`` is an array of this backend, on this device (and of ``dtype``)."""
        from array_api_compat import array_namespace, device

        from kmeans_xp._compat import backend_name

        assert backend_name(array_namespace(a)) == self.kind, type(a)
        assert device(a) == self.device, (device(a), self.device)
        if dtype is not None:
            assert a.dtype == dtype, (a.dtype, dtype)

    def __repr__(self) -> str:
        return self.name


def _make_backend(name: str) -> Backend:
    """The backend, or raise ``RuntimeError`` saying why it cannot run here."""
    if name == "numpy":
        return Backend(name, "numpy", np, "cpu", lambda a: np.asarray(a))
    if name.startswith("array_api_strict"):
        try:
            xs = importlib.import_module("array_api_strict")
        except ImportError as exc:
            raise RuntimeError(f"array_api_strict is not installed ({exc})") from None
        dev = xs.Device("device1") if name.endswith("device1") else xs.Device("CPU_DEVICE")
        return Backend(name, "array_api_strict", xs, dev, lambda a: xs.asarray(a, device=dev))
    if name.startswith("torch"):
        try:
            torch = importlib.import_module("torch")
        except ImportError as exc:
            raise RuntimeError(f"torch is not installed ({exc})") from None
        if name == "torch_cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("torch has no CUDA device on this machine")
            dev = torch.device("cuda", 0)
        else:
            dev = torch.device("cpu")
        return Backend(name, "torch", torch, dev, lambda a: torch.asarray(a, device=dev))
    if name == "cupy":
        try:
            cp = importlib.import_module("cupy")
            cp.cuda.runtime.getDeviceCount()
        except Exception as exc:  # ImportError or no CUDA driver/device
            raise RuntimeError(f"cupy cannot run here ({type(exc).__name__}: {exc})") from None
        return Backend(name, "cupy", cp, cp.cuda.Device(0), lambda a: cp.asarray(a))
    if name == "jax":
        try:
            jax = importlib.import_module("jax")
        except ImportError as exc:
            raise RuntimeError(f"jax is not installed ({exc})") from None
        # float64 exists in JAX only with this flag (process-wide: int64 labels too)
        jax.config.update("jax_enable_x64", True)
        jnp = importlib.import_module("jax.numpy")
        dev = jax.devices("cpu")[0]
        return Backend(name, "jax", jnp, dev, lambda a: jnp.asarray(a, device=dev))
    raise AssertionError(name)


_CACHE: dict[str, Any] = {}


def get_backend(name: str) -> Backend:
    if name not in _CACHE:
        try:
            _CACHE[name] = _make_backend(name)
        except RuntimeError as exc:
            _CACHE[name] = str(exc)
    b = _CACHE[name]
    if isinstance(b, str):
        if name in REQUIRED:
            pytest.fail(f"backend {name} is required (KMEANS_XP_REQUIRE) but cannot run: {b}")
        pytest.skip(f"backend {name} unavailable: {b}")
    return b


@pytest.fixture(params=SELECTED)
def backend(request) -> Backend:
    """Every backend this machine can run; others skip (or fail when required), saying why."""
    return get_backend(request.param)


@pytest.fixture(params=["float32", "float64"])
def dtype_name(request) -> str:
    return request.param


_NO_GPU = re.compile(r"cuda|cupy|gpu|\bmps\b|\bxpu\b|dpnp", re.I)


def skip_reasons(reports: list) -> Counter:
    """How many skipped tests each reason covers (the reason without pytest's prefix)."""
    reasons: Counter = Counter()
    for rep in reports:
        longrepr = getattr(rep, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reason = str(longrepr[2])
        else:
            reason = str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    return reasons


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say which backends ran, and why tests skipped: one line per reason with its count
    (pytest's ``-rs`` gives one line per reason *and place*, some 240 lines here), and once
    how many skipped only because this machine has no GPU."""
    reasons = skip_reasons(terminalreporter.stats.get("skipped", []))
    if reasons:
        no_gpu = sum(n for r, n in reasons.items() if _NO_GPU.search(r))
        terminalreporter.section(f"skipped: {sum(reasons.values())} tests, "
                                 f"{len(reasons)} reasons", sep="-")
        for reason, n in sorted(reasons.items(), key=lambda rn: (-rn[1], rn[0])):
            terminalreporter.write_line(f"{n:5d}  {reason}")
        terminalreporter.write_line(f"kmeans_xp: {no_gpu} tests skipped because there is no "
                                    "GPU (CUDA, CuPy, MPS, XPU, dpnp) on this machine")
    ran = [n for n in SELECTED if n in _CACHE and not isinstance(_CACHE[n], str)]
    missing = {n: _CACHE[n] for n in SELECTED if isinstance(_CACHE.get(n), str)}
    terminalreporter.write_line(f"kmeans_xp backends run: {', '.join(ran) or 'none'}")
    for n, why in missing.items():
        terminalreporter.write_line(f"kmeans_xp backend skipped: {n}: {why}")
