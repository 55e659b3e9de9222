"""batched_k_means / BatchedKMeans against B separate KMeans fits, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_xp import BatchedKMeans, KMeans, batched_k_means, problem_seeds


def _problems(B=5, n=240, d=4, k=4, seed=0, offset=0.0, dtype="float64"):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=5.0, size=(B, k, d))
    X = np.stack([C[b][rng.integers(0, k, n)] + rng.normal(size=(n, d)) for b in range(B)])
    return (X + offset).astype(dtype)


def _np(backend, a):
    return backend.to_numpy(a)


def _check_equal(backend, X, res, fits, rows=None, dtype_name="float64"):
    centers, labels, inertia, n_iter = (_np(backend, a) for a in res)
    tol = 1e-9 if dtype_name == "float64" else 2e-4
    for b, km in enumerate(fits):
        lab_b = labels[b] if rows is None else labels[b][rows[b]]
        np.testing.assert_array_equal(lab_b, _np(backend, km.labels_))
        np.testing.assert_allclose(centers[b], _np(backend, km.cluster_centers_),
                                   rtol=tol, atol=tol)
        assert int(n_iter[b]) == km.n_iter_
        assert float(inertia[b]) == pytest.approx(km.inertia_, rel=tol)


@pytest.mark.parametrize("offset", [0.0, 50.0])  # 50: every problem is centred
def test_batched_equals_separate_fits_from_the_same_centres(backend, dtype_name, offset):
    X = _problems(offset=offset, dtype=dtype_name)
    rng = np.random.default_rng(1)
    C0 = X[np.arange(5)[:, None], rng.choice(240, size=(5, 4), replace=False)]
    res = batched_k_means(backend.asarray(X), 4, init=backend.asarray(C0))
    dt = backend.dtype(dtype_name)
    backend.assert_native(res[0], dt)
    backend.assert_native(res[1])
    fits = [KMeans(4, init=backend.asarray(C0[b])).fit(backend.asarray(X[b])) for b in range(5)]
    _check_equal(backend, X, res, fits, dtype_name=dtype_name)


def test_batched_kmeans_plusplus_uses_the_documented_per_problem_seed(backend):
    X = _problems(seed=3)
    seeds = problem_seeds(7, 5)
    np.testing.assert_array_equal(seeds, np.random.RandomState(7).randint(2**31 - 1, size=5))
    res = batched_k_means(backend.asarray(X), 4, random_state=7)
    fits = [KMeans(4, random_state=int(seeds[b])).fit(backend.asarray(X[b])) for b in range(5)]
    _check_equal(backend, X, res, fits)


def test_masked_problems_equal_fits_on_the_unpadded_data(backend):
    X = _problems(seed=4)
    rng = np.random.default_rng(5)
    mask = np.arange(240)[None, :] < np.array([240, 150, 37, 90, 200])[:, None]
    mask[4] = rng.random(240) < 0.6  # not a prefix
    Xp = X.copy()
    Xp[~mask] = np.nan  # padding may hold anything
    w = rng.uniform(0.5, 2.0, size=X.shape[:2])
    seeds = [11, 12, 13, 14, 15]
    for kw in ({}, {"sample_weight": w}, {"init": "random", "n_init": 2}):
        bkw = dict(kw)
        if "sample_weight" in kw:
            bkw["sample_weight"] = backend.asarray(w)
        res = batched_k_means(backend.asarray(Xp), 4, random_state=seeds,
                              mask=backend.asarray(mask), **bkw)
        fits = []
        for b in range(5):
            sw = backend.asarray(w[b][mask[b]]) if "sample_weight" in kw else None
            fkw = {q: v for q, v in kw.items() if q != "sample_weight"}
            fits.append(KMeans(4, random_state=seeds[b], **fkw).fit(
                backend.asarray(X[b][mask[b]]), sample_weight=sw))
        _check_equal(backend, X, res, fits, rows=mask)
        labels = _np(backend, res[1])
        assert (labels[~mask] == -1).all()


def test_lengths_are_a_prefix_mask_and_empty_clusters_are_relocated(backend):
    X = _problems(seed=6)
    lengths = np.array([240, 100, 60, 200, 120])
    mask = np.arange(240)[None, :] < lengths[:, None]
    # a centre far from every point: its cluster is empty at the first iteration
    C0 = np.concatenate([X[:, :3], np.full((5, 1, 4), 1e3)], axis=1)
    a = batched_k_means(backend.asarray(X), 4, init=backend.asarray(C0), mask=lengths)
    b = batched_k_means(backend.asarray(X), 4, init=backend.asarray(C0),
                        mask=backend.asarray(mask))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(_np(backend, u), _np(backend, v))
    fits = [KMeans(4, init=backend.asarray(C0[i])).fit(backend.asarray(X[i][mask[i]]))
            for i in range(5)]
    _check_equal(backend, X, a, fits, rows=mask)


def test_estimator_fit_predict(backend):
    X = _problems(seed=8)
    est = BatchedKMeans(4, random_state=0).fit(backend.asarray(X))
    backend.assert_native(est.cluster_centers_)
    assert tuple(est.cluster_centers_.shape) == (5, 4, 4)
    np.testing.assert_array_equal(_np(backend, est.predict(backend.asarray(X))),
                                  _np(backend, est.labels_))
    # predict is the nearest centre, by an independent NumPy computation
    Xn = X[:, :50]
    C = _np(backend, est.cluster_centers_)
    expect = ((Xn[:, :, None, :] - C[:, None, :, :]) ** 2).sum(-1).argmin(-1)
    np.testing.assert_array_equal(_np(backend, est.predict(backend.asarray(Xn))), expect)


def test_estimator_names_its_transform_columns():
    """``get_feature_names_out`` names the n_clusters columns of ``transform`` (each
    problem's distances to its centres); it raised AttributeError, ``fit`` not recording
    their number."""
    X = _problems(seed=8)
    est = BatchedKMeans(4, random_state=0).fit(X)
    assert tuple(est.transform(X).shape)[-1] == 4
    assert list(est.get_feature_names_out()) == [f"batchedkmeans{i}" for i in range(4)]


def test_bad_input_names_the_parameter():
    X = _problems()
    with pytest.raises(ValueError, match="n_problems"):
        batched_k_means(X[0], 4)
    with pytest.raises(ValueError, match="mask"):
        batched_k_means(X, 4, mask=np.ones((5, 3), dtype=bool))
    with pytest.raises(ValueError, match="n_clusters=4"):
        batched_k_means(X, 4, mask=np.array([240, 3, 240, 240, 240]))
    with pytest.raises(ValueError, match="init"):
        batched_k_means(X, 4, init=np.zeros((5, 3, 4)))
    with pytest.raises(ValueError, match="random_state"):
        batched_k_means(X, 4, random_state=[1, 2])
    with pytest.raises(ValueError, match="n_clusters"):
        batched_k_means(X, 0)
    Xn = X.copy()
    Xn[2, 5, 1] = np.nan
    with pytest.raises(ValueError, match="problem 2"):
        batched_k_means(Xn, 4)


@pytest.mark.parametrize("kernels", ["generic", "reference"])
def test_every_kernel_set_gives_the_separate_fits(backend, monkeypatch, kernels):
    """The default sets are covered above (the fused CPU set on NumPy and torch CPU, the
    reference on array-api-strict); here the vendor and reference batched passes and
    k-means++, masked and weighted, against separate fits from the same seeds."""
    if backend.name not in ("numpy", "torch"):
        pytest.skip("the default set of this backend is already the reference")
    monkeypatch.setenv("KMEANS_XP_KERNELS", kernels)
    X = _problems(seed=9)
    rng = np.random.default_rng(10)
    mask = np.arange(240)[None, :] < np.array([240, 150, 37, 90, 200])[:, None]
    w = rng.uniform(0.5, 2.0, size=X.shape[:2])
    seeds = [21, 22, 23, 24, 25]
    res = batched_k_means(backend.asarray(X), 4, random_state=seeds,
                          mask=backend.asarray(mask), sample_weight=backend.asarray(w))
    fits = [KMeans(4, random_state=seeds[b]).fit(backend.asarray(X[b][mask[b]]),
                                                 sample_weight=backend.asarray(w[b][mask[b]]))
            for b in range(5)]
    _check_equal(backend, X, res, fits, rows=mask)


def test_one_k_per_problem_equals_separate_fits_with_nan_padding(backend):
    """``n_clusters`` as B ints (torch-kmeans' per-problem k): problem b is
    ``KMeans(n_clusters[b], random_state=seeds[b])`` on its valid rows; its centres fill
    the first k_b rows, the rest are NaN; masks and weights follow their problems."""
    X = _problems(B=6, seed=8)
    ks = [2, 4, 3, 2, 4, 1]
    lengths = np.array([240, 100, 180, 240, 60, 30])
    rows = np.arange(240)[None, :] < lengths[:, None]
    w = np.random.default_rng(9).uniform(0.5, 2.0, size=(6, 240))
    res = batched_k_means(backend.asarray(X), backend.asarray(np.array(ks)), random_state=11,
                          mask=lengths, sample_weight=backend.asarray(w))
    backend.assert_native(res[0])
    C = _np(backend, res[0])
    assert C.shape == (6, 4, 4)
    seeds = problem_seeds(11, 6)
    fits = []
    for b, k in enumerate(ks):
        assert np.isnan(C[b, k:]).all() and np.isfinite(C[b, :k]).all()
        fits.append(KMeans(k, random_state=int(seeds[b])).fit(
            backend.asarray(X[b][rows[b]]), sample_weight=backend.asarray(w[b][rows[b]])))
    unpadded = [C[b, :k] for b, k in enumerate(ks)]
    labels, inertia, n_iter = (_np(backend, a) for a in res[1:])
    for b, km in enumerate(fits):
        np.testing.assert_array_equal(labels[b][rows[b]], _np(backend, km.labels_))
        assert (labels[b][~rows[b]] == -1).all()
        np.testing.assert_allclose(unpadded[b], _np(backend, km.cluster_centers_),
                                   rtol=1e-9, atol=1e-9)
        assert int(n_iter[b]) == km.n_iter_
        assert float(inertia[b]) == pytest.approx(km.inertia_, rel=1e-9)


@pytest.mark.parametrize("n_clusters, init, match", [
    ([2, 3], "k-means++", "one int >= 1 per problem \\(5\\)"),
    ([2, 3, 0, 2, 2], "k-means++", "one int >= 1 per problem"),
    ([2.0, 3, 2, 2, 2], "k-means++", "dtype float64"),
    ([2, 3, 2, 2, 2], np.zeros((5, 3, 4)), "'init' parameter .* 'k-means\\+\\+' or 'random'"),
    ([2, 3, 2, 2, 300], "k-means++", "n_samples=240 should be >= n_clusters=300"),
])
def test_per_problem_k_bad_input_names_the_parameter(n_clusters, init, match):
    with pytest.raises(ValueError, match=match):
        batched_k_means(_problems(), n_clusters, init=init)


def test_the_estimator_takes_one_k_and_says_where_per_problem_k_lives():
    with pytest.raises(ValueError, match="BatchedKMeans must be an int.*batched_k_means"):
        BatchedKMeans([2, 3, 2, 2, 2]).fit(_problems())


def test_per_problem_k_checks_every_problem_before_fitting_any(monkeypatch):
    """A bad last group (too few rows for its k, a wrong weight shape, a bad max_iter) is
    refused before the first group is fitted, naming the problem's own index."""
    import kmeans_xp._batched as mod

    fitted = []
    real = mod.best_of
    monkeypatch.setattr(mod, "best_of", lambda *a, **kw: fitted.append(1) or real(*a, **kw))
    X = _problems()
    too_few = "n_samples=30 should be >= n_clusters=40 \\(problem 4\\)"
    with pytest.raises(ValueError, match=too_few):
        batched_k_means(X, [2, 3, 2, 2, 40], mask=[240, 240, 240, 240, 30])
    bad_shape = "sample_weight.shape == \\(5, 10\\), expected \\(5, 240\\)"
    with pytest.raises(ValueError, match=bad_shape):
        batched_k_means(X, [2, 3, 2, 2, 4], sample_weight=np.ones((5, 10)))
    with pytest.raises(ValueError, match="max_iter"):
        batched_k_means(X, [2, 3, 2, 2, 4], max_iter=0)
    assert not fitted
