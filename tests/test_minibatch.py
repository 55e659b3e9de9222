"""MiniBatchKMeans against scikit-learn's, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_xp import MiniBatchKMeans
from kmeans_xp._solvers.minibatch import BatchSampler

sklearn_cluster = pytest.importorskip("sklearn.cluster")


def _blobs(n=6000, d=6, k=8, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=5.0, size=(k, d))
    return (C[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


@pytest.mark.parametrize("kw", [{}, {"tol": 1e-3}, {"init": "random"},
                                {"batch_size": 100, "max_iter": 2, "max_no_improvement": None},
                                {"reassignment_ratio": 0.2, "batch_size": 64}])
def test_same_results_as_scikit_learn(backend, kw):
    X = _blobs()
    ours = MiniBatchKMeans(8, random_state=0, **kw).fit(backend.asarray(X))
    ref = sklearn_cluster.MiniBatchKMeans(8, random_state=0, **kw).fit(X)
    backend.assert_native(ours.cluster_centers_, backend.dtype("float64"))
    backend.assert_native(ours.labels_)
    # the same host draws: same steps, same centres (float64), same inertia
    assert ours.n_steps_ == ref.n_steps_ and ours.n_iter_ == ref.n_iter_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_allclose(backend.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(backend.to_numpy(ours.labels_), ref.labels_)


def test_float32_weighted_and_compute_labels_false(backend):
    X = _blobs(dtype="float32", seed=1)
    w = np.random.default_rng(2).uniform(0.2, 3.0, X.shape[0]).astype("float32")
    ours = MiniBatchKMeans(8, random_state=1, compute_labels=False).fit(
        backend.asarray(X), sample_weight=backend.asarray(w))
    ref = sklearn_cluster.MiniBatchKMeans(8, random_state=1, compute_labels=False).fit(
        X, sample_weight=w)
    backend.assert_native(ours.cluster_centers_, backend.dtype("float32"))
    assert not hasattr(ours, "labels_")
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=0.03)
    assert ours.score(backend.asarray(X), sample_weight=backend.asarray(w)) == pytest.approx(
        ref.score(X, sample_weight=w), rel=0.03)


def test_predict_transform_score(backend):
    X = _blobs(seed=3)
    km = MiniBatchKMeans(8, random_state=0).fit(backend.asarray(X))
    C = backend.to_numpy(km.cluster_centers_)
    D = np.sqrt(((X[:, None] - C[None]) ** 2).sum(-1))
    np.testing.assert_allclose(backend.to_numpy(km.transform(backend.asarray(X))), D,
                               rtol=1e-8, atol=1e-8)
    np.testing.assert_array_equal(backend.to_numpy(km.predict(backend.asarray(X))),
                                  D.argmin(1))
    assert km.score(backend.asarray(X)) == pytest.approx(-(D.min(1) ** 2).sum(), rel=1e-9)


def test_partial_fit_matches_scikit_learn_and_a_full_fit(backend):
    X = _blobs(n=12000, seed=4)
    chunks = np.array_split(X, 12)
    ours = MiniBatchKMeans(8, random_state=0)
    ref = sklearn_cluster.MiniBatchKMeans(8, random_state=0)
    for c in chunks:
        ours.partial_fit(backend.asarray(c))
        ref.partial_fit(c)
    assert ours.n_steps_ == 12
    np.testing.assert_allclose(backend.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-6, atol=1e-6)


def test_partial_fit_over_12_chunks_is_within_5_percent_of_a_full_fit(backend):
    # from the same initial centres (one k-means++ draw on the first chunk), so that the
    # comparison measures the streaming updates, not the luck of a single initialisation
    from kmeans_xp import KMeans, kmeans_plusplus

    X = _blobs(n=12000, seed=4)
    chunks = np.array_split(X, 12)
    for seed in range(3):
        C0 = backend.to_numpy(kmeans_plusplus(backend.asarray(chunks[0]), 8,
                                              random_state=seed)[0])
        ours = MiniBatchKMeans(8, init=C0, random_state=seed)
        for c in chunks:
            ours.partial_fit(backend.asarray(c))
        full = KMeans(8, init=C0).fit(backend.asarray(X))
        assert -ours.score(backend.asarray(X)) <= 1.05 * full.inertia_


def test_partial_fit_frame_is_fixed_on_the_first_chunk(backend):
    X = _blobs(n=4000, seed=5, dtype="float32") + 1e4  # far from the origin: centred frame
    km = MiniBatchKMeans(8, random_state=0)
    km.partial_fit(backend.asarray(X[:2000]))
    frame = km._frame
    km.partial_fit(backend.asarray(X[2000:] + 5.0))
    assert km._frame is frame
    ref = sklearn_cluster.MiniBatchKMeans(8, random_state=0).partial_fit(X[:2000].astype(
        np.float64))
    ref.partial_fit((X[2000:] + 5.0).astype(np.float64))
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-5, atol=0.05)


def test_batches_are_drawn_as_choice_draws_them():
    w = np.random.default_rng(0).uniform(0, 2, 1000).astype(np.float32)
    for make in (lambda: np.random.RandomState(5), lambda: np.random.default_rng(5)):
        a, b = make(), make()
        expect = a.choice(1000, 300, p=w / w.sum(), replace=True)
        np.testing.assert_array_equal(BatchSampler(w, 1000, np.float32).draw(b, 300), expect)


BAD = [("batch_size", 0), ("max_iter", 0), ("n_clusters", 0), ("tol", -1.0),
       ("max_no_improvement", -1), ("init_size", 0), ("reassignment_ratio", -0.1),
       ("compute_labels", "yes"), ("n_init", 0), ("init", "kmeans")]


@pytest.mark.parametrize("name,value", BAD)
def test_same_parameter_validation_as_scikit_learn(name, value):
    X = _blobs(n=200)
    with pytest.raises(ValueError) as theirs:
        sklearn_cluster.MiniBatchKMeans(**{name: value}).fit(X)
    with pytest.raises(ValueError, match=f"'{name}'") as ours:
        MiniBatchKMeans(**{name: value}).fit(X)
    assert type(theirs.value).__name__ == type(ours.value).__name__ == "InvalidParameterError"


def test_init_size_warning_and_few_samples():
    X = _blobs(n=200)
    with pytest.warns(RuntimeWarning, match="init_size"):
        MiniBatchKMeans(8, init_size=3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="n_samples=5"):
        MiniBatchKMeans(8).fit(X[:5])
    with pytest.raises(ValueError, match="features"):
        MiniBatchKMeans(8, random_state=0).partial_fit(X).partial_fit(X[:, :3])


def test_fitted_model_pickles_and_continues(backend):
    """A fitted model holds no namespace module (pickle cannot store one): a copy made by
    pickle continues a stream exactly as the original does."""
    import pickle

    X = _blobs(n=3000, seed=6)
    km = MiniBatchKMeans(8, random_state=0).fit(backend.asarray(X[:2000]))
    copy = pickle.loads(pickle.dumps(km))
    km.partial_fit(backend.asarray(X[2000:]))
    copy.partial_fit(backend.asarray(X[2000:]))
    backend.assert_native(copy.cluster_centers_, backend.dtype("float64"))
    np.testing.assert_array_equal(backend.to_numpy(copy.cluster_centers_),
                                  backend.to_numpy(km.cluster_centers_))


def _sparse_of(backend, X):
    """``X`` as a sparse CSR matrix of the backend's library, or a skip saying why not."""
    if backend.kind == "numpy":
        sp = pytest.importorskip("scipy.sparse")
        return sp.csr_matrix(X)
    if backend.kind == "torch":
        import warnings

        with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return backend.asarray(X).to_sparse_csr()
    if backend.kind == "cupy":  # pragma: no cover - needs a GPU
        import cupyx.scipy.sparse as cpsp

        return cpsp.csr_matrix(backend.asarray(X))
    pytest.skip(f"{backend.name} has no sparse arrays")


