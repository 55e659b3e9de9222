"""The block machinery every Dask driver shares: the frame, block tasks, the map-reduce.

:class:`DaskBlocks` holds X (persisted, one column chunk) as a list of block keys; its
:meth:`~DaskBlocks.run` is the one map-reduce every pass goes through: a task per block runs
the fit's kernel set (``_kernels.select`` for the block's namespace: NumPy on CPU workers,
CuPy on GPU workers) on that block, in the same working coordinates as an in-memory fit, and
returns small host results; a tree of reduce tasks (``FANIN`` children per node) adds them
up **in block order**, so the result does not depend on which worker ran what, or when.
What must stay on the workers between passes is persisted there and referenced by key.

The frame (power-of-two scale and centring on the column means, DESIGN.md) comes from one
pass: per block, the count, mean and sum of squared deviations (Chan et al.), combined in
block order, so the variance is accurate without a second pass.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from typing import Any

import numpy as np

from .._compat import (
    array_namespace,
    compute_dtype,
    device_of,
    is_float64_supported,
    to_numpy,
)
from .._data import ChunkedData
from .._frame import LOG2_RANGE, build_frame
from .._frame import Frame as WorkingFrame
from .._kernels import select
from .._metric import get_metric
from .._validation import _is_real, check_2d, check_dtype

#: Children per reduce task: the reduction tree has ``ceil(log_FANIN(blocks))`` levels.
FANIN = 8

#: Diagnostics of the last fit in this process: (phase, number of tasks in the graph
#: submitted) per synchronisation.  The tests use it to prove that the graph does not grow.
last_fit_log: list = []

_NP = array_namespace(np.empty(0))  # the array_api_compat NumPy namespace (client side)


def is_dask_collection(x: Any) -> bool:
    """Whether ``x`` is a ``dask.array.Array`` (without importing Dask)."""
    from array_api_compat import is_dask_array

    return is_dask_array(x)


class Frame:
    """What every block task needs besides its block: the fit's frame (a
    :class:`kmeans_xp._frame.Frame` whose shift is a host array) and the kernel options.

    A plain class (not a dataclass or tuple) so that Dask treats it as one opaque value.
    """

    def __init__(self, frame: WorkingFrame, dtype: str, k: int, chunk_size: int | None,
                 precision: str, deterministic: bool) -> None:
        self.frame, self.dtype, self.k = frame, dtype, k
        self.chunk_size, self.precision, self.deterministic = chunk_size, precision, deterministic

    def on(self, xp: Any, device: Any) -> WorkingFrame:
        """The frame with its shift on a block's device."""
        if self.frame.shift is None:
            return self.frame
        return dataclasses.replace(self.frame, shift=xp.asarray(
            self.frame.shift, dtype=getattr(xp, self.dtype), device=device))


# =============================================================================================
# Block tasks: run on the workers, one per row block.  Inputs: the block (NumPy or CuPy), its
# weights (or None), host arrays; outputs: host NumPy results (small) and, where a result has
# to stay on the worker, a block-sized array of the block's namespace.
# =============================================================================================
def _block_data(xb: Any, wb: Any, frame: Frame, k: int | None = None) -> ChunkedData:
    """The block as the kernels see it, with the fit's frame and the block's kernel set."""
    xp, dev = array_namespace(xb), device_of(xb)
    dtype = getattr(xp, frame.dtype)
    kern = select(xp, dev, dtype, precision=frame.precision, deterministic=frame.deterministic,
                  metric=frame.frame.metric.kernel)
    if wb is not None and wb.dtype != dtype:
        wb = xp.astype(wb, dtype)
    data = ChunkedData(xb, xp=xp, dtype=dtype, weights=wb, n_clusters=k or frame.k,
                       chunk_size=frame.chunk_size, kernels=kern)
    data.use_frame(frame.on(xp, dev))
    return data


def _dev(data: ChunkedData, a: np.ndarray) -> Any:
    """A host array on the block's device, in the compute dtype."""
    return data.xp.asarray(np.asarray(a), dtype=data.dtype, device=data.device)


def _host64(a: Any) -> np.ndarray:
    return np.asarray(to_numpy(a), dtype=np.float64)


