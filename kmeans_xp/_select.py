"""Choosing the number of clusters: :func:`select_k` fits every k and scores each clustering.

What is computed once for the whole sweep, and why it is equal to separate fits:

- **The input conversion.** Lists and DataFrames become one array once (the fitted models
  still record the DataFrame's column names).
- **The k-means++ seeds.** Greedy k-means++ draws one uniform for the first centre, then
  ``2 + floor(ln k)`` uniforms per further centre, and its choices depend only on the
  centres chosen so far.  So, from the same int seed, the first k centres of a run for
  ``k_max`` ARE the centres of a run for k *when both use the same number of local trials*
  (k = 2; 3..7; 8..20; 21..54; ...) and read X in the same chunks.  One k-means++ run per
  such group gives the seeds of all its k; each fit of the group then uses the chunk size
  of that run, so ``models[k]`` is bit for bit ``KMeans(n_clusters=k, random_state=seed,
  chunk_size=models[k].chunk_size).fit(X)`` (the parameters the model shows).  Greedy
  k-means++ across groups is not a prefix (the number of trials changes the draws), nor
  is anything with ``n_init > 1`` or ``init="random"`` (later runs depend on how many
  draws earlier runs took): those are fitted independently.
- **The silhouette distances.** The (block x block) distance blocks do not depend on the
  labels: they are computed once and multiplied by every k's one-hot labels.  The rows
  scored (all, or a sample of ``silhouette_sample_size``) are the same for every k.
- **The checked, scaled, centred view of X** used by the Calinski-Harabasz and
  Davies-Bouldin indices is prepared once.

Each ``KMeans.fit`` still checks X for NaN/inf and centres it itself (one read of X per
k): it takes no pre-checked data; that read is small next to k-means++ (about k reads) and
Lloyd (one read per iteration).
"""

from __future__ import annotations

import math
import numbers
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from . import metrics as _metrics
from ._compat import default_chunk_budget
from ._compat import chunk_rows
from ._data import ChunkedData
from ._random import integers
from ._kernels import select
from ._kmeans import KMeans
from ._solvers.init import kmeans_plusplus_working
from ._compat import index_dtype, to_numpy
from ._exceptions import InvalidParameterError
from ._validation import (
    as_array,
    check_2d,
    check_dtype,
    check_random_state,
    check_sample_weight,
    feature_names_of,
)

__all__ = ["CRITERIA", "SelectKResult", "knee_point", "select_k"]

#: The criteria of :func:`select_k` and whether a larger value is better.
CRITERIA = {"elbow": None, "silhouette": True, "calinski_harabasz": True,
            "davies_bouldin": False}


def knee_point(x: Iterable[float], y: Iterable[float]) -> tuple[Any, np.ndarray]:
    """The knee of a decreasing, convex curve (an elbow plot) by the Kneedle rule.

    Kneedle (Satopää, Albrecht, Irwin and Raghavan, 2011), for a decreasing convex curve:
    normalise ``x`` and ``y`` to [0, 1] (``(v - min) / (max - min)``), take the difference
    between the chord from the first point (0, 1) to the last (1, 0) and the normalised
    curve, ``(1 - x_n) - y_n``, and return the ``x`` where it is largest (the first such
    ``x`` on a tie; sensitivity 0: no threshold beyond 1e-9 for rounding).  A positive difference means the curve
    lies below the chord: the inertia dropped faster than linearly before the knee and
    slower after it.

    Parameters
    ----------
    x : sequence of float
        Increasing abscissae (the values of k), at least 3.
    y : sequence of float
        The curve (the inertia for each k).

    Returns
    -------
    knee : element of ``x``
        The knee, or None when the curve never lies below the chord (no elbow: a straight
        or concave curve).
    difference : ndarray
        ``(1 - x_n) - y_n`` for every point.

    Examples
    --------
    >>> from kmeans_xp import knee_point
    >>> knee_point([1, 2, 3, 4, 5, 6], [100.0, 40.0, 12.0, 10.0, 9.0, 8.0])[0]
    3
    """
    xs = list(x)
    xa = np.asarray(xs, dtype=np.float64)
    ya = np.asarray(list(y), dtype=np.float64)
    if xa.ndim != 1 or xa.shape != ya.shape or xa.shape[0] < 3:
        raise ValueError(f"knee_point needs x and y of the same length >= 3; got "
                         f"{xa.shape[0]} and {ya.shape[0]} values.")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("knee_point needs finite x and y values.")
    if np.any(np.diff(xa) <= 0):
        raise ValueError("knee_point needs increasing x values.")
    x_n = (xa - xa[0]) / (xa[-1] - xa[0])
    span = ya.max() - ya.min()
    y_n = (ya - ya.min()) / span if span > 0 else np.zeros_like(ya)
    diff = (1.0 - x_n) - y_n
    i = int(np.argmax(diff))
    return (xs[i] if diff[i] > 1e-9 else None), diff  # rounding: a line is not a knee


