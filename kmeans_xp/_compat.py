"""The one door to ``array_api_compat``: namespaces, devices, dtype rules, host copies.

Nothing here imports torch, CuPy, JAX or Dask: ``array_api_compat``'s ``is_*_array``
checks look at ``sys.modules``, so a backend is only touched once one of its arrays
has arrived.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np
from array_api_compat import (
    array_namespace,
    is_array_api_obj,
    is_array_api_strict_namespace,
    is_cupy_namespace,
    is_dask_array,
    is_jax_namespace,
    is_numpy_namespace,
    is_torch_array,
    is_torch_namespace,
)

__all__ = [
    "array_namespace",
    "backend_name",
    "compute_dtype",
    "default_chunk_budget",
    "device_of",
    "is_array",
    "is_float64_supported",
    "is_sparse",
    "is_jax_tracer",
    "is_numpy_namespace",
    "is_torch_namespace",
    "is_cupy_namespace",
    "is_dask_array",
    "plain_array",
    "to_backend",
    "sparse_dense_message",
    "sparse_library",
    "sparse_to_dense",
    "to_device",
    "to_numpy",
]


def is_array(x: Any) -> bool:
    """True for an array of a namespace ``array_api_compat`` knows (not lists, not pandas)."""
    return is_array_api_obj(x) and not hasattr(x, "iloc")


def device_of(x: Any) -> Any:
    """The device of ``x`` (``array_api_compat.device``)."""
    return array_api_compat.device(x)


def to_device(x: Any, device: Any) -> Any:
    """Move ``x`` to ``device`` within its own namespace (no-op when already there)."""
    if device_of(x) == device:
        return x
    return array_api_compat.to_device(x, device)


def backend_name(xp: Any) -> str:
    """A short name for the namespace, used in messages, test ids and the benchmark."""
    if is_numpy_namespace(xp):
        return "numpy"
    if is_torch_namespace(xp):
        return "torch"
    if is_cupy_namespace(xp):
        return "cupy"
    if is_array_api_strict_namespace(xp):
        return "array_api_strict"
    if is_jax_namespace(xp):
        return "jax"
    name = getattr(xp, "__name__", type(xp).__name__)
    return name.split(".")[-1] if name != "array" else name


def is_jax_tracer(x: Any) -> bool:
    """Whether ``x`` is a JAX tracer (an abstract value inside ``jax.jit``, ``jax.vmap``,
    ``jax.grad``...).  Looks at ``sys.modules``: never imports JAX."""
    import sys

    jax = sys.modules.get("jax")
    tracer = getattr(getattr(jax, "core", None), "Tracer", None)
    return tracer is not None and isinstance(x, tracer)


def plain_array(x: Any) -> Any:
    """``x`` without autograd history, so that no graph is built and no grad leaks out."""
    if is_torch_array(x) and x.requires_grad:
        return x.detach()
    return x


def _info(xp: Any) -> Any:
    return xp.__array_namespace_info__()


def default_float(xp: Any, device: Any) -> Any:
    """The namespace's default real floating dtype on ``device`` (float32 for torch)."""
    try:
        return _info(xp).default_dtypes(device=device)["real floating"]
    except Exception:  # pragma: no cover - namespaces without the inspection API
        return xp.float64


def is_float64_supported(xp: Any, device: Any) -> bool:
    """Whether ``device`` can hold float64 (not so on Apple MPS, array-api-strict's no_float64)."""
    try:
        return "float64" in _info(xp).dtypes(device=device, kind="real floating")
    except Exception:  # pragma: no cover
        return True


def _half_dtypes(xp: Any) -> tuple:
    """Floating dtypes outside the standard that we accept and accumulate in float32."""
    out = []
    for name in ("float16", "bfloat16"):
        dt = getattr(xp, name, None)
        if dt is not None:
            out.append(dt)
    return tuple(out)


def compute_dtype(xp: Any, dtype: Any, device: Any) -> tuple[Any, Any] | None:
    """Storage and compute dtypes for input of ``dtype``, or ``None`` if it is not numeric.

    float32 and float64 are kept; float16 and bfloat16 are stored as given and computed
    in float32; integer and bool become the namespace's default float on ``device``.
    Complex and every other kind give ``None`` (the caller raises).
    """
    if dtype == xp.float32 or dtype == xp.float64:
        return dtype, dtype
    if dtype in _half_dtypes(xp):
        return dtype, xp.float32
    try:
        if xp.isdtype(dtype, ("integral", "bool")):
            f = default_float(xp, device)
            return f, f
    except Exception:
        return None
    return None


