"""select_k: the same fits as separate KMeans runs, the scores of kmeans_xp.metrics /
scikit-learn, the documented choice of k, and its errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmeans_xp import KMeans, SelectKResult, knee_point, select_k
from kmeans_xp.demo import load_iris
from kmeans_xp.metrics import silhouette_score

IRIS, _, _ = load_iris()


def blobs(n_per: int = 60, centres=(0.0, 5.0, 10.0), d: int = 2, seed: int = 0) -> np.ndarray:
    """Gaussian blobs (sd 0.5) around ``centres`` (scalars: on the diagonal; or points)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.5, size=(n_per, d)) for c in centres])


SQUARE = [(0.0, 0.0), (0.0, 8.0), (8.0, 0.0), (8.0, 8.0)]


def assert_same_fit(a: KMeans, b: KMeans, backend) -> None:
    np.testing.assert_array_equal(backend.to_numpy(a.cluster_centers_),
                                  backend.to_numpy(b.cluster_centers_))
    np.testing.assert_array_equal(backend.to_numpy(a.labels_), backend.to_numpy(b.labels_))
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_


def test_models_equal_separate_fits(backend):
    """The handbook sweep on iris: every model is KMeans(n_clusters=k, random_state=2021)."""
    X = backend.asarray(IRIS)
    res = select_k(X, range(1, 11), random_state=2021)
    assert isinstance(res, SelectKResult)
    assert res.k_values == list(range(1, 11)) and res.random_seed == 2021
    assert res.shared_seeding == list(range(1, 11))  # three groups of k-means++ trials
    for i, k in enumerate(res.k_values):
        m = res.models[k]
        backend.assert_native(m.cluster_centers_)
        assert m.get_params()["init"] == "k-means++" and m.n_clusters == k
        assert_same_fit(m, KMeans(n_clusters=k, random_state=2021).fit(X), backend)
        assert res.inertia[i] == m.inertia_ and res.n_iter[i] == m.n_iter_
    assert res.best_k == 3 and res.best_model is res.models[3]


def test_shared_seeds_with_chunks_and_weights(backend):
    """Several chunks and sample weights: still the fit of each model's own parameters."""
    X = blobs(40, centres=(0.0, 3.0, 6.0, 9.0), d=3)
    w = np.random.default_rng(1).uniform(0.2, 2.0, X.shape[0])
    Xb, wb = backend.asarray(X), backend.asarray(w)
    res = select_k(Xb, [2, 3, 4, 5, 8, 9], random_state=11, sample_weight=wb, chunk_size=25,
                   max_iter=50)
    assert res.shared_seeding == [3, 4, 5, 8, 9]  # k=2 has its own number of trials
    for m in res.models.values():
        assert m.chunk_size == 25 and m.max_iter == 50
        assert_same_fit(m, KMeans(**m.get_params()).fit(Xb, sample_weight=wb), backend)


def test_no_sharing_where_seeds_differ(backend):
    X = backend.asarray(blobs(30))
    res = select_k(X, range(2, 6), random_state=3, n_init=3)
    assert res.shared_seeding == []
    for k, m in res.models.items():
        assert m.n_init == 3
        assert_same_fit(m, KMeans(n_clusters=k, n_init=3, random_state=3).fit(X), backend)
    res = select_k(X, range(2, 6), random_state=3, init="random")
    assert res.shared_seeding == []
    assert_same_fit(res.models[4], KMeans(n_clusters=4, init="random", random_state=3).fit(X),
                    backend)


def test_scores_match_sklearn(backend):
    sk = pytest.importorskip("sklearn.metrics")
    res = select_k(backend.asarray(IRIS), range(1, 7), random_state=0)
    assert all(math.isnan(v[0]) for v in (res.silhouette, res.calinski_harabasz,
                                          res.davies_bouldin))
    for i, k in enumerate(res.k_values[1:], start=1):
        labels = backend.to_numpy(res.models[k].labels_)
        assert res.silhouette[i] == pytest.approx(sk.silhouette_score(IRIS, labels), rel=1e-6)
        assert res.calinski_harabasz[i] == pytest.approx(
            sk.calinski_harabasz_score(IRIS, labels), rel=1e-6)
        assert res.davies_bouldin[i] == pytest.approx(sk.davies_bouldin_score(IRIS, labels),
                                                      rel=1e-6)