@dataclass
class SelectKResult:
    """What :func:`select_k` found: one entry per k of ``k_values``.

    Attributes
    ----------
    k_values : list of int
    inertia : list of float
        The ``inertia_`` of each fit (weighted by ``sample_weight``): the within-cluster
        sum of squares for ``metric='euclidean'``, of L1 distances for 'manhattan', of
        cosine distances for 'cosine'.
    silhouette, calinski_harabasz, davies_bouldin : list of float
        The scores of each clustering (NaN where undefined: fewer than 2 clusters, or
        ``k >= n_samples``).  Unweighted, as scikit-learn's.
    n_iter : list of int
        Lloyd iterations of each fit.
    fit_time : list of float
        Seconds spent fitting each k (k-means++ included).
    criterion : str
        The criterion ``best_k`` was chosen by.
    best_k : int
        The chosen k (see :func:`select_k`).
    random_seed : int
        The int seed every k was fitted with.
    shared_seeding : list of int
        The k whose k-means++ seeds were taken from a shared run (see the module notes).
    models : dict of int to KMeans
        The fitted models.
    """

    k_values: list
    inertia: list
    silhouette: list
    calinski_harabasz: list
    davies_bouldin: list
    n_iter: list
    fit_time: list
    criterion: str
    best_k: int
    random_seed: int
    shared_seeding: list = field(default_factory=list)
    models: dict = field(default_factory=dict, repr=False)

    @property
    def best_model(self) -> KMeans:
        """The fitted model of ``best_k``."""
        return self.models[self.best_k]

    @property
    def cluster_centers(self) -> dict:
        """``{k: cluster_centers_}`` (arrays in X's namespace and device)."""
        return {k: m.cluster_centers_ for k, m in self.models.items()}

    def scores(self, criterion: str) -> list:
        """The per-k values of a criterion ('elbow' is the inertia)."""
        _check_criterion(criterion)
        return self.inertia if criterion == "elbow" else getattr(self, criterion)

    def as_dict(self) -> dict:
        """Plain Python values (JSON-ready: NaN becomes None), without the models."""
        def clean(v: list) -> list:
            return [None if isinstance(x, float) and math.isnan(x) else x for x in v]

        return {"k_values": list(self.k_values), "inertia": clean(self.inertia),
                "silhouette": clean(self.silhouette),
                "calinski_harabasz": clean(self.calinski_harabasz),
                "davies_bouldin": clean(self.davies_bouldin), "n_iter": list(self.n_iter),
                "fit_time": list(self.fit_time), "criterion": self.criterion,
                "best_k": self.best_k, "random_seed": self.random_seed}

    def __str__(self) -> str:
        head = ["k", "inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "n_iter"]
        rows = [head]
        for i, k in enumerate(self.k_values):
            rows.append([f"{k}{' *' if k == self.best_k else ''}", f"{self.inertia[i]:.6g}",
                         f"{self.silhouette[i]:.4f}", f"{self.calinski_harabasz[i]:.6g}",
                         f"{self.davies_bouldin[i]:.4f}", str(self.n_iter[i])])
        widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
        lines.append(f"* best k = {self.best_k} by criterion {self.criterion!r}")
        return "\n".join(lines)


def _check_criterion(criterion: Any) -> str:
    if not isinstance(criterion, str) or criterion not in CRITERIA:
        raise InvalidParameterError(
            "The 'criterion' parameter of select_k must be a str among {'elbow', "
            f"'silhouette', 'calinski_harabasz', 'davies_bouldin'}}. Got {criterion!r} instead.")
    return criterion


def _check_k_range(k_range: Any, n: int, criterion: str) -> list[int]:
    try:
        ks = list(k_range)
    except TypeError:
        ks = None
    if not ks or not all(isinstance(k, numbers.Integral) and not isinstance(k, bool)
                         and int(k) >= 1 for k in ks):
        raise InvalidParameterError(
            "The 'k_range' parameter of select_k must be a non-empty iterable of ints >= 1 "
            f"(e.g. range(2, 11)). Got {k_range!r} instead.")
    ks = sorted({int(k) for k in ks})
    if ks[-1] > n:
        raise ValueError(f"k_range goes up to k={ks[-1]}, but X has only {n} samples "
                         "(each cluster needs at least one).")
    if criterion == "elbow" and len(ks) < 3:
        raise ValueError(f"criterion='elbow' needs at least 3 values in k_range to find a "
                         f"knee; got {ks}.")
    if criterion != "elbow" and not any(2 <= k <= n - 1 for k in ks):
        raise ValueError(f"criterion={criterion!r} needs some k in k_range with 2 <= k <= "
                         f"n_samples - 1 = {n - 1}; got {ks}.")
    return ks


def _int_seed(random_state: Any) -> int:
    """The one int seed of the sweep: ``random_state`` itself, or drawn from it once."""
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        check_random_state(int(random_state))  # range check
        return int(random_state)
    return int(integers(check_random_state(random_state), 2**31 - 1))


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str, refresh: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


class _TextBar(_NoBar):
    """``progress=True`` without tqdm: one line per step on stderr."""

    def __init__(self, total: int, desc: str) -> None:
        self.total, self.desc, self.done, self.note = total, desc, 0, ""

    def update(self, n: int = 1) -> None:
        self.done += n
        print(f"{self.desc}: {self.done}/{self.total} {self.note}", file=sys.stderr, flush=True)

    def set_postfix_str(self, s: str, refresh: bool = False) -> None:
        self.note = s


def progress_bar(total: int, progress: Any, desc: str) -> Any:
    """A tqdm bar (imported here, never at package import), a plain-text one, or none.

    ``progress=None``: a tqdm bar that appears only if the work lasts more than 2 s;
    ``True``: a bar from the start (lines on stderr when tqdm is not installed);
    ``False``: none.
    """
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise InvalidParameterError(
            f"The 'progress' parameter must be None, True or False. Got {progress!r} instead.")
    if progress is False:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, desc) if progress else _NoBar()
    return tqdm(total=total, desc=desc, unit="step", delay=0.0 if progress else 2.0,
                file=sys.stderr)


