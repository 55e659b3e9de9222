"""The consistency suite: the same data and initial centres give the same clustering on
every backend, and the same as scikit-learn's KMeans(algorithm="lloyd", n_init=1).

"The same up to ties": floating-point sums in another order can break an exact tie (digits
has integer features, so exact ties are common) or a float32 near-tie the other way.  When
labels differ, :func:`assert_agree_up_to_ties` finds the first iteration where they do and
checks that every differing point was (nearly) equidistant from both centres there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kmeans_xp import KMeans, kmeans_plusplus

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans as SKKMeans  # noqa: E402
from sklearn.datasets import load_digits, load_iris, load_wine, make_blobs  # noqa: E402


def _datasets():
    return {
        "iris": load_iris().data,
        "wine": load_wine().data,
        "digits": load_digits().data,
        "blobs": make_blobs(n_samples=3000, n_features=6, centers=5, cluster_std=1.5,
                            random_state=0)[0],
    }


DATASETS = _datasets()
RTOL_INERTIA = {"float64": 1e-6, "float32": 1e-4}
TIE_RTOL = {"float64": 1e-9, "float32": 2e-5}


def _init_rows(X, k, seed=0):
    rng = np.random.RandomState(seed)
    return X[rng.choice(X.shape[0], k, replace=False)]


def _fit_ours(backend, X, init, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(init.shape[0], init=backend.asarray(init), n_init=1, **kw)
        return km.fit(backend.asarray(X))


def _fit_sk(X, init, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return SKKMeans(init.shape[0], init=init, n_init=1, algorithm="lloyd", **kw).fit(X)


def _near_ties(X64, C, rtol):
    """Points whose two nearest centres of C are equidistant within ``rtol``."""
    d = ((X64[:, None, :] - C[None, :, :]) ** 2).sum(-1)
    two = np.sort(d, axis=1)[:, :2]
    scale = ((X64 - X64.mean(0)) ** 2).sum(1) + two[:, 0] + 1.0
    return np.nonzero((two[:, 1] - two[:, 0]) / scale <= rtol)[0]


def assert_agree_up_to_ties(backend, X, init, dtype_name):
    """Labels differ: the first divergence must be explained by ties.

    With ``max_iter=m`` both implementations return labels assigned against the centres
    after m updates; those are equal up to rounding when the labels agreed at m - 1, so
    the differing points must be ties against them.  At m = 1 the divergence can also come
    from the first assignment (against ``init``), whose labels are not returned: then the
    initial centres must have tied points.
    """
    X64 = X.astype(np.float64)
    rtol = TIE_RTOL[dtype_name]
    for m in range(1, 301):
        fit = _fit_ours(backend, X, init, max_iter=m, tol=0)
        ours = backend.to_numpy(fit.labels_)
        ref = _fit_sk(X, init, max_iter=m, tol=0)
        if (ours != ref.labels_).any():
            C = ref.cluster_centers_.astype(np.float64)
            same_centres = np.allclose(backend.to_numpy(fit.cluster_centers_), C,
                                       rtol=100 * rtol, atol=100 * rtol * np.abs(X64).max())
            if m == 1 and not same_centres:
                assert _near_ties(X64, init.astype(np.float64), rtol).size > 0, (
                    "the first assignment differs although the initial centres have no ties")
                return m
            assert same_centres, f"centres differ at iteration {m} before any label did"
            idx = np.nonzero(ours != ref.labels_)[0]
            assert np.isin(idx, _near_ties(X64, C, rtol)).all(), (
                f"labels diverge at iteration {m} on points that are not ties")
            return m
    raise AssertionError("labels differ after fit but never within max_iter steps")


@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize("k", [3, 8])
def test_same_as_sklearn_from_same_init(backend, dataset, k, dtype_name):
    X = DATASETS[dataset].astype(dtype_name)
    init = _init_rows(X, k)
    ours = _fit_ours(backend, X, init)
    ref = _fit_sk(X, init)
    backend.assert_native(ours.cluster_centers_, backend.dtype(dtype_name))
    backend.assert_native(ours.labels_)
    labels = backend.to_numpy(ours.labels_)
    if (labels == ref.labels_).all() and ours.n_iter_ == ref.n_iter_:
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=RTOL_INERTIA[dtype_name])
        scale = np.abs(X).max()
        atol = scale * (1e-10 if dtype_name == "float64" else 1e-5)
        np.testing.assert_allclose(backend.to_numpy(ours.cluster_centers_),
                                   ref.cluster_centers_, rtol=0, atol=atol)
    else:  # another path (to the same or another fixed point): it must start at a tie
        assert_agree_up_to_ties(backend, X, init, dtype_name)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_same_as_sklearn_exactly_without_ties(backend, dataset):
    """Jittered by 1e-6 of the spread, the data have no ties: labels must be equal exactly."""
    X = DATASETS[dataset]
    X = X + 1e-6 * X.std() * np.random.default_rng(0).uniform(size=X.shape)
    for k in (3, 8):
        init = _init_rows(X, k, seed=1)
        ours = _fit_ours(backend, X, init)
        ref = _fit_sk(X, init)
        np.testing.assert_array_equal(backend.to_numpy(ours.labels_), ref.labels_)
        assert ours.n_iter_ == ref.n_iter_
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-10)


def _mixture(n=2000, d=5, k=6, seed=3, dtype="float64"):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=4.0, size=(k, d))
    X = centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))
    return X.astype(dtype)


def test_same_seed_same_clustering_on_every_backend(backend, dtype_name):
    """k-means++ with an int seed: the same seeds, labels, n_iter_ on every backend as NumPy."""
    X = _mixture(dtype=dtype_name)
    ref = KMeans(6, random_state=7).fit(X)
    ours = KMeans(6, random_state=7).fit(backend.asarray(X))
    np.testing.assert_array_equal(backend.to_numpy(ours.labels_), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    tol = 1e-10 if dtype_name == "float64" else 1e-4
    np.testing.assert_allclose(backend.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=tol, atol=tol)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=tol)


def test_kmeans_plusplus_same_seeds_as_sklearn(backend, dtype_name):
    from sklearn.cluster import kmeans_plusplus as sk_kpp

    X = _mixture(dtype=dtype_name)
    w = np.random.default_rng(0).uniform(0.5, 2.0, X.shape[0]).astype(dtype_name)
    for sample_weight in (None, w):
        c, idx = kmeans_plusplus(backend.asarray(X), 6, random_state=0,
                                 sample_weight=None if sample_weight is None
                                 else backend.asarray(sample_weight))
        c_ref, idx_ref = sk_kpp(X, 6, random_state=0, sample_weight=sample_weight)
        backend.assert_native(c, backend.dtype(dtype_name))
        backend.assert_native(idx)
        np.testing.assert_array_equal(backend.to_numpy(idx), idx_ref)
        np.testing.assert_array_equal(backend.to_numpy(c), c_ref)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_seeded_inits_as_good_as_sklearn(init):
    """Over seeds, our mean inertia is no worse than scikit-learn's (same seeds -> same draws)."""
    for name in ("iris", "wine", "blobs"):
        X = DATASETS[name]
        ours = np.mean([KMeans(5, init=init, random_state=s).fit(X).inertia_ for s in range(8)])
        ref = np.mean([SKKMeans(5, init=init, random_state=s).fit(X).inertia_ for s in range(8)])
        assert ours <= ref * (1 + 1e-6), (name, ours, ref)


