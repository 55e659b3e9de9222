"""The fused CPU pass: per block of rows, distances, argmin and centre sums in cache.

The kernels take NumPy arrays (torch CPU tensors come as zero-copy NumPy views: see
:func:`numpy_view`) and follow the conventions of :mod:`kmeans_xp._kernels._protocol`:
X (n, d) in its
storage dtype (float32, float64, float16; ``uint16`` is read as bfloat16 bits), centres
(k, d) in the compute dtype and in working coordinates ``Xt = X * inv_scale - shift``, the
frame applied per block (never a copy of X).

The compiled pass (numba, ``pip install kmeans_xp[cpu]``; :mod:`._cpu_numba`): the rows
cut into :func:`n_chunks` ranges shared between numba's threads, each walked in blocks of
:data:`BLOCK_ROWS`; per block the frame (rows read in place when it is the identity), the
distances ``||c||^2 - 2 x.c`` (a single-threaded BLAS GEMM in the layout that is faster for
the k at hand, see :data:`ROWMAJOR_MAX_K`, or a direct loop for tiny ``d * k``), the first
argmin (across rows, vectorised) and the centre sums in float64 per chunk, reduced in chunk
order.  :func:`frame_stats` is the one read of X that checks finiteness and takes the
moments for the frame (``ChunkedData.prepare`` asks the kernel set for it).

Deterministic: the same inputs give bit-identical outputs from run to run, whatever the
number of threads (:func:`n_chunks`).  Where numba is missing, ``select`` does not pick this
set; where it is installed but does not load, the set hands every pass to its parent (the
NumPy or torch set: :meth:`_FusedCPUPasses._ok`).

numba is imported only inside these functions, never at ``import kmeans_xp``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

#: Rows per block of the compiled kernels (measured flat between 128 and 512).
BLOCK_ROWS = 256
#: The GEMM per block computes ``xb @ -2C^T`` (row-major operands) and transposes it for
#: the argmin up to this k, else ``-2C @ xb^T`` straight in the argmin's layout.  Measured
#: single-threaded OpenBLAS, 256-row blocks, ms per pass of the GEMM alone: (n, d, k) =
#: (100k, 32, 32) 1.3 vs 3.0, (1M, 16, 16) 8.6 vs 15.0, (50k, 784, 10) 26.5 vs 30.6,
#: (100k, 64, 64) 7.0 vs 8.5, (100k, 32, 128) 6.7 vs 7.6, (100k, 64, 1024) 97 vs 89; the
#: transpose costs about 0.25 ns per distance at small k (more at large k: strided reads),
#: which cancels the gain from k = 64 on.
ROWMAJOR_MAX_K = 48
#: The compiled kernels use a BLAS GEMM per block when d * k is at least this, else a
#: direct loop.  Measured on 2 cores (best of 12, same process): the GEMM is faster from
#: (d, k) = (16, 16) up (91 vs 112 ms at n = 1M) and ties at (8, 8); the direct loop
#: (not register-blocked) also serves when scipy or threadpoolctl is missing.
GEMM_MIN_DK = 64
#: The compiled kernels cut the rows into at most this many chunks (split statically
#: between the threads: numba's dynamic scheduling measured 2x slower here), each with its
#: own float64 partial sums (k, d) ...
MAX_CHUNKS = 32
#: ... and at least this many, while the partial sums fit in this many bytes.
MIN_CHUNKS = 8
PARTIALS_BYTES = 4 << 20

_NUMBA: Any = None
_NUMBA_ERROR: str | None = None
_LUTS: dict = {}
_LOCK = threading.Lock()
#: Held while a compiled kernel runs: numba's workqueue layer takes one caller at a time.
_CALL_LOCK = threading.Lock()


# ----------------------------------------------------------------------------------------
# plumbing
# ----------------------------------------------------------------------------------------
def available() -> bool:
    """Whether the compiled kernels can run (numba and SciPy importable: numba compiles
    ``np.dot`` to the BLAS of ``scipy.linalg.cython_blas``, and fails without it).

    Importing numba is left to the first call of a kernel; this only looks it up.
    """
    if _NUMBA is not None:
        return True
    if _NUMBA_ERROR is not None:
        return False
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in ("numba", "scipy"))
    except (ImportError, ValueError):
        return False


def _kernels() -> Any:
    """The compiled-kernel module (numba imported, cached code loaded), or raise."""
    global _NUMBA, _NUMBA_ERROR
    if _NUMBA is None:
        with _LOCK:
            if _NUMBA is None:
                try:
                    _choose_threading_layer()
                    from . import _cpu_numba
                    try:  # the BLAS numba calls for np.dot: loaded before threadpoolctl looks
                        import scipy.linalg.cython_blas  # noqa: F401
                    except ImportError:
                        pass
                except ImportError as exc:
                    _NUMBA_ERROR = str(exc)
                    raise ImportError(
                        "the compiled CPU kernels need numba (pip install kmeans_xp[cpu])"
                    ) from exc
                _NUMBA = _cpu_numba
    return _NUMBA


def _batched_kernels() -> Any:
    """The compiled batched kernels (:mod:`._cpu_batched`), loaded after :func:`_kernels`
    (which chooses numba's threading layer)."""
    _kernels()
    from . import _cpu_batched

    return _cpu_batched


def _choose_threading_layer() -> None:
    """numba's threading layer, unless the user chose one or numba's threads already run:
    'tbb' where the ``tbb`` package is installed (``kmeans_xp[cpu]`` installs it), else
    'workqueue'.

    Measured on 2 quiet cores, whole fits, ms per Lloyd iteration at (n, d, k) =
    (100k, 32, 32) / (20k, 16, 16) / (1M, 16, 16): tbb 2.45 / 0.37 / 13.6, omp 2.43 / 0.37 /
    13.1, workqueue 3.3 / 0.77 / 18.0 (its workers wake late and unevenly: per-pass times
    vary 2.3-4.5 ms at the first size).  numba's own default would pick 'omp' (GNU OpenMP)
    when tbb is missing; it is never chosen here: a process forked after a GNU OpenMP
    region (``multiprocessing`` on Linux) is terminated by numba when it runs a kernel, and
    its spinning threads slowed a pass 50-100x on busy cores.  tbb is fork-safe.
    workqueue must not be entered from two threads at once: the kernels hold
    :data:`_CALL_LOCK` while they run (whatever the layer).
    """
    import numba

    # numba.config sets its options as module globals at run time (no stub names them):
    # the two ``type: ignore[attr-defined]`` below
    chosen = ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY")
    layer = numba.config.THREADING_LAYER  # type: ignore[attr-defined]
    if any(os.environ.get(v) for v in chosen) or layer != "default":
        return
    try:
        numba.threading_layer()  # raises while no parallel region has run yet
        return
    except ValueError:
        pass
    numba.config.THREADING_LAYER = "tbb" if _load_tbb() else "workqueue"  # type: ignore[attr-defined]


def _load_tbb() -> bool:
    """Whether numba's tbb layer can load: the ``tbb`` package's runtime is found (pip puts
    ``libtbb.so.12`` in ``<prefix>/lib``, off the loader's path: it is loaded here by its
    full path first) and is a version numba accepts.  Never raises."""
    try:
        import ctypes
        import importlib.metadata as md
        import sys

        names = ("libtbb.so.12", "tbb12.dll", "libtbb.12.dylib")
        for f in (md.files("tbb") or ()):
            if f.name not in names:
                continue
            path = f.locate()
            if sys.platform == "win32":
                os.add_dll_directory(str(path.parent))
            else:
                ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        from numba.np.ufunc import parallel

        parallel._check_tbb_version_compatible()
        import numba.np.ufunc.tbbpool  # noqa: F401  (the compiled layer: loads, or raises)
    except Exception:  # noqa: BLE001 - any failure: numba's other layer serves
        return False
    return True


def usable() -> bool:
    """Whether the compiled kernels load here (numba installed and importable); tried once.

    False on a broken numba install: the fused sets then hand every pass to their parent.
    """
    if not available():
        return False
    try:
        _kernels()
    except ImportError:
        return False
    return True


def numpy_view(a: Any) -> np.ndarray:
    """A zero-copy NumPy view of a NumPy array or a torch CPU tensor.

    bfloat16 tensors become their ``uint16`` bits (which the kernels read as bfloat16);
    a tensor that requires grad is detached (no copy).  torch is not imported here.
    """
    if isinstance(a, np.ndarray):
        return a
    if type(a).__module__.split(".")[0] == "torch":
        t = a.detach()
        if t.device.type != "cpu":
            raise ValueError(f"the CPU kernels need a CPU tensor; got one on {t.device}")
        if str(t.dtype) == "torch.bfloat16":
            import torch

            return t.view(torch.int16).numpy().view(np.uint16)
        return t.numpy()
    return np.asarray(a)


def _lut(kind: str) -> np.ndarray:
    """float32 value of every 16-bit pattern (exact): 'f16' or 'bf16'."""
    lut = _LUTS.get(kind)
    if lut is None:
        bits = np.arange(65536, dtype=np.uint32)
        if kind == "f16":
            lut = bits.astype(np.uint16).view(np.float16).astype(np.float32)
        else:
            lut = (bits << 16).view(np.float32)
        _LUTS[kind] = lut = np.ascontiguousarray(lut)
    return lut


def _storage(X: Any) -> tuple[np.ndarray, np.ndarray | None, type[np.floating]]:
    """(X as the kernels read it, lookup table or None, compute dtype)."""
    X = numpy_view(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n, d); got shape {X.shape}")
    if X.dtype == np.float32 or X.dtype == np.float64:
        return X, None, X.dtype.type
    if X.dtype == np.float16:
        return X.view(np.uint16), _lut("f16"), np.float32
    if X.dtype == np.uint16:
        return X, _lut("bf16"), np.float32
    raise TypeError(f"X must be float32, float64, float16 or bfloat16 bits (uint16); "
                    f"got {X.dtype}")


def _vec(a: Any, dt: type, n: int, name: str) -> np.ndarray | None:
    if a is None:
        return None
    a = np.ascontiguousarray(numpy_view(a), dtype=dt)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {a.shape}")
    return a


def _mat(a: Any, dt: type, d: int, name: str) -> np.ndarray:
    a = np.ascontiguousarray(numpy_view(a), dtype=dt)
    if a.ndim != 2 or a.shape[1] != d:
        raise ValueError(f"{name} must have shape (k, {d}); got {a.shape}")
    return a


def n_chunks(n: int, k: int, d: int) -> int:
    """Row chunks of a compiled pass: a function of (n, k, d) only, never of the thread
    count, so that the fixed-order reduction over chunks gives the same bits everywhere.

    Between :data:`MIN_CHUNKS` and :data:`MAX_CHUNKS`, as many as keep the per-chunk
    float64 partial sums within :data:`PARTIALS_BYTES`; never more than the blocks of rows.
    """
    fit = PARTIALS_BYTES // max(8 * k * d, 1)
    c = max(MIN_CHUNKS, min(MAX_CHUNKS, fit))
    return max(1, min(c, -(-n // BLOCK_ROWS)))


def _direct(Xk: np.ndarray, lut, sh, s, dt) -> tuple[bool, np.ndarray]:
    """(whether the kernels may read X's rows in place, X or a placeholder): float32/64
    storage in the compute dtype, C-contiguous, identity frame (no copy per block)."""
    ok = (lut is None and sh is None and s == 1 and Xk.dtype == dt
          and Xk.flags.c_contiguous)
    return ok, (Xk if ok else np.empty((0, Xk.shape[1]), dt))


def _centre_terms(C: np.ndarray):
    """-2 C (k, d), its transpose (d, k) (C-contiguous: the GEMM operand) and ||c||^2."""
    Cm2 = -2 * C
    return Cm2, np.ascontiguousarray(Cm2.T), np.einsum("ij,ij->i", C, C)


def _use_gemm(d: int, k: int) -> bool:
    """BLAS per block when d * k is large, and when numba has a BLAS (scipy) whose threads
    threadpoolctl can limit (two workers each calling a 2-thread BLAS ran 10-40x slower)."""
    return d * k >= GEMM_MIN_DK and _blas_ok()


def _blas_ok() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("scipy", "threadpoolctl"))


class _OneBlasThread:
    """BLAS limited to one thread inside the workers (threadpoolctl), when it is installed."""

    _controller: Any = None
    _key: bool = False

    def __enter__(self):
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl missing
            self._ctx = None
            return self
        # threadpoolctl sees the libraries loaded when it is built: build it again once the
        # compiled kernels (and scipy's BLAS, which numba calls) are loaded
        key = _NUMBA is not None
        if _OneBlasThread._controller is None or _OneBlasThread._key != key:
            _OneBlasThread._controller, _OneBlasThread._key = ThreadpoolController(), key
        self._ctx = _OneBlasThread._controller.limit(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc):
        if self._ctx is not None:
            self._ctx.restore_original_limits()
        return False


# ----------------------------------------------------------------------------------------
# public kernels
# ----------------------------------------------------------------------------------------
def lloyd_pass(X: Any, centers: Any, weights: Any, shift: Any, inv_scale: float, *,
               need_inertia: bool = False):
    """One Lloyd pass: labels, weighted centre sums and weights, inertia if asked.

    Parameters
    ----------
    X : ndarray (n, d)
        Storage dtype float32, float64, float16, or uint16 (bfloat16 bits).
    centers : ndarray (k, d)
        Compute dtype (float64 for float64 X, else float32), working coordinates.
    weights : ndarray (n,) or None
        Sample weights (None: unit weights).
    shift : ndarray (d,) or None
        The frame's centring shift (compute dtype).
    inv_scale : float
        The frame's scale (an exact power of two).
    need_inertia : bool
        Also return ``sum_i w_i ||xt_i - c_{l_i}||^2`` (direct differences).

    Returns
    -------
    labels : ndarray (n,) int64
        First nearest centre of each row.
    sums : ndarray (k, d)
        ``sum_{i: l_i = j} w_i xt_i``, compute dtype (accumulated in float64).
    counts : ndarray (k,)
        ``sum_{i: l_i = j} w_i``, compute dtype.
    inertia : float or None
    """
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    C = _mat(centers, dt, d, "centers")
    k = C.shape[0]
    w = _vec(weights, dt, n, "weights")
    sh = _vec(shift, dt, d, "shift")
    s = dt(inv_scale)
    kern = _kernels()
    labels = np.empty(n, np.int64)
    sums = np.empty((k, d), dt)
    counts = np.empty(k, dt)
    Cm2, CT, c_sq = _centre_terms(C)
    direct, Xd = _direct(Xk, lut, sh, s, dt)
    use_gemm = _use_gemm(d, k)
    with _CALL_LOCK, _OneBlasThread() if use_gemm else _NoOp():
        inertia = kern.lloyd_pass(Xk, Xd, direct, lut, sh, s, w, C, Cm2, CT, c_sq, use_gemm,
                                  k <= ROWMAJOR_MAX_K, bool(need_inertia), n_chunks(n, k, d),
                                  BLOCK_ROWS, labels, sums, counts)
    return labels, sums, counts, (float(inertia) if need_inertia else None)


def assign(X: Any, centers: Any, shift: Any, inv_scale: float):
    """Nearest centre of every row and the squared distance to it.

    Returns
    -------
    labels : ndarray (n,) int64
        First nearest centre (lowest index on exact ties).
    mins : ndarray (n,)
        ``||xt_i - c_{l_i}||^2`` by direct differences (accurate), clipped >= 0, compute
        dtype.
    """
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    C = _mat(centers, dt, d, "centers")
    sh = _vec(shift, dt, d, "shift")
    s = dt(inv_scale)
    kern = _kernels()
    k = C.shape[0]
    labels = np.empty(n, np.int64)
    mins = np.empty(n, dt)
    Cm2, CT, c_sq = _centre_terms(C)
    direct, Xd = _direct(Xk, lut, sh, s, dt)
    use_gemm = _use_gemm(d, k)
    with _CALL_LOCK, _OneBlasThread() if use_gemm else _NoOp():
        kern.assign(Xk, Xd, direct, lut, sh, s, C, Cm2, CT, c_sq, use_gemm, k <= ROWMAJOR_MAX_K,
                    n_chunks(n, k, d), BLOCK_ROWS, labels, mins)
    return labels, mins


def sq_dist_to_assigned(X: Any, centers: Any, labels: Any, shift: Any,
                        inv_scale: float) -> np.ndarray:
    """``||xt_i - c_{labels_i}||^2`` (n,) by direct differences, compute dtype."""
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    C = _mat(centers, dt, d, "centers")
    lab = np.ascontiguousarray(numpy_view(labels), dtype=np.int64)
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},); got {lab.shape}")
    if n and (lab.min() < 0 or lab.max() >= C.shape[0]):
        raise ValueError("labels must lie in [0, k)")
    sh = _vec(shift, dt, d, "shift")
    s = dt(inv_scale)
    out = np.empty(n, dt)
    kern = _kernels()
    with _CALL_LOCK:
        kern.sq_dist_to_assigned(Xk, lut, sh, s, C, lab, n_chunks(n, 1, d), BLOCK_ROWS, out)
    return out


def kpp_potentials(X: Any, closest: Any, cand: Any, weights: Any, shift: Any,
                   inv_scale: float) -> np.ndarray:
    """Potential of each k-means++ candidate: ``sum_i w_i min(closest_i, ||xt_i - cand_c||^2)``.

    Parameters
    ----------
    closest : ndarray (n,)
        Current squared distance of each row to its nearest chosen centre.
    cand : ndarray (m, d)
        Candidate centres (working coordinates, compute dtype).

    Returns
    -------
    pots : ndarray (m,) float64, summed in a fixed order.

    The rows are brought into the frame in the compute dtype (as the reference kernels do),
    and their differences to the candidates taken in float64, so that every backend's
    k-means++ draws the same centres.
    """
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    Cc = _mat(cand, np.float64, d, "cand")
    cl = _vec(closest, np.float64, n, "closest")
    w = _vec(weights, dt, n, "weights")
    sh = _vec(shift, dt, d, "shift")
    s = dt(inv_scale)
    pots = np.empty(Cc.shape[0], np.float64)
    kern = _kernels()
    with _CALL_LOCK:
        kern.kpp_potentials(Xk, lut, sh, s, w, cl, Cc, n_chunks(n, 1, d), BLOCK_ROWS, pots,
                            np.empty(0, dt))
    return pots


def kpp_update(X: Any, closest: Any, center: Any, shift: Any,
               inv_scale: float) -> np.ndarray:
    """New closest distances: ``min(closest_i, ||xt_i - center||^2)`` (n,), float64 (see
    :func:`kpp_potentials`).

    ``center`` is (1, d) or (d,).
    """
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    c = _mat(np.reshape(numpy_view(center), (1, -1)), np.float64, d, "center")
    cl = _vec(closest, np.float64, n, "closest")
    sh = _vec(shift, dt, d, "shift")
    s = dt(inv_scale)
    out = np.empty(n, np.float64)
    kern = _kernels()
    with _CALL_LOCK:
        kern.kpp_update(Xk, lut, sh, s, cl, c, n_chunks(n, 1, d), BLOCK_ROWS, out,
                        np.empty(0, dt))
    return out


def frame_stats(X: Any, shift: Any, inv_scale: float, big: float) -> tuple:
    """One compiled read of X for the frame (numba): ``(finite, amax, sums, sqs)``.

    ``finite``: no NaN or inf; ``amax``: the largest finite magnitude; ``sums``, ``sqs``
    (d,) float64: column sums and sums of squares of the rows in the frame
    ``x * inv_scale - shift`` (values with magnitude above ``big`` left out), accumulated
    in float64 in a fixed order (deterministic whatever the thread count).
    """
    Xk, lut, dt = _storage(X)
    n, d = Xk.shape
    sh = _vec(shift, dt, d, "shift")
    sums = np.empty(d, np.float64)
    sqs = np.empty(d, np.float64)
    kern = _kernels()
    with _CALL_LOCK:
        finite, amax = kern.frame_stats(Xk, lut, sh, dt(inv_scale), float(big),
                                        n_chunks(n, 2, d), np.empty(0, dt), sums, sqs)
    return bool(finite), float(amax), sums, sqs


class _NoOp:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------------------------------
# The kernel set of the seam: whole passes through the compiled kernels above
# ----------------------------------------------------------------------------------------
from ._numpy import NumpyKernels  # noqa: E402
from ._reference import fusable  # noqa: E402
from ._torch import TorchKernels  # noqa: E402  (names torch only inside its methods)

_FUSED_STORAGE = ("float32", "float64", "float16", "bfloat16")


class _FusedCPUPasses:
    """Every pass over X through the fused compiled kernels, on NumPy arrays and (through
    zero-copy views) torch CPU tensors.  Data the kernels cannot read as they are (streamed
    from the host, cosine's unit rows, integer storage) take the parent set's chunk loop.
    """

    name = "cpu"

    def _ok(self, data) -> bool:
        return (fusable(data) and str(data.X.dtype).split(".")[-1] in _FUSED_STORAGE
                and usable())

    def _args(self, data):
        view = numpy_view
        return (view(data.X), None if data.weights is None else view(data.weights),
                None if data.shift is None else view(data.shift), data.inv_scale)

    def _wrap(self, a):
        return a if self._numpy else self._torch.from_numpy(a)

    def _total(self, values, weights, data):
        v = values.astype(np.float64, copy=False)
        t = float(v.sum() if weights is None else v @ weights.astype(np.float64, copy=False))
        return self.xp.asarray(t, dtype=data.accumulator_dtype(), device=self.device)

    def lloyd_pass(self, data, centers, *, need_inertia=False):
        if not self._ok(data):
            return super().lloyd_pass(data, centers, need_inertia=need_inertia)
        X, w, shift, inv = self._args(data)
        labels, sums, counts, inertia = lloyd_pass(X, numpy_view(centers), w, shift, inv,
                                                   need_inertia=need_inertia)
        if inertia is not None:
            inertia = self.xp.asarray(inertia, dtype=data.accumulator_dtype(),
                                      device=self.device)
        return self._wrap(labels), self._wrap(sums), self._wrap(counts), inertia

    def assign(self, data, centers):
        if not self._ok(data):
            return super().assign(data, centers)
        X, _, shift, inv = self._args(data)
        labels, mins = assign(X, numpy_view(centers), shift, inv)
        return self._wrap(labels), self._wrap(mins)

    def labels_inertia(self, data, centers, *, return_inertia=True):
        if not self._ok(data):
            return super().labels_inertia(data, centers, return_inertia=return_inertia)
        X, w, shift, inv = self._args(data)
        labels, mins = assign(X, numpy_view(centers), shift, inv)
        total = self._total(mins, w, data) if return_inertia else None
        return self._wrap(labels), total

    def sq_dist_to_assigned(self, data, centers, labels):
        if not self._ok(data):
            return super().sq_dist_to_assigned(data, centers, labels)
        X, _, shift, inv = self._args(data)
        return self._wrap(sq_dist_to_assigned(X, numpy_view(centers), numpy_view(labels),
                                              shift, inv))

    def inertia_for_labels(self, data, centers, labels):
        if not self._ok(data):
            return super().inertia_for_labels(data, centers, labels)
        X, w, shift, inv = self._args(data)
        d = sq_dist_to_assigned(X, numpy_view(centers), numpy_view(labels), shift, inv)
        return self._total(d, w, data)

    def frame_stats(self, data, shift=None, big=np.inf):
        """``(finite, amax, sums, sqs)`` of X in the frame (see :func:`frame_stats`), on the
        host in float64; None when the data are not read by the fused kernels (then the
        caller's pure-standard pass runs)."""
        if not self._ok(data):
            return None
        return frame_stats(numpy_view(data.X), None if shift is None else numpy_view(shift),
                           data.inv_scale, big)

    def labels_equal(self, a, b):
        """0-d bool array: ``all(a == b)`` computed on NumPy views (for torch CPU tensors:
        no torch operation over n elements, whose OpenMP threads would spin next to the
        compiled kernels' workers)."""
        return self.xp.asarray(bool(np.array_equal(numpy_view(a), numpy_view(b))),
                               device=self.device)

    def n_distinct(self, labels, n_clusters):
        """How many of the ``n_clusters`` labels occur in ``labels`` (a count, no sort)."""
        lab = numpy_view(labels)
        return int(np.count_nonzero(np.bincount(lab, minlength=n_clusters)))

    # -- batched passes (a problem axis): one compiled call each, problems over threads --
    def _batched_ok(self, data) -> bool:
        metric = data.metric
        return (metric.kernel == "sqeuclidean" and not metric.unit_rows
                and str(data.X.dtype).split(".")[-1] in _FUSED_STORAGE)

    def _batched_args(self, data):
        """(X as a (B * n, d) view, lut, compute dtype, n, shift, inv_scale, weights, mask,
        whether X is read in place, X or a placeholder) for the compiled kernels."""
        X = numpy_view(data.X)
        B, n, d = X.shape
        X2, lut, dt = _storage(np.ascontiguousarray(X).reshape(B * n, d))

        def arr(a, dtype=None):
            return None if a is None else np.ascontiguousarray(numpy_view(a), dtype=dtype)

        sh, inv = arr(data.shift, dt), arr(data.inv_scale, dt)
        direct = lut is None and sh is None and inv is None and X2.dtype == dt
        return (X2, lut, dt, n, sh, inv, arr(data.weights, dt), arr(data.mask),
                direct, X2 if direct else np.empty((0, d), dt))

    def _batched_ids(self, data, problems):
        if problems is None:
            return np.arange(int(data.X.shape[0]), dtype=np.int64)
        return np.ascontiguousarray(problems, dtype=np.int64)

    def _acc_array(self, a, data):
        return self.xp.asarray(a, dtype=data.accumulator_dtype(), device=self.device)

    def batched_lloyd_pass(self, data, centers, problems=None, *, need_inertia=False):
        if not self._batched_ok(data):
            return super().batched_lloyd_pass(data, centers, problems,
                                              need_inertia=need_inertia)
        X2, lut, dt, n, sh, inv, w, _, direct, Xd = self._batched_args(data)
        ids = self._batched_ids(data, problems)
        C = np.ascontiguousarray(numpy_view(centers), dtype=dt)
        a, k, d = C.shape
        labels = np.empty((a, n), np.int64)
        sums, counts, inertia = np.empty((a, k, d), dt), np.empty((a, k), dt), np.empty(a)
        use_gemm = _use_gemm(d, k)
        kern = _batched_kernels()
        with _CALL_LOCK, _OneBlasThread() if use_gemm else _NoOp():
            kern.lloyd_pass(X2, Xd, direct, n, lut, sh, inv, w, ids, C, use_gemm,
                            k <= ROWMAJOR_MAX_K, need_inertia, BLOCK_ROWS, labels, sums,
                            counts, inertia)
        return (self._wrap(labels), self._wrap(sums), self._wrap(counts),
                self._acc_array(inertia, data) if need_inertia else None)

    def batched_labels_inertia(self, data, centers, problems=None):
        if not self._batched_ok(data):
            return super().batched_labels_inertia(data, centers, problems)
        X2, lut, dt, n, sh, inv, w, _, direct, Xd = self._batched_args(data)
        ids = self._batched_ids(data, problems)
        C = np.ascontiguousarray(numpy_view(centers), dtype=dt)
        a, k, d = C.shape
        labels, inertia = np.empty((a, n), np.int64), np.empty(a)
        use_gemm = _use_gemm(d, k)
        kern = _batched_kernels()
        with _CALL_LOCK, _OneBlasThread() if use_gemm else _NoOp():
            kern.labels_inertia(X2, Xd, direct, n, lut, sh, inv, w, ids, C, use_gemm,
                                k <= ROWMAJOR_MAX_K, BLOCK_ROWS, labels, inertia)
        return self._wrap(labels), self._acc_array(inertia, data)

    def batched_sq_dist_to_assigned(self, data, centers, labels, problems=None):
        if not self._batched_ok(data):
            return super().batched_sq_dist_to_assigned(data, centers, labels, problems)
        X2, lut, dt, n, sh, inv, _, _, _, _ = self._batched_args(data)
        ids = self._batched_ids(data, problems)
        C = np.ascontiguousarray(numpy_view(centers), dtype=dt)
        lab = np.ascontiguousarray(numpy_view(labels), dtype=np.int64)
        out = np.empty((len(ids), n), dt)
        kern = _batched_kernels()
        with _CALL_LOCK:
            kern.sq_dist_to_assigned(X2, n, lut, sh, inv, ids, C, lab, BLOCK_ROWS, out)
        return self._wrap(out)

    def batched_kmeans_plusplus(self, data, n_clusters, first_u, step_u, n_local_trials):
        if not self._batched_ok(data):
            return super().batched_kmeans_plusplus(data, n_clusters, first_u, step_u,
                                                   n_local_trials)
        X2, lut, dt, n, sh, inv, w, mask, _, _ = self._batched_args(data)
        B = int(data.X.shape[0])
        out = np.empty((B, n_clusters), np.int64)
        su = np.ascontiguousarray(step_u, dtype=np.float64).reshape(
            B, n_clusters - 1, n_local_trials)
        kern = _batched_kernels()
        with _CALL_LOCK:
            kern.kmeans_plusplus(X2, n, lut, sh, inv, w, mask, n_clusters,
                                 np.ascontiguousarray(first_u, dtype=np.float64), su, out,
                                 np.empty(0, dt))
        return self._wrap(out)

    def batched_frame_stats(self, data):
        """Per problem, ``(finite (B,), amax (B,), sums (B, d), sqs (B, d))`` of its valid
        rows in the current frame (``data.inv_scale``, ``data.shift``): host float64 from
        one compiled read; None where the compiled kernels do not read this data."""
        if not self._batched_ok(data):
            return None
        X2, lut, dt, n, sh, inv, _, mask, _, _ = self._batched_args(data)
        B, d = int(data.X.shape[0]), X2.shape[1]
        finite, amax = np.empty(B, np.bool_), np.empty(B)
        sums, sqs = np.empty((B, d)), np.empty((B, d))
        kern = _batched_kernels()
        with _CALL_LOCK:
            kern.frame_stats(X2, n, lut, sh, inv, mask, np.empty(0, dt), finite, amax, sums,
                             sqs)
        return finite, amax, sums, sqs

    def kpp_potentials(self, data, closest, cand):
        if not self._ok(data):
            return super().kpp_potentials(data, closest, cand)
        X, w, shift, inv = self._args(data)
        return self._wrap(kpp_potentials(X, numpy_view(closest), numpy_view(cand), w, shift,
                                         inv))

    def kpp_update(self, data, closest, center):
        if not self._ok(data):
            return super().kpp_update(data, closest, center)
        X, _, shift, inv = self._args(data)
        cl = (np.full(data.n, np.inf) if closest is None else numpy_view(closest))
        return self._wrap(kpp_update(X, cl, numpy_view(center), shift, inv))


class FusedNumpyKernels(_FusedCPUPasses, NumpyKernels):
    """The fused CPU pass on NumPy arrays."""

    _numpy = True


class FusedTorchKernels(_FusedCPUPasses, TorchKernels):
    """The fused CPU pass on torch CPU tensors (zero-copy NumPy views in and out)."""

    _numpy = False

    @property
    def _torch(self):
        import torch

        return torch