def _group_by_trials(ks: list[int]) -> list[list[int]]:
    """The k grouped by greedy k-means++'s number of local trials, 2 + floor(ln k)."""
    groups: dict[int, list[int]] = {}
    for k in ks:
        groups.setdefault(2 + int(math.log(k)), []).append(k)
    return list(groups.values())


def select_k(X: Any, k_range: Iterable[int] = range(2, 11), *, criterion: str = "elbow",
             n_init: Any = "auto", random_state: Any = None, sample_weight: Any = None,
             progress: bool | None = None, silhouette_sample_size: int | None = 10_000,
             **kmeans_params: Any) -> SelectKResult:
    """Fit k-means for every k of ``k_range`` and choose k.

    Every k is fitted with ``KMeans(n_clusters=k, n_init=n_init, random_state=seed,
    **kmeans_params)`` and scored by its inertia, silhouette, Calinski-Harabasz and
    Davies-Bouldin indices.  Work that is truly the same for every k is done once (the
    input conversion, the k-means++ seeds of k with the same number of local trials, the
    silhouette's distance blocks; see :mod:`kmeans_xp._select`); the results are those of
    separate fits.  Runs on X's namespace and device.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any namespace and device, a DataFrame, or an array-like.
    k_range : iterable of int, default=range(2, 11)
        The numbers of clusters to try (k = 1 is allowed: it anchors the elbow curve; its
        scores are NaN).
    criterion : {'elbow', 'silhouette', 'calinski_harabasz', 'davies_bouldin'}
        How ``best_k`` is chosen:

        - 'elbow': the knee of the inertia curve by the Kneedle rule (:func:`knee_point`:
          the k where the normalised curve lies farthest below the chord joining its first
          and last points); needs 3 or more k.  If the curve has no knee, a warning is
          given and ``best_k`` is the first k;
        - 'silhouette', 'calinski_harabasz': the k with the largest score;
        - 'davies_bouldin': the k with the smallest score.
    n_init : 'auto' or int, default='auto'
        Runs per k (see :class:`KMeans`).
    random_state : int, RandomState, Generator or None
        Every k is fitted with the same int seed: ``random_state`` itself, or one int
        drawn from it (kept as ``result.random_seed``), so the sweep is reproducible and
        ``models[k]`` can be refitted from its own parameters.
    sample_weight : array of shape (n_samples,), optional
        Weights of the fits and the inertia (the other scores are unweighted).
    progress : bool or None, default=None
        A progress bar (tqdm, when installed) over the fits: None shows one only when the
        sweep takes more than 2 seconds; True always; False never.
    silhouette_sample_size : int or None, default=10000
        The silhouette scores this many rows (the same rows for every k, drawn with
        ``random_seed`` as :func:`kmeans_xp.metrics.silhouette_score` draws them); None
        scores all rows (O(n^2) distance work).
    **kmeans_params
        Other :class:`KMeans` parameters (``max_iter``, ``tol``, ``init``, ``chunk_size``,
        ...).

    Returns
    -------
    SelectKResult
        Per-k inertia, scores, iterations and times, ``best_k`` and the fitted ``models``
        (``result.best_model``).

    Examples
    --------
    >>> import numpy as np
    >>> from kmeans_xp import select_k
    >>> rng = np.random.default_rng(0)
    >>> X = np.concatenate([rng.normal(c, 0.3, size=(50, 2)) for c in (0, 4, 8)])
    >>> result = select_k(X, range(1, 8), random_state=0)
    >>> result.best_k
    3
    >>> select_k(X, range(2, 8), criterion="silhouette", random_state=0).best_k
    3
    >>> result.best_model.cluster_centers_.shape
    (3, 2)
    """
    owner = "select_k"
    criterion = _check_criterion(criterion)
    if silhouette_sample_size is not None:
        silhouette_sample_size = _metrics._check_optional_int(
            silhouette_sample_size, "silhouette_sample_size", owner)
    valid = set(KMeans().get_params()) - {"n_clusters", "n_init", "random_state"}
    unknown = sorted(set(kmeans_params) - valid)
    if unknown:
        raise TypeError(f"select_k got unexpected keyword argument(s) {unknown}: the "
                        f"KMeans parameters it passes on are {sorted(valid)}.")
    init = kmeans_params.get("init", "k-means++")
    if not (isinstance(init, str) or callable(init)):
        raise InvalidParameterError(
            "The 'init' parameter of select_k must be 'k-means++', 'random' or a callable "
            "(an array of centres fixes k).")
    names = feature_names_of(X)
    Xa, xp, dev = as_array(X, "X")
    n, _ = check_2d(Xa, "X", owner)
    _, compute = check_dtype(Xa, xp, dev, "X")
    ks = _check_k_range(k_range, n, criterion)
    seed = _int_seed(random_state)
    metric = kmeans_params.get("metric", "euclidean")
    bar = progress_bar(len(ks) + 1, progress, "select_k")
    try:
        models, times, shared = _fit_all(Xa, xp, dev, compute, ks, seed, n_init, init,
                                         metric, sample_weight, kmeans_params, bar)
        bar.set_postfix_str("scores", refresh=False)
        scores = _score_all(Xa, xp, compute, ks, models, seed, metric, silhouette_sample_size)
        bar.update(1)
    finally:
        bar.close()
    if names is not None:
        for m in models.values():
            m.feature_names_in_ = names
    inertia = [float(models[k].inertia_) for k in ks]
    best = _choose(criterion, ks, inertia, scores)
    return SelectKResult(
        k_values=ks, inertia=inertia, silhouette=scores["silhouette"],
        calinski_harabasz=scores["calinski_harabasz"], davies_bouldin=scores["davies_bouldin"],
        n_iter=[int(models[k].n_iter_) for k in ks], fit_time=[times[k] for k in ks],
        criterion=criterion, best_k=best, random_seed=seed, shared_seeding=shared,
        models=models)


