"""metric='cosine' (spherical k-means) and metric='manhattan' (k-medians) against direct
float64 NumPy implementations written here from their definitions, on every backend; and
init='k-means||' against k-means++."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_xp import InvalidParameterError, KMeans


def _blobs(n=600, d=5, k=4, seed=0, offset=4.0, positive=False):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 4
    X = centres[rng.integers(0, k, n)] + rng.normal(size=(n, d)) + offset
    return np.abs(X) if positive else X


def _ref_lloyd(X, C, w, assign, update, max_iter=300):
    """Lloyd's loop with kmeans_xp's (scikit-learn's) stopping rule at tol=0."""
    labels_old = None
    for i in range(max_iter):
        D = assign(X, C)
        labels = D.argmin(1)
        new = update(X, labels, w, C)
        if labels_old is not None and np.array_equal(labels, labels_old):
            return labels, new, i + 1
        if ((new - C) ** 2).sum() <= 0:
            C = new
            break
        C, labels_old = new, labels
    return assign(X, C).argmin(1), C, i + 1


def _unit(A):
    n = np.linalg.norm(A, axis=1, keepdims=True)
    return A / np.where(n > 0, n, 1)


def _cos_dist(X, C):
    return 1.0 - _unit(X) @ _unit(C).T


def _spherical_update(X, labels, w, C):
    U = _unit(X)
    out = C.copy()
    for j in range(C.shape[0]):
        m = labels == j
        if m.any():
            out[j] = _unit((U[m] * w[m, None]).sum(0, keepdims=True))[0]
    return out


def _l1(X, C):
    return np.abs(X[:, None, :] - C[None, :, :]).sum(-1)


def _weighted_median(v, w):
    """np.median's convention with weights: the value where the cumulative weight first
    exceeds half, or the midpoint with the next positive-weight value where it hits half."""
    o = np.argsort(v, kind="stable")
    cum = np.cumsum(w[o])
    half = 0.5 * cum[-1]
    lo = np.searchsorted(cum, half, side="left")
    if cum[lo] == half:
        hi = np.searchsorted(cum, half, side="right")
        return 0.5 * v[o][lo] + 0.5 * v[o][hi]
    return v[o][lo]


def _median_update(X, labels, w, C):
    out = C.copy()
    for j in range(C.shape[0]):
        m = labels == j
        if m.any():
            out[j] = [_weighted_median(X[m, f], w[m]) for f in range(X.shape[1])]
    return out


@pytest.mark.parametrize("weighted", [False, True])
def test_cosine_equals_direct_spherical_kmeans(backend, dtype_name, weighted):
    X = _blobs(offset=0.0)
    n, k = X.shape[0], 4
    rng = np.random.default_rng(3)
    w = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    C0 = X[rng.choice(n, k, replace=False)]
    labels, C, n_iter = _ref_lloyd(X, _unit(C0), w, _cos_dist, _spherical_update)
    Xb = backend.asarray(X.astype(dtype_name))
    km = KMeans(k, init=backend.asarray(C0.astype(dtype_name)), n_init=1, tol=0.0,
                metric="cosine").fit(Xb, sample_weight=backend.asarray(w.astype(dtype_name))
                                     if weighted else None)
    backend.assert_native(km.cluster_centers_, Xb.dtype)
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), labels)
    assert km.n_iter_ == n_iter
    rtol = 1e-4 if dtype_name == "float32" else 1e-10
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), C, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(np.linalg.norm(backend.to_numpy(km.cluster_centers_), axis=1),
                               1.0, rtol=rtol)
    D = _cos_dist(X, C)
    assert km.inertia_ == pytest.approx((D.min(1) * w).sum(), rel=rtol * 10)
    T = backend.to_numpy(km.transform(Xb))
    np.testing.assert_allclose(T, D, rtol=rtol * 10, atol=rtol * 10)
    np.testing.assert_array_equal(backend.to_numpy(km.predict(Xb)), D.argmin(1))
    assert km.score(Xb) == pytest.approx(-(D.min(1)).sum(), rel=rtol * 10)


