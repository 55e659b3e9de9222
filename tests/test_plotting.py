"""kmeans_xp.plotting on every backend (Agg): the expected artists, PCA against NumPy's SVD,
and an import of the package that loads none of the optional libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmeans_xp import KMeans, select_k
from kmeans_xp.demo import load_iris

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kmeans_xp.plotting import plot_clusters, plot_elbow, plot_silhouette  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
IRIS, SPECIES, NAMES = load_iris()


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def offsets(collection) -> np.ndarray:
    return np.asarray(collection.get_offsets(), dtype=np.float64)


def legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def numpy_pca(X: np.ndarray, C: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: SVD of the centred data, each axis signed by its largest loading."""
    mean = X.mean(axis=0)
    _, _, Vt = np.linalg.svd(X - mean, full_matrices=False)
    V = Vt[:2].T
    V = V * np.sign(V[np.argmax(np.abs(V), axis=0), [0, 1]])
    return (X - mean) @ V, (C - mean) @ V


def test_plot_clusters_pca_with_model(backend, dtype_name):
    X = backend.asarray(IRIS.astype(dtype_name))
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, model=km)
    cols = ax.collections
    assert len(cols) == 4  # 3 clusters + the centres
    assert sum(len(offsets(c)) for c in cols[:3]) == 150
    assert len(offsets(cols[3])) == 3 and cols[3].get_label() == "centres"
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    assert ax.get_title() == "k-means clusters (k = 3, n = 150), PCA projection"
    labels = backend.to_numpy(km.labels_)
    sizes = np.bincount(labels, minlength=3)
    assert legend_texts(ax) == [f"cluster {c} ({sizes[c]})" for c in range(3)] + ["centres"]
    P, Pc = numpy_pca(IRIS, backend.to_numpy(km.cluster_centers_).astype(np.float64))
    tol = 1e-4 if dtype_name == "float32" else 1e-9
    for c in range(3):
        np.testing.assert_allclose(offsets(cols[c]), P[labels == c], atol=tol)
    np.testing.assert_allclose(offsets(cols[3]), Pc, atol=tol)
    ratio = float(ax.get_xlabel()[5:9])  # "PC1 (92.5 % ..."
    assert ratio == pytest.approx(92.5, abs=0.06)


def test_plot_clusters_columns_and_frames(backend):
    X = backend.asarray(IRIS)
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_clusters(X, km, columns=("petal_length_cm", "petal_width_cm"),
                       feature_names=NAMES)
    cols = ax.collections
    labels = backend.to_numpy(km.labels_)
    np.testing.assert_array_equal(offsets(cols[0]), IRIS[labels == 0][:, [2, 3]])
    np.testing.assert_array_equal(offsets(cols[3]),
                                  backend.to_numpy(km.cluster_centers_)[:, [2, 3]])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("petal_length_cm", "petal_width_cm")
    # two features: plotted as they are; labels only: no centres
    ax = plot_clusters(X[:, :2], km.labels_)
    assert len(ax.collections) == 3 and ax.get_xlabel() == "feature 0"
    # pca=False on 4 features: the first two
    ax = plot_clusters(X, km.labels_, pca=False)
    np.testing.assert_array_equal(
        np.concatenate([offsets(c) for c in ax.collections]),
        np.concatenate([IRIS[labels == c][:, :2] for c in range(3)]))


def test_plot_clusters_dataframe_and_result():
    pytest.importorskip("pandas")
    df = load_iris(as_frame=True)
    X = df.drop(columns="species")
    res = select_k(X, range(2, 6), random_state=0)
    ax = plot_clusters(X, model=res, columns=("sepal_length_cm", "petal_width_cm"))
    k = res.best_k
    assert len(ax.collections) == k + 1 and ax.get_xlabel() == "sepal_length_cm"
    ax = plot_clusters(X.iloc[:20], model=res.best_model, pca=False)  # other rows: predict
    assert sum(len(offsets(c)) for c in ax.collections[:-1]) == 20