def _block_moments(xb: Any, wb: Any, dtype: str, scale: float) -> dict:
    """Finite flags, max |x|, count, mean and M2 (sum of squared deviations) per column,
    and the weight checks, of one block.

    Deviations are taken from the block's first row (in the compute dtype: accurate, as
    that row lies within the data's spread), summed per chunk in the compute dtype and over
    chunks in float64 (where the device has it); the block's mean and M2 follow without
    cancellation.  The mean only sets the frame's shift (any nearby point serves) and M2
    the scale of ``tol``: neither needs more than float32 accuracy.
    """
    xp = array_namespace(xb)
    dt = getattr(xp, dtype)
    acc = xp.float64 if is_float64_supported(xp, device_of(xb)) else dt
    data = ChunkedData(xb, xp=xp, dtype=dt, n_clusters=1)
    data.use_frame(WorkingFrame(scale))
    s1 = s2 = None
    ref: Any = None  # the block's first row, once a chunk is summed
    amax = 0.0
    for s, e in data.ranges():
        c = data._raw(s, e)
        # NaN and inf propagate through max and min: one check for both
        top = float(xp.max(xp.stack([xp.max(c), -xp.min(c)])))
        if not math.isfinite(top):
            amax = top if math.isnan(top) or math.isnan(amax) else math.inf
            break
        amax = max(amax, top)
        if amax > 2.0 ** LOG2_RANGE:
            continue  # these sums would be discarded (a rescaled pass follows) and overflow
        if ref is None:
            ref = c[:1, :]
        # column sums of a chunk by a product with ones (BLAS: 5x faster than sum(axis=0)),
        # accumulated over chunks in float64
        ones = xp.ones((1, e - s), dtype=dt, device=data.device)
        dev = c - ref
        p1 = xp.astype(xp.matmul(ones, dev)[0, :], acc)
        p2 = xp.astype(xp.matmul(ones, dev * dev)[0, :], acc)
        s1, s2 = (p1, p2) if s1 is None else (s1 + p1, s2 + p2)
    n = data.n
    finite = math.isfinite(amax)
    mean = m2 = None
    if finite and s1 is not None and amax <= 2.0 ** LOG2_RANGE:
        r, s1, s2 = _host64(ref[0, :]), _host64(s1), _host64(s2)
        mean = r + s1 / n
        m2 = np.maximum(s2 - s1 * s1 / n, 0.0)
    out = {"n": n if mean is not None else 0, "mean": mean, "m2": m2, "finite": finite,
           "has_nan": math.isnan(amax), "amax": amax, "w": None}
    if wb is not None:
        w = xp.astype(wb, acc)
        out["w"] = {"nan": bool(xp.any(xp.isnan(w))), "inf": bool(xp.any(xp.isinf(w))),
                    "neg": bool(xp.any(w < 0)),
                    "sum": np.array([float(xp.sum(xp.where(xp.isfinite(w), w,
                                                           xp.zeros_like(w))))])}
    return out


def _merge_moments(*parts: dict) -> dict:
    """Combine block moments in the given (block) order."""
    out = dict(parts[0])
    for p in parts[1:]:
        out["finite"] = out["finite"] and p["finite"]
        out["has_nan"] = out["has_nan"] or p["has_nan"]
        out["amax"] = max(out["amax"], p["amax"]) if out["finite"] else math.inf
        if p["mean"] is not None:
            if out["mean"] is None:
                out["n"], out["mean"], out["m2"] = p["n"], p["mean"], p["m2"]
            else:
                n, m = out["n"], p["n"]
                delta = p["mean"] - out["mean"]
                tot = n + m
                out["mean"] = out["mean"] + delta * (m / tot)
                out["m2"] = out["m2"] + p["m2"] + delta * delta * (n * m / tot)
                out["n"] = tot
        if p["w"] is not None:
            a, b = out["w"], p["w"]
            out["w"] = {"nan": a["nan"] or b["nan"], "inf": a["inf"] or b["inf"],
                        "neg": a["neg"] or b["neg"], "sum": np.concatenate([a["sum"], b["sum"]])}
    return out


def _label_counts(xp: Any, labels: Any, k: int) -> np.ndarray:
    """How many rows carry each label (k,), on the host."""
    host = np.asarray(to_numpy(labels))
    return np.bincount(host, minlength=k).astype(np.int64)