def test_silhouette_sample_is_metrics_sample(backend):
    X = backend.asarray(blobs(50))
    res = select_k(X, range(2, 6), random_state=4, silhouette_sample_size=40)
    for i, k in enumerate(res.k_values):
        assert res.silhouette[i] == pytest.approx(silhouette_score(
            X, res.models[k].labels_, sample_size=40, random_state=4), rel=1e-6)


def test_criteria_choose_as_documented():
    X = blobs(60, centres=SQUARE)
    res = {c: select_k(X, range(1, 9), criterion=c, random_state=0)
           for c in ("elbow", "silhouette", "calinski_harabasz", "davies_bouldin")}
    assert {c: r.best_k for c, r in res.items()} == {c: 4 for c in res}
    r = res["elbow"]
    assert r.best_k == knee_point(r.k_values, r.inertia)[0]
    sil = np.array(r.silhouette[1:])
    assert res["silhouette"].best_k == r.k_values[1 + int(np.argmax(sil))]
    db = np.array(r.davies_bouldin[1:])
    assert res["davies_bouldin"].best_k == r.k_values[1 + int(np.argmin(db))]
    assert res["silhouette"].scores("elbow") == r.inertia
    assert "* best k = 4" in str(r)
    d = r.as_dict()
    assert d["best_k"] == 4 and d["silhouette"][0] is None and "models" not in d


def test_knee_point():
    assert knee_point([1, 2, 3, 4, 5, 6], [100, 40, 12, 10, 9, 8])[0] == 3
    # x_n = 0, .25, .5, .75, 1; y_n = 1, .4, .1, .05, 0: differences 0, .35, .4, .2, 0
    knee, diff = knee_point([2, 4, 6, 8, 10], [21.0, 9.0, 3.0, 2.0, 1.0])
    assert knee == 6
    np.testing.assert_allclose(diff, [0, 0.35, 0.4, 0.2, 0], atol=1e-12)
    assert knee_point([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0])[0] is None  # a straight line
    assert knee_point([1, 2, 3, 4], [4.0, 3.9, 3.5, 1.0])[0] is None  # concave: no elbow
    with pytest.raises(ValueError, match="length >= 3"):
        knee_point([1, 2], [3.0, 1.0])
    with pytest.raises(ValueError, match="increasing x"):
        knee_point([1, 3, 2], [3.0, 2.0, 1.0])


def test_random_state_forms():
    X = blobs(30)
    a = select_k(X, range(2, 5), random_state=np.random.default_rng(9))
    b = select_k(X, range(2, 5), random_state=np.random.default_rng(9))
    assert a.random_seed == b.random_seed and a.inertia == b.inertia
    c = select_k(X, range(2, 5), random_state=np.random.RandomState(9))
    assert isinstance(c.random_seed, int)


def test_dataframe_keeps_feature_names():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(IRIS, columns=["sl", "sw", "pl", "pw"])
    res = select_k(df, range(2, 5), random_state=0)
    assert list(res.best_model.feature_names_in_) == ["sl", "sw", "pl", "pw"]
    np.testing.assert_array_equal(res.best_model.predict(df), res.best_model.labels_)


def test_progress(capsys):
    X = blobs(20)
    select_k(X, range(2, 5), random_state=0, progress=True)
    assert "select_k" in capsys.readouterr().err
    select_k(X, range(2, 5), random_state=0, progress=False)
    select_k(X, range(2, 5), random_state=0)  # None: only after 2 s
    assert capsys.readouterr().err == ""


def test_errors():
    X = blobs(10)
    with pytest.raises(ValueError, match="'criterion' parameter of select_k"):
        select_k(X, criterion="gap")
    for bad in ([], [0, 2], ["3"], 5, [2.5]):
        with pytest.raises(ValueError, match="'k_range' parameter"):
            select_k(X, bad)
    with pytest.raises(ValueError, match="goes up to k=31, but X has only 30 samples"):
        select_k(X, range(2, 32))
    with pytest.raises(ValueError, match="needs at least 3 values"):
        select_k(X, [2, 3])
    with pytest.raises(ValueError, match="some k in k_range with 2 <= k"):
        select_k(X, [1], criterion="silhouette")
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        select_k(X, n_clusters=3)
    with pytest.raises(ValueError, match="'init' parameter of select_k"):
        select_k(X, init=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="'progress' parameter"):
        select_k(X, progress="yes")
    with pytest.raises(ValueError, match="'silhouette_sample_size' parameter"):
        select_k(X, silhouette_sample_size=0)
    with pytest.raises(ValueError, match="max_iter"):
        select_k(X, max_iter=0)
