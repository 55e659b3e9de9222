"""KMeans on Dask arrays: the driver that runs the fit per block on a Dask cluster.

A ``dask.array`` chunked along its rows goes in; the driver never gathers X.  Every pass over
X is one *map-reduce*: a task per row block runs the fit's kernel set (``_kernels.select`` for
the block's namespace: NumPy on CPU workers, CuPy on GPU workers) on that block, in the same
working coordinates as an in-memory fit, and returns small host results (centre sums, counts,
inertia, a few rows); a tree of reduce tasks adds them up **in block order**, so the result
does not depend on which worker ran what, or when.  What must stay on the workers between
passes (the labels of the previous iteration, the k-means|| distances) is persisted there
and referenced by key, so the task graph of iteration ``i`` has the same size as that of
iteration 1.

Per Lloyd iteration: the centres travel once to the cluster (one key that the block tasks
share), one task per block, ``ceil(log_8 blocks)`` levels of reduce tasks, and one
synchronisation (the reduced sums come back to the client, which computes the new centres,
the shift and the convergence test exactly as the in-memory solver does).

The frame (power-of-two scale and centring on the column means, DESIGN.md) comes from one
pass: per block, the count, mean and sum of squared deviations (Chan et al.), combined in
block order, so the variance is accurate without a second pass.

Importing this module does not import Dask: every ``import dask`` is inside a function, and
``kmeans_xp`` only imports this module when a Dask array reaches it.
"""

from __future__ import annotations

import math
import uuid
import warnings
from typing import Any

import numpy as np

from ._compat import array_namespace, compute_dtype, device_of, is_float64_supported, to_numpy
from ._data import LOG2_RANGE, ChunkedData
from ._kernels import select
from ._validation import (
    ConvergenceWarning,
    check_2d,
    check_dtype,
    check_random_state,
    _is_real,
)

#: Children per reduce task: the reduction tree has ``ceil(log_FANIN(blocks))`` levels.
FANIN = 8
#: k-means++ on a sample ('kmeans_plusplus' on a Dask array, and the k-means|| fallback)
#: draws ``max(SAMPLE_MIN, SAMPLE_PER_CLUSTER * n_clusters)`` rows (with replacement,
#: duplicates dropped).
SAMPLE_MIN = 10_000
SAMPLE_PER_CLUSTER = 100

#: Diagnostics of the last fit in this process: (phase, number of tasks in the graph
#: submitted) per synchronisation.  The tests use it to prove that the graph does not grow.
last_fit_log: list = []

_NP = array_namespace(np.empty(0))  # the array_api_compat NumPy namespace (client side)


def is_dask_collection(x: Any) -> bool:
    """Whether ``x`` is a ``dask.array.Array`` (without importing Dask)."""
    from array_api_compat import is_dask_array

    return is_dask_array(x)


class Frame:
    """What every block task needs besides its block: the working coordinates and options.

    ``Xt = X / scale - shift`` in the compute dtype ``dtype`` (a NumPy dtype name); ``shift``
    is a host (d,) array or None.  A plain class (not a dataclass or tuple) so that Dask
    treats it as one opaque value.
    """

    def __init__(self, dtype: str, k: int, shift: Any, scale: float,
                 chunk_size: int | None, precision: str, deterministic: bool) -> None:
        self.dtype, self.k, self.shift, self.scale = dtype, k, shift, scale
        self.chunk_size, self.precision, self.deterministic = chunk_size, precision, deterministic


# =============================================================================================
# Block tasks: run on the workers, one per row block.  Inputs: the block (NumPy or CuPy), its
# weights (or None), host arrays; outputs: host NumPy results (small) and, where a result has
# to stay on the worker, a block-sized array of the block's namespace.
# =============================================================================================
def _block_data(xb: Any, wb: Any, frame: Frame, k: int | None = None) -> ChunkedData:
    """The block as the kernels see it, with the fit's frame and the block's kernel set."""
    xp, dev = array_namespace(xb), device_of(xb)
    dtype = getattr(xp, frame.dtype)
    kern = select(xp, dev, dtype, precision=frame.precision, deterministic=frame.deterministic)
    if wb is not None and wb.dtype != dtype:
        wb = xp.astype(wb, dtype)
    data = ChunkedData(xb, xp=xp, dtype=dtype, weights=wb, n_clusters=k or frame.k,
                       chunk_size=frame.chunk_size, kernels=kern)
    data.scale = frame.scale
    if frame.shift is not None:
        data.shift = xp.asarray(frame.shift, dtype=dtype, device=dev)
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
    data.scale = scale
    s1 = s2 = ref = None
    amax = 0.0
    for s, e in data.ranges():
        c = data._raw(s, e)
        # NaN and inf propagate through max and min: one check for both
        top = float(xp.max(xp.stack([xp.max(c), -xp.min(c)])))
        if not math.isfinite(top):
            amax = top if math.isnan(top) or math.isnan(amax) else math.inf
            break
        amax = max(amax, top)
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