def test_plot_clusters_errors():
    with pytest.raises(ValueError, match="no feature named 'x'"):
        plot_clusters(IRIS, np.zeros(150, int), columns=("x", 1), feature_names=NAMES)
    with pytest.raises(ValueError, match="columns must name 2 features"):
        plot_clusters(IRIS, np.zeros(150, int), columns=(0, 1, 2))
    with pytest.raises(ValueError, match="at least 2 features"):
        plot_clusters(IRIS[:, :1], np.zeros(150, int))
    with pytest.raises(ValueError, match=r"expected shape \(150,\)"):
        plot_clusters(IRIS, np.zeros(10, int))
    with pytest.raises(ValueError, match=r"centers must have shape \(n_clusters, 4\)"):
        plot_clusters(IRIS, np.zeros(150, int), np.zeros((2, 3)))


def test_plot_elbow_result_and_values(backend):
    res = select_k(backend.asarray(IRIS), range(1, 11), random_state=2021)
    ax = plot_elbow(res)
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), res.k_values)
    np.testing.assert_allclose(line.get_ydata(), res.inertia)
    vline = ax.get_lines()[1]
    assert list(vline.get_xdata()) == [res.best_k, res.best_k] == [3, 3]
    assert "chosen k = 3 (elbow criterion)" in legend_texts(ax)
    assert ax.get_xlabel() == "number of clusters k" and "inertia" in ax.get_ylabel()
    ax = plot_elbow(res, score="silhouette")
    right = ax.right_ax.get_lines()[0]
    np.testing.assert_allclose(right.get_ydata(), res.silhouette)
    assert "silhouette score" in legend_texts(ax)
    # plain values: the Kneedle knee is marked
    ax = plot_elbow([1, 2, 3, 4, 5, 6], [100.0, 40.0, 12.0, 10.0, 9.0, 8.0])
    assert "chosen k = 3 (Kneedle elbow)" in legend_texts(ax)
    with pytest.raises(ValueError, match="best_k=12 is not among"):
        plot_elbow([1, 2, 3], [3.0, 2.0, 1.0], best_k=12)
    with pytest.raises(TypeError, match="needs a select_k result"):
        plot_elbow([1, 2, 3])


def test_plot_silhouette(backend, dtype_name):
    from kmeans_xp.metrics import silhouette_score

    X = backend.asarray(IRIS.astype(dtype_name))
    km = KMeans(n_clusters=3, random_state=0).fit(X)
    ax = plot_silhouette(X, km)
    bands = ax.collections
    assert len(bands) == 3
    sizes = np.bincount(backend.to_numpy(km.labels_), minlength=3)
    for band, size in zip(bands, sizes):  # a band's polygon spans its cluster's samples
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.max() - ys.min() == size - 1
    avg = ax.get_lines()[0]
    score = silhouette_score(X, km.labels_)
    assert avg.get_xdata()[0] == pytest.approx(score, rel=1e-6)
    assert f"average silhouette = {score:.3f}" in legend_texts(ax)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2"]
    assert ax.get_title() == "Silhouette diagram (k = 3, n = 150, euclidean)"
    # a select_k result, another metric, a sample
    res = select_k(X, range(2, 5), random_state=0)
    ax = plot_silhouette(X, res, metric="cosine", sample_size=60, random_state=0)
    assert len(ax.collections) == res.best_k
    assert ax.get_title().endswith("n = 60, cosine)")


def test_returned_axes_draw_to_png(tmp_path):
    km = KMeans(n_clusters=3, random_state=0).fit(IRIS)
    for i, ax in enumerate([plot_clusters(IRIS, model=km), plot_silhouette(IRIS, km),
                            plot_elbow(select_k(IRIS, range(1, 6), random_state=0))]):
        path = tmp_path / f"{i}.png"
        ax.figure.savefig(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_import_is_light():
    """``import kmeans_xp`` (and touching metrics, plotting, select_k) loads no optional
    library: no torch, scipy, pandas, matplotlib, tqdm or scikit-learn."""
    code = (
        "import sys, kmeans_xp\n"
        "kmeans_xp.plotting.plot_clusters, kmeans_xp.metrics.silhouette_score\n"
        "kmeans_xp.select_k\n"
        "import kmeans_xp.cli\n"
        "heavy = ('torch', 'scipy', 'pandas', 'matplotlib', 'tqdm', 'sklearn', 'pyarrow', "
        "'cupy')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