def test_cosine_ignores_the_length_of_rows(backend):
    """Scaling each row by its own positive factor changes no label and no centre."""
    X = _blobs(offset=0.0)
    f = np.random.default_rng(1).uniform(0.1, 10.0, X.shape[0])[:, None]
    a = KMeans(4, random_state=0, metric="cosine").fit(backend.asarray(X))
    b = KMeans(4, random_state=0, metric="cosine").fit(backend.asarray(X * f))
    np.testing.assert_array_equal(backend.to_numpy(a.labels_), backend.to_numpy(b.labels_))
    np.testing.assert_allclose(backend.to_numpy(a.cluster_centers_),
                               backend.to_numpy(b.cluster_centers_), atol=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_manhattan_equals_direct_k_medians(backend, dtype_name, weighted):
    X = _blobs(positive=True).astype(dtype_name).astype(np.float64)
    X[::7, 0] = X[3, 0]  # repeated values: medians with ties in value
    n, k = X.shape[0], 4
    rng = np.random.default_rng(5)
    w = rng.integers(1, 4, n).astype(float) if weighted else np.ones(n)
    C0 = X[rng.choice(n, k, replace=False)]
    labels, C, n_iter = _ref_lloyd(X, C0, w, _l1, _median_update)
    Xb = backend.asarray(X.astype(dtype_name))
    km = KMeans(k, init=backend.asarray(C0.astype(dtype_name)), n_init=1, tol=0.0,
                metric="manhattan").fit(Xb, sample_weight=backend.asarray(w.astype(dtype_name))
                                        if weighted else None)
    backend.assert_native(km.cluster_centers_, Xb.dtype)
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), labels)
    assert km.n_iter_ == n_iter
    rtol = 1e-5 if dtype_name == "float32" else 1e-12
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), C, rtol=rtol, atol=rtol)
    D = _l1(X, C)
    assert km.inertia_ == pytest.approx((D.min(1) * w).sum(), rel=rtol * 10)
    np.testing.assert_allclose(backend.to_numpy(km.transform(Xb)), D, rtol=rtol * 10,
                               atol=rtol * 100)
    np.testing.assert_array_equal(backend.to_numpy(km.predict(Xb)), D.argmin(1))


def test_manhattan_is_shift_equivariant_and_robust_to_outliers(backend):
    X = _blobs(positive=True)
    a = KMeans(4, random_state=0, metric="manhattan").fit(backend.asarray(X))
    b = KMeans(4, random_state=0, metric="manhattan").fit(backend.asarray(X + 1000.0))
    np.testing.assert_array_equal(backend.to_numpy(a.labels_), backend.to_numpy(b.labels_))
    np.testing.assert_allclose(backend.to_numpy(b.cluster_centers_) - 1000.0,
                               backend.to_numpy(a.cluster_centers_), atol=1e-9)
    # one far outlier moves a median by at most one rank, a mean by outlier / size
    Y = X.copy()
    big = np.argmax(np.bincount(backend.to_numpy(a.labels_)))
    i = np.flatnonzero(backend.to_numpy(a.labels_) == big)[0]
    Y[i] += 1e6
    c = KMeans(4, init=a.cluster_centers_, n_init=1, metric="manhattan").fit(backend.asarray(Y))
    moved = np.abs(backend.to_numpy(c.cluster_centers_) - backend.to_numpy(a.cluster_centers_))
    assert moved.max() < 1.0


def test_metric_is_validated():
    with pytest.raises(InvalidParameterError, match="'metric' parameter of KMeans"):
        KMeans(2, metric="chebyshev").fit(_blobs())
    for name, value in (("precision", "fp8"), ("deterministic", "yes")):
        with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of KMeans"):
            KMeans(2, **{name: value}).fit(_blobs())


def test_kmeans_parallel_init_is_close_to_kmeans_plusplus(backend):
    """k-means|| reaches an inertia within 2 % of k-means++ on blobs (mean of 4 seeds)."""
    rng = np.random.default_rng(0)
    k, d = 20, 8
    centres = rng.normal(size=(k, d)) * 6
    X = centres[rng.integers(0, k, 4000)] + rng.normal(size=(4000, d))
    Xb = backend.asarray(X)
    pp = [KMeans(k, random_state=s).fit(Xb).inertia_ for s in range(4)]
    par = [KMeans(k, init="k-means||", random_state=s).fit(Xb).inertia_ for s in range(4)]
    assert np.mean(par) <= 1.02 * np.mean(pp), (par, pp)


def test_kmeans_parallel_same_seed_same_centres_everywhere(backend):
    X = _blobs(n=2000, k=6)
    a = KMeans(6, init="k-means||", random_state=7, max_iter=1).fit(backend.asarray(X))
    b = KMeans(6, init="k-means||", random_state=7, max_iter=1).fit(X)  # numpy
    np.testing.assert_allclose(backend.to_numpy(a.cluster_centers_), b.cluster_centers_,
                               rtol=1e-9, atol=1e-9)


def test_kmeans_parallel_parameters_are_validated():
    with pytest.raises(InvalidParameterError, match="oversampling_factor"):
        KMeans(2, init="k-means||", oversampling_factor=0.0).fit(_blobs())
    with pytest.raises(InvalidParameterError, match="init_rounds"):
        KMeans(2, init="k-means||", init_rounds=0).fit(_blobs())


def test_kmeans_plusplus_float32_same_picks_on_every_backend(backend):
    """float32 data: the k-means++ distances are computed in float64 (where the device has
    it), so every backend draws the same rows as NumPy from the same seed."""
    from kmeans_xp import kmeans_plusplus

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(30_000, 16)) * 3 + rng.integers(0, 50, 30_000)[:, None] * 0.5)
    X = X.astype(np.float32)
    _, expect = kmeans_plusplus(X, 40, random_state=0)
    _, got = kmeans_plusplus(backend.asarray(X), 40, random_state=0)
    np.testing.assert_array_equal(backend.to_numpy(got), expect)