def _block_lloyd(xb, wb, C, frame, need_inertia, labels_old=None):
    """One Lloyd pass on a block: (labels int32, kept on the worker), (sums, counts,
    inertia, number of labels that changed)."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    labels, sums, counts, inertia = data.kernels.lloyd_pass(data, _dev(data, C),
                                                            need_inertia=need_inertia)
    labels = xp.astype(labels, xp.int32)
    changed = 0 if labels_old is None else int(xp.sum(xp.astype(labels != labels_old,
                                                                 xp.int64)))
    inertia = float(inertia) if need_inertia else 0.0
    return labels, (_host64(sums), _host64(counts), inertia, changed)


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


def _block_inertia_for_labels(xb, wb, C, frame, labels):
    """Inertia of a block for given labels, and rows per label."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    inertia = data.kernels.inertia_for_labels(data, _dev(data, C), xp.astype(labels, xp.int64))
    return float(inertia), _label_counts(xp, labels, frame.k)


def _block_far(xb, wb, C, frame, n_far, offset, labels):
    """The block's ``n_far`` rows farthest from their centres (ties: lowest index first):
    distances, global indices, rows (working coordinates), weights, labels."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    lab = xp.astype(labels, xp.int64)
    dist = data.kernels.sq_dist_to_assigned(data, _dev(data, C), lab)
    if data.weights is not None:  # a zero-weight point cannot fill a cluster
        dist = xp.where(data.weights > 0, dist, xp.full_like(dist, -1.0))
    top = xp.argsort(dist, descending=True, stable=True)[:n_far]
    w = (np.ones(int(top.shape[0])) if data.weights is None
         else _host64(xp.take(data.weights, top)))
    return (_host64(xp.take(dist, top)), np.asarray(to_numpy(top), np.int64) + offset,
            np.asarray(to_numpy(data.take_rows(top))), w,
            np.asarray(to_numpy(xp.take(lab, top)), np.int64))


def _concat_parts(*parts: tuple) -> tuple:
    """Tuples of host arrays concatenated field by field, in the given (block) order."""
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(len(parts[0])))


def _sum_parts(*parts: tuple) -> tuple:
    """Tuples of host arrays / numbers added field by field, in the given (block) order."""
    total = parts[0]
    for p in parts[1:]:
        total = tuple(a + b for a, b in zip(total, p))
    return total


def _block_take(xb, wb, frame, local):
    """Rows ``local`` of the block (working coordinates) and their weights, on the host."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    idx = xp.asarray(np.asarray(local, dtype=np.int64), device=data.device)
    rows = np.asarray(to_numpy(data.take_rows(idx)))
    w = None if data.weights is None else _host64(xp.take(data.weights, idx))
    return rows, w


def _block_weighted_index(xb, wb, target):
    """The first row whose cumulative weight (in block order) exceeds ``target``."""
    xp = array_namespace(wb)
    acc = xp.float64 if is_float64_supported(xp, device_of(wb)) else wb.dtype
    cdf = xp.cumulative_sum(xp.astype(wb, acc))
    t = xp.asarray([target], dtype=acc, device=device_of(wb))
    i = int(xp.searchsorted(cdf, t, side="right")[0])
    return min(i, int(wb.shape[0]) - 1)


