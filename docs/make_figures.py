"""Regenerate the example figures of the README (``python docs/make_figures.py``).

The handbook workflow on iris: the elbow (with the silhouette per k), the clusters with their
centres (petal columns, and the PCA projection of the 4 features), and the silhouette diagram.
"""

import sys
from pathlib import Path

import matplotlib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's kmeans_xp

matplotlib.use("Agg")

from kmeans_xp import KMeans, select_k  # noqa: E402
from kmeans_xp.demo import load_iris  # noqa: E402
from kmeans_xp.plotting import plot_clusters, plot_elbow, plot_silhouette  # noqa: E402

OUT = Path(__file__).resolve().parent
df = load_iris(as_frame=True)
X = df.drop(columns="species")

result = select_k(X, range(1, 11), random_state=2021)
plot_elbow(result, score="silhouette").figure.savefig(OUT / "iris_elbow.png", dpi=100)
km = KMeans(n_clusters=result.best_k, random_state=2021).fit(X)
plot_clusters(X, model=km, columns=("petal_length_cm", "petal_width_cm")).figure.savefig(
    OUT / "iris_clusters.png", dpi=100
)
plot_clusters(X, model=km).figure.savefig(OUT / "iris_clusters_pca.png", dpi=100)
plot_silhouette(X, km).figure.savefig(OUT / "iris_silhouette.png", dpi=100)
print(f"best k = {result.best_k}; figures in {OUT}")
