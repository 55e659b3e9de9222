"""kmeans_xp.metrics against scikit-learn's on iris, wine and digits, on every backend."""

from __future__ import annotations

import functools
import tracemalloc

import numpy as np
import pytest

from kmeans_xp import metrics

sk_metrics = pytest.importorskip("sklearn.metrics")
sk_datasets = pytest.importorskip("sklearn.datasets")

DATASETS = ("iris", "wine", "digits")
SIL_METRICS = ("euclidean", "sqeuclidean", "cosine", "manhattan")


@functools.cache
def dataset(name: str, dtype_name: str) -> tuple[np.ndarray, np.ndarray]:
    """X in ``dtype_name`` and the true classes as labels (an independent labeling)."""
    X, y = getattr(sk_datasets, f"load_{name}")(return_X_y=True)
    return X.astype(dtype_name), y


@functools.cache
def reference(func: str, name: str, dtype_name: str, **kw) -> float:
    """scikit-learn's value on the float64 copy of the very values we pass (so the tolerance
    measures our rounding, not the cast)."""
    X, y = dataset(name, dtype_name)
    return getattr(sk_metrics, func)(X.astype(np.float64), y, **kw)


def rel(dtype_name: str) -> float:
    return 1e-5 if dtype_name == "float32" else 1e-10


@pytest.mark.parametrize("metric", SIL_METRICS)
@pytest.mark.parametrize("name", DATASETS)
def test_silhouette_score_matches_sklearn(backend, dtype_name, name, metric):
    X, y = dataset(name, dtype_name)
    ours = metrics.silhouette_score(backend.asarray(X), backend.asarray(y), metric=metric)
    assert type(ours) is float
    assert ours == pytest.approx(reference("silhouette_score", name, dtype_name, metric=metric),
                                 rel=rel(dtype_name))


@pytest.mark.parametrize("name", DATASETS)
def test_silhouette_samples_matches_sklearn(backend, dtype_name, name):
    X, y = dataset(name, dtype_name)
    for metric in ("euclidean", "cosine"):
        ours = metrics.silhouette_samples(backend.asarray(X), backend.asarray(y), metric=metric)
        backend.assert_native(ours, backend.dtype(dtype_name))
        ref = sk_metrics.silhouette_samples(X.astype(np.float64), y, metric=metric)
        # cosine in float32: 1 - cos of nearly parallel rows (wine's proline column) cancels
        atol = 1e-4 if dtype_name == "float32" else 1e-10
        np.testing.assert_allclose(backend.to_numpy(ours), ref, atol=atol)


@pytest.mark.parametrize("name", DATASETS)
def test_calinski_harabasz_matches_sklearn(backend, dtype_name, name):
    X, y = dataset(name, dtype_name)
    ours = metrics.calinski_harabasz_score(backend.asarray(X), backend.asarray(y))
    assert type(ours) is float
    assert ours == pytest.approx(reference("calinski_harabasz_score", name, dtype_name),
                                 rel=rel(dtype_name))


@pytest.mark.parametrize("name", DATASETS)
def test_davies_bouldin_matches_sklearn(backend, dtype_name, name):
    X, y = dataset(name, dtype_name)
    ours = metrics.davies_bouldin_score(backend.asarray(X), backend.asarray(y))
    assert type(ours) is float
    assert ours == pytest.approx(reference("davies_bouldin_score", name, dtype_name),
                                 rel=rel(dtype_name))


@pytest.mark.parametrize("name", DATASETS)
def test_inertia_matches_sklearn_kmeans(backend, dtype_name, name):
    from sklearn.cluster import KMeans as SkKMeans

    X, y = dataset(name, dtype_name)
    km = SkKMeans(n_clusters=5, n_init=1, random_state=0).fit(X.astype(np.float64))
    C = km.cluster_centers_.astype(dtype_name)
    ours = metrics.inertia(backend.asarray(X), backend.asarray(km.labels_), backend.asarray(C))
    assert type(ours) is float
    assert ours == pytest.approx(km.inertia_, rel=1e-4 if dtype_name == "float32" else 1e-10)
    # without centres: the cluster means (direct float64 reference), here of the true classes
    X64 = X.astype(np.float64)
    means = np.stack([X64[y == c].mean(axis=0) for c in np.unique(y)])
    direct = float(((X64 - means[np.searchsorted(np.unique(y), y)]) ** 2).sum())
    assert metrics.inertia(backend.asarray(X), backend.asarray(y)) == pytest.approx(
        direct, rel=rel(dtype_name))


def test_inertia_weighted(backend):
    X, y = dataset("iris", "float64")
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=X.shape[0])
    C = np.random.default_rng(1).normal(size=(3, 4)) + X.mean(axis=0)
    direct = float((w * ((X - C[y]) ** 2).sum(axis=1)).sum())
    ours = metrics.inertia(backend.asarray(X), backend.asarray(y), backend.asarray(C),
                           sample_weight=backend.asarray(w))
    assert ours == pytest.approx(direct, rel=1e-12)
    # weighted means are the weighted inertia's minimisers
    means = np.stack([np.average(X[y == c], axis=0, weights=w[y == c]) for c in range(3)])
    direct = float((w * ((X - means[y]) ** 2).sum(axis=1)).sum())
    assert metrics.inertia(backend.asarray(X), backend.asarray(y),
                           sample_weight=backend.asarray(w)) == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("metric", SIL_METRICS)
