"""Plots of a clustering: clusters and centres, the elbow curve, the silhouette diagram.

Each function takes arrays of any backend (NumPy, torch on CPU or GPU, CuPy, ...), a fitted
:class:`~kmeans_xp.KMeans`, or a :func:`~kmeans_xp.select_k` result, computes what it needs on
the data's device (the PCA projection, the silhouettes), copies only the two plotted
coordinates per point to the host, and returns the matplotlib ``Axes`` (``ax.figure`` is the
figure).  matplotlib (``pip install 'kmeans_xp[plot]'``) is imported when a function runs,
not when this module is imported.

Examples
--------
>>> import matplotlib
>>> matplotlib.use("Agg")
>>> import numpy as np
>>> from kmeans_xp import KMeans, select_k
>>> from kmeans_xp.plotting import plot_clusters, plot_elbow, plot_silhouette
>>> rng = np.random.default_rng(0)
>>> X = np.concatenate([rng.normal(c, 0.4, size=(40, 3)) for c in (0, 3, 6)])
>>> result = select_k(X, range(1, 7), random_state=0)
>>> ax = plot_elbow(result)                    # the inertia per k, the chosen k marked
>>> ax = plot_clusters(X, model=result)        # PCA of the 3 features, centres as big X
>>> ax.get_xlabel()[:3]
'PC1'
>>> ax = plot_silhouette(X, result.best_model) # one band per cluster, the average line
>>> ax.get_title()
'Silhouette diagram (k = 3, n = 120, euclidean)'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._compat import to_numpy
from ._validation import as_array, check_2d, check_dtype, check_random_state, feature_names_of

__all__ = ["plot_clusters", "plot_elbow", "plot_silhouette"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "kmeans_xp.plotting needs matplotlib: pip install "
            "'kmeans_xp[plot]' (or pip install matplotlib)."
        ) from None
    return plt


def _new_axes(ax: Any, figsize: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, constrained_layout=True)
    return ax


def _model_of(obj: Any) -> Any:
    """A fitted model from a model or a select_k result (its best model); else None."""
    if obj is None:
        return None
    if hasattr(obj, "best_model") and hasattr(obj, "k_values"):
        return obj.best_model
    if hasattr(obj, "cluster_centers_") and hasattr(obj, "labels_"):
        return obj
    return None


#: What the clustering of each metric is called, and what its inertia sums.
_METHOD = {"euclidean": "k-means", "manhattan": "k-medians", "cosine": "spherical k-means"}
_INERTIA = {
    "euclidean": "within-cluster sum of squares",
    "manhattan": "within-cluster sum of L1 distances",
    "cosine": "within-cluster sum of cosine distances",
}


def _metric_of(obj: Any, default: str = "euclidean") -> str:
    """The ``metric`` of a model or of a select_k result's models (default: euclidean)."""
    models = getattr(obj, "models", None)
    if isinstance(models, dict) and models:
        obj = next(iter(models.values()))
    metric = getattr(obj, "metric", None)
    return metric if isinstance(metric, str) and metric in _METHOD else default