def _block_closest(xb, wb, frame, new, start, state):
    """k-means||: each row's squared distance to its nearest candidate and that candidate's
    index, updated with the candidates ``new`` (numbered from ``start``) and kept on the
    worker; the block's weighted sum of the distances and its weight per candidate.

    Ties go to the lower candidate index (an earlier candidate keeps a row), as in an
    assignment to all candidates at once; so the candidates' weights come with the last
    update instead of one more pass over X against every candidate.
    """
    data = _block_data(xb, wb, frame, k=int(new.shape[0]))
    xp = data.xp
    lab, dist = data.kernels.assign(data, _dev(data, new))
    lab = xp.astype(lab, xp.int32) + start
    if state is None:
        closest, nearest = dist, lab
    else:
        closest, nearest = state
        better = dist < closest
        closest = xp.where(better, dist, closest)
        nearest = xp.where(better, lab, nearest)
    acc = data.accumulator_dtype()
    weighted = xp.astype(closest if data.weights is None else closest * data.weights, acc)
    w = None if data.weights is None else _host64(data.weights)
    counts = np.bincount(np.asarray(to_numpy(nearest)), weights=w,
                         minlength=start + int(new.shape[0])).astype(np.float64)
    return (closest, nearest), (float(xp.sum(weighted)), counts)


def _block_sample(xb, wb, frame, phi, ell, seed, offset, state):
    """k-means||: keep each row with probability ``min(1, ell * w_i * D_i / phi)``; the
    uniforms come from a generator seeded by (round seed, first row of the block), so the
    draw depends on neither the scheduling nor the number of workers."""
    data = _block_data(xb, wb, frame)
    xp = data.xp
    acc = data.accumulator_dtype()
    closest = state[0]
    weighted = xp.astype(closest if data.weights is None else closest * data.weights, acc)
    u = np.random.default_rng([seed, offset]).random(data.n)
    u = xp.asarray(u, dtype=acc, device=data.device)
    picked = xp.nonzero(u * phi < ell * weighted)[0]
    rows = np.asarray(to_numpy(data.take_rows(picked)))
    return (rows,)


def _block_contingency(xb, wb, k, labels1, labels2):
    """(k, k) table of label pairs of a block (for ``same_clustering``)."""
    a = np.asarray(to_numpy(labels1), np.int64)
    b = np.asarray(to_numpy(labels2), np.int64)
    return (np.bincount(a * k + b, minlength=k * k).reshape(k, k),)


