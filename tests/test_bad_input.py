"""Every bad input x every backend: the exception type, a message naming the parameter, and
no clustering work started before the error."""

from __future__ import annotations

import numpy as np
import pytest

import kmeans_xp._kmeans as est_mod
from kmeans_xp import KMeans, NotFittedError, k_means, kmeans_plusplus


def _X(n=40, d=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def _with(value, *where):
    X = _X()
    X[where] = value
    return X


# (id, X as numpy, estimator kwargs, fit kwargs builder, exception, regex)
FIT_CASES = [
    ("nan", _with(np.nan, 3, 1), {}, None, ValueError, r"Input X contains NaN"),
    ("inf", _with(np.inf, 5, 0), {}, None, ValueError, r"Input X contains infinity"),
    ("neg_inf", _with(-np.inf, 5, 0), {}, None, ValueError, r"Input X contains infinity"),
    ("1d", _X()[:, 0], {}, None, ValueError, r"Expected 2D array.*X must have shape"),
    ("3d", _X().reshape(10, 4, 4), {}, None, ValueError, r"Expected 2D array.*X"),
    ("no_samples", np.zeros((0, 4)), {}, None, ValueError, r"0 sample\(s\).*X has no samples"),
    ("no_features", np.zeros((10, 0)), {}, None, ValueError, r"0 feature\(s\).*X has no features"),
    ("fewer_samples_than_clusters", _X(n=3), {"n_clusters": 4}, None, ValueError,
     r"n_samples=3 should be >= n_clusters=4"),
    ("n_clusters_zero", _X(), {"n_clusters": 0}, None, ValueError, r"'n_clusters'"),
    ("n_clusters_negative", _X(), {"n_clusters": -2}, None, ValueError, r"'n_clusters'"),
    ("n_clusters_float", _X(), {"n_clusters": 2.5}, None, TypeError, r"'n_clusters'"),
    ("n_clusters_str", _X(), {"n_clusters": "3"}, None, TypeError, r"'n_clusters'"),
    ("n_clusters_bool", _X(), {"n_clusters": True}, None, TypeError, r"'n_clusters'"),
    ("n_init_zero", _X(), {"n_init": 0}, None, ValueError, r"'n_init'"),
    ("n_init_str", _X(), {"n_init": "often"}, None, ValueError, r"'n_init'"),
    ("n_init_float", _X(), {"n_init": 1.5}, None, TypeError, r"'n_init'"),
    ("max_iter_zero", _X(), {"max_iter": 0}, None, ValueError, r"'max_iter'"),
    ("max_iter_float", _X(), {"max_iter": 10.0}, None, TypeError, r"'max_iter'"),
    ("tol_negative", _X(), {"tol": -1e-3}, None, ValueError, r"'tol'"),
    ("tol_nan", _X(), {"tol": float("nan")}, None, ValueError, r"'tol'"),
    ("tol_str", _X(), {"tol": "small"}, None, TypeError, r"'tol'"),
    ("init_unknown", _X(), {"init": "kmeans++"}, None, ValueError, r"'init'"),
    ("init_type", _X(), {"init": 3}, None, TypeError, r"'init'"),
    ("init_rows", _X(), {"n_clusters": 3, "init": _X()[:2]}, None, ValueError,
     r"initial centers \(2, 4\) does not match the number of clusters 3.*'init'"),
    ("init_features", _X(), {"n_clusters": 3, "init": _X()[:3, :2]}, None, ValueError,
     r"does not match the number of features of the data 4.*'init'"),
    ("init_nan", _X(), {"n_clusters": 2, "init": _with(np.nan, 0, 0)[:2]}, None, ValueError,
     r"init.*NaN"),
    ("init_callable_shape", _X(), {"n_clusters": 3, "init": lambda X, k, random_state: X[:2, ...]},
     None, ValueError, r"does not match the number of clusters 3"),
    ("algorithm", _X(), {"algorithm": "full"}, None, ValueError, r"'algorithm'"),
    ("random_state", _X(), {"random_state": "seed"}, None, TypeError, r"random_state"),
    ("random_state_negative", _X(), {"random_state": -1}, None, ValueError, r"random_state"),
    ("chunk_size", _X(), {"chunk_size": 0}, None, ValueError, r"'chunk_size'"),
    ("verbose", _X(), {"verbose": -1}, None, ValueError, r"'verbose'"),
    ("copy_x", _X(), {"copy_x": "yes"}, None, TypeError, r"'copy_x'"),
    ("weight_length", _X(), {}, lambda b: b.asarray(np.ones(39)), ValueError,
     r"sample_weight.*\(39,\).*expected \(40,\)"),
    ("weight_2d", _X(), {}, lambda b: b.asarray(np.ones((40, 1))), ValueError, r"sample_weight"),
    ("weight_negative", _X(), {}, lambda b: b.asarray(np.r_[-1.0, np.ones(39)]), ValueError,
     r"Negative values.*sample_weight"),
    ("weight_nan", _X(), {}, lambda b: b.asarray(np.r_[np.nan, np.ones(39)]), ValueError,
     r"sample_weight contains NaN"),
    ("weight_inf", _X(), {}, lambda b: b.asarray(np.r_[np.inf, np.ones(39)]), ValueError,
     r"sample_weight contains infinity"),
    ("weight_zero_sum", _X(), {}, lambda b: b.asarray(np.zeros(40)), ValueError,
     r"sample_weight sums to zero"),
    ("weight_scalar_negative", _X(), {}, lambda b: -1.0, ValueError, r"sample_weight"),
]


@pytest.fixture
def no_clustering(monkeypatch):
    """Fail the test if initialisation or Lloyd starts: errors must come before heavy work."""
    def boom(*a, **k):
        raise AssertionError("clustering started before the bad input was reported")

    monkeypatch.setattr(est_mod, "initial_centers", boom)
    from kmeans_xp._solvers import lloyd as lloyd_mod

    monkeypatch.setattr(lloyd_mod, "lloyd", boom)  # what every fit's best_of runs


@pytest.mark.parametrize("case", FIT_CASES, ids=[c[0] for c in FIT_CASES])
def test_bad_fit_input(backend, case, no_clustering, monkeypatch):
    name, X, kwargs, weight, exc, match = case
    if name == "init_callable_shape":  # its output can only be checked once it has run
        from kmeans_xp._solvers import init as _init

        monkeypatch.setattr(est_mod, "initial_centers", _init.initial_centers)
    params = {"n_clusters": 2, "random_state": 0, **kwargs}
    if "init" in kwargs and isinstance(kwargs["init"], np.ndarray):
        params["init"] = backend.asarray(kwargs["init"])
    sw = weight(backend) if weight is not None else None
    with pytest.raises(exc, match=match):
        KMeans(**params).fit(backend.asarray(X), sample_weight=sw)


def test_complex_data(backend, no_clustering):
    X = backend.asarray(_X().astype(np.complex128))
    with pytest.raises(TypeError, match=r"X has complex data"):
        KMeans(2).fit(X)
    with pytest.raises(ValueError, match=r"X has complex data"):  # both types, as sklearn
        KMeans(2).fit(X)


def test_string_and_object_data(no_clustering):
    with pytest.raises(TypeError, match=r"X has dtype <U"):
        KMeans(2).fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]]))
    with pytest.raises(TypeError, match=r"X has dtype object with values that are not numbers"):
        KMeans(2).fit(np.array([[1, "b"], [None, 2]], dtype=object))
    with pytest.raises(TypeError, match=r"X could not be converted"):
        KMeans(2).fit([[1.0, 2.0], [3.0]])


