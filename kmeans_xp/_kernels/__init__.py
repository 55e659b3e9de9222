"""The kernel seam: one set of kernels chosen once per fit from (namespace, device, dtype, options).

Working coordinates ("the frame"): the solvers work on Xt = X * inv_scale - shift, where
- X is the user's (n, d) array in its STORAGE dtype (float32, float64, float16, bfloat16; ints/bools
  are converted by the caller before they reach a kernel),
- inv_scale is a Python float, an exact power of two (1.0 almost always),
- shift is a (d,) array in the COMPUTE dtype, or None (no centring).
Compute dtype: float32 for float32/float16/bfloat16 storage, float64 for float64.
Kernels must apply the frame ON THE FLY (in registers / per cache block): never copy X whole, never
make a centred copy of a chunk per iteration if avoidable.
Centres passed to kernels are (k, d) in the compute dtype, in working coordinates, contiguous.
Weights: (n,) compute dtype or None (unit weights).
Labels: int64 (n,). Ties: the FIRST nearest centre (lowest index) wins.
Distances: squared Euclidean in working coordinates, clipped at >= 0.

Whole-pass kernels (what a backend kernel set provides; the reference is the pure Array API code in
kmeans_xp/_kernels/_reference.py, owned by the lead):

  lloyd_pass(X, centers, weights, shift, inv_scale, *, need_inertia)
      -> labels (n,) int64, sums (k, d) compute dtype, counts (k,) compute dtype,
         inertia (0-d or float, sum_i w_i * ||xt_i - c_{l_i}||^2) or None
      sums_j = sum_{i: l_i = j} w_i * xt_i ; counts_j = sum_{i: l_i=j} w_i.
      MUST be deterministic: bit-identical results from run to run (fixed-order reductions; no
      float atomics unless the user opts in with deterministic=False).
  assign(X, centers, shift, inv_scale) -> labels (n,) int64, mins (n,) (min sq distance)
  kpp_potentials(X, closest, cand, weights, shift, inv_scale)
      closest: (n,) current squared distance of each row to its nearest chosen centre;
      cand: (m, d) candidate centres (working coords), m = 2 + floor(ln k), small.
      -> pots (m,) float64 where possible: pots_c = sum_i w_i * min(closest_i, ||xt_i - cand_c||^2)
      and (optionally) the per-row distances to one chosen candidate for the closest update:
  kpp_update(X, closest, center(1,d), shift, inv_scale) -> new closest (n,) = min(closest, d(x, center))
  minibatch_assign(batch, centers, work) -> BatchStats (weights per centre, inertia, sums or labels)
  minibatch_move(batch, stats, centers, counts, counts_new, *, reassign, need_diff, owned, work)
      -> centers after the step (scikit-learn's per-centre learning rate, reassignment), shift;
      the reference is functional, the sparse set writes in place into centres the caller owns

Numerical rule for the fast distance: ||c||^2 - 2 xt.c (row term ||xt||^2 added only where the
distance itself, not the argmin, is needed), accumulated in fp32 for fp32 compute.

The default precision must give labels equal to a float64 computation except on proven near-ties.
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
triton             fused assignment on tensor cores, deterministic sums          torch CUDA,
                   (``_triton``; optional: ``pip install triton``)               CuPy
cpu                fused pass per cache block: GEMM + argmin + sums, threads     NumPy,
                   (``_cpu``; optional: ``pip install numba threadpoolctl``)      torch CPU
manhattan          L1 distances for ``metric='manhattan'`` (``_manhattan``)      any namespace
sparse             sparse-dense products, scatter of stored values (``_sparse``)  sparse X
=================  ============================================================  ==============

``select(..., sparse=True)`` gives the sparse set (over the namespace's dense set, which it
hands dense data to) for a fit on sparse X.

``KMEANS_XP_KERNELS=generic`` (environment) turns the optional accelerators off, so the
vendor sets run; ``KMEANS_XP_KERNELS=reference`` runs the pure-standard set everywhere.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from .._compat import (is_cupy_namespace, is_jax_namespace, is_numpy_namespace,
                       is_torch_namespace)
from ._reference import ReferenceKernels

__all__ = ["ReferenceKernels", "PRECISIONS", "available_sets", "select"]

#: Precision modes of the distance computation (only tensor-core kernels tell them apart).
PRECISIONS = ("exact", "tf32", "bf16")


def _triton_set(xp: Any, device: Any, dtype: Any, *, interpreted: bool = False) -> type | None:
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


def _cpu_set(xp: Any, device: Any) -> type | None:
    """The fused CPU set (numba) for NumPy arrays and torch CPU tensors, or None."""
    cpu = is_numpy_namespace(xp) or (is_torch_namespace(xp)
                                     and getattr(device, "type", "") == "cpu")
    if not cpu or importlib.util.find_spec("numba") is None:
        return None
    from . import _cpu

    return _cpu.FusedNumpyKernels if is_numpy_namespace(xp) else _cpu.FusedTorchKernels


def _vendor_set(xp: Any) -> type:
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
           metric: str = "euclidean", sparse: bool = False) -> ReferenceKernels:
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
    metric : {'euclidean', 'cosine', 'manhattan'}
        'cosine' runs the Euclidean kernels on unit rows (the data's frame normalises them);
        'manhattan' has its own L1 set.
    sparse : bool
        The data is sparse (``kmeans_xp._sparse.SparseData``): the sparse set, over the
        dense set chosen as above.
    """
    prefer = prefer or os.environ.get("KMEANS_XP_KERNELS") or None
    if prefer not in (None, "reference", "generic"):
        raise ValueError(f"Unknown kernel preference {prefer!r} (KMEANS_XP_KERNELS): "
                         "expected 'reference' or 'generic'.")
    if metric == "manhattan":
        from ._manhattan import ManhattanKernels

        cls = ManhattanKernels
    elif prefer == "reference":
        cls = ReferenceKernels
    else:
        fused = prefer is None and (_triton_set(xp, device, dtype) or _cpu_set(xp, device))
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