def test_silhouette_blocks_of_odd_sizes(backend, metric):
    """Blocks that do not divide n, a diagonal split across blocks: the same value."""
    X, y = dataset("iris", "float64")
    ref = reference("silhouette_score", "iris", "float64", metric=metric)
    for chunk in (1, 37, 149):
        assert metrics.silhouette_score(backend.asarray(X), backend.asarray(y), metric=metric,
                                        chunk_size=chunk) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("seed", [0, 7])
def test_silhouette_sample_size_draws_sklearns_rows(backend, seed):
    X, y = dataset("wine", "float64")
    ref = sk_metrics.silhouette_score(X, y, sample_size=60, random_state=seed)
    ours = metrics.silhouette_score(backend.asarray(X), backend.asarray(y), sample_size=60,
                                    random_state=seed)
    assert ours == pytest.approx(ref, rel=1e-10)
    assert ours != pytest.approx(reference("silhouette_score", "wine", "float64"), rel=1e-6)
    # a sample larger than n is all rows (as scikit-learn)
    assert metrics.silhouette_score(backend.asarray(X), backend.asarray(y), sample_size=10**6,
                                    random_state=seed) == pytest.approx(
        reference("silhouette_score", "wine", "float64"), rel=1e-10)


def test_string_labels_and_singletons():
    X = np.array([[0.0, 0], [0, 1], [5, 5], [9, 9], [9, 8]])
    labels = ["a", "a", "b", "c", "c"]
    for f in ("silhouette_score", "calinski_harabasz_score", "davies_bouldin_score"):
        assert getattr(metrics, f)(X, labels) == pytest.approx(
            getattr(sk_metrics, f)(X, labels), rel=1e-12), f
    np.testing.assert_allclose(metrics.silhouette_samples(X, labels),
                               sk_metrics.silhouette_samples(X, labels), atol=1e-12)


def test_degenerate_clusters_as_sklearn():
    X = np.array([[1.0, 1], [1, 1], [2, 2], [2, 2]])
    y = [0, 0, 1, 1, ]
    assert metrics.calinski_harabasz_score(X, y) == sk_metrics.calinski_harabasz_score(X, y)
    assert metrics.davies_bouldin_score(X, y) == sk_metrics.davies_bouldin_score(X, y) == 0.0


def test_silhouette_is_chunked_not_n_by_n():
    """5000 rows: an n x n float64 matrix is 200 MB; blocks of 500 rows need 2 MB each."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 3))
    y = rng.integers(0, 4, 5000)
    tracemalloc.start()
    try:
        metrics.silhouette_score(X, y, chunk_size=500)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20e6, peak


@pytest.mark.parametrize("func", ["silhouette_score", "silhouette_samples",
                                  "calinski_harabasz_score", "davies_bouldin_score"])
def test_errors_as_sklearn(backend, func):
    X, y = dataset("iris", "float64")
    f = getattr(metrics, func)
    Xb = backend.asarray(X)
    with pytest.raises(ValueError, match="Number of labels is 1. Valid values are 2 to "
                                         "n_samples - 1"):
        f(Xb, backend.asarray(np.zeros(150, dtype=np.int64)))
    with pytest.raises(ValueError, match="Number of labels is 150"):
        f(Xb, backend.asarray(np.arange(150)))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[150, 149\]"):
        f(Xb, backend.asarray(y[:149]))
    with pytest.raises(ValueError, match="Expected 2D array"):
        f(backend.asarray(X[:, 0]), backend.asarray(y))
    with pytest.raises(ValueError, match="contains NaN"):
        Xn = X.copy()
        Xn[3, 1] = np.nan
        f(backend.asarray(Xn), backend.asarray(y))


def test_parameter_errors():
    X, y = dataset("iris", "float64")
    with pytest.raises(ValueError, match="'metric' parameter of silhouette_score must be"):
        metrics.silhouette_score(X, y, metric="chebyshev")
    with pytest.raises(ValueError, match="'metric' parameter of silhouette_samples"):
        metrics.silhouette_samples(X, y, metric=None)
    with pytest.raises(ValueError, match="'sample_size' parameter"):
        metrics.silhouette_score(X, y, sample_size=0)
    with pytest.raises(ValueError, match="'chunk_size' parameter"):
        metrics.silhouette_score(X, y, chunk_size=2.5)
    C = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        metrics.inertia(X, y + 1, C)
    with pytest.raises(ValueError, match=r"centers must have shape \(n_centers, 4\)"):
        metrics.inertia(X, y, np.zeros((3, 2)))
    with pytest.raises(TypeError, match="labels must be integers"):
        metrics.inertia(X, y.astype(float), C)
    with pytest.raises(ValueError, match="sample_weight"):
        metrics.inertia(X, y, C, sample_weight=np.ones(3))


def test_package_attribute():
    import kmeans_xp

    assert kmeans_xp.metrics.silhouette_score is metrics.silhouette_score
