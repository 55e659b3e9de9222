"""The kernel seam: one set of kernels chosen once per fit from (namespace, device, dtype, options).

The contract a kernel set keeps (its methods, their signatures and what they compute) is
written as a typing Protocol, :class:`kmeans_xp._kernels._protocol.KernelSet`, and what its
methods are handed as ``data`` as :class:`~kmeans_xp._kernels._protocol.KernelData`; the
conventions (working coordinates ``Xt = X * inv_scale - shift``, compute and accumulator
dtypes, ties, determinism, precision modes) are in that module's docstring.
:class:`~kmeans_xp._kernels._reference.ReferenceKernels` (pure Array API standard) is the
contract's implementation that every other set derives from and is tested against
(``tests/test_kernel_protocol.py`` checks the signatures, ``tests/test_kernels.py`` the
results).

Kernel sets (``select`` picks one per fit; each is tested against the reference on every
backend it serves):

=================  ============================================================  ==============
set                what                                                          serves
=================  ============================================================  ==============
reference          pure standard, chunk loop in Python (``_reference``)           any namespace
numpy              BLAS into reused blocks, one-hot GEMM / bincount (``_numpy``)  NumPy
torch              addmm, min(dim=1), index_add_ (``_torch``)                     torch CPU/CUDA
cupy               in-place products, scatter_add when allowed (``_cupy``)        CuPy
jax                each pass one jitted scan over chunks (``_jax``)               JAX
triton             fused assignment on tensor cores, deterministic sums,         torch CUDA,
                   float64 k-means++; tiles per device, a remembered fallback    CuPy
                   to the vendor set (``_triton``; ``pip install triton``)
cpu                fused pass per cache block: GEMM + argmin + sums, threads     NumPy,
                   (``_cpu``; optional: ``pip install numba threadpoolctl``)      torch CPU
manhattan          L1 distances for ``metric='manhattan'`` (``_manhattan``)      any namespace
sparse             sparse-dense products, scatter of stored values (``_sparse``)  sparse X
=================  ============================================================  ==============

``select(..., sparse=True)`` gives the sparse set (over the namespace's dense set, which it
hands dense data to) for a fit on sparse X.

``KMEANS_XP_KERNELS=generic`` (environment) turns the optional accelerators off, so the
vendor sets run; ``KMEANS_XP_KERNELS=reference`` runs the pure-standard set everywhere.

The fused CPU set compiles its passes the first time they run in an environment (numba,
20-30 s on 2 cores; cached on disk for every later process).  A fit of data smaller than
:data:`FUSED_CPU_MIN_ELEMENTS` (n * d; ``$KMEANS_XP_FUSED_CPU_MIN_ELEMENTS``) runs the vendor
set instead, where the compiled pass would save milliseconds: a first fit of a small data set
(iris, a textbook exercise) does not wait for a compiler.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .._compat import is_cupy_namespace, is_jax_namespace, is_numpy_namespace, is_torch_namespace
from .._validation import PRECISIONS  # the modes of the 'precision' parameter
from ._reference import ReferenceKernels

__all__ = ["ReferenceKernels", "PRECISIONS", "KernelFallbackWarning", "available_sets", "select",
           "FUSED_CPU_MIN_ELEMENTS"]

#: the smallest data (n * d elements) a fit runs the fused CPU set on (see the module's text)
FUSED_CPU_MIN_ELEMENTS = 1 << 16



class KernelFallbackWarning(RuntimeWarning):
    """A fused kernel set (Triton) failed to compile or launch on this device: the fit goes on
    with the generic set, and the failure is remembered for the process."""


def _triton_set(xp: Any, device: Any, dtype: Any, *,
                interpreted: bool = False) -> type[ReferenceKernels] | None:
    """The Triton set for this data, or None (not installed, not a GPU, float64 data).

    Only CUDA torch tensors and CuPy arrays get it by default; with ``interpreted`` (tests),
    CPU torch tensors too when Triton's interpreter is on.
    """
    on_gpu = is_cupy_namespace(xp) or (is_torch_namespace(xp)
                                       and getattr(device, "type", "") == "cuda")
    on_interpreter = (interpreted and is_torch_namespace(xp)
                      and getattr(device, "type", "") == "cpu"
                      and os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"))
    if not (on_gpu or on_interpreter) or importlib.util.find_spec("triton") is None:
        return None
    from . import _triton

    if not _triton.supports(dtype) or _triton.INTERPRETED != on_interpreter:
        return None
    return _triton.TritonCupyKernels if is_cupy_namespace(xp) else _triton.TritonTorchKernels


def _cpu_set(xp: Any, device: Any) -> type[ReferenceKernels] | None:
    """The fused CPU set (numba) for NumPy arrays and torch CPU tensors, or None."""
    cpu = is_numpy_namespace(xp) or (is_torch_namespace(xp)
                                     and getattr(device, "type", "") == "cpu")
    if not cpu or importlib.util.find_spec("numba") is None:
        return None
    from . import _cpu

    return _cpu.FusedNumpyKernels if is_numpy_namespace(xp) else _cpu.FusedTorchKernels


def _fused_cpu_min_elements() -> int:
    raw = os.environ.get("KMEANS_XP_FUSED_CPU_MIN_ELEMENTS", "")
    try:
        return int(raw) if raw else FUSED_CPU_MIN_ELEMENTS
    except ValueError:
        raise ValueError(f"KMEANS_XP_FUSED_CPU_MIN_ELEMENTS must be an int; got {raw!r}.") from None


def _vendor_set(xp: Any) -> type[ReferenceKernels]:
    if is_numpy_namespace(xp):
        from ._numpy import NumpyKernels

        return NumpyKernels
    if is_torch_namespace(xp):
        from ._torch import TorchKernels

        return TorchKernels
    if is_cupy_namespace(xp):
        from ._cupy import CupyKernels

        return CupyKernels
    if is_jax_namespace(xp):
        from ._jax import JaxKernels

        return JaxKernels
    return ReferenceKernels


def select(xp: Any, device: Any, dtype: Any, *, precision: str = "exact",
           deterministic: bool = True, prefer: str | None = None,
           metric: str = "sqeuclidean", sparse: bool = False,
           n_elements: int | None = None) -> ReferenceKernels:
    """The kernel set for data of namespace ``xp`` on ``device`` computed in ``dtype``.

    Called once per fit (and once per ``predict``/``transform``/``score`` call).

    Parameters
    ----------
    xp, device, dtype : where the data live and the compute dtype (float32 or float64).
    precision : {'exact', 'tf32', 'bf16'}
    deterministic : bool
        False lets GPU kernels accumulate with atomics (faster, not bit-reproducible).
    prefer : {None, 'reference', 'generic'}
        'reference' forces the pure-standard set; 'generic' skips the optional
        accelerators (Triton, numba).  Default: ``$KMEANS_XP_KERNELS`` or the fastest.
    metric : {'sqeuclidean', 'l1'} (or a metric's name)
        The distance the kernels compute: a metric's ``kernel`` (``_metric.Metric``).
        'cosine' runs the squared Euclidean kernels on unit rows (the frame normalises
        them); 'l1' ('manhattan') has its own set.
    sparse : bool
        The data is sparse (``kmeans_xp._sparse.SparseData``): the sparse set, over the
        dense set chosen as above.
    n_elements : int or None
        The size of the data (n * d): below :data:`FUSED_CPU_MIN_ELEMENTS` the fused CPU
        set is not chosen (nor numba imported).  None: no size rule.
    """
    prefer = prefer or os.environ.get("KMEANS_XP_KERNELS") or None
    if prefer not in (None, "reference", "generic"):
        raise ValueError(f"Unknown kernel preference {prefer!r} (KMEANS_XP_KERNELS): "
                         "expected 'reference' or 'generic'.")
    cls: type[ReferenceKernels]
    if metric in ("l1", "manhattan"):
        from ._manhattan import ManhattanKernels

        cls = ManhattanKernels
    elif prefer == "reference":
        cls = ReferenceKernels
    else:
        small = n_elements is not None and n_elements < _fused_cpu_min_elements()
        fused = prefer is None and (_triton_set(xp, device, dtype)
                                    or (None if small else _cpu_set(xp, device)))
        cls = fused or _vendor_set(xp)
    kernels = cls(xp, device, dtype, precision=precision, deterministic=deterministic)
    if sparse:
        from ._sparse import SparseKernels

        return SparseKernels(xp, device, dtype, precision=precision,
                             deterministic=deterministic, dense=kernels)
    return kernels


def available_sets(xp: Any, device: Any, dtype: Any, **options: Any) -> dict:
    """Every kernel set that can run on data of ``xp``/``device``/``dtype`` here, by name.

    The reference set is always among them; the tests compare each of the others with it.
    """
    sets = {"reference": ReferenceKernels(xp, device, dtype, **options)}
    vendor = _vendor_set(xp)
    if vendor is not ReferenceKernels:
        sets[vendor.name] = vendor(xp, device, dtype, **options)
    for fused in (_triton_set(xp, device, dtype, interpreted=True), _cpu_set(xp, device)):
        if fused is not None:
            sets[fused.name] = fused(xp, device, dtype, **options)
    return sets