def _fit_all(Xa, xp, dev, compute, ks, seed, n_init, init, metric, sample_weight, params, bar):
    """Fit every k; share k-means++ runs where the seeds are provably the same."""
    share = (isinstance(init, str) and init == "k-means++" and n_init in ("auto", 1)
             and metric == "euclidean")
    models, times, shared = {}, {}, []
    other = {p: v for p, v in params.items() if p not in ("init", "chunk_size")}
    w = None
    for group in _group_by_trials(ks):
        seeds, rows = None, params.get("chunk_size")
        if share and len(group) > 1:
            t0 = time.perf_counter()
            if w is None and sample_weight is not None:
                w = check_sample_weight(sample_weight, int(Xa.shape[0]), xp, dev, compute)
            if rows is None:  # the fits get an explicit chunk size: the same chunks as here
                rows = chunk_rows(int(Xa.shape[0]), int(Xa.shape[1]), group[-1],
                                  default_chunk_budget(xp, dev))
            data = ChunkedData(Xa, xp=xp, dtype=compute, weights=w, n_clusters=group[-1],
                               chunk_size=rows,
                               kernels=select(xp, dev, compute,
                                              n_elements=int(Xa.shape[0]) * int(Xa.shape[1])))
            data.prepare("X")
            rows = data.rows  # every fit of the group reads X in these chunks
            _, idx = kmeans_plusplus_working(data, group[-1], np.random.RandomState(seed))
            seeds = xp.take(Xa, idx, axis=0)
            seed_time = (time.perf_counter() - t0) / len(group)
        for k in group:
            bar.set_postfix_str(f"k={k}", refresh=False)
            t0 = time.perf_counter()
            if seeds is None:
                km = KMeans(n_clusters=k, n_init=n_init, random_state=seed, init=init,
                            chunk_size=params.get("chunk_size"), **other)
                km.fit(Xa, sample_weight=sample_weight)
                times[k] = time.perf_counter() - t0
            else:
                km = KMeans(n_clusters=k, n_init=1, random_state=seed, init=seeds[:k, :],
                            chunk_size=rows, **other)
                km.fit(Xa, sample_weight=sample_weight)
                # the parameters of the equivalent independent fit (see the module notes)
                km.set_params(init="k-means++", n_init=n_init)
                times[k] = time.perf_counter() - t0 + seed_time
                shared.append(k)
            models[k] = km
            bar.update(1)
    return models, times, shared


