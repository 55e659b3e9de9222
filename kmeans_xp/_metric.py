"""A distance metric is one object: everything a fit, a fitted model, the scores and the plots
need to know about it lives here, and nowhere else names a metric.

A :class:`Metric` says
- how the frame treats rows (:attr:`Metric.unit_rows`: cosine works on rows scaled to unit
  length, never centred; the others may be centred and are translation invariant);
- which distance the kernels compute in working coordinates (:attr:`Metric.kernel`: the squared
  Euclidean distance, or ``'l1'`` for Manhattan, whose kernel set ``_kernels.select`` picks), and
  the factor that turns it into the distance in data units (:meth:`Metric.distance_factor`);
- the centre update of a Lloyd iteration (:meth:`Metric.update`: means, unit means, medians);
- what ``inertia_`` means and how plots and reports label it.

Adding a metric is one subclass and one line in :data:`METRICS`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["METRICS", "Metric", "get_metric", "unit_rows", "new_centers"]


def unit_rows(c: Any, xp: Any) -> Any:
    """Rows of ``c`` scaled to unit Euclidean length; rows of zeros stay zero (as
    scikit-learn's ``normalize``, so that their cosine distance to every centre is 1)."""
    norm = xp.sqrt(xp.sum(c * c, axis=-1))
    return c / xp.where(norm > 0, norm, xp.ones_like(norm))[..., None]


def new_centers(sums: Any, counts: Any, old: Any, xp: Any, *, none_empty: bool = False) -> Any:
    """Means of the clusters; a cluster with no weight keeps its old centre (never NaN).

    Any number of leading problem axes: ``sums`` (..., k, d), ``counts`` (..., k).
    ``none_empty``: the caller discards the result when a cluster is empty, so the means
    are returned without selecting the old centres (one (k, d) temporary fewer: for wide
    sparse data that is 200 MB of the peak at k = 100, d = 2**18).
    """
    has = counts > 0
    safe = xp.where(has, counts, xp.ones_like(counts))
    means = sums / safe[..., None]
    return means if none_empty else xp.where(has[..., None], means, old)


class Metric:
    """The squared-Euclidean k-means (the base: other metrics override what differs)."""

    #: the name users pass as ``metric=``
    name = "euclidean"
    #: the distance the kernel set computes: 'sqeuclidean' or 'l1' (its own kernel set)
    kernel = "sqeuclidean"
    #: rows (and centres) are scaled to unit length in working coordinates, never centred
    unit_rows = False
    #: what the algorithm is called (plot titles, reports)
    algorithm = "k-means"
    #: what ``inertia_`` sums, for docs, axis labels and reports
    inertia_label = "inertia (within-cluster sum of squares)"
    #: what ``transform`` returns
    distance_label = "Euclidean distance"

    def __repr__(self) -> str:
        return f"Metric({self.name!r})"

    # -- the frame ---------------------------------------------------------------------
    def distance_factor(self, scale: float) -> tuple[float, bool]:
        """``(factor, squared)``: a distance the kernels compute in working coordinates times
        ``factor`` is the distance in data units; ``squared``: a user-facing distance
        (``transform``) is the square root of it (then times ``scale``, not
        ``sqrt(scale * scale)``, which can overflow)."""
        return scale * scale, True  # inf, not OverflowError, past 2**1023

    def working_rows(self, c: Any, shift: Any, xp: Any) -> Any:
        """Scaled rows (chunk or centres, any leading axes) in working coordinates."""
        return c if shift is None else c - shift

    def data_rows(self, C: Any, shift: Any) -> Any:
        """Working-coordinate centres back in (scaled) data coordinates."""
        return C if shift is None else C + shift

    # -- Lloyd ---------------------------------------------------------------------------
    def update(
        self,
        source: Any,
        labels: Any,
        sums: Any,
        counts: Any,
        old: Any,
        *,
        none_empty: bool = False,
    ) -> Any:
        """The centres after a Lloyd pass, from its sums and counts (any leading problem
        axes); an empty cluster keeps ``old`` (``none_empty``: see :func:`new_centers`)."""
        return new_centers(sums, counts, old, source.xp, none_empty=none_empty)

    #: whether :meth:`update` reads the labels (then relocation must move labels too)
    update_uses_labels = False


class Cosine(Metric):
    """Spherical k-means: unit rows, centres the normalised means; the distance
    ``1 - cos`` is half the squared Euclidean distance of unit vectors."""

    name = "cosine"
    unit_rows = True
    algorithm = "spherical k-means"
    inertia_label = "inertia (within-cluster sum of cosine distances)"
    distance_label = "cosine distance (1 - cos)"

    def distance_factor(self, scale: float) -> tuple[float, bool]:
        return 0.5, False

    def working_rows(self, c: Any, shift: Any, xp: Any) -> Any:
        return unit_rows(c, xp)

    def data_rows(self, C: Any, shift: Any) -> Any:
        return C  # unit vectors: the same in both coordinates

    def update(self, source, labels, sums, counts, old, *, none_empty=False):
        return unit_rows(
            super().update(source, labels, sums, counts, old, none_empty=none_empty), source.xp
        )


class Manhattan(Metric):
    """k-medians: L1 distances, centres the coordinate-wise weighted medians."""

    name = "manhattan"
    kernel = "l1"
    algorithm = "k-medians"
    inertia_label = "inertia (within-cluster sum of L1 distances)"
    distance_label = "Manhattan (L1) distance"
    update_uses_labels = True

    def distance_factor(self, scale: float) -> tuple[float, bool]:
        return scale, False

    def update(self, source, labels, sums, counts, old, *, none_empty=False):
        return weighted_medians(source, labels, counts, old)


def weighted_medians(data: Any, labels: Any, counts: Any, old: Any) -> Any:
    """Coordinate-wise weighted median of each cluster (k, d); an empty cluster keeps ``old``.

    The convention of ``np.median`` generalised to weights: the midpoint of the two middle
    values where the cumulative weight reaches exactly half of the cluster's weight between
    them (so unit weights give ``np.median``: the mean of the two middle values of an even
    count), else the value at which the cumulative weight first exceeds half.  Features are
    taken in blocks of columns: each block is sorted by (label, value) with two stable sorts,
    and the medians are found with ``searchsorted`` on the running weight.  Memory: an
    (n x block) array, block = budget // n columns (at least one).
    """
    xp = data.xp
    n, d = data.n, data.d
    acc = data.accumulator_dtype()
    w = (
        xp.ones((n,), dtype=acc, device=data.device)
        if data.weights is None
        else xp.astype(data.weights, acc)
    )
    counts = xp.astype(counts, acc)
    before = xp.cumulative_sum(counts) - counts  # weight of the clusters ahead of each
    target = before + 0.5 * counts
    block = max(1, min(d, data.budget // max(1, n)))
    cols = []
    for f0 in range(0, d, block):
        f1 = min(d, f0 + block)
        V = xp.concat([Xt[:, f0:f1] for _, _, Xt, _ in data.chunks()])  # (n, f1 - f0)
        for j in range(f1 - f0):
            v = V[:, j]
            order = xp.argsort(v, stable=True)
            order = xp.take(order, xp.argsort(xp.take(labels, order), stable=True))
            cum = xp.cumulative_sum(xp.take(w, order))
            sv = xp.take(v, order)
            # lo: the first position whose running weight reaches the half weight; where it
            # reaches it exactly, the median is the midpoint with the next positive-weight
            # value of the same cluster (hi: the first position whose weight exceeds half)
            lo = xp.clip(xp.searchsorted(cum, target, side="left"), max=n - 1)
            hi = xp.clip(xp.searchsorted(cum, target, side="right"), max=n - 1)
            exact = xp.take(cum, lo) == target
            a, b = xp.take(sv, lo), xp.take(sv, hi)
            cols.append(xp.where(exact, 0.5 * a + 0.5 * b, a))
    med = xp.stack(cols, axis=1)
    return xp.where((counts > 0)[:, None], med, old)


#: The metrics a fit can use, by name.
METRICS: dict[str, Metric] = {m.name: m for m in (Metric(), Cosine(), Manhattan())}


def get_metric(metric: Any) -> Metric:
    """The metric object for a name (or the object itself)."""
    if isinstance(metric, Metric):
        return metric
    return METRICS[metric]
