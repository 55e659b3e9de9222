"""The kernel contract as typing Protocols: what a kernel set is (:class:`KernelSet`) and what
it is handed (:class:`KernelData`).

:class:`~kmeans_xp._kernels._reference.ReferenceKernels` is the contract's pure-standard
implementation and the base class of every other set; the signatures below are its own, and
``tests/test_kernel_protocol.py`` checks that every kernel set keeps them.  The docstrings
state the contract; ``_reference.py`` says how the reference meets it.

Conventions (every method)
--------------------------
- *Working coordinates* ("the frame"): kernels see ``Xt = X * inv_scale - shift`` where X is
  the user's (n, d) array in its storage dtype (float32, float64, float16, bfloat16; integer
  and bool data are converted before they reach a kernel), ``inv_scale`` a Python float (an
  exact power of two) and ``shift`` a (d,) array in the compute dtype or None.  A set that
  reads ``data.X`` itself (the fused sets) applies the frame on the fly, per block, and never
  copies X whole; the others take ``Xt`` chunk by chunk from ``data.chunks()``.
- Compute dtype (``self.dtype``): float32 for float32/float16/bfloat16 storage, float64 for
  float64.  Reductions over n values accumulate in ``data.accumulator_dtype()`` (float64 where
  the device has it).
- Centres: (k, d), compute dtype, working coordinates, contiguous.  Weights: (n,) compute
  dtype, or None for unit weights.  Labels: int64 (n,); on ties the first (lowest-index)
  nearest centre wins.
- Distances: squared Euclidean in working coordinates, clipped at >= 0 (the Manhattan set:
  L1 distances, same contract).  ``||c||^2 - 2 xt.c`` may serve the argmin; a distance that
  is returned is computed by direct differences where the docstring says so.
- Deterministic: with ``deterministic=True`` results are bit-identical from run to run
  (fixed-order reductions, no float atomics).
- ``precision`` ('exact', 'tf32', 'bf16'): only tensor-core kernels tell the modes apart;
  'exact' gives the labels of a float64 computation except on proven near-ties.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._metric import Metric

__all__ = ["KernelData", "KernelSet"]


@runtime_checkable
class KernelData(Protocol):
    """What kernel methods receive as ``data``: X in chunks, with its frame and weights.

    Implemented by :class:`kmeans_xp._data.ChunkedData` and its subclasses (streamed,
    sparse); kernels read it and never write its frame.
    """

    xp: Any  #: the array namespace
    device: Any  #: the device of X
    dtype: Any  #: the compute dtype
    X: Any  #: (n, d) in the storage dtype (the sparse source: its container)
    weights: Any  #: (n,) compute dtype, or None
    n: int
    d: int
    rows: int  #: rows per chunk
    budget: int  #: elements of a chunk's (rows x max(k, d)) work block
    buffers: dict  #: work blocks a set may reuse from call to call
    cache: dict  #: values kept for the fit (e.g. row norms for k-means++)
    #: rows moved to the device chunk by chunk (a fused set must take the chunk loop)
    streamed: bool

    # the frame, read-only (properties of ChunkedData)
    @property
    def shift(self) -> Any:
        """(d,) compute dtype, or None."""
        ...

    @property
    def inv_scale(self) -> float:
        """An exact power of two."""
        ...

    @property
    def metric(self) -> Metric:
        """The metric of the fit (its ``kernel``, whether rows are made unit length)."""
        ...

    def chunks(self, rows: int | None = None) -> Iterator[tuple[int, int, Any, Any]]:
        """``(start, stop, Xt, w)`` for each chunk of ``rows`` rows (default: ``self.rows``):
        the rows in working coordinates and their weights (None for unit weights)."""
        ...

    def ranges(self, rows: int | None = None) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each chunk."""
        ...

    def accumulator_dtype(self) -> Any:
        """The dtype of reductions over n values: float64 where the device has it."""
        ...


