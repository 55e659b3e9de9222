"""The data as the kernels see it: row chunks, centred and scaled on the fly.

:class:`ChunkedData` never copies X whole.  Each chunk of rows is cast to the compute dtype
(float16/bfloat16 -> float32), multiplied by a power of two when the data's magnitude would
overflow or underflow squared distances, and centred, when it is read.  Power-of-two scaling
is exact, so it changes no label; centring keeps float32 distances accurate for data far
from the origin.
"""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ._compat import (
    HostToDevice,
    accumulate,
    available_memory,
    chunk_rows,
    default_chunk_budget,
    device_of,
    is_float64_supported,
    to_numpy,
)
from ._frame import LOG2_RANGE, Frame, build_frame, power_of_two_scale
from ._metric import Metric, get_metric

#: rows of centres per block of :func:`squared_shift` (times d: elements of its temporary)
SHIFT_BLOCK_ELEMENTS = 1 << 20


def squared_shift(new: Any, old: Any, xp: Any) -> Any:
    """``||new - old||_F^2`` (0-d), by blocks of rows: no (k, d) temporary."""
    k, d = int(new.shape[0]), int(new.shape[1])
    rows = max(1, SHIFT_BLOCK_ELEMENTS // max(d, 1))
    if rows >= k:
        return xp.sum((new - old) ** 2)
    total = None
    for a in range(0, k, rows):
        diff = new[a:a + rows, ...] - old[a:a + rows, ...]
        total = accumulate(total, xp.sum(diff * diff))
    return total


def relocate_empty_clusters(data: ChunkedData, labels: Any, centers: Any, sums: Any,
                            counts: Any) -> tuple[Any, Any, Any]:
    """Give each empty cluster the point farthest from its centre (scikit-learn's rule).

    Works on the sums, before averaging: the point's weighted coordinates leave its
    cluster's sum and become the empty cluster's sum.  A rare path: it reads X once more
    and sorts n distances.  Returns the new sums and counts, and the labels: unchanged
    (as scikit-learn's), except for 'manhattan', whose medians are taken over labels, so
    the moved points carry their new cluster's label.
    """
    xp = data.xp
    k = int(centers.shape[0])
    dist = data.kernels.sq_dist_to_assigned(data, centers, labels)
    if data.weights is not None:  # a zero-weight point cannot fill a cluster
        dist = xp.where(data.weights > 0, dist, xp.full_like(dist, -1.0))
    if not float(xp.max(dist)) > 0.0:  # one host sync, on this rare path only
        # every (weighted) point sits on its centre: more clusters than distinct points;
        # relocating is pointless and would only shuffle duplicates (scikit-learn's rule)
        return sums, counts, labels
    empty = xp.nonzero(counts == 0)[0]
    n_empty = int(empty.shape[0])
    far = xp.argsort(dist, descending=True, stable=True)[:n_empty]
    moved_x = data.take_rows(far)
    moved_w = (xp.ones((n_empty,), dtype=data.dtype, device=data.device)
               if data.weights is None else xp.take(data.weights, far))
    moved = moved_x * moved_w[:, None]
    ks = xp.arange(k, dtype=labels.dtype, device=data.device)
    from_old = xp.astype(xp.take(labels, far)[:, None] == ks[None, :], data.dtype)  # (e, k)
    to_new = xp.astype(empty[:, None] == ks[None, :], data.dtype)
    is_empty = counts == 0
    sums = sums - xp.matmul(xp.matrix_transpose(from_old), moved)
    counts = counts - xp.matmul(xp.matrix_transpose(from_old), moved_w[:, None])[:, 0]
    sums = xp.where(is_empty[:, None], xp.matmul(xp.matrix_transpose(to_new), moved), sums)
    counts = xp.where(is_empty, xp.matmul(xp.matrix_transpose(to_new), moved_w[:, None])[:, 0],
                      counts)
    if data.metric.update_uses_labels:
        rows = xp.arange(data.n, dtype=far.dtype, device=data.device)
        for j in range(n_empty):  # n_empty small passes of O(n), on a rare path
            labels = xp.where(rows == far[j], xp.astype(empty[j], labels.dtype), labels)
    return sums, counts, labels


def _onehot(labels: Any, n_clusters: int, dtype: Any, xp: Any) -> Any:
    ks = xp.arange(n_clusters, dtype=labels.dtype, device=device_of(labels))
    return xp.astype(labels[:, None] == ks[None, :], dtype)


def same_clustering(labels1: Any, labels2: Any, n_clusters: int, data: ChunkedData) -> bool:
    """Whether every cluster of ``labels1`` lies inside one cluster of ``labels2``.

    scikit-learn's ``_is_same_clustering``, by a (k, k) contingency table built chunk by
    chunk.  One host sync.
    """
    xp = data.xp
    table: Any = None
    for s, e in data.ranges():
        a = _onehot(labels1[s:e], n_clusters, data.dtype, xp)
        b = _onehot(labels2[s:e], n_clusters, data.dtype, xp)
        table = accumulate(table, xp.matmul(xp.matrix_transpose(a), b))
    per_row = xp.sum(xp.astype(table > 0, xp.int32), axis=1)
    return bool(xp.all(per_row <= 1))



class ChunkedData:
    """X (n, d) with optional weights, read in chunks of ``rows`` rows.

    ``shift`` (d,) and ``scale`` map data coordinates to the working coordinates
    ``Xt = X / scale - shift``; centres found in working coordinates map back with
    :meth:`to_data_coords`.
    """

    #: True for a source whose rows are moved to the device chunk by chunk (fused kernel
    #: sets that read ``X`` directly must fall back to the chunk loop)
    streamed = False
    #: the frame may centre this source (sparse data would become dense)
    can_centre = True
    #: column sums and squares of the last check_and_amax pass, for moments() at scale 1
    _moments: tuple | None = None
    #: no problem axis (a batch of problems has one)
    batched = False

    def __init__(self, X: Any, *, xp: Any, dtype: Any, weights: Any = None,
                 n_clusters: int = 1, chunk_size: int | None = None,
                 kernels: Any = None, metric: str = "euclidean") -> None:
        self.X = X
        self.xp = xp
        self.device = device_of(X)
        self.dtype = dtype
        self.weights = weights
        self.n, self.d = int(X.shape[0]), int(X.shape[1])
        #: elements of a work block for passes not against all k centres (k-means++ steps,
        #: L1 blocks): a user's chunk_size caps it at chunk_size rows of X, independent of k,
        #: so that every k reads X in the same chunks there (and sums in the same order)
        self.budget = default_chunk_budget(xp, self.device)
        if chunk_size:
            self.budget = min(self.budget, chunk_size * max(self.d, 1))
        self.rows = chunk_size or chunk_rows(self.n, self.d, n_clusters, self.budget)
        self.rows = min(self.rows, self.n)
        self.check_memory(n_clusters)
        #: the working coordinates (``_frame.Frame``): set once by :meth:`prepare`, or by the
        #: caller that owns a fitted frame (:meth:`use_frame`); never written into
        self.frame = Frame(metric=get_metric(metric))
        self.buffers: dict = {}  # work blocks reused across chunks and iterations (kernels)
        self.cache: dict = {}  # per-fit results a kernel set keeps (e.g. row norms)
        #: the kernel set of this fit (``kmeans_xp._kernels.select``), chosen by the caller
        self.kernels = kernels
        self.f64 = is_float64_supported(xp, self.device)

    def working_set_bytes(self, n_clusters: int) -> int:
        """Bytes a pass needs beyond X: a few (rows x max(k, d)) blocks, O(n) vectors, centres."""
        item = 8 if self.dtype == self.xp.float64 else 4
        return item * (3 * self.rows * max(n_clusters, self.d) + 4 * self.n
                       + 4 * n_clusters * self.d) + 8 * 2 * self.n

    def check_memory(self, n_clusters: int) -> None:
        """A clear MemoryError, before any work, when the device cannot hold the working set."""
        need = self.working_set_bytes(n_clusters)
        free = available_memory(self.xp, self.device)
        if free is not None and need > free:
            raise MemoryError(
                f"k-means on {self.n} x {self.d} data with {n_clusters} clusters needs about "
                f"{need / 2**30:.2f} GiB on {self.device} beyond X with chunks of {self.rows} "
                f"rows, but only {free / 2**30:.2f} GiB is free. Pass a smaller chunk_size "
                "(rows per chunk) or free memory.")

    # -- the working coordinates (the frame's) --------------------------------------------
    @property
    def metric(self) -> Metric:
        return self.frame.metric

    @property
    def scale(self) -> float:
        return self.frame.scale

    @property
    def shift(self) -> Any:
        return self.frame.shift

    @property
    def inv_scale(self) -> float:
        """``1 / scale``, an exact power of two: ``Xt = X * inv_scale - shift``."""
        return self.frame.inv_scale

    @property
    def mean_variance(self) -> float:
        return self.frame.mean_variance

    def use_frame(self, frame: Frame) -> None:
        """Read X in ``frame`` (a fitted model's, or the one ``partial_fit`` froze)."""
        self.frame = frame

    def distance_factor(self) -> tuple[float, bool]:
        """The frame's :meth:`~kmeans_xp._frame.Frame.distance_factor`."""
        return self.frame.distance_factor()

    def _scaled(self, c: Any) -> Any:
        """Rows in the compute dtype and the working scale, not yet centred."""
        return self.frame.scaled_rows(c, self.xp, self.dtype)

    def to_working_coords(self, C: Any) -> Any:
        """Data-coordinate rows (chunk, centres) in working coordinates."""
        return self.frame.to_working(C, self.xp, self.dtype)

    def _raw(self, start: int, stop: int) -> Any:
        return self._scaled(self._device_rows(start, stop))

    def rows_at(self, start: int, stop: int) -> Any:
        return self.to_working_coords(self._device_rows(start, stop))

    def take_rows(self, indices: Any) -> Any:
        """Rows ``indices`` (an integer array on the data's device) in working coordinates."""
        return self.to_working_coords(self.xp.take(self.X, indices, axis=0))

    def ranges(self, rows: int | None = None) -> Iterator[tuple[int, int]]:
        """``(start, stop)`` of each chunk of ``rows`` rows (default: the chunk size)."""
        rows = rows or self.rows
        for start in range(0, self.n, rows):
            yield start, min(start + rows, self.n)

    def weights_at(self, start: int, stop: int) -> Any:
        """The weights of rows ``start:stop``, or None for unit weights."""
        return None if self.weights is None else self.weights[start:stop]

    def chunks(self, rows: int | None = None) -> Iterator[tuple[int, int, Any, Any]]:
        """``(start, stop, Xt, w)`` for each chunk; ``w`` is None for unit weights."""
        for start, stop in self.ranges(rows):
            yield start, stop, self.rows_at(start, stop), self.weights_at(start, stop)

    def to_data_coords(self, C: Any, dtype: Any) -> Any:
        return self.frame.to_data(C, self.xp, dtype)

    # -- the moments the frame is built from (``_frame.build_frame``: the rule) ----------
    def prepare(self, name: str = "X") -> Frame:
        """Check X for NaN / inf and build the fit's frame (one pass on typical data)."""
        self.frame = build_frame(self, self.frame.metric, name)
        return self.frame

    def scale_only(self, name: str = "X") -> Frame:
        """Check X and choose its scale, no moments (a fitted model's passes re-centre on
        their centres).  One pass, one host sync."""
        amax = self.check_and_amax(name, moments=False)
        self._moments = None
        self.frame = Frame(power_of_two_scale(amax, self.xp.finfo(self.dtype)), None,
                           float("nan"), self.frame.metric)
        return self.frame

    def check_and_amax(self, name: str = "X", *, moments: bool = True) -> float:
        """Raise on NaN / inf; the largest magnitude.  One pass, one host sync.

        With ``moments``, the same pass also sums the columns and their squares, which
        :meth:`moments` then reuses (unless the data have to be scaled).
        """
        xp = self.xp
        stats = None if self.kernels is None else \
            self.kernels.frame_stats(self, None, 2.0 ** LOG2_RANGE)
        if stats is not None:  # one compiled pass (the fused CPU set), host float64 results
            finite, amax, sums, sqs = stats
            if not finite:
                self._raise_not_finite(name)
            self._moments = (sums, sqs) if moments else None
            return amax
        ok = amax = sums = sqs = None  # running reductions: no per-chunk results kept
        # a one-off pass holding several chunk-size temporaries: smaller chunks keep its
        # peak under the Lloyd pass's, at no measurable cost
        for start, stop in self.ranges(max(1, self.rows // 4)):
            c = self._raw_unscaled(start, stop)
            a = xp.abs(c)
            chunk_ok, chunk_max = xp.all(xp.isfinite(c)), xp.max(a)
            ok = chunk_ok if ok is None else xp.logical_and(ok, chunk_ok)
            amax = chunk_max if amax is None else xp.maximum(amax, chunk_max)
            if moments:
                # values past 2**LOG2_RANGE force a rescale, which discards these moments;
                # zeroing them keeps the squares from overflowing (and NaN/inf out)
                c = xp.where(a <= 2.0 ** LOG2_RANGE, c, xp.zeros_like(c))
                sums = accumulate(sums, xp.sum(c, axis=0))
                sqs = accumulate(sqs, xp.sum(c * c, axis=0))
            del a, c
        flags = to_numpy(xp.stack([xp.astype(ok, self.dtype), amax]))  # host sync
        if not bool(flags[0]):
            self._raise_not_finite(name)
        self._moments = (sums, sqs) if moments else None
        return float(flags[1])

    def _device_rows(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of X as stored, on the device."""
        return self.X[start:stop, :]

    def _raw_unscaled(self, start: int, stop: int) -> Any:
        c = self._device_rows(start, stop)
        return c if c.dtype == self.dtype else self.xp.astype(c, self.dtype)

    def _raise_not_finite(self, name: str) -> None:
        xp = self.xp
        has_nan = any(bool(xp.any(xp.isnan(self._raw_unscaled(s, e)))) for s, e in self.ranges())
        raise ValueError(f"Input {name} contains {'NaN' if has_nan else 'infinity'}.")

    def moments(self, scale: float, metric: Metric) -> tuple[Any, Any, Any]:
        """``(n, mean (d,), total variance)`` on the host (float64), in working units at
        ``scale``: of the unit rows for a unit-row metric.  Reuses the sums of
        :meth:`check_and_amax` where the scale is 1.  One host sync."""
        xp = self.xp
        cached, self._moments = getattr(self, "_moments", None), None
        if metric.unit_rows or cached is None or scale != 1.0:
            probe = Frame(scale, None, float("nan"), metric)
            sums = sqs = None
            for start, stop in self.ranges():
                c = probe.to_working(self._device_rows(start, stop), xp, self.dtype)
                sums = accumulate(sums, xp.sum(c, axis=0))
                sqs = accumulate(sqs, xp.sum(c * c, axis=0))
        else:
            sums, sqs = cached
        if isinstance(sums, np.ndarray):  # the compiled pass's host float64 sums
            host = np.stack([np.asarray(sums, np.float64), np.asarray(sqs, np.float64)])
        else:
            host = np.asarray(to_numpy(xp.stack([sums, sqs])), dtype=np.float64)  # host sync
        mean = host[0] / self.n
        total = float(np.sum(np.clip(host[1] / self.n - mean * mean, 0.0, None)))
        return self.n, mean, total

    def centred_variance(self, frame: Frame) -> float:
        """Sum over features of the variance of the rows in ``frame`` (centred): a second
        pass, only where the data lie far from the origin.  One host sync."""
        self.frame = frame  # the kernels read the scale of the frame being built
        stats = None if self.kernels is None else \
            self.kernels.frame_stats(self, frame.shift, np.inf)
        if stats is not None:
            return float(np.sum(stats[3])) / self.n
        xp = self.xp
        sq = None
        for start, stop in self.ranges():
            c = frame.to_working(self._device_rows(start, stop), xp, self.dtype)
            sq = accumulate(sq, xp.sum(c * c, axis=0))
        return float(xp.sum(sq)) / self.n  # host sync

    # -- the row-source interface of the drivers (``_solvers``): one problem ------------
    #: problems in this source (a batch of problems has a leading problem axis)
    n_problems = 1

    def lloyd_pass(self, C: Any, labels_old: Any, active: Any = None,
                   need_inertia: bool = False) -> tuple[Any, Any, Any, Any, Any]:
        """One pass of the fit's kernel set: labels, sums, counts, inertia (or None), and
        whether the labels equal ``labels_old`` (0-d bool; None on the first pass)."""
        kern = self.kernels
        labels, sums, counts, inertia = kern.lloyd_pass(self, C, need_inertia=need_inertia)
        same = None if labels_old is None else kern.labels_equal(labels, labels_old)
        return labels, sums, counts, inertia, same

    def fused_update(self, labels: Any, sums: Any, counts: Any, C: Any, labels_old: Any
                     ) -> tuple | None:
        """``(updated, code)`` from one call of the kernel set (``lloyd_update``: JAX folds the
        means and the convergence code into one jit), or None: the driver computes them.
        Only the Euclidean means are fused (the other metrics' updates are their own)."""
        if self.metric.name != "euclidean":
            return None
        return self.kernels.lloyd_update(self, labels, sums, counts, C, labels_old)

    def squared_shift(self, new: Any, old: Any) -> Any:
        """``||new - old||_F^2`` (0-d)."""
        return squared_shift(new, old, self.xp)

    def relocate(self, labels: Any, C: Any, sums: Any, counts: Any, which: Any = None,
                 active: Any = None) -> tuple[Any, Any, Any]:
        """Empty clusters filled by the points farthest from their centres."""
        return relocate_empty_clusters(self, labels, C, sums, counts)

    def final(self, C: Any, labels: Any, strict: Any) -> tuple[Any, Any]:
        """Labels matching ``C`` and the inertia (working units): after a strict stop the
        last pass's labels are already those; otherwise one more assignment."""
        if bool(np.asarray(strict).reshape(-1)[0]):
            return labels, self.kernels.inertia_for_labels(self, C, labels)
        return self.kernels.labels_inertia(self, C)

    def same_clusterings(self, labels1: Any, labels2: Any, n_clusters: int) -> np.ndarray:
        """Host bool (1,): whether the clustering is the same (up to label names)."""
        return np.asarray([same_clustering(labels1, labels2, n_clusters, self)])

    def accumulator_dtype(self) -> Any:
        """float64 for reductions of n values where the device has it, else the compute dtype."""
        return self.xp.float64 if self.f64 else self.dtype


class StreamedData(ChunkedData):
    """X on the host (a NumPy array or memmap, possibly larger than device memory), moved
    to ``device`` chunk by chunk at every pass; the kernels and solvers run unchanged.

    Memory budget: on the device, one chunk of X (``rows x d``), a few ``rows x max(k, d)``
    work blocks and O(n) vectors (labels twice, weights, distances: about 24 bytes per row,
    :meth:`working_set_bytes`); on the host, at most two chunks of staging (pinned on torch
    CUDA) besides the source's own pages.  ``chunk_size`` (rows) sets it; by default the
    chunk holds about 2**26 elements on a GPU (2**20 on the CPU).
    """

    streamed = True

    def __init__(self, X: Any, *, xp: Any, device: Any, dtype: Any, weights: Any = None,
                 n_clusters: int = 1, chunk_size: int | None = None,
                 kernels: Any = None, metric: str = "euclidean") -> None:
        self.upload = HostToDevice(xp, device)
        self._target = device
        super().__init__(X, xp=xp, dtype=dtype, weights=weights, n_clusters=n_clusters,
                         chunk_size=chunk_size, kernels=kernels, metric=metric)
        self.device = device
        self.f64 = is_float64_supported(xp, device)
        if not chunk_size:
            self.budget = default_chunk_budget(xp, device)
            self.rows = min(chunk_rows(self.n, self.d, n_clusters, self.budget), self.n)
        self.check_memory(n_clusters)

    def _device_rows(self, start: int, stop: int) -> Any:
        return self.upload(self.X[start:stop])

    def take_rows(self, indices: Any) -> Any:
        host = np.asarray(to_numpy(indices), dtype=np.int64)
        return self.to_working_coords(self.upload(np.asarray(self.X[host])))