def _legend_clear_of(ax: Any, leg: Any, points: np.ndarray, radius: float) -> Any:
    """Move the legend outside the axes (right) when it covers one of ``points`` (data
    coordinates; ``radius`` in display pixels, the marker's half-size)."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    if getattr(fig, "get_layout_engine", None) and fig.get_layout_engine() is not None:
        fig.canvas.draw()  # the layout engine sizes the axes first: the bbox is final
    box = leg.get_window_extent(renderer)
    disp = ax.transData.transform(points)
    covered = (
        (disp[:, 0] + radius > box.x0)
        & (disp[:, 0] - radius < box.x1)
        & (disp[:, 1] + radius > box.y0)
        & (disp[:, 1] - radius < box.y1)
    )
    if not covered.any():
        return leg
    if hasattr(leg, "set_loc"):
        leg.set_loc("upper left")
    else:  # matplotlib < 3.8
        leg._loc = 2  # "upper left"
    leg.set_bbox_to_anchor((1.02, 1.0), transform=ax.transAxes)
    return leg


def _colors(n: int) -> list:
    plt = _pyplot()
    if n <= 10:
        cmap = plt.get_cmap("tab10")
        return [cmap(i) for i in range(n)]
    if n <= 20:
        cmap = plt.get_cmap("tab20")
        return [cmap(i) for i in range(n)]
    cmap = plt.get_cmap("viridis")
    return [cmap(i / max(1, n - 1)) for i in range(n)]


def _host_labels(labels: Any, n: int) -> np.ndarray:
    lab = np.asarray(
        to_numpy(labels)
        if hasattr(labels, "__array_namespace__") or hasattr(labels, "device")
        else labels
    )
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(
            f"labels must be 1-D with one label per sample: expected shape "
            f"({n},), got {tuple(lab.shape)}."
        )
    return lab


def _pca2(X: Any, xp: Any, compute: Any, extra: Any = None) -> tuple[Any, Any, list]:
    """The first two principal components of X, on X's device with the standard's linalg.

    The covariance (d x d) is summed over row chunks (no centred copy of X) and split by
    ``xp.linalg.eigh``; each axis is signed so that its largest loading is positive (the
    same picture on every backend).  Returns the projections of X and of ``extra`` (the
    centres), and the fractions of the variance the two axes explain.
    """
    n, d = int(X.shape[0]), int(X.shape[1])
    rows = max(1, (1 << 20) // max(1, d))
    mean: Any = None
    for s in range(0, n, rows):
        part = xp.sum(xp.astype(X[s : min(s + rows, n), :], compute), axis=0)
        mean = part if mean is None else mean + part
    mean = mean / float(n)
    cov: Any = None
    for s in range(0, n, rows):
        c = xp.astype(X[s : min(s + rows, n), :], compute) - mean
        part = xp.matmul(xp.matrix_transpose(c), c)
        cov = part if cov is None else cov + part
    cov = cov / float(max(n - 1, 1))
    evals, evecs = xp.linalg.eigh(cov)  # ascending
    V = xp.stack([evecs[:, d - 1], evecs[:, d - 2]], axis=1)  # (d, 2)
    pick = xp.argmax(xp.abs(V), axis=0)
    signs = xp.sign(xp.stack([V[pick[0], 0], V[pick[1], 1]]))
    V = V * xp.where(signs == 0, xp.ones_like(signs), signs)[None, :]
    total = xp.sum(xp.clip(evals, min=0.0))
    ratios = [float(v) for v in to_numpy(xp.stack([evals[d - 1], evals[d - 2]]) / total)]
    parts = [
        xp.matmul(xp.astype(X[s : min(s + rows, n), :], compute) - mean, V)
        for s in range(0, n, rows)
    ]
    P = parts[0] if len(parts) == 1 else xp.concat(parts)
    Pe = None if extra is None else xp.matmul(xp.astype(extra, compute) - mean, V)
    return P, Pe, ratios


def _column_index(col: Any, d: int, names: Sequence[str] | None) -> int:
    if isinstance(col, str):
        if names is None or col not in list(names):
            raise ValueError(
                f"columns: no feature named {col!r}; the features are "
                f"{list(names) if names is not None else 'unnamed (pass indices)'}."
            )
        return list(names).index(col)
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool) and -d <= col < d:
        return int(col) % d
    raise ValueError(f"columns: {col!r} is neither a feature name nor an index in [0, {d}).")


def plot_clusters(
    X: Any,
    labels: Any = None,
    centers: Any = None,
    *,
    model: Any = None,
    columns: Sequence[Any] | None = None,
    pca: bool | None = None,
    feature_names: Sequence[str] | None = None,
    ax: Any = None,
    title: str | None = None,
    legend: bool = True,
    point_size: float = 24.0,
    alpha: float = 0.75,
) -> Any:
    """Scatter plot of the samples coloured by cluster, with the centres marked.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any backend, a DataFrame, or an array-like.
    labels : array of shape (n_samples,), a fitted model or a select_k result, optional
        The cluster of each sample (default: the model's ``labels_``, or its ``predict(X)``
        when X is other data).
    centers : array of shape (n_clusters, n_features), optional
        The centres (default: the model's ``cluster_centers_``), drawn as big outlined X's.
    model : KMeans or SelectKResult, optional
        A fitted model (of a ``select_k`` result: its best model).
    columns : pair of int or str, optional
        The two features to plot, by index or by name (names from a DataFrame's columns,
        ``feature_names`` or the model's ``feature_names_in_``).
    pca : bool or None, default=None
        Plot the first two principal components (computed on X's device with the
        standard's ``linalg.eigh``).  None: PCA when X has more than 2 features and no
        ``columns`` are given; False: the first two features.
    feature_names : sequence of str, optional
        Names of the features, for ``columns`` and the axis labels.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
        Default: "k-means clusters (k = ..., n = ...)", "k-medians clusters" for a model
        with ``metric="manhattan"``, "spherical k-means clusters" for ``metric="cosine"``.
    legend : bool, default=True
        A legend of the clusters (with their sizes) and the centres, placed where it covers
        the fewest points, and outside the axes (right) when it would hide a centre.
    point_size, alpha : float
        Marker area and opacity of the samples.

    Returns
    -------
    matplotlib.axes.Axes
        One scatter collection per cluster, then one for the centres (when given).
    """
    if _model_of(labels) is not None:
        model, labels = labels, None
    model = _model_of(model) if model is not None else None
    if (
        model is None
        and labels is not None
        and not hasattr(labels, "__len__")
        and not hasattr(labels, "shape")
    ):
        raise TypeError(
            "labels must be an array, a fitted model or a select_k result; got "
            f"{type(labels).__name__}."
        )
    names = list(feature_names) if feature_names is not None else None
    if names is None:
        frame_names = feature_names_of(X)
        if frame_names is not None:
            names = list(frame_names)
        elif model is not None and hasattr(model, "feature_names_in_"):
            names = list(model.feature_names_in_)
    Xa, xp, dev = as_array(X, "X")
    n, d = check_2d(Xa, "X", "plot_clusters")
    _, compute = check_dtype(Xa, xp, dev, "X")
    if model is not None:
        if labels is None:
            same = model.labels_.shape[0] == n and X is not None
            labels = model.labels_ if same else model.predict(X)
        if centers is None:
            centers = model.cluster_centers_
    lab = None if labels is None else _host_labels(labels, n)
    C = None
    if centers is not None:
        C, _, _ = as_array(centers, "centers", xp=xp, device=dev)
        if C.ndim != 2 or int(C.shape[1]) != d:
            raise ValueError(f"centers must have shape (n_clusters, {d}); got {tuple(C.shape)}.")
    if columns is None and d < 2:
        raise ValueError("plot_clusters needs at least 2 features (X has 1).")
    use_pca = pca is True or (pca is None and columns is None and d > 2)
    if use_pca:
        P, Pc, ratios = _pca2(Xa, xp, compute, C)
        xy = to_numpy(P)
        cxy = None if Pc is None else to_numpy(Pc)
        xlabel = f"PC1 ({100 * ratios[0]:.1f} % of variance)"
        ylabel = f"PC2 ({100 * ratios[1]:.1f} % of variance)"
    else:
        cols = (0, 1) if columns is None else tuple(columns)
        if len(cols) != 2:
            raise ValueError(f"columns must name 2 features; got {list(cols)}.")
        i, j = (_column_index(c, d, names) for c in cols)
        xy = np.stack([to_numpy(Xa[:, i]), to_numpy(Xa[:, j])], axis=1)
        cxy = None if C is None else np.stack([to_numpy(C[:, i]), to_numpy(C[:, j])], axis=1)
        xlabel, ylabel = (
            (names[i], names[j]) if names is not None else (f"feature {i}", f"feature {j}")
        )
    xy = np.asarray(xy, dtype=np.float64)

    ax = _new_axes(ax, (6.4, 5.2))
    values = np.unique(lab) if lab is not None else np.array([0])
    k = len(values) if cxy is None else max(len(values), cxy.shape[0])
    int_labels = (
        lab is not None and lab.dtype.kind in "iu" and values.min() >= 0 and values.max() < k
    )
    colors = _colors(k)
    if lab is None:
        ax.scatter(
            xy[:, 0], xy[:, 1], s=point_size, alpha=alpha, color="tab:gray", label=f"samples ({n})"
        )
    else:
        for r, v in enumerate(values):
            members = lab == v
            ax.scatter(
                xy[members, 0],
                xy[members, 1],
                s=point_size,
                alpha=alpha,
                color=colors[int(v) if int_labels else r],
                label=f"cluster {v} ({int(members.sum())})",
            )
    if cxy is not None:
        cxy = np.asarray(cxy, dtype=np.float64)
        ax.scatter(
            cxy[:, 0],
            cxy[:, 1],
            marker="X",
            s=300,
            c=colors[: cxy.shape[0]],
            edgecolors="black",
            linewidths=1.8,
            zorder=3,
            label="centres",
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title is None:
        kk = len(values) if lab is not None else (0 if C is None else int(C.shape[0]))
        method = _METHOD[_metric_of(model)]
        title = f"{method} clusters (k = {kk}, n = {n})" + (", PCA projection" if use_pca else "")
    ax.set_title(title)
    if legend and k <= 20:
        leg = ax.legend(loc="best", fontsize="small", framealpha=0.85)
        if cxy is not None:  # the centres' entry in a neutral colour, not cluster 0's
            handles = getattr(leg, "legend_handles", None) or leg.legendHandles
            handles[-1].set_facecolor("white")
            # s=300 points^2: a marker about 17 points wide, plus its edge
            _legend_clear_of(ax, leg, cxy, radius=10.0 * ax.figure.dpi / 72.0)
    return ax


def plot_elbow(
    result_or_k_values: Any,
    inertias: Sequence[float] | None = None,
    *,
    best_k: int | None = None,
    score: str | None = None,
    ax: Any = None,
    title: str | None = None,
    metric: str | None = None,
) -> Any:
    """The elbow plot: inertia against k, with the chosen k marked.

    Parameters
    ----------
    result_or_k_values : SelectKResult or sequence of int
        A :func:`~kmeans_xp.select_k` result, or the values of k.
    inertias : sequence of float, optional
        The inertia of each k (when k values are given).
    best_k : int, optional
        The k to mark.  Default: the result's ``best_k``, or the Kneedle knee of the
        curve (:func:`kmeans_xp.knee_point`) for plain values.
    score : {'silhouette', 'calinski_harabasz', 'davies_bouldin'}, optional
        Also draw this score of a result on a second y axis (right).
    ax : matplotlib Axes, optional
    title : str, optional
    metric : {'euclidean', 'manhattan', 'cosine'}, optional
        What the inertia sums, for the y axis's label: squared Euclidean distances
        (k-means), L1 distances (k-medians) or cosine distances (spherical k-means).
        Default: the metric of the result's models, else 'euclidean'.

    Returns
    -------
    matplotlib.axes.Axes
        The inertia axes (the score's twin axes is ``ax.right_ax`` when drawn).
    """
    from ._select import CRITERIA, knee_point

    result = result_or_k_values if hasattr(result_or_k_values, "k_values") else None
    how = "marked"
    if result is not None:
        ks, inertia = list(result.k_values), list(result.inertia)
        if best_k is None:
            best_k, how = result.best_k, f"{result.criterion} criterion"
    else:
        if inertias is None:
            raise TypeError("plot_elbow needs a select_k result, or k values and inertias.")
        ks, inertia = [int(k) for k in result_or_k_values], [float(v) for v in inertias]
        if len(ks) != len(inertia):
            raise ValueError(f"plot_elbow got {len(ks)} k values and {len(inertia)} inertias.")
        if best_k is None and len(ks) >= 3:
            best_k, how = knee_point(ks, inertia)[0], "Kneedle elbow"
    if score is not None:
        if result is None or score not in CRITERIA or score == "elbow":
            raise ValueError(
                "score must be 'silhouette', 'calinski_harabasz' or "
                "'davies_bouldin', with a select_k result."
            )
    ax = _new_axes(ax, (6.4, 4.4))
    (line,) = ax.plot(ks, inertia, "o-", color="tab:blue", lw=2, label="inertia")
    handles = [line]
    if best_k is not None:
        if best_k not in ks:
            raise ValueError(f"best_k={best_k} is not among the k values {ks}.")
        y = inertia[ks.index(best_k)]
        ax.axvline(best_k, color="tab:red", ls="--", lw=1.2, zorder=0)
        (mark,) = ax.plot(
            [best_k],
            [y],
            "o",
            ms=14,
            mfc="none",
            mec="tab:red",
            mew=2.2,
            label=f"chosen k = {best_k} ({how})",
        )
        handles.append(mark)
    ax.set_xticks(ks)
    ax.set_xlabel("number of clusters k")
    if metric is None:
        metric = _metric_of(result)
    elif metric not in _INERTIA:
        raise ValueError(f"metric must be one of {sorted(_INERTIA)}; got {metric!r}.")
    ax.set_ylabel(f"inertia ({_INERTIA[metric]})", color="tab:blue")
    ax.set_title(title or "Elbow method: inertia against k")
    ax.grid(True, alpha=0.3)
    if score is not None:
        right = ax.twinx()
        vals = list(getattr(result, score))
        label = (
            score.replace("_", "-").capitalize() if score != "silhouette" else "silhouette score"
        )
        (sline,) = right.plot(ks, vals, "s--", color="tab:green", lw=1.5, label=label)
        right.set_ylabel(
            label + (" (higher is better)" if CRITERIA[score] else " (lower is better)"),
            color="tab:green",
        )
        handles.append(sline)
        ax.right_ax = right
    ax.legend(handles=handles, loc="upper right", fontsize="small")
    return ax


def plot_silhouette(
    X: Any,
    labels: Any = None,
    *,
    model: Any = None,
    metric: str = "euclidean",
    sample_size: int | None = None,
    random_state: Any = None,
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """The silhouette diagram: each cluster's sorted silhouettes as a band, and the average.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Any backend, a DataFrame, or an array-like.
    labels : array of shape (n_samples,), a fitted model or a select_k result
        The clusters (a model's ``labels_``, or ``predict(X)`` for other data).
    model : KMeans or SelectKResult, optional
        Instead of ``labels``.
    metric : {'euclidean', 'sqeuclidean', 'cosine', 'manhattan'}, default='euclidean'
    sample_size : int, optional
        Draw this many rows (as :func:`kmeans_xp.metrics.silhouette_score` does) for large
        data; the silhouettes are those of the drawn rows among themselves.
    random_state : int, RandomState, Generator or None
        Seeds the draw of ``sample_size`` rows.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
        One filled band per cluster (in cluster order, bottom to top) and a dashed line at
        the average silhouette (the silhouette score).
    """
    from .metrics import silhouette_samples

    if _model_of(labels) is not None:
        model, labels = labels, None
    model = _model_of(model)
    Xa, xp, dev = as_array(X, "X")
    n, _ = check_2d(Xa, "X", "plot_silhouette")
    if labels is None:
        if model is None:
            raise TypeError("plot_silhouette needs labels, a fitted model or a select_k result.")
        labels = model.labels_ if model.labels_.shape[0] == n else model.predict(X)
    lab = _host_labels(labels, n)
    if sample_size is not None:
        idx = check_random_state(random_state).permutation(n)[:sample_size]
        Xa = xp.take(Xa, xp.asarray(idx.astype(np.int64), device=dev), axis=0)
        lab, n = lab[idx], int(idx.shape[0])
    s = np.asarray(to_numpy(silhouette_samples(Xa, lab, metric=metric)), dtype=np.float64)
    values = np.unique(lab)
    k = len(values)
    colors = _colors(k)
    int_labels = lab.dtype.kind in "iu" and values.min() >= 0 and values.max() < k
    ax = _new_axes(ax, (6.4, 5.2))
    gap = max(3, n // 30)
    y, ticks = gap, []
    for r, v in enumerate(values):
        vals = np.sort(s[lab == v])
        ys = np.arange(y, y + vals.shape[0])
        color = colors[int(v) if int_labels else r]
        ax.fill_betweenx(ys, 0.0, vals, facecolor=color, edgecolor=color, alpha=0.8, label=None)
        ticks.append(y + vals.shape[0] / 2.0)
        y += vals.shape[0] + gap
    avg = float(s.mean())
    ax.axvline(avg, color="tab:red", ls="--", lw=1.5, label=f"average silhouette = {avg:.3f}")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(ticks, labels=[str(v) for v in values])
    ax.set_ylim(0, y)
    ax.set_xlim(min(-0.1, float(s.min()) - 0.05), 1.0)
    ax.set_xlabel("silhouette coefficient")
    ax.set_ylabel("cluster (samples sorted by silhouette)")
    ax.set_title(title or f"Silhouette diagram (k = {k}, n = {n}, {metric})")
    ax.legend(loc="lower right", fontsize="small")
    return ax