def test_sparse_fit_and_partial_fit_equal_the_dense_ones(backend):
    """scikit-learn's test_dense_sparse property on every backend with sparse arrays: the
    same host draws give the same steps, centres and labels from X sparse as from X dense
    (the dense frame is centred, the sparse one is not: equal up to rounding)."""
    rng = np.random.default_rng(12)
    X = _blobs(n=3000, seed=12) * (rng.random((3000, 6)) < 0.5)  # half the entries zero
    w = rng.uniform(0.5, 2.0, 3000)
    Xs = _sparse_of(backend, X)
    dense = MiniBatchKMeans(8, random_state=0, batch_size=256).fit(
        backend.asarray(X), sample_weight=backend.asarray(w))
    sparse = MiniBatchKMeans(8, random_state=0, batch_size=256).fit(
        Xs, sample_weight=backend.asarray(w))
    backend.assert_native(sparse.cluster_centers_, backend.dtype("float64"))
    assert sparse.n_steps_ == dense.n_steps_
    np.testing.assert_allclose(backend.to_numpy(sparse.cluster_centers_),
                               backend.to_numpy(dense.cluster_centers_), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(backend.to_numpy(sparse.labels_),
                                  backend.to_numpy(dense.labels_))
    assert sparse.inertia_ == pytest.approx(dense.inertia_, rel=1e-9)
    a, b = MiniBatchKMeans(8, random_state=1), MiniBatchKMeans(8, random_state=1)
    for s in range(0, 3000, 1000):
        a.partial_fit(backend.asarray(X[s:s + 1000]))
        b.partial_fit(_sparse_of(backend, X[s:s + 1000]))
    np.testing.assert_allclose(backend.to_numpy(b.cluster_centers_),
                               backend.to_numpy(a.cluster_centers_), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(backend.to_numpy(b.predict(Xs)),
                                  backend.to_numpy(a.predict(backend.asarray(X))))