def _block_labels_inertia(xb, wb, C, frame):
    """Final assignment of a block: (labels int32, kept), (inertia, rows per label)."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    labels, inertia = data.kernels.labels_inertia(data, _dev(data, C))
    labels = xp.astype(labels, xp.int32)
    return labels, (float(inertia), _label_counts(xp, labels, frame.k))


def _concat_parts(*parts: tuple) -> tuple:
    """Tuples of host arrays concatenated field by field, in the given (block) order."""
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def _sum_parts(*parts: tuple) -> tuple:
    """Tuples of host arrays / numbers added field by field, in the given (block) order."""
    total = parts[0]
    for p in parts[1:]:
        total = tuple(a + b for a, b in zip(total, p))
    return total


def _block_take(xb, wb, frame, local, raw=False):
    """Rows ``local`` of the block (working coordinates, or as stored with ``raw``) and their
    weights, on the host."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    idx = xp.asarray(np.asarray(local, dtype=np.int64), device=data.device)
    rows = xp.take(xb, idx, axis=0) if raw else data.take_rows(idx)
    rows = np.asarray(to_numpy(rows))
    w = None if data.weights is None else _host64(xp.take(data.weights, idx))
    return rows, w



# =============================================================================================
# The client side
# =============================================================================================
def _name(prefix: str) -> str:
    return f"kmeans-xp-{prefix}-{uuid.uuid4().hex}"


def _tree_reduce(parts: list, fn: Any) -> Any:
    """``fn`` over ``parts`` as a tree of tasks with a fixed shape (FANIN children in block
    order per node): the same sums in the same order, wherever and whenever they run."""
    from dask import delayed

    while len(parts) > 1:
        parts = [delayed(fn, pure=False)(*parts[i:i + FANIN])
                 for i in range(0, len(parts), FANIN)]
    return parts[0]


def _n_tasks(*collections: Any) -> int:
    """Number of distinct keys in the graphs of ``collections`` (lists are flattened)."""
    keys: set = set()
    stack = list(collections)
    while stack:
        c = stack.pop()
        if isinstance(c, (list, tuple)):
            stack.extend(c)
        elif hasattr(c, "__dask_graph__"):
            keys.update(c.__dask_graph__().keys())
    return len(keys)


