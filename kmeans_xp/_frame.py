"""The frame: the working coordinates every pass of a fit runs in, chosen by ONE rule.

``Xt = metric.working_rows(X * inv_scale, shift)``: the data cast to the compute dtype,
multiplied by an exact power of two when its magnitude would overflow or underflow squared
distances (no label changes: the scaling is exact), then centred on the column means when the
mean is large next to the spread (float32 distances stay accurate far from the origin), or, for
the cosine metric, scaled to unit rows and never centred.  ``mean_variance`` (the mean
per-feature variance in working units) is the scale of ``tol``.

A :class:`Frame` is immutable.  It is built once per fit by :func:`build_frame` from the
moments a row source computes (in memory, sparse, streamed, Dask, a batch of problems: each
computes its moments its own way, and none decides anything), frozen for ``partial_fit``
(:meth:`Frame.freeze`), and made for a fitted model's ``predict``/``transform``/``score`` by
:meth:`Frame.for_centers`.  With a problem axis (batched work) ``scale`` and ``mean_variance``
are host arrays (P,), ``shift`` a (P, d) device array: the same rule, element by element.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._metric import METRICS, Metric

__all__ = ["Frame", "LOG2_RANGE", "build_frame", "power_of_two_scale", "power_of_two_scales"]

#: Data whose largest magnitude lies outside [2**-LOG2_RANGE, 2**LOG2_RANGE] is scaled.
LOG2_RANGE = 40


def power_of_two_scales(amax: Any, finfo: Any) -> np.ndarray:
    """The power-of-two scale for data whose largest magnitude is ``amax`` (host, any shape):
    1.0 in range.

    The exponent is clamped so that the scale and its inverse are both normal numbers of the
    dtype whose ``finfo`` is given: data near float32's maximum, or subnormal, would otherwise
    get a scale (or inverse) that overflows to inf when cast to the dtype.
    """
    amax = np.asarray(amax, dtype=np.float64)
    out = (amax > 2.0**LOG2_RANGE) | ((amax > 0.0) & (amax < 2.0**-LOG2_RANGE))
    if not out.any():
        return np.ones_like(amax)
    low = math.ceil(math.log2(float(finfo.smallest_normal)))
    # 2**-high must be normal too (float32: 2**-127 is subnormal; XLA flushes it to 0)
    high = min(math.floor(math.log2(float(finfo.max))), -low)
    with np.errstate(divide="ignore"):
        exp = np.clip(np.round(np.log2(np.where(out, amax, 1.0))), low, high)
    return np.where(out, np.exp2(exp), 1.0)


def power_of_two_scale(amax: float, finfo: Any) -> float:
    """:func:`power_of_two_scales` of one number."""
    return float(power_of_two_scales(amax, finfo))


@dataclass(frozen=True)
class Frame:
    """The working coordinates of a fit (immutable).

    Attributes
    ----------
    scale : float or ndarray (P,)
        An exact power of two (host): data units per working unit.
    shift : array (d,) or (P, d) in the compute dtype, on the data's device, or None
    mean_variance : float or ndarray (P,)
        Mean per-feature variance in working units: ``tol`` is relative to it.
    metric : Metric
    """

    scale: Any = 1.0
    shift: Any = None
    mean_variance: Any = float("nan")
    metric: Metric = METRICS["euclidean"]

    @property
    def batched(self) -> bool:
        return isinstance(self.scale, np.ndarray)

    @property
    def inv_scale(self) -> Any:
        """``1 / scale``, exact: ``Xt = X * inv_scale - shift``."""
        return 1.0 / self.scale

    @property
    def scaled(self) -> bool:
        return bool(np.any(np.asarray(self.scale) != 1.0))

    def distance_factor(self) -> tuple[Any, bool]:
        """See :meth:`Metric.distance_factor`: in data units, per problem when batched."""
        return self.metric.distance_factor(self.scale)

    # -- coordinates ------------------------------------------------------------------
    def _inv(self, xp: Any, dtype: Any, device: Any, ndim: int) -> Any:
        if not self.batched:
            return 1.0 / self.scale
        inv = xp.asarray(1.0 / self.scale, dtype=dtype, device=device)
        return xp.reshape(inv, (-1,) + (1,) * (ndim - 1))

    def _shift(self, ndim: int) -> Any:
        if self.shift is None or not self.batched:
            return self.shift
        return self.shift[:, None, :] if ndim == 3 else self.shift

    def scaled_rows(self, c: Any, xp: Any, dtype: Any) -> Any:
        """Rows in the compute dtype and the working scale, not yet centred / normalised."""
        if c.dtype != dtype:
            c = xp.astype(c, dtype)
        if not self.scaled:
            return c
        return c * self._inv(xp, dtype, _device(c), c.ndim)

    def to_working(self, C: Any, xp: Any, dtype: Any) -> Any:
        """Data-coordinate rows (a chunk, centres; a leading problem axis when batched) in
        working coordinates."""
        c = self.scaled_rows(C, xp, dtype)
        return self.metric.working_rows(c, self._shift(c.ndim), xp)

    def to_data(self, C: Any, xp: Any, dtype: Any) -> Any:
        """Working-coordinate centres in data coordinates, in ``dtype``."""
        C = self.metric.data_rows(C, self._shift(C.ndim))
        if self.scaled and not self.metric.unit_rows:
            if self.batched:
                C = C * xp.asarray(self.scale, dtype=C.dtype, device=_device(C))[:, None, None]
            else:
                C = C * self.scale
        return C if C.dtype == dtype else xp.astype(C, dtype)

    # -- derived frames ---------------------------------------------------------------
    def for_centers(self, centers_scaled: Any, xp: Any, *, centre: bool = True) -> Frame:
        """The frame of a fitted model's passes: the same scale, centred on the mean of its
        (scaled) centres: accurate float32 distances wherever the data lie.  Never centred
        for unit rows, nor where ``centre`` is False (sparse data would become dense)."""
        if self.metric.unit_rows or not centre:
            return dataclasses.replace(self, shift=None)
        return dataclasses.replace(self, shift=xp.mean(centers_scaled, axis=-2))

    def freeze(self) -> Frame:
        """The frame kept for ``partial_fit``: later batches are read in it unchanged."""
        return self


def _device(x: Any) -> Any:
    from ._compat import device_of

    return device_of(x)


def build_frame(source: Any, metric: Metric, name: str = "X") -> Frame:
    """THE rule, over any row source.

    1. ``source.check_and_amax(name)``: NaN / inf raise; the largest magnitude (host, (P,));
    2. the scale: :func:`power_of_two_scales` (clamped to normal numbers of the compute dtype);
    3. ``source.moments(scale, metric)``: host float64 per-problem row counts, column means and
       the total variance (sum over features of E[x^2] - mean^2) in working units;
    4. centring where the metric allows it and ``||mean||^2 > total variance`` (else it changes
       float32 accuracy by less than a factor of 2, and the one-pass variance is accurate);
    5. ``mean_variance``: the total variance over d; where centred, from
       ``source.centred_variance(frame)`` (a pass over centred rows: no cancellation).
    """
    amax = np.asarray(source.check_and_amax(name), dtype=np.float64)
    finfo = source.xp.finfo(source.dtype)
    scale = power_of_two_scales(amax, finfo)
    n, mean, total_var = source.moments(scale, metric)
    mean, total_var = np.asarray(mean, dtype=np.float64), np.asarray(total_var, np.float64)
    d = int(mean.shape[-1])
    centre = np.zeros(total_var.shape, dtype=bool)
    if not metric.unit_rows and getattr(source, "can_centre", True):
        centre = np.sum(mean * mean, axis=-1) > total_var
    mv = total_var / d
    batched = bool(getattr(source, "batched", False))
    scale_out: Any = scale if batched else float(scale.reshape(()))
    mv_out: Any = mv if batched else float(mv.reshape(()))
    if not batched:
        mean = mean.reshape(-1)
    if not np.any(centre):
        return Frame(scale_out, None, mv_out, metric)
    xp = source.xp
    sel = mean if not batched else np.where(centre[:, None], mean, 0.0)
    shift = xp.asarray(sel, dtype=source.dtype, device=source.device)
    frame = Frame(scale_out, shift, mv_out, metric)
    centred = np.asarray(source.centred_variance(frame), dtype=np.float64) / d
    mv_out = np.where(centre, centred, mv) if batched else float(centred.reshape(()))
    return dataclasses.replace(frame, mean_variance=mv_out)