@runtime_checkable
class KernelSet(Protocol):
    """One kernel set, chosen once per fit by :func:`kmeans_xp._kernels.select`.

    Constructed as ``KernelSet(xp, device, dtype, *, precision='exact', deterministic=True)``
    (see :class:`~kmeans_xp._kernels._reference.ReferenceKernels`).  Two layers: *chunk
    primitives* (vendor sets override them with faster calls of their library) and *whole
    passes* over a :class:`KernelData` (fused sets override them and own the loop).
    """

    name: str  #: the set's name ('reference', 'numpy', 'torch', 'cupy', 'cpu', 'triton', ...)
    xp: Any
    device: Any
    dtype: Any  #: the compute dtype
    precision: str
    deterministic: bool

    def small_work(self, flops: int) -> ContextManager[Any]:
        """A context for a loop of small operations of about ``flops`` each (mini-batch
        steps): a set may run them on one thread there."""
        ...

    # -- chunk primitives ---------------------------------------------------------------
    def partial_sq_distances(
        self, Xt: Any, m2t: Any, c_sq: Any, buffers: dict | None = None
    ) -> Any:
        """``||c_j||^2 - 2 xt_i . c_j`` (m, k) of a chunk, from ``m2t = -2 C^T`` (d, k) and
        ``c_sq = ||c||^2`` (k,); with ``buffers`` the result may be a reused block."""
        ...

    def min_argmin(self, D: Any) -> tuple[Any, Any]:
        """Row minima (m,) of ``D`` and the first index (m,) where each is reached."""
        ...

    def argmin_rows(self, D: Any) -> Any:
        """The first index of each row's minimum (m,)."""
        ...

    def cluster_sums(self, Xt: Any, labels: Any, w: Any, k: int) -> tuple[Any, Any]:
        """Weighted sums (k, d) of the rows of ``Xt`` per label and weights per label (k,),
        deterministic."""
        ...

    def sq_dist_to_assigned_chunk(
        self, Xt: Any, centers: Any, labels: Any, buffers: dict | None = None
    ) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (m,) of a chunk by direct differences."""
        ...

    def assign_chunk(
        self, Xt: Any, m2t: Any, c_sq: Any, *, need_min: bool = False, buffers: dict | None = None
    ) -> tuple[Any, Any]:
        """Labels (m,) of a chunk and, with ``need_min``, ``min_j ||c_j||^2 - 2 xt.c_j``
        (else None)."""
        ...

    # -- whole passes ---------------------------------------------------------------------
    def lloyd_pass(
        self, data: KernelData, centers: Any, *, need_inertia: bool = False
    ) -> tuple[Any, Any, Any, Any]:
        """One assignment and accumulation pass: labels (n,) int64, sums (k, d)
        ``S_j = sum_{l_i = j} w_i xt_i``, counts (k,) ``sum_{l_i = j} w_i`` (compute dtype)
        and, with ``need_inertia``, ``sum_i w_i ||xt_i - c_{l_i}||^2`` (0-d, accumulator
        dtype; else None).  Deterministic."""
        ...

    def assign(self, data: KernelData, centers: Any) -> tuple[Any, Any]:
        """Nearest-centre labels (n,) and the squared distances to them (n,), clipped at 0."""
        ...

    def labels_inertia(
        self, data: KernelData, centers: Any, *, return_inertia: bool = True
    ) -> tuple[Any, Any]:
        """Labels (n,) and the weighted inertia (0-d, accumulator dtype) by direct
        differences (None without ``return_inertia``)."""
        ...

    def sq_dist_to_assigned(self, data: KernelData, centers: Any, labels: Any) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (n,) by direct differences."""
        ...

    def inertia_for_labels(self, data: KernelData, centers: Any, labels: Any) -> Any:
        """``sum_i w_i ||xt_i - c_{labels_i}||^2`` (0-d, accumulator dtype)."""
        ...

    def sq_distances(self, data: KernelData, centers: Any) -> Any:
        """Squared distances (n, k) to every centre (``transform``); exact 0 where a row
        equals its nearest centre."""
        ...

    # -- mini-batch steps -----------------------------------------------------------------
    def minibatch_assign(self, data: KernelData, centers: Any, work: dict | None = None) -> Any:
        """The statistics of a mini-batch against ``centers``: a
        :class:`~kmeans_xp._kernels._reference.BatchStats` (weight per centre, the batch
        inertia, sums or labels); ``work`` is kept with the centres from step to step."""
        ...

    def minibatch_move(
        self,
        data: Any,
        stats: Any,
        centers: Any,
        counts: Any,
        counts_new: Any,
        *,
        reassign: Any = None,
        need_diff: bool = False,
        owned: bool = False,
        work: dict | None = None,
    ) -> tuple[Any, Any]:
        """The centres after a step (scikit-learn's per-centre learning rate, then the
        reassignment ``reassign``) and, with ``need_diff``, the squared norm of their change
        (else None).  A set may write into ``centers`` when ``owned``."""
        ...

    # -- small whole-array tests of the solver -------------------------------------------
    def frame_stats(
        self, data: KernelData, shift: Any = None, big: float = float("inf")
    ) -> tuple | None:
        """``(finite, amax, sums, sqs)`` of X in the frame from one pass, or None (the
        caller then runs its pure-standard loop)."""
        ...

    def labels_equal(self, a: Any, b: Any) -> Any:
        """0-d bool array: whether two labellings are equal."""
        ...

    def n_distinct(self, labels: Any, n_clusters: int) -> int:
        """How many distinct labels ``labels`` holds (one host sync)."""
        ...

    # -- greedy k-means++ -------------------------------------------------------------------
    def kpp_potentials(self, data: KernelData, closest: Any, cand: Any) -> Any:
        """``pots_c = sum_i w_i min(closest_i, ||xt_i - cand_c||^2)`` (m,) for the (m, d)
        candidates, accumulator dtype; one pass over X for all of them."""
        ...

    def kpp_steps(
        self, data: KernelData, closest: Any, weighted: Any, pot: Any, U: Any
    ) -> Any | None:
        """Every greedy k-means++ step after the first centre in one call, from the steps'
        host uniforms ``U`` (k - 1, m): the chosen rows' indices (k - 1,), or None: the
        solver runs the steps from ``kpp_potentials``/``kpp_update`` (JAX provides it: one
        jit)."""
        ...

    def lloyd_update(
        self, data: KernelData, labels: Any, sums: Any, counts: Any, centers: Any, labels_old: Any
    ) -> tuple | None:
        """A Lloyd iteration's Euclidean centre update and convergence code in one call
        ``(updated, code)`` (code: -2 empty cluster, -1 unchanged labels, else the squared
        shift), or None: the driver computes them (JAX provides it: one jit)."""
        ...

    def kpp_update(self, data: KernelData, closest: Any, center: Any) -> Any:
        """Squared distance (n,) of each row to ``center`` (1, d), or its minimum with
        ``closest`` when given; accumulator dtype."""
        ...

    # -- batched primitives: a leading axis of independent problems ------------------------
    def batched_partial_sq_distances(
        self, Xt: Any, centers: Any, buffers: dict | None = None
    ) -> Any:
        """``||c_j||^2 - 2 xt_i . c_j`` (g, m, k) for Xt (g, m, d) and centres (g, k, d)."""
        ...

    def batched_argmin(self, D: Any) -> Any:
        """First index of each row's minimum (g, m)."""
        ...

    def batched_cluster_sums(self, Xt: Any, labels: Any, w: Any, k: int) -> tuple[Any, Any]:
        """Weighted sums (g, k, d) and weights (g, k) per label."""
        ...

    def batched_sq_diff(self, Xt: Any, centers: Any, labels: Any) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (g, m) by direct differences."""
        ...

    # -- batched whole passes: the source has a leading problem axis (B, n, d) -------------
    def batched_lloyd_pass(
        self, data: Any, centers: Any, problems: Any = None, *, need_inertia: bool = False
    ) -> tuple[Any, Any, Any, Any]:
        """Labels (a, n), sums (a, k, d), counts (a, k) and inertia (a,) or None of the
        problems ``problems`` (host ids; None: all), centres (a, k, d) in working
        coordinates; masked rows weigh nothing; sums in a fixed order."""
        ...

    def batched_labels_inertia(
        self, data: Any, centers: Any, problems: Any = None
    ) -> tuple[Any, Any]:
        """Labels (a, n) and inertia (a,) by direct differences (the final pass)."""
        ...

    def batched_sq_dist_to_assigned(
        self, data: Any, centers: Any, labels: Any, problems: Any = None
    ) -> Any:
        """``||xt_i - c_{labels_i}||^2`` (a, n); 0 where a label lies outside [0, k)."""
        ...

    def batched_frame_stats(self, data: Any) -> tuple | None:
        """``(finite, amax, sums, sqs)`` per problem of the valid rows in the data's frame
        from one compiled read (host float64), or None (the source's own loop runs)."""
        ...

    def batched_kmeans_plusplus(
        self, data: Any, n_clusters: int, first_u: Any, step_u: Any, n_local_trials: int
    ) -> Any:
        """Greedy k-means++ for every problem from host uniforms: row indices (B, k)."""
        ...

    def batched_searchsorted(self, sorted_rows: Any, values: Any) -> Any:
        """``searchsorted(sorted_rows[b], values[b], side='left')`` for each row b (B, m)."""
        ...
