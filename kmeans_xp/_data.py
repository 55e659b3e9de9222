"""The data as the kernels see it: row chunks, centred and scaled on the fly.

:class:`ChunkedData` never copies X whole.  Each chunk of rows is cast to the compute dtype
(float16/bfloat16 -> float32), multiplied by a power of two when the data's magnitude would
overflow or underflow squared distances, and centred, when it is read.  Power-of-two scaling
is exact, so it changes no label; centring keeps float32 distances accurate for data far
from the origin.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from ._compat import (
    HostToDevice,
    available_memory,
    default_chunk_budget,
    device_of,
    is_float64_supported,
    to_numpy,
)

#: Data whose largest magnitude lies outside [2**-LOG2_RANGE, 2**LOG2_RANGE] is scaled.
LOG2_RANGE = 40


def power_of_two_scale(amax: float, finfo: Any) -> float:
    """The power-of-two scale for data whose largest magnitude is ``amax`` (1.0 in range).

    The exponent is clamped so that the scale and its inverse are both normal numbers of
    the dtype whose ``finfo`` is given: data near float32's maximum, or subnormal, would
    otherwise get a scale (or inverse) that overflows to inf when cast to the dtype.
    """
    if not (amax > 2.0 ** LOG2_RANGE or 0.0 < amax < 2.0 ** -LOG2_RANGE):
        return 1.0
    low = math.ceil(math.log2(float(finfo.smallest_normal)))
    # 2**-high must be normal too (float32: 2**-127 is subnormal; XLA flushes it to 0)
    high = min(math.floor(math.log2(float(finfo.max))), -low)
    return 2.0 ** min(max(round(math.log2(amax)), low), high)


def chunk_rows(n_samples: int, n_features: int, n_clusters: int, budget: int) -> int:
    """Rows per chunk so that a chunk's (rows x max(k, d)) work matrix holds ``budget`` elements."""
    width = max(n_clusters, n_features, 1)
    return int(max(1, min(n_samples, budget // width)))


def unit_rows(c: Any, xp: Any) -> Any:
    """Rows of ``c`` scaled to unit Euclidean length; rows of zeros stay zero (as
    scikit-learn's ``normalize``, so that their cosine distance to every centre is 1)."""
    norm = xp.sqrt(xp.sum(c * c, axis=1))
    return c / xp.where(norm > 0, norm, xp.ones_like(norm))[:, None]


def accumulate(total: Any, part: Any) -> Any:
    """``total + part``, with ``None`` as the empty total: the running sums over chunks."""
    return part if total is None else total + part


class ChunkedData:
    """X (n, d) with optional weights, read in chunks of ``rows`` rows.

    ``shift`` (d,) and ``scale`` map data coordinates to the working coordinates
    ``Xt = X / scale - shift``; centres found in working coordinates map back with
    :meth:`to_data_coords`.
    """

    #: True for a source whose rows are moved to the device chunk by chunk (fused kernel
    #: sets that read ``X`` directly must fall back to the chunk loop)
    streamed = False
    #: the fit's distance; subclasses that do not set it (sparse) are Euclidean
    metric = "euclidean"

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
        self.scale = 1.0
        self.shift = None
        self.mean_variance = float("nan")
        self.buffers: dict = {}  # work blocks reused across chunks and iterations (kernels)
        self.cache: dict = {}  # per-fit results a kernel set keeps (e.g. row norms)
        #: the kernel set of this fit (``kmeans_xp._kernels.select``), chosen by the caller
        self.kernels = kernels
        #: 'euclidean', 'cosine' (rows normalised to unit length in the working coordinates,
        #: never centred) or 'manhattan' (L1 distances, computed by the kernel set)
        self.metric = metric
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

    # -- the working coordinates -------------------------------------------------
    def _scaled(self, c: Any) -> Any:
        """Rows in the compute dtype and the working scale, not yet centred."""
        if c.dtype != self.dtype:
            c = self.xp.astype(c, self.dtype)
        return c * (1.0 / self.scale) if self.scale != 1.0 else c

    def to_working_coords(self, C: Any) -> Any:
        """Data-coordinate rows (chunk, centres) in working coordinates."""
        c = self._scaled(C)
        if self.metric == "cosine":
            return unit_rows(c, self.xp)
        return c if self.shift is None else c - self.shift

    def _raw(self, start: int, stop: int) -> Any:
        return self._scaled(self.X[start:stop, :])

    def rows_at(self, start: int, stop: int) -> Any:
        return self.to_working_coords(self.X[start:stop, :])

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

    @property
    def inv_scale(self) -> float:
        """``1 / scale``, an exact power of two: ``Xt = X * inv_scale - shift``."""
        return 1.0 / self.scale

    def chunks(self, rows: int | None = None) -> Iterator[tuple[int, int, Any, Any]]:
        """``(start, stop, Xt, w)`` for each chunk; ``w`` is None for unit weights."""
        for start, stop in self.ranges(rows):
            yield start, stop, self.rows_at(start, stop), self.weights_at(start, stop)

    def to_data_coords(self, C: Any, dtype: Any) -> Any:
        xp = self.xp
        if self.metric == "cosine":  # unit vectors: the same in both coordinates
            return C if C.dtype == dtype else xp.astype(C, dtype)
        if self.shift is not None:
            C = C + self.shift
        if self.scale != 1.0:
            C = C * self.scale
        return C if C.dtype == dtype else xp.astype(C, dtype)

    # -- passes over X (each one read of X, chunk by chunk) -----------------------
    def prepare(self, name: str = "X") -> None:
        """Check for NaN / inf, choose the scale, centre: one pass on typical data."""
        self.check_finite_and_scale(name, moments=True)
        self.center()

    def check_finite_and_scale(self, name: str = "X", *, moments: bool = False) -> None:
        """Raise on NaN / inf; choose the power-of-two ``scale``.  One pass, one host sync.

        With ``moments``, the same pass also sums the columns and their squares, which
        :meth:`center` then reuses (unless the data had to be scaled).
        """
        xp = self.xp
        stats = None if self.kernels is None else \
            self.kernels.frame_stats(self, None, 2.0 ** LOG2_RANGE)
        if stats is not None:  # one compiled pass (the fused CPU set), host float64 results
            finite, amax, sums, sqs = stats
            if not finite:
                self._raise_not_finite(name)
            self._set_scale(amax)
            self._moments = ("host", sums, sqs) if (moments and self.scale == 1.0) else None
            return
        ok = amax = sums = sqs = None  # running reductions: no per-chunk results kept
        # a one-off pass holding several chunk-size temporaries: smaller chunks keep its
        # peak under the Lloyd pass's, at no measurable cost
        for start, stop in self.ranges(max(1, self.rows // 4)):
            c = self._raw(start, stop)
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
        self._set_scale(float(flags[1]))
        self._moments = (sums, sqs) if (moments and self.scale == 1.0) else None

    def _raise_not_finite(self, name: str) -> None:
        xp = self.xp
        has_nan = any(bool(xp.any(xp.isnan(self._raw(s, e)))) for s, e in self.ranges())
        raise ValueError(f"Input {name} contains {'NaN' if has_nan else 'infinity'}.")

    def _set_scale(self, amax: float) -> None:
        """The power-of-two ``scale`` for data whose largest magnitude is ``amax``."""
        self.scale = power_of_two_scale(amax, self.xp.finfo(self.dtype))

    def center(self) -> None:
        """Centre on the column means, when that buys accuracy.  One host sync.

        Sets ``mean_variance`` (mean over features of the per-feature variance, in working
        units; the scale of ``tol``).  When the mean is small next to the spread
        (``||mean||^2 <= total variance``), centring changes float32 accuracy by less than
        a factor of 2: the shift is dropped, so that chunks are not re-centred at every
        iteration, and the one-pass variance E[x^2] - mean^2 is accurate (no cancellation).
        Otherwise the variance is recomputed on centred chunks (a second pass).
        """
        xp = self.xp
        if self.metric == "cosine":  # unit rows, never centred: the variance of those rows
            self._moments, self.shift = None, None
            sums = sqs = None
            for _, _, c, _ in self.chunks():
                sums = accumulate(sums, xp.sum(c, axis=0))
                sqs = accumulate(sqs, xp.sum(c * c, axis=0))
            mean = sums / self.n
            total = xp.sum(xp.clip(sqs / self.n - mean * mean, min=0.0))
            self.mean_variance = float(total) / self.d  # host sync
            return
        moments = getattr(self, "_moments", None)
        if moments is not None and len(moments) == 3:  # ("host", sums, sqs): compiled pass
            self._moments = None
            self._center_host(moments[1], moments[2])
            return
        if moments is None:
            sums = sqs = None
            for start, stop in self.ranges():
                c = self._raw(start, stop)
                sums = accumulate(sums, xp.sum(c, axis=0))
                sqs = accumulate(sqs, xp.sum(c * c, axis=0))
        else:
            sums, sqs = moments
        self._moments = None
        mean = sums / self.n
        total_var = xp.sum(xp.clip(sqs / self.n - mean * mean, min=0.0))
        stats = to_numpy(xp.stack([total_var, xp.sum(mean * mean)]))  # host sync
        if float(stats[1]) <= float(stats[0]):
            self.shift = None
            self.mean_variance = float(stats[0]) / self.d
            return
        self.shift = mean
        sq = None
        for _, _, c, _ in self.chunks():
            sq = accumulate(sq, xp.sum(c * c, axis=0))
        self.mean_variance = float(xp.mean(sq / self.n))  # host sync

    def _center_host(self, sums: np.ndarray, sqs: np.ndarray) -> None:
        """:meth:`center` from float64 host moments of the kernel set's compiled pass; the
        centred variance, when centring is on, from a second compiled pass."""
        mean = sums / self.n
        total_var = float(np.sum(np.clip(sqs / self.n - mean * mean, 0.0, None)))
        if float(mean @ mean) <= total_var:
            self.shift = None
            self.mean_variance = total_var / self.d
            return
        self.shift = self.xp.asarray(mean, dtype=self.dtype, device=self.device)
        sq = self.kernels.frame_stats(self, self.shift, np.inf)[3]
        self.mean_variance = float(np.mean(sq / self.n))

    def distance_factor(self) -> tuple[float, bool]:
        """``(factor, squared)``: a distance the kernels compute in working coordinates (squared
        Euclidean, or L1 for 'manhattan') times ``factor`` is the distance in data units;
        ``squared`` says whether a Euclidean distance is the square root of it.

        'cosine': half the squared distance of unit vectors is the cosine distance 1 - cos.
        """
        if self.metric == "cosine":
            return 0.5, False
        if self.metric == "manhattan":
            return self.scale, False
        return self.scale * self.scale, True  # inf, not OverflowError, past 2**1023

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

    def _raw(self, start: int, stop: int) -> Any:
        return self._scaled(self.upload(self.X[start:stop]))

    def rows_at(self, start: int, stop: int) -> Any:
        return self.to_working_coords(self.upload(self.X[start:stop]))

    def take_rows(self, indices: Any) -> Any:
        host = np.asarray(to_numpy(indices), dtype=np.int64)
        return self.to_working_coords(self.upload(np.asarray(self.X[host])))