def _block_apply(xb, C, opts, what, wb=None):
    """predict / transform / score of a fitted model on one block, by the in-memory code."""
    from ._kmeans import KMeans

    xp = array_namespace(xb)
    k, d, chunk_size, precision, deterministic = opts
    if int(xb.shape[0]) == 0:
        if what == "predict":
            return xp.zeros((0,), dtype=xp.int64, device=device_of(xb))
        if what == "transform":
            return xp.zeros((0, k), dtype=getattr(xp, np.dtype(C.dtype).name),
                            device=device_of(xb))
        return np.zeros(1)
    km = KMeans(k, chunk_size=chunk_size, precision=precision, deterministic=deterministic)
    km.cluster_centers_ = xp.asarray(C, device=device_of(xb))
    km.n_features_in_, km._n_features_out = d, k
    if what == "predict":
        return km.predict(xb)
    if what == "transform":
        return km.transform(xb)
    return np.array([-km.score(xb, sample_weight=wb)])


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

    def take(self, frame: Frame, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Rows ``idx`` (global, any order) in working coordinates and their weights."""
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
                                                               local))
        parts = dask.compute(*tasks)
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
        return None
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
def make_frame(dd: DaskBlocks, compute: Any, k: int, p: Any) -> tuple[Frame, float, dict]:
    """Check X (and the weights), choose the scale, centre: one pass (two if X must be
    rescaled).  Returns the frame, the mean per-feature variance (working units) and the
    merged moments (per-block weight totals among them)."""
    dtype = np.dtype(compute).name
    mom = dd.run(_block_moments, dtype, 1.0, reduce=_merge_moments, phase="frame")
    if not mom["finite"]:
        raise ValueError(f"Input X contains {'NaN' if mom['has_nan'] else 'infinity'}.")
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
    scale, amax = 1.0, mom["amax"]
    if amax > 2.0 ** LOG2_RANGE or 0.0 < amax < 2.0 ** -LOG2_RANGE:
        scale = 2.0 ** round(math.log2(amax))
        mom2 = dd.run(_block_moments, dtype, scale, reduce=_merge_moments, phase="frame2")
        mom2["w"] = mom["w"]
        mom = mom2
    mean, m2, n = mom["mean"], mom["m2"], mom["n"]
    total_var = float(np.sum(m2 / n))
    shift = None
    if float(np.sum(mean * mean)) > total_var:  # the in-memory rule (ChunkedData.center)
        shift = mean.astype(compute)
    frame = Frame(dtype, k, shift, scale, p.chunk_size, p.precision, p.deterministic)
    return frame, total_var / int(mean.shape[0]), mom


def to_working(C: np.ndarray, frame: Frame) -> np.ndarray:
    """Data-coordinate rows in working coordinates (as ``ChunkedData.to_working_coords``)."""
    c = C.astype(frame.dtype, copy=False)
    if frame.scale != 1.0:
        c = c * (1.0 / frame.scale)
    return c if frame.shift is None else c - frame.shift


def to_data(C: np.ndarray, frame: Frame, storage: Any) -> np.ndarray:
    """Working-coordinate centres in data coordinates and the storage dtype."""
    if frame.shift is not None:
        C = C + frame.shift
    if frame.scale != 1.0:
        C = C * frame.scale
    return C.astype(storage, copy=False)


# -- initialisation --------------------------------------------------------------------------
def _uniform01(rng: Any) -> float:
    return float(rng.random_sample() if isinstance(rng, np.random.RandomState) else rng.random())


def _integers(rng: Any, high: int, size: Any = None) -> Any:
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, size=size)
    return rng.integers(0, high, size=size)


def _first_index(dd: DaskBlocks, rng: Any, wsums: np.ndarray | None) -> int:
    """The first centre's row: ``choice(n, p=w / w.sum())`` as NumPy draws it."""
    import dask
    from dask import delayed

    u = _uniform01(rng)
    n = sum(dd.sizes)
    if wsums is None:
        return min(int(u * n), n - 1)
    cdf = np.cumsum(wsums)
    target = u * cdf[-1]
    j = min(int(np.searchsorted(cdf, target, side="right")), len(cdf) - 1)
    before = cdf[j - 1] if j else 0.0
    local = dask.compute(delayed(_block_weighted_index, pure=False)(
        dd.xb[j], dd.wb[j], target - before))[0]
    return dd.offsets[dd.live[j]] + int(local)


def _host_data(rows: np.ndarray, weights: Any, frame: Frame, k: int) -> ChunkedData:
    """A small host set (candidates, a sample) as in-memory data in working coordinates."""
    dtype = getattr(_NP, frame.dtype)
    kern = select(_NP, "cpu", dtype, precision=frame.precision,
                  deterministic=frame.deterministic)
    w = None if weights is None else np.asarray(weights, dtype=dtype)
    return ChunkedData(np.ascontiguousarray(rows, dtype=dtype), xp=_NP, dtype=dtype, weights=w,
                       n_clusters=k, kernels=kern)


def kmeans_plusplus_sample(dd: DaskBlocks, frame: Frame, k: int, rng: Any,
                           n_local_trials: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-means++ on a uniform sample of rows (weighted by their sample weights).

    Returns the centres in working coordinates and their global row indices.
    """
    from ._solvers.init import kmeans_plusplus_working

    n = sum(dd.sizes)
    m = max(SAMPLE_MIN, SAMPLE_PER_CLUSTER * k)
    idx = np.arange(n) if m >= n else np.unique(_integers(rng, n, size=m))
    rows, w = dd.take(frame, idx)
    sample = _host_data(rows, w, frame, k)
    centers, local = kmeans_plusplus_working(sample, k, rng, n_local_trials)
    return np.asarray(centers), idx[np.asarray(local)]


def kmeans_parallel(dd: DaskBlocks, frame: Frame, k: int, rng: Any, wsums: Any,
                    mean_variance: float, *, oversampling_factor: float = 2.0,
                    n_rounds: int = 5) -> np.ndarray:
    """k-means|| (Bahmani et al. 2012) on the blocks; centres in working coordinates.

    As ``_solvers.init.kmeans_parallel_working``, with the sampling done per block: per round
    one pass that updates the distances (kept on the workers) and sums them, and one that
    draws from per-block generators seeded from the host generator; the kept rows come to
    the client.  Each row's nearest candidate is tracked with its distance, so the
    candidates' weights (of the rows nearest to each) come with the last update, not with one
    more pass against all candidates (the in-memory version makes that pass).  The weighted
    candidates are reduced to ``k`` centres on the client by weighted k-means++ and Lloyd.
    """
    from ._solvers.init import kmeans_plusplus_working
    from ._solvers.lloyd import kmeans_single_lloyd

    ell = oversampling_factor * k
    first, _ = dd.take(frame, np.array([_first_index(dd, rng, wsums)]))
    cand = [first]
    n_cand = 1
    state, (phi, counts) = dd.run(_block_closest, frame, dd.broadcast(first, "cand"), 0,
                                  per_block=[None] * len(dd.xb), keep=True, phase="init")
    for _ in range(n_rounds):
        seed = int(_integers(rng, 2 ** 32 - 1))
        offsets = [dd.offsets[i] for i in dd.live]
        per = [(o, c) for o, c in zip(offsets, state)]
        (new,) = dd.run(_block_sample_pb, frame, phi, ell, seed, per_block=per,
                        reduce=_concat_parts, phase="init")
        if new.shape[0] == 0:
            break
        cand.append(new)
        state, (phi, counts) = dd.run(_block_closest, frame, dd.broadcast(new, "cand"), n_cand,
                                      per_block=state, keep=True, phase="init")
        n_cand += int(new.shape[0])
    del state
    cand = np.concatenate(cand)
    if cand.shape[0] <= k:  # too few distinct candidates: k-means++ on a sample
        return kmeans_plusplus_sample(dd, frame, k, rng)[0]
    cdata = _host_data(cand, counts, frame, k)
    cdata.mean_variance = mean_variance
    c0 = kmeans_plusplus_working(cdata, k, rng)[0]
    return np.asarray(kmeans_single_lloyd(cdata, c0, max_iter=300, tol=0.0)[2])


def _block_sample_pb(xb, wb, frame, phi, ell, seed, per):
    offset, state = per
    return _block_sample(xb, wb, frame, phi, ell, seed, offset, state)


def random_rows(dd: DaskBlocks, frame: Frame, k: int, rng: Any) -> np.ndarray:
    """``k`` distinct rows drawn as scikit-learn draws them (host ``choice`` with ``p``): the
    same rows as the in-memory fit.  Needs O(n) host memory for ``p`` (the weights, if any,
    come to the client)."""
    n = sum(dd.sizes)
    if dd.w is None:
        p = np.full(n, 1.0 / n)
    else:
        hw = np.asarray(to_numpy(dd.w.compute()))
        p = hw / hw.sum()
    seeds = rng.choice(n, size=k, replace=False, p=p)
    return dd.take(frame, np.asarray(seeds, dtype=np.int64))[0]


def initial_centers(dd: DaskBlocks, frame: Frame, X: Any, init: Any, kind: str, k: int,
                    rng: Any, wsums: Any, mean_variance: float, options: dict | None,
                    d: int) -> np.ndarray:
    """Initial centres (working coordinates, host) for one run."""
    from ._solvers.init import check_user_centers

    if kind in ("k-means++", "k-means||"):
        return kmeans_parallel(dd, frame, k, rng, wsums, mean_variance, **(options or {}))
    if kind == "random":
        return random_rows(dd, frame, k, rng)
    if kind == "callable":
        init = check_user_centers(init(X, k, random_state=rng), k, _NP, "cpu",
                                  getattr(_NP, frame.dtype), d)
    return to_working(np.asarray(init), frame)


# -- Lloyd -----------------------------------------------------------------------------------
def relocate_empty(dd: DaskBlocks, frame: Frame, labels: list, centers: np.ndarray,
                   sums: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_solvers.lloyd.relocate_empty_clusters`` on blocks: each block sends its ``e`` rows
    farthest from their centres (``e`` = number of empty clusters); the client keeps the
    ``e`` farthest of those (ties: lowest row index), the same rows as a global sort."""
    k = centers.shape[0]
    is_empty = counts == 0
    empty = np.nonzero(is_empty)[0]
    e = int(empty.shape[0])
    per = list(zip([dd.offsets[i] for i in dd.live], labels))
    dist, idx, rows, w, lab = dd.run(_block_far_pb, dd.broadcast(centers, "centers"), frame, e,
                                     per_block=per, reduce=_concat_parts, phase="relocate")
    pick = np.lexsort((idx, -dist))[:e]
    moved_w = w[pick].astype(frame.dtype)
    moved = rows[pick] * moved_w[:, None]
    from_old = (lab[pick][:, None] == np.arange(k)[None, :]).astype(frame.dtype)  # (e, k)
    to_new = (empty[:, None] == np.arange(k)[None, :]).astype(frame.dtype)
    sums = sums - from_old.T @ moved
    counts = counts - (from_old.T @ moved_w[:, None])[:, 0]
    sums = np.where(is_empty[:, None], to_new.T @ moved, sums)
    counts = np.where(is_empty, (to_new.T @ moved_w[:, None])[:, 0], counts)
    return sums, counts


def _block_far_pb(xb, wb, C, frame, n_far, per):
    offset, labels = per
    return _block_far(xb, wb, C, frame, n_far, offset, labels)


def lloyd(dd: DaskBlocks, frame: Frame, centers: np.ndarray, *, max_iter: int, tol: float,
          verbose: int = 0) -> tuple:
    """``_solvers.lloyd.kmeans_single_lloyd`` with one map-reduce per iteration.

    Returns the kept label blocks, the inertia (working units), the centres (working
    coordinates), the number of iterations and the rows per cluster.
    """
    from ._solvers.lloyd import new_centers

    dtype = np.dtype(frame.dtype)
    centers = np.asarray(centers, dtype=dtype)
    labels_old = None
    strict = False
    scale2 = frame.scale ** 2
    for i in range(max_iter):
        labels, (sums, counts, inertia, changed) = dd.run(
            _block_lloyd, dd.broadcast(centers, "centers"), frame, bool(verbose),
            per_block=labels_old, keep=True, phase="lloyd")  # the one synchronisation
        if verbose:
            print(f"Iteration {i}, inertia {inertia * scale2}.")
        sums, counts = sums.astype(dtype), counts.astype(dtype)
        updated = np.asarray(new_centers(sums, counts, centers, _NP))
        shift = float(np.sum((updated - centers) ** 2))
        same = labels_old is not None and changed == 0
        if np.any(counts == 0):  # rare: empty clusters, relocate then re-test
            sums, counts = relocate_empty(dd, frame, labels, centers, sums, counts)
            updated = np.asarray(new_centers(sums, counts, centers, _NP))
            shift = float(np.sum((updated - centers) ** 2))
        centers = updated
        if same:
            strict = True
            if verbose:
                print(f"Converged at iteration {i}: strict convergence.")
            break
        if shift <= tol:
            if verbose:
                print(f"Converged at iteration {i}: center shift {shift * scale2} within "
                      f"tolerance {tol * scale2}.")
            break
        labels_old = labels
    Cd = dd.broadcast(centers, "centers")
    if strict:
        inertia, per_label = dd.run(_block_inertia_for_labels, Cd, frame, per_block=labels,
                                    phase="final")
    else:
        labels, (inertia, per_label) = dd.run(_block_labels_inertia, Cd, frame, keep=True,
                                              phase="final")
    return labels, inertia, centers, i + 1, per_label


def same_clustering(dd: DaskBlocks, labels1: list, labels2: list, k: int) -> bool:
    """Whether every cluster of ``labels1`` lies inside one cluster of ``labels2``."""
    (table,) = dd.run(_block_contingency_pb, k, per_block=list(zip(labels1, labels2)),
                      phase="same")
    return bool(np.all(np.sum(table > 0, axis=1) <= 1))


def _block_contingency_pb(xb, wb, k, per):
    return _block_contingency(xb, wb, k, *per)


# -- entry points (called by _kmeans / _base when a Dask array arrives) ----------------------
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


def fit(X: Any, sample_weight: Any, init: Any, random_state: Any, p: Any, owner: str) -> Any:
    """``_kmeans._fit`` for a Dask array: returns a ``_kmeans._Fit``."""
    from ._base import Input
    from ._kmeans import _Fit
    from ._solvers.init import check_user_centers

    if p.metric != "euclidean":
        raise ValueError(
            f"metric={p.metric!r} does not take a Dask array yet (only 'euclidean' does): "
            "compute X (or a sample of it) into memory first.")
    last_fit_log.clear()
    k = p.n_clusters
    rng = check_random_state(random_state)
    X0 = X
    X, w, n, d, storage, compute = _prepare(X, sample_weight, owner, k)
    if p.init_kind == "array":
        init = check_user_centers(init, k, _NP, "cpu", compute, d)
    dd = DaskBlocks(X, w)
    frame, mean_variance, mom = make_frame(dd, compute, k, p)
    tol = p.tol * mean_variance
    wsums = None if mom["w"] is None else mom["w"]["sum"]

    best = None
    for _ in range(p.n_init):
        c0 = initial_centers(dd, frame, X0, init, p.init_kind, k, rng, wsums, mean_variance,
                             p.init_options, d)
        if p.verbose:
            print("Initialization complete")
        labels, inertia, centers, n_iter, per_label = lloyd(
            dd, frame, c0, max_iter=p.max_iter, tol=tol, verbose=p.verbose)
        inertia = float(inertia) * frame.scale ** 2
        if best is None or (inertia < best[1]
                            and not same_clustering(dd, labels, best[0], k)):
            best = (labels, inertia, centers, n_iter, per_label)
    labels, inertia, centers, n_iter, per_label = best

    distinct = int(np.count_nonzero(per_label))
    if distinct < k:
        warnings.warn(
            f"Number of distinct clusters ({distinct}) found smaller than n_clusters "
            f"({k}). Possibly due to duplicate points in X.", ConvergenceWarning, stacklevel=4)
    xpm = _meta_namespace(X)
    centers = xpm.asarray(to_data(centers, frame, storage))
    meta = xpm.empty((0,), dtype=xpm.int32)
    inp = Input(X, xpm, "cpu", storage, compute, n, d, None)
    return _Fit(centers, dd.labels_array(labels, meta), inertia, n_iter, inp)


def kmeans_plusplus(X: Any, n_clusters: int, sample_weight: Any, random_state: Any,
                    n_local_trials: int | None) -> tuple[Any, np.ndarray]:
    """``kmeans_plusplus`` on a Dask array: greedy k-means++ on a sample of rows.

    Returns the centres (rows of X, in X's block namespace and dtype) and their row indices
    (a NumPy int64 array).
    """
    from ._kmeans import _check_params

    last_fit_log.clear()
    p = _check_params("kmeans_plusplus", n_clusters, "k-means++", 1, 1, 1e-4, 0, "lloyd", None)
    rng = check_random_state(random_state)
    X, w, n, d, storage, compute = _prepare(X, sample_weight, "kmeans_plusplus", n_clusters)
    dd = DaskBlocks(X, w)
    frame, _, _ = make_frame(dd, compute, n_clusters, p)
    centers, idx = kmeans_plusplus_sample(dd, frame, n_clusters, rng, n_local_trials)
    xpm = _meta_namespace(X)
    return xpm.asarray(to_data(centers, frame, storage)), idx


def _fitted_opts(est: Any, X: Any) -> tuple:
    est._check_fitted()
    owner = type(est).__name__
    X = check_dask_X(X, "X", owner)
    d = int(X.shape[1])
    if d != est.n_features_in_:
        raise ValueError(
            f"X has {d} features, but {owner} is expecting {est.n_features_in_} "
            "features as input.")
    C = np.asarray(to_numpy(est.cluster_centers_))
    opts = (int(C.shape[0]), d, est.chunk_size, getattr(est, "precision", "exact"),
            getattr(est, "deterministic", True))
    return X, C, opts


def predict(est: Any, X: Any) -> Any:
    """Labels of a Dask array (a lazy Dask array, one task per block)."""
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    xpm = _meta_namespace(X)
    return X.map_blocks(_block_apply, delayed(C, name=_name("centers")), opts, "predict",
                        drop_axis=1, dtype=np.int64, meta=xpm.empty((0,), dtype=xpm.int64))


def transform(est: Any, X: Any) -> Any:
    """Distances of a Dask array to the centres (a lazy Dask array (n, k))."""
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    xpm = _meta_namespace(X)
    dt = np.dtype(C.dtype)
    return X.map_blocks(_block_apply, delayed(C, name=_name("centers")), opts, "transform",
                        chunks=(X.chunks[0], (opts[0],)), dtype=dt,
                        meta=xpm.empty((0, 0), dtype=getattr(xpm, dt.name)))


def score(est: Any, X: Any, sample_weight: Any = None) -> float:
    """Opposite of the inertia of a Dask array (computed; per-block sums in block order)."""
    import dask
    from dask import delayed

    X, C, opts = _fitted_opts(est, X)
    w = _dask_weights(sample_weight, X, C.dtype if C.dtype.kind == "f" else np.float64)
    Cd = delayed(C, name=_name("centers"))
    xb = list(X.to_delayed().ravel())
    wb = [None] * len(xb) if w is None else list(w.to_delayed().ravel())
    parts = [delayed(_score_block, pure=False)(x, Cd, opts, wv) for x, wv in zip(xb, wb)]
    (inertia,) = dask.compute(_tree_reduce(parts, _sum_parts))[0]
    return -float(inertia)


def _score_block(xb, C, opts, wb):
    return (float(_block_apply(xb, C, opts, "score", wb)[0]),)