def test_sample_weight_same_as_sklearn(backend, dtype_name):
    X = _mixture(dtype=dtype_name)
    w = np.random.default_rng(1).uniform(0.1, 3.0, X.shape[0]).astype(dtype_name)
    init = _init_rows(X, 6, seed=2)
    ours = KMeans(6, init=backend.asarray(init)).fit(backend.asarray(X),
                                                     sample_weight=backend.asarray(w))
    ref = SKKMeans(6, init=init, n_init=1).fit(X, sample_weight=w)
    np.testing.assert_array_equal(backend.to_numpy(ours.labels_), ref.labels_)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=RTOL_INERTIA[dtype_name])


def test_empty_cluster_relocated_like_sklearn(backend):
    """An initial centre far from all data gets no point; it is moved to the farthest point."""
    X = _mixture(n=500, k=3)
    init = np.concatenate([X[:3], np.full((1, X.shape[1]), 1e3)])
    ours = KMeans(4, init=backend.asarray(init)).fit(backend.asarray(X))
    ref = _fit_sk(X, init)
    centers = backend.to_numpy(ours.cluster_centers_)
    assert np.isfinite(centers).all()
    assert len(np.unique(backend.to_numpy(ours.labels_))) == 4
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_array_equal(backend.to_numpy(ours.labels_), ref.labels_)
