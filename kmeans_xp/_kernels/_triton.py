"""Fused Triton kernels for k-means on the GPU (torch CUDA, CuPy) and in Triton's interpreter.

This module imports ``torch`` and ``triton`` at import time: the seam imports it lazily, only
once a CUDA tensor (or a test) asks for it.  Every public function takes torch tensors (CUDA,
or CPU under ``TRITON_INTERPRET=1``) or CuPy arrays and returns results of the same kind on
the same device.

The frame
---------
Kernels read X in its storage dtype (float32, float16, bfloat16), convert each tile to
float32 in registers and apply ``xt = x * inv_scale - shift`` there; X is never copied.
float64 is not for these kernels (:func:`supports` says so): the caller falls back.

Precision of the assignment (``precision=``)
--------------------------------------------
``"exact"`` (default)
    A first pass on the tensor cores with ``tl.dot(..., input_precision="tf32x3")`` (three
    TF32 products, fp32-accurate) keeps, per row, the best and the second-best value of
    ``||c||^2 - 2 xt.c``.  A row is *flagged* when the gap between the two is within twice
    the proven error bound of the pass (see :func:`exactness_coefficients`); every flagged
    row is re-computed by a second kernel in float64 by direct differences
    ``sum_k (xt_k - c_k)^2`` over all centres.  Labels therefore equal those of a float64
    computation on the same float32 working coordinates, except on float64 near-ties
    (relative gap ~1e-15), and exact ties go to the lowest index.  The flagged rows are
    compacted on the device (an integer atomic counter: the ORDER of the list may vary, the
    result per row cannot), so there is no host sync.
``"exact-tf32"``
    The same with a plain TF32 first pass: 2-3x faster per product but a ~1000x looser bound,
    so more rows are re-checked (many on high-dimensional, weakly clustered data).
``"tf32"``, ``"bf16"``
    One tensor-core pass, no re-check: fast; rows whose two nearest centres are within the
    pass's error (relative ~1e-3 for TF32, ~1e-2 for bf16, of ``||xt|| max||c||``) may get
    the other label.  For users who accept near-tie flips.
``"ieee"``
    Plain fp32 FMA products in Triton (no tensor cores), no re-check.
``"exact-ieee"``
    The fp32 FMA pass with its (tighter) bound and the float64 re-check.

Devices
-------
The tiles of every kernel are chosen from a :class:`DeviceSpec` of the device the data live
on (compute capability, opt-in shared memory per block, SM count: :func:`device_spec` reads
them once per device), per shape class of (n, d, k) and precision, and cached
(:func:`assign_config`, :func:`sums_config`, :func:`kpp_config`: pure functions of the
description, so tests call them for every arch without a GPU).  The assignment kernel's
shared memory is bounded by :func:`assign_smem_estimate` and kept below the device's limit:
99 KiB on sm_86/sm_89 (A10, L4, RTX 30xx/40xx) and sm_120, 163 KiB on sm_80 (A100), 227 KiB
on sm_90/sm_100 (H100, H200, B200), 64 KiB on sm_75 (T4).

Devices without TF32/bf16 tensor cores (sm_70 V100, sm_75 T4; see :func:`kernel_precision`):
``"exact"`` runs ``"exact-ieee"`` there (fp32 FMA products + the float64 re-check: labels
exact as everywhere); ``"tf32"`` and ``"bf16"`` run ``"ieee"`` (fp32 FMA: more accurate than
asked, no tensor-core speed-up) with one warning per device and precision.

If compiling or launching a kernel fails on the user's device (out of resources, an arch or
driver Triton cannot serve), the kernel set answers from the generic torch (CuPy) set with
one ``KernelFallbackWarning`` naming the cause and remembers the failure for the process
(:data:`FAILED`).  ``tests/test_triton_compile.py`` compiles every launch of
:func:`launch_plan` for sm_75 ... sm_100 to cubin and checks shared memory and spills.

The minimum distances (``mins``) are always computed in an epilogue by direct differences
``sum_k (xt_k - c_{l,k})^2`` in fp32 (float64 for re-checked rows): accurate relative to the
distance itself, whatever the precision of the assignment pass, and never negative.

Determinism
-----------
:func:`centre_sums` (and :func:`lloyd_pass`) are bit-identical run to run by default: the
labels are sorted by a stable (deterministic) radix sort, every cluster's run of rows is cut
into fixed pieces of ``PIECE_ROWS`` rows, each piece is summed in a fixed order by one
program, and the pieces of a cluster are summed in a fixed order by a second kernel.  No
float atomics.  Extra memory: the sort (keys int16/int32 + int64 permutation: 10-12 bytes per
row, plus torch's sort workspace), and ``(ceil(n / PIECE_ROWS) + k) * (d + 1)`` float32
partials.  ``atomic=True`` (``deterministic=False`` in :func:`lloyd_pass`) uses float atomics
instead: faster, not reproducible bit for bit.
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import triton
import triton.language as tl

__all__ = [
    "PRECISIONS", "PIECE_ROWS", "available", "supports", "assign", "centre_sums", "lloyd_pass",
    "kpp_potentials", "kpp_update", "assign_config", "exactness_coefficients", "INTERPRETED",
    "DeviceSpec", "KNOWN_DEVICES", "device_spec", "kernel_precision", "launch_plan", "FAILED",
]

#: Accepted values of ``precision``.
PRECISIONS = ("exact", "exact-tf32", "exact-ieee", "tf32", "bf16", "ieee")
#: Rows per piece of the deterministic centre sums (a piece is summed by one program).
PIECE_ROWS = 512

_U32 = 2.0 ** -24  # unit roundoff of float32
#: Bound on the relative error of ONE product x_k * c_k as the tensor cores form it (inputs
#: rounded or truncated to the input format; conservative: truncation assumed).
_EPS_PRODUCT = {
    "ieee": _U32,
    "tf32": 2 * 2.0 ** -10 + 2.0 ** -20,
    "tf32x3": 4 * 2.0 ** -20,
    "bf16": 2 * 2.0 ** -7 + 2.0 ** -14,
}
#: Number of fp32 accumulations per product (tf32x3 sums three products into the accumulator).
_N_ACC = {"ieee": 1, "tf32": 1, "tf32x3": 3, "bf16": 1}
#: Factor applied on top of the bound (covers fp32 rounding of ||xt|| and max ||c|| and the
#: float64 rounding of the reference).
SAFETY = 2.0


# ----------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------
def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


#: Whether the kernels of this module run in Triton's interpreter.  Triton decides once per
#: process (TRITON_INTERPRET=1 when triton and this module are imported) and for everything.
INTERPRETED = _interpreting()


def _is_cupy(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "cupy"


def available(X: Any) -> bool:
    """Whether these kernels can run on ``X``.

    True for a CUDA torch tensor (unless the module runs in the interpreter), a CuPy array
    (with torch CUDA present: the kernels are launched on CuPy memory through DLPack views),
    or a CPU torch tensor when this module was imported with ``TRITON_INTERPRET=1`` (see
    :data:`INTERPRETED`).  The dtype is checked separately by :func:`supports`.
    """
    if _is_cupy(X):
        return bool(torch.cuda.is_available()) and not INTERPRETED
    if not isinstance(X, torch.Tensor):
        return False
    if X.device.type == "cuda":
        return not INTERPRETED
    return X.device.type == "cpu" and INTERPRETED


def supports(dtype: Any) -> bool:
    """Whether X of storage ``dtype`` (torch, NumPy/CuPy dtype or its name) is for these kernels.

    float32, float16 and bfloat16 are; float64 is not (the caller falls back to its float64
    path), nor are integer dtypes (the caller converts those first).
    """
    name = str(dtype).split(".")[-1]
    return name in ("float32", "float16", "bfloat16")


def _next_pow2(v: int) -> int:
    return 1 << max(0, int(v) - 1).bit_length()


class _Boundary:
    """Converts CuPy inputs to torch views (zero-copy, DLPack) and results back."""

    def __init__(self, *arrays: Any) -> None:
        self.cupy = any(_is_cupy(a) for a in arrays if a is not None)

    def to_torch(self, a: Any) -> Any:
        if a is None or isinstance(a, (int, float)):
            return a
        if _is_cupy(a):
            return torch.from_dlpack(a)
        return a

    def back(self, a: Any) -> Any:
        if a is None or not self.cupy:
            return a
        import cupy

        return cupy.from_dlpack(a)


def _check_X(X: Any) -> Any:
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch tensor or a CuPy array, got {type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}.")
    if not supports(X.dtype):
        raise TypeError(f"X of dtype {X.dtype} is not for the Triton kernels (float32, float16 "
                        "or bfloat16 only; float64 takes the generic path).")
    if X.shape[1] > 0 and X.stride(1) != 1:
        X = X.contiguous()  # one copy; row-strided X (stride(1) == 1) is read in place
    return X


def _frame(X: Any, shift: Any, inv_scale: Any) -> tuple[Any, float]:
    d = X.shape[1]
    try:
        inv = float(inv_scale)
    except (TypeError, ValueError):
        raise TypeError(
            f"inv_scale must be a Python float, got {type(inv_scale).__name__}.") from None
    if not (inv > 0 and math.isfinite(inv)):
        raise ValueError(f"inv_scale must be a positive finite float, got {inv_scale!r}.")
    if shift is None:
        return None, inv
    if not isinstance(shift, torch.Tensor) or tuple(shift.shape) != (d,):
        raise ValueError(f"shift must be a ({d},) tensor or None, got "
                         f"{getattr(shift, 'shape', type(shift).__name__)}.")
    if shift.device != X.device:
        raise ValueError(f"shift is on {shift.device}, X on {X.device}.")
    return shift.to(torch.float32).contiguous(), inv


def _check_centers(C: Any, X: Any, name: str = "centers") -> Any:
    if not isinstance(C, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got {type(C).__name__}.")
    if C.ndim == 1:
        C = C[None, :]
    if C.ndim != 2 or C.shape[1] != X.shape[1] or C.shape[0] < 1:
        raise ValueError(f"{name} must be (k >= 1, {X.shape[1]}), got {tuple(C.shape)}.")
    if C.device != X.device:
        raise ValueError(f"{name} is on {C.device}, X on {X.device}.")
    if not C.dtype.is_floating_point:
        raise TypeError(f"{name} must be floating point, got {C.dtype}.")
    return C.to(torch.float32).contiguous()


def _check_vector(v: Any, n: int, X: Any, name: str, dtype=torch.float32) -> Any:
    if v is None:
        return None
    if not isinstance(v, torch.Tensor) or tuple(v.shape) != (n,):
        raise ValueError(f"{name} must be a ({n},) tensor or None, got "
                         f"{getattr(v, 'shape', type(v).__name__)}.")
    if v.device != X.device:
        raise ValueError(f"{name} is on {v.device}, X on {X.device}.")
    return v.to(dtype).contiguous()


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")


def _dummy(device: Any, dtype=torch.float32) -> Any:
    return torch.empty(1, dtype=dtype, device=device)


# ----------------------------------------------------------------------------------------
# The device and the tiles chosen for it
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceSpec:
    """What the tile chooser needs to know about a GPU (a small, hashable description).

    Attributes
    ----------
    capability : (major, minor) compute capability, e.g. (8, 6)
    smem_per_block : int
        Shared memory a block may use, in bytes (the opt-in maximum per block).
    sm_count : int
        Number of streaming multiprocessors.
    name : str
    """

    capability: tuple
    smem_per_block: int
    sm_count: int
    name: str = ""

    @property
    def arch(self) -> int:
        """``10 * major + minor`` (86 for sm_86)."""
        return 10 * int(self.capability[0]) + int(self.capability[1])

    @property
    def tf32_tensor_cores(self) -> bool:
        """Whether the device multiplies TF32 and bf16 on tensor cores (sm_80 and later)."""
        return self.arch >= 80


#: The opt-in shared memory per block of each compute capability (bytes), as CUDA documents
#: it; used where the runtime does not report it.
SMEM_PER_BLOCK = {70: 96 * 1024, 72: 96 * 1024, 75: 64 * 1024, 80: 163 * 1024,
                  86: 99 * 1024, 87: 163 * 1024, 89: 99 * 1024, 90: 227 * 1024,
                  100: 227 * 1024, 103: 227 * 1024, 120: 99 * 1024}

#: Descriptions of the GPUs users have (tests and documentation: every arch the chooser serves).
KNOWN_DEVICES = {
    "V100": DeviceSpec((7, 0), SMEM_PER_BLOCK[70], 80, "V100"),
    "T4": DeviceSpec((7, 5), SMEM_PER_BLOCK[75], 40, "T4"),
    "A100": DeviceSpec((8, 0), SMEM_PER_BLOCK[80], 108, "A100"),
    "A10": DeviceSpec((8, 6), SMEM_PER_BLOCK[86], 72, "A10"),
    "RTX 3090": DeviceSpec((8, 6), SMEM_PER_BLOCK[86], 82, "RTX 3090"),
    "L4": DeviceSpec((8, 9), SMEM_PER_BLOCK[89], 58, "L4"),
    "RTX 4090": DeviceSpec((8, 9), SMEM_PER_BLOCK[89], 128, "RTX 4090"),
    "H100": DeviceSpec((9, 0), SMEM_PER_BLOCK[90], 132, "H100"),
    "H200": DeviceSpec((9, 0), SMEM_PER_BLOCK[90], 132, "H200"),
    "B200": DeviceSpec((10, 0), SMEM_PER_BLOCK[100], 148, "B200"),
    "RTX 5090": DeviceSpec((12, 0), SMEM_PER_BLOCK[120], 170, "RTX 5090"),
}

#: The description used in Triton's interpreter (CPU tensors): an H100's.
INTERPRETER_DEVICE = DeviceSpec((9, 0), SMEM_PER_BLOCK[90], 132, "Triton interpreter")

_SPECS: dict = {}


def device_spec(device: Any = None) -> DeviceSpec:
    """The :class:`DeviceSpec` of a torch device (or index; None: the current CUDA device).

    Read once per device from ``torch.cuda.get_device_properties`` (falling back on Triton's
    driver, then on :data:`SMEM_PER_BLOCK`, for the shared memory); in the interpreter, or
    for a CPU device, :data:`INTERPRETER_DEVICE`.
    """
    if INTERPRETED or (device is not None and getattr(torch.device(device), "type", "")
                       == "cpu") or not torch.cuda.is_available():
        return INTERPRETER_DEVICE
    idx = torch.device(device).index if device is not None else None
    idx = torch.cuda.current_device() if idx is None else int(idx)
    if idx not in _SPECS:
        props = torch.cuda.get_device_properties(idx)
        cap = (int(props.major), int(props.minor))
        smem = int(getattr(props, "shared_memory_per_block_optin", 0) or 0)
        if not smem:
            try:
                smem = int(triton.runtime.driver.active.utils.get_device_properties(idx)
                           ["max_shared_mem"])
            except Exception:  # an old driver module: the documented value
                smem = SMEM_PER_BLOCK.get(10 * cap[0] + cap[1], 48 * 1024)
        _SPECS[idx] = DeviceSpec(cap, smem, int(props.multi_processor_count), str(props.name))
    return _SPECS[idx]


def device_of_cupy(device_id: int) -> DeviceSpec:
    """The :class:`DeviceSpec` of CuPy device ``device_id`` (its attributes)."""
    import cupy

    dev = cupy.cuda.Device(device_id)
    cc = str(dev.compute_capability)
    attrs = dev.attributes
    return DeviceSpec((int(cc[:-1]), int(cc[-1])),
                      int(attrs.get("MaxSharedMemoryPerBlockOptin", 48 * 1024)),
                      int(attrs.get("MultiProcessorCount", 1)), f"cuda:{device_id}")


_PRECISION_WARNED: set = set()


def kernel_precision(spec: DeviceSpec, precision: str) -> str:
    """The precision the kernels run with on ``spec`` for the precision asked for.

    Unchanged from sm_80 on.  On devices without TF32 and bf16 tensor cores (sm_70 V100,
    sm_75 T4), tf32x3 and TF32 would be emulated with fp32 FMAs at 3x and 1x the cost of plain
    fp32 products, bf16 products are not on their tensor cores either: so

    - ``"exact"``, ``"exact-tf32"`` -> ``"exact-ieee"``: an fp32 FMA first pass with its own
      (tighter) proven bound and the float64 re-check, exact as on every device;
    - ``"tf32"``, ``"bf16"`` -> ``"ieee"``: fp32 FMA products, more accurate than asked and
      no faster than the generic set; :func:`warn_precision` warns once per device.
    """
    _check_precision(precision)
    if spec.tf32_tensor_cores or precision in ("ieee", "exact-ieee"):
        return precision
    return "exact-ieee" if precision.startswith("exact") else "ieee"


def warn_precision(spec: DeviceSpec, precision: str) -> None:
    """Warn once per (device, precision) that ``precision`` runs as another one here."""
    ran = kernel_precision(spec, precision)
    key = (spec, precision)
    if ran == precision or precision.startswith("exact") or key in _PRECISION_WARNED:
        return
    _PRECISION_WARNED.add(key)
    warnings.warn(f"precision={precision!r} needs TF32/bf16 tensor cores, which "
                  f"{spec.name or 'this GPU'} (sm_{spec.arch}) lacks: its assignment pass runs "
                  "in fp32 FMA instead ('ieee': more accurate, no tensor-core speed-up).",
                  UserWarning, stacklevel=3)


def shape_class(spec: DeviceSpec, n: int, d: int, k: int) -> tuple:
    """The class of (n, d, k) the tiles depend on: whether the rows fill the device twice
    over with 128-row blocks, d rounded up to a power of two (>= 16; one class above 64),
    k rounded up to a power of two (16..128)."""
    many = n >= 2 * 128 * max(1, spec.sm_count)
    dcls = max(16, _next_pow2(d)) if d <= 64 else 128
    return many, dcls, min(128, max(16, _next_pow2(k)))


#: Bytes of shared memory the chooser keeps free below the device's limit (the compiler's
#: barriers, alignment, scratch for layout conversions).
SMEM_MARGIN = 4 * 1024


def assign_smem_estimate(spec: DeviceSpec, cfg: dict, precision: str) -> int:
    """An upper bound on the shared memory (bytes) of the assignment kernel with ``cfg``.

    A model fitted to the kernels Triton 3.9 compiles for sm_75 ... sm_120 (the compile test,
    ``tests/test_triton_compile.py``, checks that it bounds every configuration the chooser
    returns): the operand tiles of the product, ``(BLOCK_M + BLOCK_N) * BLOCK_K`` fp32 values
    per pipeline stage (the X tile once when X is loaded once), doubled for tf32x3 on sm_90
    and later (its split operands are staged for the asynchronous tensor-core products), plus
    a layout-conversion scratch of one (BLOCK_M, BLOCK_N) fp32 tile and 1 KiB.
    """
    bm, bn, bk = cfg["BLOCK_M"], cfg["BLOCK_N"], cfg["BLOCK_K"]
    stages = max(2, int(cfg["num_stages"]))
    base = _base_precision(kernel_precision(spec, precision))
    tiles = (bm * bk + stages * bn * bk) if cfg["X_ONCE"] else stages * (bm + bn) * bk
    per = 8 if (base == "tf32x3" and spec.arch >= 90) else 4
    return tiles * per + 4 * bm * bn + 1024


#: Candidate tiles of the assignment kernel, best first (BLOCK_M, BLOCK_N, num_warps): the
#: accumulator and its companions of the exact pass (second best, the argmin) stay within
#: 255 registers per thread without spilling.
_ASSIGN_TILES = ((128, 64, 8), (64, 64, 8), (64, 32, 4), (32, 32, 4))


@functools.cache
def _assign_tiles(spec: DeviceSpec, cls: tuple, precision: str) -> tuple:
    many, dcls, kcls = cls
    base = _base_precision(kernel_precision(spec, precision))
    x_once = dcls <= 64
    if x_once:
        bk = dcls
    else:
        bk = 16 if base in ("tf32x3", "ieee") else 32
    limit = spec.smem_per_block - SMEM_MARGIN
    for bm, bn, warps in _ASSIGN_TILES:
        bn = min(bn, kcls)
        if not many and bm == 128:
            continue  # too few rows to fill the device with 128-row blocks
        for stages in ((2,) if x_once else (3, 2)):
            cfg = dict(BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, X_ONCE=x_once,
                       num_warps=warps if bm * bn >= 64 * 64 else 4, num_stages=stages)
            if assign_smem_estimate(spec, cfg, precision) <= limit:
                return tuple(sorted(cfg.items()))
    raise ValueError(f"no assignment tile fits {spec.smem_per_block} bytes of shared memory "
                     f"per block ({spec.name or spec.capability}).")


def assign_config(n: int, d: int, k: int, precision: str = "exact",
                  spec: DeviceSpec | None = None) -> dict:
    """Tile sizes of the assignment kernel on device ``spec`` for (n, d, k) and ``precision``.

    A pure function of ``spec`` (default: :func:`device_spec` of the current device) and the
    :func:`shape_class` of (n, d, k), cached per (device, shape class, precision); no
    autotuning:

    - d <= 64: the row tile of X is loaded once (``X_ONCE``), ``BLOCK_K`` = d rounded up to a
      power of two (>= 16); larger d: a loop over ``BLOCK_K`` = 16 (fp32 operands: tf32x3,
      ieee) or 32 (tf32, bf16) columns;
    - ``BLOCK_N`` <= k rounded up to a power of two; ``BLOCK_M`` = 128 when there are rows
      to fill the device twice over, else 64 (or less);
    - the first candidate of :data:`_ASSIGN_TILES` (and 3, else 2 pipeline stages) whose
      :func:`assign_smem_estimate` fits the device's shared memory less :data:`SMEM_MARGIN`.

    Returns a dict of ``BLOCK_M, BLOCK_N, BLOCK_K, X_ONCE, num_warps, num_stages``.  Any of
    them can be overridden by the ``config=`` argument of :func:`assign` (benchmark sweeps).
    """
    spec = device_spec() if spec is None else spec
    return dict(_assign_tiles(spec, shape_class(spec, n, d, k), precision))


#: The float64 re-check of flagged rows: small tiles (16 x 16 x 8 float64 differences, 16 per
#: thread: 16 x 16 x 16 spilled on sm_75 ... sm_100).
RECHECK_CONFIG = dict(BLOCK_M=16, BLOCK_N=16, BLOCK_K=8, num_warps=4)


def sums_config(d: int, spec: DeviceSpec | None = None) -> dict:
    """Tiles of the centre-sum kernels: ``BLOCK_D`` columns (d rounded up to a power of two,
    16..128) per program; pieces of :data:`PIECE_ROWS` rows read ``BLOCK_R`` rows at a time;
    ``BLOCK_P`` pieces per step of the segment sums; ``BLOCK_M`` rows per atomic program.
    Register-light on every device (no shared memory beyond reductions)."""
    return dict(BLOCK_D=min(128, max(16, _next_pow2(d))), BLOCK_R=32, BLOCK_P=32,
                BLOCK_M=64, num_warps=4)


def kpp_config(d: int, m: int, spec: DeviceSpec | None = None) -> dict:
    """Tiles of the k-means++ kernels (float64 differences): ``BLOCK_C`` candidates (m
    rounded up to a power of two, 2..16), ``BLOCK_K`` columns and ``BLOCK_M`` rows per step,
    with at most 4096 float64 differences in flight per program (32 per thread)."""
    bc = min(16, max(2, _next_pow2(m)))
    bk = max(2, min(16, _next_pow2(d), 4096 // (32 * bc)))
    return dict(BLOCK_M=32, BLOCK_C=bc, BLOCK_K=bk, num_warps=4,
                UPDATE_M=128, UPDATE_K=min(32, max(16, _next_pow2(d))))


def _base_precision(precision: str) -> str:
    return {"exact": "tf32x3", "exact-tf32": "tf32", "exact-ieee": "ieee"}.get(precision,
                                                                               precision)


def exactness_coefficients(d: int, precision: str = "exact") -> tuple[float, float]:
    """``(a, b)``: a row is re-checked when ``second - best <= a ||xt|| cmax + b cmax^2``.

    ``best``/``second`` are the two smallest values of ``||c_j||^2 - 2 xt.c_j`` from the
    tensor-core pass and ``cmax = max_j ||c_j||``.  The bound: with inputs rounded to the dot's
    input format (relative error per product <= ``eps``) and ``m`` fp32 accumulations of the
    d products (relative error <= gamma_m = m u / (1 - m u), ``u = 2^-24``; ``m = 2 d`` per
    product term, i.e. doubled for tensor cores that may truncate), the computed
    ``s~ = xt.c`` satisfies ``|s~ - s| <= (eps + gamma) ||xt|| ||c||`` (Cauchy-Schwarz);
    ``||c||^2`` summed in fp32 is within ``gamma_d ||c||^2``; the final ``csq - 2 s~`` adds
    one rounding, ``u (||c||^2 + 2 ||xt|| ||c||)``.  So every computed value is within
    ``E = A ||xt|| cmax + B cmax^2`` of the exact one, with ``A = 2 (eps + gamma) + 2 u``
    and ``B = gamma_d + u``.  When ``second - best > 2 E`` the computed best is the exact
    best (every other value exceeds it by more than the two errors can close).  The
    coefficients returned include the factor 2 and :data:`SAFETY` (2).
    """
    base = _base_precision(precision)

    def gamma(m: float) -> float:
        return m * _U32 / (1.0 - m * _U32)

    g_acc = gamma(2 * _N_ACC[base] * max(d, 1))
    a = 2.0 * (_EPS_PRODUCT[base] + g_acc) + 2.0 * _U32
    b = gamma(max(d, 1)) + _U32
    return 2.0 * SAFETY * a, 2.0 * SAFETY * b


# ----------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------
@triton.jit
def _load_xt(X, rows64, rmask, stride_xm, cols, cmask, SHIFT, inv_scale,
             HAS_SHIFT: tl.constexpr):
    """A (rows, cols) tile of X in working coordinates, fp32; zeros where masked."""
    m = rmask[:, None] & cmask[None, :]
    x = tl.load(X + rows64[:, None] * stride_xm + cols[None, :], mask=m, other=0.0)
    x = x.to(tl.float32) * inv_scale
    if HAS_SHIFT:
        sh = tl.load(SHIFT + cols, mask=cmask, other=0.0)
        x = tl.where(m, x - sh[None, :], 0.0)
    return x


@triton.jit
def _tf32_trunc(x):
    """x with its 13 low mantissa bits cleared: TF32 by truncation (interpreter emulation)."""
    bits = x.to(tl.uint32, bitcast=True) & 0xFFFFE000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _dot_acc(x, c, acc, PREC: tl.constexpr, INTERPRET: tl.constexpr):
    """acc += x @ c.T at precision PREC (x: (M, K) fp32, c: (N, K) fp32).

    In the interpreter, where ``input_precision`` is ignored (fp32 products) and the bf16
    dot is broken, the tensor-core formats are emulated: operands truncated to TF32 (the
    conservative rounding the error bound assumes), tf32x3 as the sum of the three products
    of the high and low TF32 parts, bf16 operands rounded to bf16 (bf16 products are exact in
    fp32).  So the interpreter tests see the errors of the GPU's formats.
    """
    if INTERPRET:
        if PREC == "bf16":
            xb = x.to(tl.bfloat16).to(tl.float32)
            cb = c.to(tl.bfloat16).to(tl.float32)
            acc = tl.dot(xb, tl.trans(cb), acc, input_precision="ieee")
        elif PREC == "tf32":
            acc = tl.dot(_tf32_trunc(x), tl.trans(_tf32_trunc(c)), acc, input_precision="ieee")
        elif PREC == "tf32x3":
            xh = _tf32_trunc(x)
            ch = _tf32_trunc(c)
            xl = _tf32_trunc(x - xh)
            cl = _tf32_trunc(c - ch)
            acc = tl.dot(xh, tl.trans(cl), acc, input_precision="ieee")
            acc = tl.dot(xl, tl.trans(ch), acc, input_precision="ieee")
            acc = tl.dot(xh, tl.trans(ch), acc, input_precision="ieee")
        else:
            acc = tl.dot(x, tl.trans(c), acc, input_precision="ieee")
    elif PREC == "bf16":
        acc = tl.dot(x.to(tl.bfloat16), tl.trans(c.to(tl.bfloat16)), acc)
    else:
        acc = tl.dot(x, tl.trans(c), acc, input_precision=PREC)
    return acc


@triton.jit
def _assign_kernel(X, stride_xm, C, CSQ, SHIFT, inv_scale, n, k, d,
                   LABELS, MINS, CMAX2, FLAG_COUNT, FLAG_ROWS, coef_a, coef_b,
                   BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
                   X_ONCE: tl.constexpr, HAS_SHIFT: tl.constexpr, PREC: tl.constexpr,
                   NEED_MIN: tl.constexpr, EXACT: tl.constexpr, FORCE: tl.constexpr,
                   INTERPRET: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    rows64 = rows.to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    jn = tl.arange(0, BLOCK_N)
    if X_ONCE:
        x_once = _load_xt(X, rows64, rmask, stride_xm, ks, ks < d, SHIFT, inv_scale, HAS_SHIFT)
    best = tl.full([BLOCK_M], float("inf"), tl.float32)
    second = tl.full([BLOCK_M], float("inf"), tl.float32)
    best_i = tl.zeros([BLOCK_M], tl.int32)
    for n0 in range(0, k, BLOCK_N):
        cols = n0 + jn
        cmask = cols < k
        cols64 = cols.to(tl.int64)
        acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
        if X_ONCE:
            c = tl.load(C + cols64[:, None] * d + ks[None, :],
                        mask=cmask[:, None] & (ks < d)[None, :], other=0.0)
            acc = _dot_acc(x_once, c, acc, PREC, INTERPRET)
        else:
            for k0 in range(0, d, BLOCK_K):
                kk = k0 + ks
                kmask = kk < d
                x = _load_xt(X, rows64, rmask, stride_xm, kk, kmask, SHIFT, inv_scale, HAS_SHIFT)
                c = tl.load(C + cols64[:, None] * d + kk[None, :],
                            mask=cmask[:, None] & kmask[None, :], other=0.0)
                acc = _dot_acc(x, c, acc, PREC, INTERPRET)
        csq = tl.load(CSQ + cols, mask=cmask, other=0.0)
        dist = tl.where(cmask[None, :], csq[None, :] - 2.0 * acc, float("inf"))
        bmin = tl.min(dist, axis=1)
        barg = tl.argmin(dist, axis=1)  # ties: the lowest index
        better = bmin < best  # strict: an earlier block keeps a tie
        if EXACT:
            bsec = tl.min(tl.where(jn[None, :] == barg[:, None], float("inf"), dist), axis=1)
            second = tl.where(better, tl.minimum(best, bsec), tl.minimum(second, bmin))
        best_i = tl.where(better, n0 + barg, best_i)
        best = tl.where(better, bmin, best)
    tl.store(LABELS + rows, best_i.to(tl.int64), mask=rmask)
    if NEED_MIN or EXACT:
        # epilogue: direct differences to the chosen centre (and ||xt||^2 for the bound)
        dsq = tl.zeros([BLOCK_M], tl.float32)
        xsq = tl.zeros([BLOCK_M], tl.float32)
        bi64 = best_i.to(tl.int64)
        for k0 in range(0, d, BLOCK_K):
            kk = k0 + ks
            kmask = kk < d
            x = _load_xt(X, rows64, rmask, stride_xm, kk, kmask, SHIFT, inv_scale, HAS_SHIFT)
            cb = tl.load(C + bi64[:, None] * d + kk[None, :],
                         mask=rmask[:, None] & kmask[None, :], other=0.0)
            diff = x - cb
            dsq += tl.sum(diff * diff, axis=1)
            xsq += tl.sum(x * x, axis=1)
        if NEED_MIN:
            tl.store(MINS + rows, dsq, mask=rmask)
        if EXACT:
            cmax2 = tl.load(CMAX2)
            bound = coef_a * tl.sqrt(xsq) * tl.sqrt(cmax2) + coef_b * cmax2
            if FORCE:
                flag = rmask
            else:
                flag = ((second - best) <= bound) & rmask
            f = flag.to(tl.int32)
            nf = tl.sum(f, axis=0)
            if nf > 0:
                # integer atomic: which slots a block gets may vary, the per-row result not
                base = tl.atomic_add(FLAG_COUNT, nf)
                pos = base + tl.cumsum(f, axis=0) - f
                tl.store(FLAG_ROWS + pos, rows, mask=flag)


@triton.jit
def _recheck_kernel(X, stride_xm, C, SHIFT, inv_scale, k, d, FLAG_COUNT, FLAG_ROWS,
                    LABELS, MINS, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                    BLOCK_K: tl.constexpr, HAS_SHIFT: tl.constexpr, NEED_MIN: tl.constexpr):
    """float64 direct-difference assignment of the flagged rows (programs past the count idle)."""
    pid = tl.program_id(0)
    count = tl.load(FLAG_COUNT)
    if pid * BLOCK_M < count:
        slots = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        smask = slots < count
        rows = tl.load(FLAG_ROWS + slots, mask=smask, other=0)
        rows64 = rows.to(tl.int64)
        ks = tl.arange(0, BLOCK_K)
        jn = tl.arange(0, BLOCK_N)
        best = tl.full([BLOCK_M], float("inf"), tl.float64)
        best_i = tl.zeros([BLOCK_M], tl.int32)
        for n0 in range(0, k, BLOCK_N):
            cols = n0 + jn
            cmask = cols < k
            cols64 = cols.to(tl.int64)
            acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float64)
            for k0 in range(0, d, BLOCK_K):
                kk = k0 + ks
                kmask = kk < d
                x = _load_xt(X, rows64, smask, stride_xm, kk, kmask, SHIFT, inv_scale,
                             HAS_SHIFT).to(tl.float64)
                c = tl.load(C + cols64[:, None] * d + kk[None, :],
                            mask=cmask[:, None] & kmask[None, :], other=0.0).to(tl.float64)
                diff = x[:, None, :] - c[None, :, :]
                acc += tl.sum(diff * diff, axis=2)
            dist = tl.where(cmask[None, :], acc, float("inf"))
            bmin = tl.min(dist, axis=1)
            barg = tl.argmin(dist, axis=1)
            better = bmin < best
            best_i = tl.where(better, n0 + barg, best_i)
            best = tl.where(better, bmin, best)
        tl.store(LABELS + rows64, best_i.to(tl.int64), mask=smask)
        if NEED_MIN:
            tl.store(MINS + rows64, best.to(tl.float32), mask=smask)


@triton.jit
def _piece_sums_kernel(X, stride_xm, SHIFT, inv_scale, W, PERM, OFFSETS, PIECE_START,
                       PIECE_SEG, PARTIAL, PCOUNT, k, d,
                       PIECE: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
                       HAS_SHIFT: tl.constexpr, HAS_W: tl.constexpr):
    """Partial sums of one piece (<= PIECE consecutive rows of one cluster in sorted order)."""
    q = tl.program_id(0)
    pd = tl.program_id(1)
    j = tl.load(PIECE_SEG + q)
    if j < k:
        seg_end = tl.load(OFFSETS + j + 1)
        start = tl.load(OFFSETS + j) + (q - tl.load(PIECE_START + j)) * PIECE
        cols = pd * BLOCK_D + tl.arange(0, BLOCK_D)
        cmask = cols < d
        rr = tl.arange(0, BLOCK_R)
        acc = tl.zeros([BLOCK_D], tl.float32)
        wacc = tl.zeros([BLOCK_R], tl.float32)
        for r0 in range(0, tl.minimum(seg_end - start, PIECE), BLOCK_R):
            pos = start + r0 + rr
            pmask = (pos < seg_end) & (r0 + rr < PIECE)
            idx = tl.load(PERM + pos, mask=pmask, other=0)
            x = _load_xt(X, idx, pmask, stride_xm, cols, cmask, SHIFT, inv_scale, HAS_SHIFT)
            if HAS_W:
                w = tl.load(W + idx, mask=pmask, other=0.0)
                x = x * w[:, None]
                wacc += w
            else:
                wacc += pmask.to(tl.float32)
            acc += tl.sum(x, axis=0)
        tl.store(PARTIAL + q.to(tl.int64) * d + cols, acc, mask=cmask)
        if pd == 0:
            tl.store(PCOUNT + q, tl.sum(wacc, axis=0))


@triton.jit
def _segment_sums_kernel(PARTIAL, PCOUNT, PIECE_START, SUMS, COUNTS, d,
                         BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """sums_j = the pieces of cluster j summed in a fixed order."""
    j = tl.program_id(0)
    pd = tl.program_id(1)
    p0 = tl.load(PIECE_START + j)
    p1 = tl.load(PIECE_START + j + 1)
    cols = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < d
    pp = tl.arange(0, BLOCK_P)
    acc = tl.zeros([BLOCK_D], tl.float32)
    cacc = tl.zeros([BLOCK_P], tl.float32)
    for q0 in range(p0, p1, BLOCK_P):
        q = q0 + pp
        qmask = q < p1
        part = tl.load(PARTIAL + q.to(tl.int64)[:, None] * d + cols[None, :],
                       mask=qmask[:, None] & cmask[None, :], other=0.0)
        acc += tl.sum(part, axis=0)
        cacc += tl.load(PCOUNT + q, mask=qmask, other=0.0)
    tl.store(SUMS + j * d + cols, acc, mask=cmask)
    if pd == 0:
        tl.store(COUNTS + j, tl.sum(cacc, axis=0))


@triton.jit
def _atomic_sums_kernel(X, stride_xm, SHIFT, inv_scale, W, LABELS, SUMS, COUNTS, n, d,
                        BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                        HAS_SHIFT: tl.constexpr, HAS_W: tl.constexpr):
    pid = tl.program_id(0)
    pd = tl.program_id(1)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    cols = pd * BLOCK_D + tl.arange(0, BLOCK_D)
    cmask = cols < d
    x = _load_xt(X, rows.to(tl.int64), rmask, stride_xm, cols, cmask, SHIFT, inv_scale,
                 HAS_SHIFT)
    lab = tl.load(LABELS + rows, mask=rmask, other=0)
    if HAS_W:
        w = tl.load(W + rows, mask=rmask, other=0.0)
    else:
        w = rmask.to(tl.float32)
    x = x * w[:, None]
    tl.atomic_add(SUMS + lab[:, None] * d + cols[None, :], x,
                  mask=rmask[:, None] & cmask[None, :])
    if pd == 0:
        tl.atomic_add(COUNTS + lab, w, mask=rmask)


@triton.jit
def _kpp_potentials_kernel(X, stride_xm, SHIFT, inv_scale, CLOSEST, W, CAND, PARTIAL, n, m, d,
                           BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
                           HAS_SHIFT: tl.constexpr, HAS_W: tl.constexpr):
    """PARTIAL[block, c] = sum over the block's rows of w * min(closest, ||xt - cand_c||^2).

    The rows are brought into the frame in fp32 (as the reference's chunks are), then the
    differences to the (float64) candidates, their squares and every sum are float64: the
    potentials of the reference's float64 path, so the same centres are drawn.
    """
    pid = tl.program_id(0)
    pc = tl.program_id(1)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    rows64 = rows.to(tl.int64)
    cs = pc * BLOCK_C + tl.arange(0, BLOCK_C)
    csmask = cs < m
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M, BLOCK_C], tl.float64)
    for k0 in range(0, d, BLOCK_K):
        kk = k0 + ks
        kmask = kk < d
        x = _load_xt(X, rows64, rmask, stride_xm, kk, kmask, SHIFT, inv_scale,
                     HAS_SHIFT).to(tl.float64)
        c = tl.load(CAND + cs[:, None] * d + kk[None, :],
                    mask=csmask[:, None] & kmask[None, :], other=0.0)
        diff = x[:, None, :] - c[None, :, :]
        acc += tl.sum(diff * diff, axis=2)
    closest = tl.load(CLOSEST + rows, mask=rmask, other=0.0)
    v = tl.minimum(acc, closest[:, None])
    if HAS_W:
        w = tl.load(W + rows, mask=rmask, other=0.0).to(tl.float64)
        v = v * w[:, None]
    v = tl.where(rmask[:, None], v, 0.0)
    tl.store(PARTIAL + pid.to(tl.int64) * m + cs, tl.sum(v, axis=0), mask=csmask)


@triton.jit
def _kpp_update_kernel(X, stride_xm, SHIFT, inv_scale, CLOSEST, CENTER, OUT, n, d,
                       BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
                       HAS_SHIFT: tl.constexpr, HAS_CLOSEST: tl.constexpr):
    """OUT = min(CLOSEST, ||xt - center||^2), float64 differences (see the potentials)."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    rmask = rows < n
    rows64 = rows.to(tl.int64)
    ks = tl.arange(0, BLOCK_K)
    acc = tl.zeros([BLOCK_M], tl.float64)
    for k0 in range(0, d, BLOCK_K):
        kk = k0 + ks
        kmask = kk < d
        x = _load_xt(X, rows64, rmask, stride_xm, kk, kmask, SHIFT, inv_scale,
                     HAS_SHIFT).to(tl.float64)
        c = tl.load(CENTER + kk, mask=kmask, other=0.0)
        diff = tl.where(kmask[None, :], x - c[None, :], 0.0)
        acc += tl.sum(diff * diff, axis=1)
    if HAS_CLOSEST:
        acc = tl.minimum(acc, tl.load(CLOSEST + rows, mask=rmask, other=0.0))
    tl.store(OUT + rows, acc, mask=rmask)


# ----------------------------------------------------------------------------------------
# Launches: what each kernel is launched with (shared by the host code and the compile plan)
# ----------------------------------------------------------------------------------------
def _launch(kernel: Any, grid: tuple, args: tuple, meta: dict) -> None:
    """Every launch of this module goes through here (tests record or fail launches)."""
    kernel[grid](*args, **meta)


def _assign_meta(spec: DeviceSpec, n: int, d: int, k: int, precision: str, *, need_min: bool,
                 has_shift: bool, force: bool = False, config: dict | None = None) -> dict:
    """Compile-time arguments and launch options of the assignment kernel."""
    ran = kernel_precision(spec, precision)
    cfg = assign_config(n, d, k, precision, spec)
    if config:
        cfg.update(config)
    return dict(BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"], BLOCK_K=cfg["BLOCK_K"],
                X_ONCE=bool(cfg["X_ONCE"]) and d <= cfg["BLOCK_K"], HAS_SHIFT=has_shift,
                PREC=_base_precision(ran), NEED_MIN=bool(need_min),
                EXACT=ran.startswith("exact"), FORCE=bool(force), INTERPRET=INTERPRETED,
                num_warps=cfg["num_warps"], num_stages=cfg["num_stages"])


def _recheck_meta(*, has_shift: bool, need_min: bool) -> dict:
    return dict(RECHECK_CONFIG, HAS_SHIFT=has_shift, NEED_MIN=bool(need_min))


def _piece_meta(d: int, piece_rows: int, *, has_shift: bool, has_w: bool) -> dict:
    c = sums_config(d)
    return dict(PIECE=piece_rows, BLOCK_R=min(c["BLOCK_R"], _next_pow2(piece_rows)),
                BLOCK_D=c["BLOCK_D"], HAS_SHIFT=has_shift, HAS_W=has_w,
                num_warps=c["num_warps"])


def _segment_meta(d: int) -> dict:
    c = sums_config(d)
    return dict(BLOCK_P=c["BLOCK_P"], BLOCK_D=c["BLOCK_D"], num_warps=c["num_warps"])


def _atomic_meta(d: int, *, has_shift: bool, has_w: bool) -> dict:
    c = sums_config(d)
    return dict(BLOCK_M=c["BLOCK_M"], BLOCK_D=c["BLOCK_D"], HAS_SHIFT=has_shift, HAS_W=has_w,
                num_warps=c["num_warps"])


def _kpp_meta(d: int, m: int, *, has_shift: bool, has_w: bool) -> dict:
    c = kpp_config(d, m)
    return dict(BLOCK_M=c["BLOCK_M"], BLOCK_C=c["BLOCK_C"], BLOCK_K=c["BLOCK_K"],
                HAS_SHIFT=has_shift, HAS_W=has_w, num_warps=c["num_warps"])


def _kpp_update_meta(d: int, *, has_shift: bool, has_closest: bool) -> dict:
    c = kpp_config(d, 1)
    return dict(BLOCK_M=c["UPDATE_M"], BLOCK_K=c["UPDATE_K"], HAS_SHIFT=has_shift,
                HAS_CLOSEST=has_closest, num_warps=c["num_warps"])


def kpp_candidates(k: int) -> int:
    """Candidates per greedy k-means++ step (scikit-learn's ``2 + floor(ln k)``)."""
    return 2 + int(math.log(max(k, 1)))


def launch_plan(spec: DeviceSpec, n: int, d: int, k: int, precision: str = "exact", *,
                x_dtype: Any = torch.float32, every_flag: bool = False) -> list:
    """Every launch a fit on (n, d, k) with ``precision`` makes on device ``spec``.

    Returns ``(kernel, args, meta)`` triples: ``args`` maps each runtime argument to a
    sample value (a torch dtype for a pointer, an int or float for a scalar: Triton
    specialises on them), ``meta`` the compile-time arguments and launch options the host
    functions pass.  With ``every_flag``, every combination of the flags the package
    launches (shift, weights, minima, closest); else the heaviest one of each kernel.  The
    compile test compiles each for every arch (``triton.compile`` with a ``GPUTarget``).
    """
    f32, i64, i32 = torch.float32, torch.int64, torch.int32
    stride = d
    m = kpp_candidates(k)
    flags = (True, False) if every_flag else (True,)
    out = []
    for sh in flags:
        for nm in flags:
            meta = _assign_meta(spec, n, d, k, precision, need_min=nm, has_shift=sh)
            out.append((_assign_kernel, dict(
                X=x_dtype, stride_xm=stride, C=f32, CSQ=f32, SHIFT=f32, inv_scale=1.0, n=n,
                k=k, d=d, LABELS=i64, MINS=f32, CMAX2=f32, FLAG_COUNT=i32, FLAG_ROWS=i32,
                coef_a=1.0, coef_b=1.0), meta))
            if meta["EXACT"]:
                out.append((_recheck_kernel, dict(
                    X=x_dtype, stride_xm=stride, C=f32, SHIFT=f32, inv_scale=1.0, k=k, d=d,
                    FLAG_COUNT=i32, FLAG_ROWS=i32, LABELS=i64, MINS=f32),
                    _recheck_meta(has_shift=sh, need_min=nm)))
        for hw in flags:
            out.append((_piece_sums_kernel, dict(
                X=x_dtype, stride_xm=stride, SHIFT=f32, inv_scale=1.0, W=f32, PERM=i64,
                OFFSETS=i64, PIECE_START=i64, PIECE_SEG=i64, PARTIAL=f32, PCOUNT=f32, k=k, d=d),
                _piece_meta(d, PIECE_ROWS, has_shift=sh, has_w=hw)))
            out.append((_atomic_sums_kernel, dict(
                X=x_dtype, stride_xm=stride, SHIFT=f32, inv_scale=1.0, W=f32, LABELS=i64,
                SUMS=f32, COUNTS=f32, n=n, d=d), _atomic_meta(d, has_shift=sh, has_w=hw)))
            out.append((_kpp_potentials_kernel, dict(
                X=x_dtype, stride_xm=stride, SHIFT=f32, inv_scale=1.0, CLOSEST=torch.float64,
                W=f32, CAND=torch.float64, PARTIAL=torch.float64, n=n, m=m, d=d),
                _kpp_meta(d, m, has_shift=sh, has_w=hw)))
            out.append((_kpp_update_kernel, dict(
                X=x_dtype, stride_xm=stride, SHIFT=f32, inv_scale=1.0, CLOSEST=torch.float64,
                CENTER=torch.float64, OUT=torch.float64, n=n, d=d),
                _kpp_update_meta(d, has_shift=sh, has_closest=hw)))
    out.append((_segment_sums_kernel, dict(PARTIAL=f32, PCOUNT=f32, PIECE_START=i64, SUMS=f32,
                                           COUNTS=f32, d=d), _segment_meta(d)))
    return out


# ----------------------------------------------------------------------------------------
# Host functions (no host sync in any of them)
# ----------------------------------------------------------------------------------------
def _assign_impl(X, C, shift, inv, precision, need_min, force_recheck, config, spec=None):
    n, d = X.shape
    k = C.shape[0]
    dev = X.device
    labels = torch.empty(n, dtype=torch.int64, device=dev)
    mins = torch.empty(n, dtype=torch.float32, device=dev) if need_min else _dummy(dev)
    if n == 0:
        return labels, (mins[:0] if need_min else None), None
    spec = device_spec(dev) if spec is None else spec
    meta = _assign_meta(spec, n, d, k, precision, need_min=need_min,
                        has_shift=shift is not None, force=force_recheck, config=config)
    exact = meta["EXACT"]
    csq = torch.sum(C * C, dim=1)
    if exact:
        cmax2 = torch.max(csq).reshape(1)
        count = torch.zeros(1, dtype=torch.int32, device=dev)
        flagged = torch.empty(n, dtype=torch.int32, device=dev)
        coef_a, coef_b = exactness_coefficients(d, kernel_precision(spec, precision))
    else:
        cmax2 = count = flagged = _dummy(dev)
        coef_a = coef_b = 0.0
    sh = shift if shift is not None else _dummy(dev)
    _launch(_assign_kernel, (triton.cdiv(n, meta["BLOCK_M"]),),
            (X, X.stride(0), C, csq, sh, inv, n, k, d, labels, mins, cmax2, count, flagged,
             coef_a, coef_b), meta)
    if exact:
        rmeta = _recheck_meta(has_shift=shift is not None, need_min=need_min)
        _launch(_recheck_kernel, (triton.cdiv(n, rmeta["BLOCK_M"]),),
                (X, X.stride(0), C, sh, inv, k, d, count, flagged, labels, mins), rmeta)
    return labels, (mins if need_min else None), (count if exact else None)


def assign(X: Any, centers: Any, *, shift: Any = None, inv_scale: float = 1.0,
           precision: str = "exact", config: dict | None = None,
           spec: DeviceSpec | None = None, _force_recheck: bool = False,
           _return_flag_count: bool = False):
    """Nearest centre of every row and the squared distance to it, in one fused kernel.

    Parameters
    ----------
    X : tensor (n, d), float32/float16/bfloat16, CUDA (or CPU under ``TRITON_INTERPRET=1``),
        or a CuPy array.  Contiguous or row-strided.
    centers : tensor (k, d)
        Centres in working coordinates (converted to float32).
    shift : tensor (d,) or None
        The frame: the kernels use ``xt = x * inv_scale - shift``.
    inv_scale : float
        A positive float (a power of two in practice).
    precision : {"exact", "exact-tf32", "tf32", "bf16", "ieee"}
        See the module docstring.  "exact" (default) gives the labels of a float64
        computation except on float64 near-ties.
    config : dict, optional
        Overrides of :func:`assign_config` (tile sizes, warps, stages).
    spec : DeviceSpec, optional
        The device the tiles are chosen for (default: :func:`device_spec` of X's device).

    Returns
    -------
    labels : int64 (n,)
        Index of the nearest centre (the lowest index on exact ties).
    mins : float32 (n,)
        ``||xt_i - c_{labels_i}||^2`` by direct differences (>= 0).
    """
    io = _Boundary(X, centers, shift)
    X = _check_X(io.to_torch(X))
    C = _check_centers(io.to_torch(centers), X)
    shift, inv = _frame(X, io.to_torch(shift), inv_scale)
    _check_precision(precision)
    labels, mins, count = _assign_impl(X, C, shift, inv, precision, True, _force_recheck,
                                       config, spec)
    if _return_flag_count:
        return io.back(labels), io.back(mins), count
    return io.back(labels), io.back(mins)


def _sums_impl(X, labels, weights, k, shift, inv, atomic, piece_rows=PIECE_ROWS):
    n, d = X.shape
    dev = X.device
    sh = shift if shift is not None else _dummy(dev)
    w = weights if weights is not None else _dummy(dev)
    has_w = weights is not None
    if atomic:
        sums = torch.zeros((k, d), dtype=torch.float32, device=dev)
        counts = torch.zeros(k, dtype=torch.float32, device=dev)
        if n:
            meta = _atomic_meta(d, has_shift=shift is not None, has_w=has_w)
            _launch(_atomic_sums_kernel, (triton.cdiv(n, meta["BLOCK_M"]),
                                          triton.cdiv(d, meta["BLOCK_D"])),
                    (X, X.stride(0), sh, inv, w, labels, sums, counts, n, d), meta)
        return sums, counts
    # a deterministic counting sort by label: stable radix sort on the smallest key type
    key_dtype = torch.int16 if k < 2 ** 15 - 1 else torch.int32  # arange(k + 1) must fit
    sorted_keys, perm = torch.sort(labels.to(key_dtype), stable=True)
    # run boundaries of each cluster in sorted order: offsets[j] = #labels < j
    ks = torch.arange(k + 1, dtype=key_dtype, device=dev)
    offsets = torch.searchsorted(sorted_keys, ks)
    lens = offsets[1:] - offsets[:-1]
    n_pieces = (lens + (piece_rows - 1)) // piece_rows
    piece_start = torch.zeros(k + 1, dtype=torch.int64, device=dev)
    torch.cumsum(n_pieces, 0, out=piece_start[1:])
    q_max = triton.cdiv(n, piece_rows) + k  # >= the number of pieces, known without a sync
    qs = torch.arange(q_max, dtype=torch.int64, device=dev)
    piece_seg = torch.searchsorted(piece_start, qs, right=True) - 1  # k for unused slots
    partial = torch.empty((q_max, d), dtype=torch.float32, device=dev)
    pcount = torch.empty(q_max, dtype=torch.float32, device=dev)
    sums = torch.empty((k, d), dtype=torch.float32, device=dev)
    counts = torch.empty(k, dtype=torch.float32, device=dev)
    meta = _piece_meta(d, piece_rows, has_shift=shift is not None, has_w=has_w)
    _launch(_piece_sums_kernel, (q_max, triton.cdiv(d, meta["BLOCK_D"])),
            (X, X.stride(0), sh, inv, w, perm, offsets, piece_start, piece_seg, partial,
             pcount, k, d), meta)
    meta = _segment_meta(d)
    _launch(_segment_sums_kernel, (k, triton.cdiv(d, meta["BLOCK_D"])),
            (partial, pcount, piece_start, sums, counts, d), meta)
    return sums, counts


def centre_sums(X: Any, labels: Any, weights: Any, k: int, *, shift: Any = None,
                inv_scale: float = 1.0, atomic: bool = False, _piece_rows: int = PIECE_ROWS):
    """Weighted sums of the working-coordinate rows per label, and the weight per label.

    Parameters
    ----------
    X : tensor (n, d) (see :func:`assign`)
    labels : int64 tensor (n,), values in ``[0, k)`` (not checked on the device: out-of-range
        labels give undefined results)
    weights : tensor (n,) or None (unit weights)
    k : int >= 1
    shift, inv_scale : the frame, ``xt = x * inv_scale - shift``
    atomic : bool
        False (default): deterministic, bit-identical run to run (sort + fixed-order
        segmented sums).  True: float atomics, faster, order not fixed.

    Returns
    -------
    sums : float32 (k, d), ``sum_{i: l_i = j} w_i xt_i``
    counts : float32 (k,), ``sum_{i: l_i = j} w_i``
    """
    io = _Boundary(X, labels, weights, shift)
    X = _check_X(io.to_torch(X))
    n = X.shape[0]
    k = _check_k(k)
    labels = _check_labels(io.to_torch(labels), n, X)
    weights = _check_vector(io.to_torch(weights), n, X, "weights")
    shift, inv = _frame(X, io.to_torch(shift), inv_scale)
    sums, counts = _sums_impl(X, labels, weights, k, shift, inv, bool(atomic), _piece_rows)
    return io.back(sums), io.back(counts)


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an int >= 1, got {k!r}.")
    return k


def _check_labels(labels: Any, n: int, X: Any) -> Any:
    if not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (n,):
        raise ValueError(f"labels must be a ({n},) integer tensor, got "
                         f"{getattr(labels, 'shape', type(labels).__name__)}.")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(f"labels must be integers, got {labels.dtype}.")
    if labels.device != X.device:
        raise ValueError(f"labels are on {labels.device}, X on {X.device}.")
    return labels.to(torch.int64).contiguous()


def lloyd_pass(X: Any, centers: Any, weights: Any, *, shift: Any = None,
               inv_scale: float = 1.0, precision: str = "exact", need_inertia: bool = False,
               deterministic: bool = True, spec: DeviceSpec | None = None):
    """One Lloyd pass: assignment, centre sums and (optionally) the inertia.

    A fixed sequence of launches (assignment, re-check for the exact precisions, sort and
    segmented sums), no host sync.

    Parameters
    ----------
    X, centers, shift, inv_scale, precision : as in :func:`assign`
    weights : tensor (n,) or None
    need_inertia : bool
        Also return ``sum_i w_i ||xt_i - c_{l_i}||^2`` (direct differences, summed in
        float64 in a fixed order).
    deterministic : bool
        True (default): deterministic centre sums; False: float atomics.
    spec : DeviceSpec, optional
        The device the tiles are chosen for (default: :func:`device_spec` of X's device).

    Returns
    -------
    labels : int64 (n,), sums : float32 (k, d), counts : float32 (k,),
    inertia : 0-d float64 tensor, or None when not asked for.
    """
    io = _Boundary(X, centers, weights, shift)
    X = _check_X(io.to_torch(X))
    n = X.shape[0]
    C = _check_centers(io.to_torch(centers), X)
    weights = _check_vector(io.to_torch(weights), n, X, "weights")
    shift, inv = _frame(X, io.to_torch(shift), inv_scale)
    _check_precision(precision)
    labels, mins, _ = _assign_impl(X, C, shift, inv, precision, bool(need_inertia), False,
                                   None, spec)
    sums, counts = _sums_impl(X, labels, weights, C.shape[0], shift, inv, not deterministic)
    inertia = None
    if need_inertia:
        m64 = mins.to(torch.float64)
        inertia = torch.sum(m64 if weights is None else m64 * weights.to(torch.float64))
    return io.back(labels), io.back(sums), io.back(counts), io.back(inertia)


def kpp_potentials(X: Any, closest: Any, cand: Any, weights: Any, *, shift: Any = None,
                   inv_scale: float = 1.0):
    """Greedy k-means++: the potential of each candidate, in one fused pass over X.

    ``pots_c = sum_i w_i * min(closest_i, ||xt_i - cand_c||^2)``.  The rows are brought into
    the frame in fp32 (as the reference's chunks are); the differences to the candidates,
    their squares and all sums are float64: per-block partials (one per ``BLOCK_M`` rows and
    candidate) reduced in a fixed order, so the result is deterministic and equals the
    reference's float64 potentials to float64 rounding (the same centres are drawn).

    Parameters
    ----------
    X : tensor (n, d) (see :func:`assign`)
    closest : tensor (n,), the current squared distance to the nearest chosen centre (float64)
    cand : tensor (m, d), candidate centres in working coordinates
    weights : tensor (n,) or None

    Returns
    -------
    pots : float64 tensor (m,)
    """
    io = _Boundary(X, closest, cand, weights, shift)
    X = _check_X(io.to_torch(X))
    n, d = X.shape
    cand = _check_centers(io.to_torch(cand), X, "cand").to(torch.float64)
    if closest is None:
        raise ValueError("closest must be a (n,) tensor (use kpp_update for the first centre).")
    closest = _check_vector(io.to_torch(closest), n, X, "closest", torch.float64)
    weights = _check_vector(io.to_torch(weights), n, X, "weights")
    shift, inv = _frame(X, io.to_torch(shift), inv_scale)
    m = cand.shape[0]
    dev = X.device
    meta = _kpp_meta(d, m, has_shift=shift is not None, has_w=weights is not None)
    nb = triton.cdiv(n, meta["BLOCK_M"])
    partial = torch.empty((nb, m), dtype=torch.float64, device=dev)
    if n:
        _launch(_kpp_potentials_kernel, (nb, triton.cdiv(m, meta["BLOCK_C"])),
                (X, X.stride(0), shift if shift is not None else _dummy(dev), inv, closest,
                 weights if weights is not None else _dummy(dev), cand, partial, n, m, d), meta)
    return io.back(torch.sum(partial, dim=0))


def kpp_update(X: Any, closest: Any, center: Any, *, shift: Any = None,
               inv_scale: float = 1.0):
    """``min(closest_i, ||xt_i - center||^2)`` for every row (float64 differences of the
    fp32 frame, as :func:`kpp_potentials`).

    ``closest`` may be None (then the distances themselves: the first centre); ``center`` is
    (d,) or (1, d) in working coordinates.  Returns a new float64 tensor (n,).
    """
    io = _Boundary(X, closest, center, shift)
    X = _check_X(io.to_torch(X))
    n, d = X.shape
    center = _check_centers(io.to_torch(center), X, "center").to(torch.float64)
    if center.shape[0] != 1:
        raise ValueError(f"center must be one row (d,) or (1, d), got {tuple(center.shape)}.")
    closest = _check_vector(io.to_torch(closest), n, X, "closest", torch.float64)
    shift, inv = _frame(X, io.to_torch(shift), inv_scale)
    dev = X.device
    out = torch.empty(n, dtype=torch.float64, device=dev)
    if n:
        meta = _kpp_update_meta(d, has_shift=shift is not None,
                                has_closest=closest is not None)
        _launch(_kpp_update_kernel, (triton.cdiv(n, meta["BLOCK_M"]),),
                (X, X.stride(0), shift if shift is not None else _dummy(dev), inv,
                 closest if closest is not None else _dummy(dev, torch.float64), center, out,
                 n, d), meta)
    return io.back(out)


# ----------------------------------------------------------------------------------------
# The kernel set of the seam: whole passes through the fused kernels above
# ----------------------------------------------------------------------------------------
from ._cupy import CupyKernels  # noqa: E402  (names cupy only inside its methods)
from ._reference import ReferenceKernels, fusable  # noqa: E402
from ._torch import TorchKernels  # noqa: E402

if TYPE_CHECKING:
    # the mixin's base as mypy sees it: the sets it is mixed into (torch's, CuPy's) derive
    # from the reference set, whose attributes (xp, device, precision, ...) and methods it
    # uses and extends
    _MixinBase = ReferenceKernels
else:
    _MixinBase = object

#: Launch failures remembered for the process: ``(DeviceSpec, config or None) -> cause``.
#: ``None`` marks the whole device (an unsupported arch, a Triton/driver mismatch); a config
#: (the tiles of the failing kernel) marks that configuration only (out of resources).
FAILED: dict = {}


def _memory_error(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"


def _resource_error(exc: BaseException) -> bool:
    from triton.runtime.errors import OutOfResources

    return isinstance(exc, OutOfResources) or "out of resource" in str(exc).lower()


class _TritonPasses(_MixinBase):
    """Lloyd passes, assignments, inertia and k-means++ steps through the fused Triton kernels.

    Mixed into the torch (CUDA; CPU under the interpreter) and CuPy sets, whose chunk
    primitives still serve the rare passes (relocation, ``transform``).  The k-means++ steps
    compute in float64 (the reference's potentials), so every backend draws the same centres.

    A safe fallback: if compiling or launching a kernel fails (out of resources, an arch or
    driver Triton cannot serve), the call is answered by the generic set this one extends,
    with a :class:`~kmeans_xp._kernels.KernelFallbackWarning` naming the cause (one per device
    and process), and the failure is remembered in :data:`FAILED` for the process (per device
    and configuration; per device for a failure that is not about resources): later calls
    and fits go to the generic set directly, without retrying.
    """

    name = "triton"

    @property
    def spec(self) -> DeviceSpec:
        """The description of the device the data live on (its tiles are chosen for it)."""
        spec = self.__dict__.get("_spec")
        if spec is None:
            dev = self.device
            if not isinstance(dev, (torch.device, str, int)):  # a CuPy device
                dev = torch.device("cuda", int(getattr(dev, "id", 0)))
            spec = self.__dict__["_spec"] = device_spec(dev)
        return spec

    @spec.setter
    def spec(self, value: DeviceSpec) -> None:
        self.__dict__["_spec"] = value

    def _frame(self, data):
        return {"shift": data.shift, "inv_scale": data.inv_scale}

    def _guard(self, config: Any, fast: Any, slow: Any) -> Any:
        """``fast()``; on a failure of the Triton kernels, ``slow()`` (the generic set)."""
        spec = self.spec
        cfg = tuple(sorted(config.items()))
        if (spec, None) in FAILED or (spec, cfg) in FAILED:
            return slow()
        warn_precision(spec, self.precision)
        try:
            return fast()
        except Exception as exc:  # noqa: BLE001 - any failure of compiling or launching
            if _memory_error(exc):
                raise  # the device is full: the generic set would not fit either
            key = (spec, cfg) if _resource_error(exc) else (spec, None)
            FAILED[key] = cause = f"{type(exc).__name__}: {str(exc).strip()[:300]}"
            if not any(s == spec for s, _ in list(FAILED)[:-1]):  # one warning per device
                scope = (f"the tiles {dict(cfg)}" if key[1] is not None else "every kernel")
                from . import KernelFallbackWarning

                warnings.warn(
                    f"The Triton kernels failed on {spec.name or 'the GPU'} (sm_{spec.arch}): "
                    f"{cause}. This process continues on the generic {super().name} kernel "
                    f"set for {scope} on this device.", KernelFallbackWarning, stacklevel=4)
            return slow()

    def _assign_cfg(self, data, centers) -> dict:
        return assign_config(data.n, data.d, int(centers.shape[0]), self.precision, self.spec)

    # data streamed from the host, or with a frame the kernels do not apply (cosine's unit
    # rows): those passes take the parent set's chunk loop (``fusable``)
    def lloyd_pass(self, data, centers, *, need_inertia=False):
        slow = lambda: super(_TritonPasses, self).lloyd_pass(  # noqa: E731
            data, centers, need_inertia=need_inertia)
        if not fusable(data):
            return slow()
        return self._guard(self._assign_cfg(data, centers), lambda: lloyd_pass(
            data.X, centers, data.weights, precision=self.precision, need_inertia=need_inertia,
            deterministic=self.deterministic, spec=self.spec, **self._frame(data)), slow)

    def assign(self, data, centers):
        slow = lambda: super(_TritonPasses, self).assign(data, centers)  # noqa: E731
        if not fusable(data):
            return slow()
        return self._guard(self._assign_cfg(data, centers), lambda: assign(
            data.X, centers, precision=self.precision, spec=self.spec, **self._frame(data)),
            slow)

    def labels_inertia(self, data, centers, *, return_inertia=True):
        if not fusable(data):
            return super().labels_inertia(data, centers, return_inertia=return_inertia)
        # ``mins`` are direct differences to the chosen centre (accurate in float32)
        labels, mins = self.assign(data, centers)
        if not return_inertia:
            return labels, None
        xp = self.xp
        acc = data.accumulator_dtype()
        m = xp.astype(mins, acc)
        w = data.weights
        return labels, xp.sum(m if w is None else m * xp.astype(w, acc))

    def _kpp_fusable(self, data) -> bool:
        return fusable(data) and data.accumulator_dtype() == self.xp.float64

    def kpp_potentials(self, data, closest, cand):
        slow = lambda: super(_TritonPasses, self).kpp_potentials(  # noqa: E731
            data, closest, cand)
        if not self._kpp_fusable(data):
            return slow()
        return self._guard(kpp_config(data.d, int(cand.shape[0])), lambda: kpp_potentials(
            data.X, closest, cand, data.weights, **self._frame(data)), slow)

    def kpp_update(self, data, closest, center):
        slow = lambda: super(_TritonPasses, self).kpp_update(  # noqa: E731
            data, closest, center)
        if not self._kpp_fusable(data):
            return slow()
        return self._guard(kpp_config(data.d, 1), lambda: kpp_update(
            data.X, closest, center, **self._frame(data)), slow)


class TritonTorchKernels(_TritonPasses, TorchKernels):
    """Fused Triton passes on torch CUDA tensors (CPU tensors under the interpreter)."""


class TritonCupyKernels(_TritonPasses, CupyKernels):  # pragma: no cover - needs a GPU
    """Fused Triton passes on CuPy arrays (launched through zero-copy DLPack views)."""