def test_predict_transform_score_bad_input(backend):
    km = KMeans(2, random_state=0).fit(backend.asarray(_X()))
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(ValueError, match=r"X has 3 features, but KMeans is expecting 4"):
            method(backend.asarray(_X(d=3)))
        with pytest.raises(ValueError, match=r"Input X contains NaN"):
            method(backend.asarray(_with(np.nan, 1, 1)))
        with pytest.raises(ValueError, match=r"Expected 2D array"):
            method(backend.asarray(_X()[0]))
    with pytest.raises(ValueError, match=r"sample_weight"):
        km.score(backend.asarray(_X()), sample_weight=backend.asarray(np.ones(3)))


def test_before_fit(backend):
    km = KMeans(2)
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(NotFittedError, match=r"not fitted yet. Call 'fit'"):
            method(backend.asarray(_X()))
    with pytest.raises(ValueError):
        km.predict(backend.asarray(_X()))


def test_functions_check_their_arguments(backend):
    X = backend.asarray(_X())
    with pytest.raises(ValueError, match=r"'n_clusters'"):
        kmeans_plusplus(X, 0)
    with pytest.raises(ValueError, match=r"n_samples=40 should be >= n_clusters=41"):
        kmeans_plusplus(X, 41)
    with pytest.raises(ValueError, match=r"'n_local_trials'"):
        kmeans_plusplus(X, 2, n_local_trials=0)
    with pytest.raises(ValueError, match=r"Input X contains NaN"):
        kmeans_plusplus(backend.asarray(_with(np.nan, 0, 0)), 2)
    with pytest.raises(ValueError, match=r"'max_iter'"):
        k_means(X, 2, max_iter=0)
