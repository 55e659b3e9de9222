"""The main job: cluster the iris data set and show the result.

    python -m kmeans_xp.demo                      # NumPy
    python -m kmeans_xp.demo --backend torch      # the same on torch tensors (cuda if present)
    python -m kmeans_xp.demo --backend array_api_strict

Prints the cluster sizes, the centres, a table of clusters against species, the adjusted
Rand index with the species, and an elbow / silhouette table for choosing k; writes a PNG
when matplotlib is installed: the clusters and centres (petal and sepal measurements), the
elbow curve with the silhouette score, and the silhouette diagram.
"""

from __future__ import annotations

import argparse
import csv
import sys
from importlib import resources
from typing import Any, NoReturn

import numpy as np

from . import KMeans, select_k
from ._compat import BACKEND_DTYPES, to_backend, to_numpy
from .metrics import adjusted_rand_score

BACKENDS = tuple(BACKEND_DTYPES)


def load_iris(as_frame: bool = False) -> Any:
    """The 150 iris flowers (Fisher, 1936) shipped with the package.

    Parameters
    ----------
    as_frame : bool, default=False
        Return a pandas DataFrame (the 4 measurements and a ``species`` column) instead of
        ``(X, species, feature_names)``.

    Returns
    -------
    X : ndarray (150, 4), species : ndarray (150,) of str, feature_names : list of str
        Or the DataFrame.

    Examples
    --------
    >>> from kmeans_xp.demo import load_iris
    >>> X, species, names = load_iris()
    >>> X.shape, names[2]
    ((150, 4), 'petal_length_cm')
    """
    with resources.files("kmeans_xp").joinpath("data/iris.csv").open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    X = np.array([[float(v) for v in r[:4]] for r in body])
    species = np.array([r[4] for r in body])
    if as_frame:
        import pandas as pd

        df = pd.DataFrame(X, columns=header[:4])
        df["species"] = species
        return df
    return X, species, header[:4]


def _fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2 (a usage error), no traceback."""
    print(f"python -m kmeans_xp.demo: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def figure(
    X: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    names: list[str],
    title: str,
    sweep: Any = None,
) -> Any:
    """The demo's figure: the clusters on the petal and on the sepal measurements (centres
    marked) and, given the ``select_k`` sweep, the elbow (with the silhouette score on its
    right axis) and the silhouette diagram of the clustering.  Needs matplotlib."""
    import matplotlib.pyplot as plt

    from .plotting import plot_clusters, plot_elbow, plot_silhouette

    rows = 1 if sweep is None else 2
    fig, axes = plt.subplots(
        rows, 2, figsize=(11, 4.5 * rows), constrained_layout=True, squeeze=False
    )
    for ax, cols, legend in zip(axes[0], [(2, 3), (0, 1)], (True, False)):
        plot_clusters(
            X, labels, centers, columns=cols, feature_names=names, ax=ax, title="", legend=legend
        )
    if sweep is not None:
        plot_elbow(
            sweep,
            score="silhouette",
            ax=axes[1, 0],
            title="Choosing k: the elbow and the silhouette score",
        )
        plot_silhouette(X, labels, ax=axes[1, 1])
    fig.suptitle(title)
    return fig


def plot(
    X: np.ndarray,
    labels: np.ndarray,
    centers: np.ndarray,
    names: list[str],
    path: str,
    title: str,
    sweep: Any = None,
) -> str | None:
    """Write :func:`figure` to ``path``; None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig = figure(X, labels, centers, names, title, sweep)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (argparse prints the usage too)
        _fail(f"{message} (see --help)")


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m kmeans_xp.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=BACKENDS, default="numpy")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    ap.add_argument("--k", type=int, default=3, help="number of clusters (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="kmeans_xp_demo.png", help="PNG path ('' for none)")
    args = ap.parse_args(argv)

    X, species, names = load_iris()
    if not 1 <= args.k <= X.shape[0]:
        _fail(
            f"--k {args.k}: the number of clusters must be between 1 and {X.shape[0]} "
            "(the number of flowers)"
        )
    try:
        Xb = to_backend(X, args.backend, args.device)
    except (ImportError, ValueError) as exc:
        _fail(str(exc))
    km = KMeans(n_clusters=args.k, random_state=args.seed).fit(Xb)
    labels = to_numpy(km.labels_)
    centers = to_numpy(km.cluster_centers_)
    print(
        f"kmeans_xp on the iris data set ({X.shape[0]} flowers, {X.shape[1]} features), "
        f"backend {args.backend}: {type(km.cluster_centers_).__module__}."
        f"{type(km.cluster_centers_).__name__} on "
        f"{getattr(km.cluster_centers_, 'device', 'cpu')}, "
        f"dtype {km.cluster_centers_.dtype}"
    )
    print(f"k = {args.k}, converged in {km.n_iter_} iterations, inertia {km.inertia_:.4f}\n")

    sizes = np.bincount(labels, minlength=args.k)
    rows = [["cluster", "size"] + names]
    rows += [[str(c), str(sizes[c])] + [f"{v:.3f}" for v in centers[c]] for c in range(args.k)]
    print("Cluster sizes and centres (cm):")
    print(_table(rows), "\n")

    kinds = sorted(set(species))
    rows = [["cluster"] + kinds]
    rows += [
        [str(c)] + [str(int(((labels == c) & (species == s)).sum())) for s in kinds]
        for c in range(args.k)
    ]
    print("Clusters against species:")
    print(_table(rows), "\n")
    print(
        f"Adjusted Rand index with the species: {adjusted_rand_score(species, km.labels_):.4f}"
        " (1 = the species exactly, 0 = chance)\n"
    )

    sweep = select_k(Xb, range(1, 11), random_state=args.seed)
    rows = [["k", "inertia", "silhouette"]]
    for k, inertia, sil in zip(sweep.k_values, sweep.inertia, sweep.silhouette):
        rows.append([str(k), f"{inertia:.2f}", f"{sil:.4f}"])
    print("Choosing k: the elbow (inertia) and the silhouette score")
    print(_table(rows))
    print(
        f"The elbow (Kneedle) is at k = {sweep.best_k}; the silhouette is highest at k = "
        f"{sweep.k_values[int(np.nanargmax(sweep.silhouette))]}.\n"
    )

    if args.plot:
        out = plot(
            X,
            labels,
            centers,
            names,
            args.plot,
            f"k-means on iris (k={args.k}, backend {args.backend})",
            sweep,
        )
        print(
            f"Plot written to {out}"
            if out
            else "matplotlib is not installed: no plot (pip install 'kmeans_xp[plot]')"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