def to_numpy(x: Any) -> np.ndarray:
    """A host NumPy copy of ``x``: for tests, the demo and rare small transfers only."""
    if isinstance(x, np.ndarray):
        return x
    xp = array_namespace(x)
    if is_torch_namespace(xp):
        return x.detach().cpu().numpy()
    if is_cupy_namespace(xp):
        return x.get()
    try:
        return np.asarray(x)
    except Exception:
        cpu = array_api_compat.to_device(x, "cpu") if not is_array_api_strict_namespace(xp) else x
        return np.from_dlpack(cpu)


def default_chunk_budget(xp: Any, device: Any) -> int:
    """Elements of the (rows x max(k, d)) work matrix per chunk.

    On the CPU a chunk of about a million elements keeps it in the caches' reach (smaller
    chunks pay the per-chunk overhead more often); on a GPU bigger chunks keep the device
    busy.
    """
    name = str(device)
    if is_cupy_namespace(xp) or "cuda" in name or "gpu" in name.lower():
        return 1 << 26
    return 1 << 20



# -- recognising a sparse input without importing its library -----------------------------
def sparse_library(X: Any) -> str | None:
    """'scipy', 'torch' or 'cupy' for a sparse matrix / array / tensor, else None."""
    import sys

    if "scipy.sparse" in sys.modules and sys.modules["scipy.sparse"].issparse(X):
        return "scipy"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(X, torch.Tensor) and X.layout != torch.strided:
        return "torch"
    cpsp = sys.modules.get("cupyx.scipy.sparse")
    if cpsp is not None and cpsp.issparse(X):
        return "cupy"
    return None


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a scipy.sparse matrix/array, a torch sparse tensor or a cupyx
    sparse matrix (imports none of those libraries)."""
    return sparse_library(X) is not None


def sparse_dense_message(name: str) -> str:
    """The error message for sparse data where dense data is required."""
    return (f"A sparse matrix was passed as {name}, but dense data is required. Use "
            f"'.toarray()' (scipy, cupyx) or '.to_dense()' (torch) to convert {name}.")


def sparse_to_dense(a: Any) -> Any:
    """A small sparse array (initial centres) as a dense array of its library."""
    return a.to_dense() if sparse_library(a) == "torch" else a.toarray()


def available_memory(xp: Any, device: Any) -> int | None:
    """Bytes free on ``device`` now (host RAM for CPU arrays), or None if unknown."""
    try:
        if is_torch_namespace(xp) and getattr(device, "type", "") == "cuda":
            import torch

            return int(torch.cuda.mem_get_info(device)[0])
        if is_cupy_namespace(xp):
            import cupy

            return int(cupy.cuda.Device(device.id).mem_info[0])
        if str(device).lower() in ("cpu", "cpu_device") or is_numpy_namespace(xp) \
                or is_array_api_strict_namespace(xp):
            import os

            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except Exception:
        return None
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    """A backend's out-of-memory error (NumPy's MemoryError, torch/CuPy OutOfMemoryError)."""
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__


def host_label_codes(labels: Any) -> np.ndarray:
    """Labels of any values (strings, floats, any namespace) as int64 codes 0..m-1, on the host.

    For label arrays that are not integer arrays of the data's namespace (e.g. species names).
    """
    host = np.asarray(to_numpy(labels) if is_array(labels) else labels)
    return np.unique(host, return_inverse=True)[1].reshape(host.shape).astype(np.int64)


# -- a host array into a named backend (the CLI and the demo) ----------------------------------
#: The backends :func:`to_backend` knows, with their default float dtype.
BACKEND_DTYPES = {"numpy": "float64", "torch": "float32", "cupy": "float32",
                  "array_api_strict": "float64"}


def to_backend(X: np.ndarray, backend: str, device: str | None = None,
               dtype: str | None = None) -> Any:
    """The host array ``X`` as an array of ``backend`` on ``device`` in ``dtype``.

    Parameters
    ----------
    X : ndarray
    backend : {'numpy', 'torch', 'cupy', 'array_api_strict'}
    device : str, optional
        torch: a torch device name (default 'cuda' where torch has CUDA, else 'cpu');
        CuPy: a device number (default 0); NumPy and array-api-strict: 'cpu' or None.
    dtype : {'float32', 'float64'}, optional
        Default: float64 on NumPy and array-api-strict, float32 on torch and CuPy.

    Raises
    ------
    ImportError
        The backend is not installed (the message says what to install).
    ValueError
        The device does not exist here or the backend is unknown (one line).
    """
    if backend not in BACKEND_DTYPES:
        raise ValueError(f"backend {backend!r}: expected one of {sorted(BACKEND_DTYPES)}")
    dtype = dtype or BACKEND_DTYPES[backend]
    if backend in ("numpy", "array_api_strict"):
        if device not in (None, "cpu"):
            name = "NumPy" if backend == "numpy" else "array-api-strict"
            raise ValueError(f"device {device!r}: {name} arrays live on the cpu")
        if backend == "numpy":
            return X.astype(dtype)
        try:
            import array_api_strict as xp
        except ImportError:
            raise ImportError("backend 'array_api_strict': array-api-strict is not installed "
                              "(pip install array-api-strict)") from None
        return xp.asarray(X.astype(dtype))
    if backend == "torch":
        try:
            import torch
        except ImportError:
            raise ImportError("backend 'torch': torch is not installed "
                              "(pip install 'kmeans_xp[torch]')") from None
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if str(dev).startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {dev!r}: torch has no CUDA device on this machine "
                             "(use device 'cpu')")
        try:
            return torch.asarray(X, dtype=getattr(torch, dtype), device=dev)
        except (RuntimeError, ValueError, AssertionError) as exc:
            raise ValueError(f"device {dev!r}: {_first_line(exc)}") from None
    try:
        import cupy
    except ImportError:
        raise ImportError("backend 'cupy': cupy is not installed "
                          "(pip install 'kmeans_xp[cupy]')") from None
    try:
        with cupy.cuda.Device(int(device or 0)):
            return cupy.asarray(X, dtype=dtype)
    except Exception as exc:  # no driver, no such device, not an int
        raise ValueError(f"backend 'cupy', device {device or 0!r}: {_first_line(exc)}") \
            from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- host -> device streaming (KMeans.fit(..., device=)) ---------------------------------------
def namespace_for_device(device: Any) -> tuple[Any, Any]:
    """The namespace whose arrays live on ``device``, and the device as that namespace names it.

    A ``torch.device`` or a string (``"cuda:0"``, ``"cpu"``: torch's names) means torch; a
    CuPy ``Device`` means CuPy; an array-api-strict ``Device`` means array-api-strict.
    """
    import sys

    mod = type(device).__module__
    if isinstance(device, str) or mod.startswith("torch"):
        if "torch" not in sys.modules and not isinstance(device, str):  # pragma: no cover
            raise TypeError(f"unknown device {device!r}")
        import array_api_compat.torch as xp
        import torch

        return xp, torch.device(device)
    if mod.startswith("cupy"):
        import array_api_compat.cupy as cupy_xp

        return cupy_xp, device
    if mod.startswith("array_api_strict"):
        import array_api_strict as strict_xp

        return strict_xp, device
    raise TypeError(
        f"device must be a torch.device (or its name), a cupy Device or an array_api_strict "
        f"Device; got {device!r} ({type(device).__name__}).")


class HostToDevice:
    """Copies host row blocks (NumPy arrays, memmap slices) to ``device``, one at a time.

    torch CUDA: each block is staged in one of two pinned (page-locked) host buffers and
    copied with ``non_blocking=True``, so the host stages block i+1 while the GPU copies
    and processes block i; a buffer is reused only once its previous copy has completed
    (a CUDA event).  Elsewhere: a plain copy (``asarray``).  Host memory: at most two
    blocks (plus the source's own pages: a memmap's are the page cache's, not ours).
    """

    def __init__(self, xp: Any, device: Any) -> None:
        self.xp, self.device = xp, device
        self.cuda = is_torch_namespace(xp) and getattr(device, "type", "") == "cuda"
        self._slots: list = [None, None]
        self._turn = 0

    def __call__(self, block: np.ndarray) -> Any:
        if is_torch_namespace(self.xp):
            import torch

            if not self.cuda:
                return torch.from_numpy(np.array(block, copy=True))
            return self._pinned_copy(torch, block)
        if is_cupy_namespace(self.xp):
            return self.xp.asarray(block)
        return self.xp.asarray(np.array(block, copy=True), device=self.device)

    def _pinned_copy(self, torch: Any, block: np.ndarray) -> Any:
        slot = self._slots[self._turn]
        m, d = block.shape
        if slot is None or slot[0].shape[0] < m or slot[0].shape[1] != d \
                or slot[0].numpy().dtype != block.dtype:
            buf = torch.from_numpy(np.empty((m, d), dtype=block.dtype)).pin_memory()
            slot = [buf, None]
            self._slots[self._turn] = slot
        buf, done = slot
        if done is not None:
            done.synchronize()  # the copy that last read this buffer has finished
        np.copyto(buf.numpy()[:m], block)
        out = torch.empty((m, d), dtype=buf.dtype, device=self.device)
        out.copy_(buf[:m], non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        slot[1] = event
        self._turn ^= 1
        return out


# -- chunked reductions (every layer above uses them) ----------------------------------
def index_dtype(xp: Any) -> Any:
    """The namespace's default dtype for indices: int64, but int32 for JAX in its default
    32-bit mode (where asking for int64 warns and truncates)."""
    try:
        return xp.__array_namespace_info__().default_dtypes()["indexing"]
    except (AttributeError, TypeError, KeyError):
        return xp.int64


def chunk_rows(n_samples: int, n_features: int, n_clusters: int, budget: int) -> int:
    """Rows per chunk so that a chunk's (rows x max(k, d)) work matrix holds ``budget`` elements."""
    width = max(n_clusters, n_features, 1)
    return int(max(1, min(n_samples, budget // width)))


def accumulate(total: Any, part: Any) -> Any:
    """``total + part``, with ``None`` as the empty total: the running sums over chunks."""
    return part if total is None else total + part


# -- devices (the self-check, kmeans_xp._check) -------------------------------------------
def _torch_cuda() -> tuple[Any, list, str]:
    """(torch or None, CUDA device indices, why there are none)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None, [], "torch not installed"
    import torch

    if not torch.cuda.is_available():
        return torch, [], ("no CUDA device (torch.cuda.is_available() is False; torch "
                           f"{torch.__version__}, CUDA {torch.version.cuda or 'not built'})")
    return torch, list(range(torch.cuda.device_count())), ""


def _cupy_devices() -> tuple[Any, list, str]:
    import importlib.util

    if importlib.util.find_spec("cupy") is None:
        return None, [], "cupy not installed"
    try:
        import cupy

        return cupy, list(range(cupy.cuda.runtime.getDeviceCount())), ""
    except Exception as exc:  # noqa: BLE001 - no driver, no device
        return None, [], f"cupy has no device ({type(exc).__name__}: {exc})"


def gpu_devices() -> tuple[list[dict], str]:
    """The CUDA devices torch and CuPy see (dicts: library, index, name, major, minor and,
    from torch, memory and sms), and why there are none."""
    out = []
    torch, cuda, why_torch = _torch_cuda()
    for i in cuda:
        p = torch.cuda.get_device_properties(i)
        out.append({"library": "torch", "index": i, "name": p.name, "major": p.major,
                    "minor": p.minor, "memory": p.total_memory,
                    "sms": p.multi_processor_count})
    cupy, cdev, why_cupy = _cupy_devices()
    for i in cdev:
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        out.append({"library": "cupy", "index": i, "name": name, "major": props["major"],
                    "minor": props["minor"]})
    return out, f"{why_torch}; {why_cupy}"


def backend_devices() -> list[tuple[str, Any, Any, Any]]:
    """(label, xp, device, host-array -> array) for every backend with a device here."""
    out: list[tuple[str, Any, Any, Any]] = [
        ("numpy", array_namespace(np.zeros(1)), "cpu", np.asarray)]
    torch, cuda, _ = _torch_cuda()
    if torch is not None:
        xp = array_namespace(torch.zeros(1))
        out.append(("torch cpu", xp, torch.device("cpu"), lambda a: torch.asarray(a)))
        for i in cuda:
            dev = torch.device("cuda", i)
            out.append((f"torch cuda:{i}", xp, dev,
                        lambda a, dev=dev: torch.asarray(a, device=dev)))
    cupy, cdev, _ = _cupy_devices()
    for i in cdev:
        xp = array_namespace(cupy.zeros(1))

        def make(a, i=i):
            with cupy.cuda.Device(i):
                return cupy.asarray(a)

        out.append((f"cupy cuda:{i}", xp, cupy.cuda.Device(i), make))
    return out


def synchronize(xp: Any, device: Any) -> None:
    """Wait for the device's queued work (GPU timings); nothing on a CPU."""
    if is_torch_namespace(xp) and getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)
    elif is_cupy_namespace(xp):
        import cupy

        cupy.cuda.Device(int(getattr(device, "id", 0))).synchronize()