def _score_all(Xa, xp, compute, ks, models, seed, metric, sample_size) -> dict:
    """Silhouette (one pass of distance blocks for all k), Calinski-Harabasz, Davies-Bouldin."""
    n = int(Xa.shape[0])
    nan = float("nan")
    out = {"silhouette": [nan] * len(ks), "calinski_harabasz": [nan] * len(ks),
           "davies_bouldin": [nan] * len(ks)}
    codes = {}
    for i, k in enumerate(ks):
        lab, m = _metrics._compact(xp.astype(models[k].labels_, index_dtype(xp)), xp)
        if 2 <= m <= n - 1:
            codes[i] = (lab, m)
    if not codes:
        return out
    data = ChunkedData(Xa, xp=xp, dtype=compute, n_clusters=max(m for _, m in codes.values()))
    data.prepare("X")
    for i, (lab, m) in codes.items():
        out["calinski_harabasz"][i] = _metrics._calinski_harabasz(data, lab, m)
        out["davies_bouldin"][i] = _metrics._davies_bouldin(data, lab, m)
    sil_metric = _metrics.METRICS.get(metric, "euclidean") if isinstance(metric, str) \
        else "euclidean"
    Xs, keep = Xa, list(codes)
    labelings = [codes[i] for i in keep]
    if sample_size is not None and sample_size < n:
        idx = np.random.RandomState(seed).permutation(n)[:sample_size]
        idx = xp.asarray(idx.astype(np.int64), device=data.device)
        Xs = xp.take(Xa, idx, axis=0)
        labelings = [_metrics._compact(xp.take(lab, idx), xp) for lab, _ in labelings]
        keep = [i for i, (_, m) in zip(keep, labelings) if 2 <= m <= sample_size - 1]
        labelings = [lm for lm in labelings if 2 <= lm[1] <= sample_size - 1]
    if labelings:
        blocks = _metrics._Blocks(Xs, xp, compute, sil_metric, None)
        acc = blocks.data.accumulator_dtype()
        samples = _metrics._silhouette_blocks(blocks, labelings)
        means = to_numpy(xp.stack([xp.sum(xp.astype(s, acc)) for s in samples]))  # one sync
        for i, total in zip(keep, means):
            out["silhouette"][i] = float(total) / int(Xs.shape[0])
    return out


def _choose(criterion: str, ks: list[int], inertia: list[float], scores: dict) -> int:
    if criterion == "elbow":
        knee, _ = knee_point(ks, inertia)
        if knee is None:
            warnings.warn(f"The inertia curve over k = {ks[0]}..{ks[-1]} has no elbow (it "
                          "never lies below the chord joining its ends): best_k is the "
                          "first k. Try a wider k_range or another criterion.",
                          UserWarning, stacklevel=3)
            return ks[0]
        return int(knee)
    vals = np.asarray(scores[criterion], dtype=np.float64)
    vals = np.where(np.isnan(vals), -np.inf if CRITERIA[criterion] else np.inf, vals)
    return int(ks[int(np.argmax(vals) if CRITERIA[criterion] else np.argmin(vals))])
