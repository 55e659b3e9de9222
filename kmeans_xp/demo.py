"""The main job: cluster the iris data set and show the result.

    python -m kmeans_xp.demo                      # NumPy
    python -m kmeans_xp.demo --backend torch      # the same on torch tensors (cuda if present)
    python -m kmeans_xp.demo --backend array_api_strict

Prints the cluster sizes, the centres, a table of clusters against species, the adjusted
Rand index with the species, and an elbow / silhouette table for choosing k; writes a
scatter plot of the clusters and centres to a PNG when matplotlib is installed.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import sys
from importlib import resources
from typing import Any

import numpy as np

from . import KMeans
from ._compat import to_numpy
from .metrics import adjusted_rand_score, silhouette_score

BACKENDS = ("numpy", "torch", "array_api_strict", "cupy")


def load_iris() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The 150 iris flowers (Fisher, 1936) shipped with the package: X, species, feature names."""
    with resources.files("kmeans_xp").joinpath("data/iris.csv").open() as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    X = np.array([[float(v) for v in r[:4]] for r in body])
    species = np.array([r[4] for r in body])
    return X, species, header[:4]


def to_backend(X: np.ndarray, backend: str, device: str | None) -> Any:
    if backend == "numpy":
        return X
    try:
        mod = importlib.import_module(backend)
    except ImportError:
        package = "array-api-strict" if backend == "array_api_strict" else f"'kmeans_xp[{backend}]'"
        sys.exit(f"--backend {backend}: {backend} is not installed (pip install {package})")
    if backend == "torch":
        dev = device or ("cuda" if mod.cuda.is_available() else "cpu")
        return mod.asarray(X, dtype=mod.float32, device=dev)
    return mod.asarray(X)


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows)


def plot(X: np.ndarray, labels: np.ndarray, centers: np.ndarray, names: list[str],
         path: str, title: str) -> str | None:
    """Scatter of the two petal measurements, coloured by cluster, centres as crosses."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    colors = plt.get_cmap("tab10")
    for ax, (i, j) in zip(axes, [(2, 3), (0, 1)]):
        for c in range(centers.shape[0]):
            members = labels == c
            ax.scatter(X[members, i], X[members, j], color=colors(c % 10), s=22, alpha=0.75,
                       label=f"cluster {c} ({int(members.sum())})")
        ax.scatter(centers[:, i], centers[:, j], c="black", marker="X", s=160,
                   edgecolor="white", label="centres")
        ax.set_xlabel(names[i])
        ax.set_ylabel(names[j])
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kmeans_xp.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--backend", choices=BACKENDS, default="numpy")
    ap.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    ap.add_argument("--k", type=int, default=3, help="number of clusters (default 3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plot", default="kmeans_xp_demo.png", help="PNG path ('' for none)")
    args = ap.parse_args(argv)

    X, species, names = load_iris()
    Xb = to_backend(X, args.backend, args.device)
    km = KMeans(n_clusters=args.k, random_state=args.seed).fit(Xb)
    labels = to_numpy(km.labels_)
    centers = to_numpy(km.cluster_centers_)
    print(f"kmeans_xp on the iris data set ({X.shape[0]} flowers, {X.shape[1]} features), "
          f"backend {args.backend}: {type(km.cluster_centers_).__module__}."
          f"{type(km.cluster_centers_).__name__} on {getattr(km.cluster_centers_, 'device', 'cpu')}, "
          f"dtype {km.cluster_centers_.dtype}")
    print(f"k = {args.k}, converged in {km.n_iter_} iterations, inertia {km.inertia_:.4f}\n")

    sizes = np.bincount(labels, minlength=args.k)
    rows = [["cluster", "size"] + names]
    rows += [[str(c), str(sizes[c])] + [f"{v:.3f}" for v in centers[c]] for c in range(args.k)]
    print("Cluster sizes and centres (cm):")
    print(_table(rows), "\n")

    kinds = sorted(set(species))
    rows = [["cluster"] + kinds]
    rows += [[str(c)] + [str(int(((labels == c) & (species == s)).sum())) for s in kinds]
             for c in range(args.k)]
    print("Clusters against species:")
    print(_table(rows), "\n")
    print(f"Adjusted Rand index with the species: {adjusted_rand_score(species, km.labels_):.4f}"
          " (1 = the species exactly, 0 = chance)\n")

    rows = [["k", "inertia", "silhouette"]]
    for k in range(2, 9):
        m = KMeans(n_clusters=k, random_state=args.seed).fit(Xb)
        rows.append([str(k), f"{m.inertia_:.2f}", f"{silhouette_score(Xb, m.labels_):.4f}"])
    print("Choosing k: the elbow (inertia) and the silhouette score")
    print(_table(rows), "\n")

    if args.plot:
        out = plot(X, labels, centers, names, args.plot,
                   f"k-means on iris (k={args.k}, backend {args.backend})")
        print(f"Plot written to {out}" if out else
              "matplotlib is not installed: no plot (pip install 'kmeans_xp[plot]')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