class DaskBlocks:
    """X (persisted, one column chunk) and its weights as lists of block keys.

    :meth:`run` is the one map-reduce every pass goes through.
    """

    def __init__(self, X: Any, w: Any) -> None:
        self.X, self.w = X, w
        self.sizes = [int(s) for s in X.chunks[0]]
        self.offsets = [int(o) for o in np.cumsum([0] + self.sizes[:-1])]
        xb = list(X.to_delayed().ravel())
        wb = [None] * len(xb) if w is None else list(w.to_delayed().ravel())
        self.live = [i for i, s in enumerate(self.sizes) if s > 0]  # empty blocks: no task
        self.xb = [xb[i] for i in self.live]
        self.wb = [wb[i] for i in self.live]

    def broadcast(self, value: Any, prefix: str) -> Any:
        """``value`` as one key of the graph: sent to the cluster once, fetched once per
        worker, however many blocks use it."""
        from dask import delayed

        return delayed(value, name=_name(prefix))

    def run(self, fn: Any, *args: Any, per_block: list | None = None, keep: bool = False,
            reduce: Any = _sum_parts, phase: str = "") -> Any:
        """``fn(xb, wb, *args[, per_block[i]])`` on every block, reduced in block order.

        With ``keep``, ``fn`` returns ``(kept, part)``: the kept block results are persisted on
        the workers and returned as a list of keys with the reduced parts.  One
        synchronisation.
        """
        import dask
        from dask import delayed

        outs = []
        for j in range(len(self.xb)):
            extra = () if per_block is None else (per_block[j],)
            f = delayed(fn, pure=False, nout=2 if keep else None)
            outs.append(f(self.xb[j], self.wb[j], *args, *extra))
        if keep:
            kept = [o[0] for o in outs]
            root = _tree_reduce([o[1] for o in outs], reduce)
            last_fit_log.append((phase, _n_tasks(kept, root)))
            kept, root = dask.persist(kept, root)
            return list(kept), dask.compute(root)[0]  # the synchronisation
        root = _tree_reduce(outs, reduce)
        last_fit_log.append((phase, _n_tasks(root)))
        return dask.compute(root)[0]  # the synchronisation

    def take(self, frame: Frame, idx: np.ndarray, *, raw: bool = False,
             phase: str = "take") -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``idx`` (global, any order, repeats allowed) in working coordinates (as
        stored with ``raw``) and their weights.  One synchronisation."""
        import dask
        from dask import delayed

        idx = np.asarray(idx, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        tasks = []
        for j, i in enumerate(self.live):
            lo, hi = self.offsets[i], self.offsets[i] + self.sizes[i]
            local = sidx[(sidx >= lo) & (sidx < hi)] - lo
            if local.size:
                tasks.append(delayed(_block_take, pure=False)(self.xb[j], self.wb[j], frame,
                                                               local, raw))
        last_fit_log.append((phase, len(tasks)))
        parts = dask.compute(*tasks)  # the synchronisation
        rows_sorted = np.concatenate([p[0] for p in parts])
        rows = np.empty_like(rows_sorted)
        rows[order] = rows_sorted
        w = None
        if parts[0][1] is not None:
            w = np.empty(idx.shape[0])
            w[order] = np.concatenate([p[1] for p in parts])
        return rows, w

    def labels_array(self, kept: list, meta: Any) -> Any:
        """The kept int32 label blocks as one lazy int64 Dask array (n,)."""
        import dask.array as da

        pieces, j = [], 0
        for i, s in enumerate(self.sizes):
            if s == 0:
                pieces.append(self.X.blocks[i, 0][:, 0].astype(np.int32))
                continue
            pieces.append(da.from_delayed(kept[j], shape=(s,), dtype=np.int32, meta=meta))
            j += 1
        return da.concatenate(pieces).astype(np.int64)


# -- input checks ----------------------------------------------------------------------------
def check_dask_X(X: Any, name: str, owner: str) -> Any:
    """A 2-D Dask array with known chunk sizes and one column chunk (cheap checks)."""
    if any(isinstance(s, float) and math.isnan(s) for s in X.shape):
        X = X.compute_chunk_sizes()
    check_2d(X, name, owner)
    check_dtype(X, _NP, "cpu", name)
    if X.numblocks[1] != 1:
        X = X.rechunk({1: -1})
    return X


def _dask_weights(sample_weight: Any, X: Any, compute: Any) -> Any:
    """Sample weights as a Dask array chunked like X's rows (None for unit weights).  The
    NaN / inf / negative / zero-sum checks happen in the frame pass."""
    import dask.array as da

    if sample_weight is None:
        return None
    if _is_real(sample_weight):
        if not np.isfinite(sample_weight) or sample_weight <= 0:
            raise ValueError(
                f"sample_weight must be positive and finite; got {sample_weight!r}.")
        if float(sample_weight) == 1.0:
            return None
        # the weight of every sample (scikit-learn's rule): it scales inertia_
        sample_weight = np.full(int(X.shape[0]), float(sample_weight))
    if not is_dask_collection(sample_weight):
        sample_weight = np.asarray(to_numpy(sample_weight) if hasattr(sample_weight, "shape")
                                   else sample_weight)
    n = int(X.shape[0])
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n:
        raise ValueError(
            f"sample_weight.shape == {tuple(sample_weight.shape)}, expected ({n},): "
            "sample_weight needs one weight per sample.")
    if not is_dask_collection(sample_weight):
        sample_weight = da.from_array(sample_weight, chunks=(X.chunks[0],))
    if compute_dtype(_NP, sample_weight.dtype, "cpu") is None:
        raise ValueError(f"sample_weight must hold real numbers; got dtype "
                         f"{sample_weight.dtype}.")
    return sample_weight.astype(compute).rechunk((X.chunks[0],))


# -- the frame -------------------------------------------------------------------------------
class _MomentSource:
    """The Dask array as a row source of :func:`kmeans_xp._frame.build_frame`: its moments
    come from one map-reduce (count, mean and M2 per block, combined in block order: Chan et
    al.), so the centred variance needs no second pass."""

    xp = _NP
    device = "cpu"
    batched = False

    def __init__(self, dd: DaskBlocks, compute: Any) -> None:
        self.dd, self.dtype = dd, compute
        self.mom: dict | None = None

    def _checked(self) -> dict:
        """The moments of the pass :meth:`check_and_amax` made (build_frame's step 1)."""
        assert self.mom is not None, "check_and_amax runs first"
        return self.mom

    def check_and_amax(self, name: str) -> float:
        mom = self.mom = self.dd.run(_block_moments, np.dtype(self.dtype).name, 1.0,
                                     reduce=_merge_moments, phase="frame")
        if not mom["finite"]:
            raise ValueError(f"Input {name} contains {'NaN' if mom['has_nan'] else 'infinity'}.")
        if mom["w"] is not None:
            w = mom["w"]
            if w["nan"]:
                raise ValueError("Input sample_weight contains NaN.")
            if w["inf"]:
                raise ValueError("Input sample_weight contains infinity.")
            if w["neg"]:
                raise ValueError(
                    "Negative values in data passed to sample_weight: weights must be >= 0.")
            if w["sum"].sum() <= 0:
                raise ValueError(
                    "sample_weight sums to zero: at least one weight must be positive.")
        return mom["amax"]

    def moments(self, scale: float, metric: Any) -> tuple[Any, Any, Any]:
        if scale != 1.0:
            mom2 = self.dd.run(_block_moments, np.dtype(self.dtype).name, scale,
                               reduce=_merge_moments, phase="frame2")
            mom2["w"] = self._checked()["w"]
            self.mom = mom2
        mom = self._checked()
        return mom["n"], mom["mean"], float(np.sum(mom["m2"] / mom["n"]))

    def centred_variance(self, frame: WorkingFrame) -> float:
        mom = self._checked()
        return float(np.sum(mom["m2"] / mom["n"]))


def make_frame(dd: DaskBlocks, compute: Any, k: int, p: Any) -> tuple[Frame, float, dict]:
    """Check X (and the weights) and build the fit's frame by the one rule
    (:func:`kmeans_xp._frame.build_frame`): one pass (two if X must be rescaled).  Returns
    the frame, the mean per-feature variance (working units) and the merged moments
    (per-block weight totals among them)."""
    src = _MomentSource(dd, compute)
    working = build_frame(src, get_metric(getattr(p, "metric", "euclidean")))
    frame = Frame(working, np.dtype(compute).name, k, p.chunk_size, p.precision,
                  p.deterministic)
    return frame, working.mean_variance, src._checked()


def to_working(C: np.ndarray, frame: Frame) -> np.ndarray:
    """Data-coordinate rows in working coordinates (host)."""
    return frame.frame.to_working(np.asarray(C), _NP, getattr(_NP, frame.dtype))


def to_data(C: np.ndarray, frame: Frame, storage: Any) -> np.ndarray:
    """Working-coordinate centres in data coordinates and the storage dtype."""
    return frame.frame.to_data(np.asarray(C), _NP, storage)


def _host_data(rows: np.ndarray, weights: Any, frame: Frame, k: int,
               chunk_size: int | None = None) -> ChunkedData:
    """A small host set (candidates, a sample) as in-memory data in working coordinates."""
    dtype = getattr(_NP, frame.dtype)
    kern = select(_NP, "cpu", dtype, precision=frame.precision,
                  deterministic=frame.deterministic)
    w = None if weights is None else np.asarray(weights, dtype=dtype)
    return ChunkedData(np.ascontiguousarray(rows, dtype=dtype), xp=_NP, dtype=dtype, weights=w,
                       n_clusters=k, chunk_size=chunk_size, kernels=kern)



def _prepare(X: Any, sample_weight: Any, owner: str, n_clusters: int):
    X = check_dask_X(X, "X", owner)
    n, d = int(X.shape[0]), int(X.shape[1])
    if n < n_clusters:
        raise ValueError(f"n_samples={n} should be >= n_clusters={n_clusters}.")
    storage, compute = check_dtype(X, _NP, "cpu", "X")
    w = _dask_weights(sample_weight, X, compute)
    X = X.persist()  # X is read many times: computed once, kept on the workers
    if w is not None:
        w = w.persist()
    return X, w, n, d, storage, compute


def _meta_namespace(X: Any) -> Any:
    return array_namespace(X._meta)


