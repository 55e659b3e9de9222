"""Property tests (hypothesis) on every backend of the fixture.

Inputs are drawn as a structure (n, d, k, dtype, weights, duplicated rows, constant columns)
plus a seed for a NumPy generator that fills in a Gaussian mixture: every example is a valid,
reproducible input, and the examples cover duplicates and constant columns.  Properties whose
statement holds only away from ties (permutation, repetition, affine maps) discard examples
with a near-tie at the solution.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from kmeans_xp import KMeans  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("KMEANS_XP_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def problems(draw, dtypes=("float32", "float64"), allow_weights=True, duplicates=True):
    n = draw(st.integers(2, 120))
    d = draw(st.integers(1, 6))
    k = draw(st.integers(1, min(n, 7)))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**31 - 1))
    n_dup = draw(st.integers(0, n // 3)) if duplicates else 0
    const_col = draw(st.booleans()) and d > 1
    weighted = allow_weights and draw(st.booleans())
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=draw(st.sampled_from([0.5, 3.0, 20.0])), size=(max(k, 1), d))
    X = centers[rng.integers(0, len(centers), n)] + rng.normal(size=(n, d))
    X += draw(st.sampled_from([0.0, 5.0, -300.0]))  # an offset from the origin
    if n_dup:
        X[rng.choice(n, n_dup, replace=False)] = X[rng.integers(0, n, n_dup)]
    if const_col:
        X[:, rng.integers(0, d)] = 7.25
    w = rng.uniform(0.1, 5.0, n).astype(dtype) if weighted else None
    return X.astype(dtype), k, w


def _fit(backend, X, k, w=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate draws warn about distinct clusters
        return KMeans(k, **kw).fit(backend.asarray(X),
                                   sample_weight=None if w is None else backend.asarray(w))


def _tol(X):
    """Absolute tolerance on squared distances for the dtype and the data's spread."""
    spread = float(((X.astype(np.float64) - X.mean(0)) ** 2).sum(1).max()) + 1.0
    mag = float((X.astype(np.float64) ** 2).sum(1).max()) + 1.0
    eps = 1e-5 if X.dtype == np.float32 else 1e-12
    return eps * (spread + 1e-3 * mag)


def _sq_dists(X, C):
    X, C = X.astype(np.float64), C.astype(np.float64)
    return ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1)


def _margin(X, C):
    """Smallest gap between the nearest and second-nearest centre (inf for k = 1)."""
    if C.shape[0] < 2:
        return np.inf
    two = np.sort(_sq_dists(X, C), axis=1)[:, :2]
    return float((two[:, 1] - two[:, 0]).min())


@SETTINGS
@given(problems())
def test_fit_is_valid_and_inertia_is_the_sum_of_squares(backend, problem):
    X, k, w = problem
    km = _fit(backend, X, k, w, random_state=0)
    C = backend.to_numpy(km.cluster_centers_)
    labels = backend.to_numpy(km.labels_)
    assert np.isfinite(C).all()
    assert labels.shape == (X.shape[0],) and labels.min() >= 0 and labels.max() < k
    ww = np.ones(X.shape[0]) if w is None else w.astype(np.float64)
    D = _sq_dists(X, C)
    expect = float((ww * D[np.arange(X.shape[0]), labels]).sum())
    assert km.inertia_ == pytest.approx(expect, rel=1e-4 if X.dtype == np.float32 else 1e-9,
                                        abs=_tol(X) * ww.sum())
    # every point sits with a nearest centre, up to ties
    assert (D[np.arange(X.shape[0]), labels] <= D.min(1) + _tol(X)).all()


@SETTINGS
@given(problems())
def test_inertia_never_increases(backend, problem):
    X, k, w = problem
    init = X[np.random.default_rng(0).choice(X.shape[0], k, replace=False)]
    previous = np.inf
    for m in range(1, 7):
        km = _fit(backend, X, k, w, init=backend.asarray(init), max_iter=m, tol=0)
        slack = 1e-4 * previous if X.dtype == np.float32 else 1e-9 * previous
        assert km.inertia_ <= previous + slack + _tol(X)
        previous = km.inertia_
        if km.n_iter_ < m:  # converged: later runs stop at the same point
            break


@SETTINGS
@given(problems())
def test_predict_equals_labels_after_convergence(backend, problem):
    X, k, w = problem
    km = _fit(backend, X, k, w, random_state=1, tol=0)
    pred = backend.to_numpy(km.predict(backend.asarray(X)))
    labels = backend.to_numpy(km.labels_)
    D = _sq_dists(X, backend.to_numpy(km.cluster_centers_))
    diff = np.nonzero(pred != labels)[0]
    # where they differ, the point is equidistant from both centres (a tie)
    assert (np.abs(D[diff, pred[diff]] - D[diff, labels[diff]]) <= _tol(X)).all()


@SETTINGS
@given(problems(dtypes=("float64",), duplicates=False), st.integers(0, 2**31 - 1))
def test_permuting_rows_permutes_labels(backend, problem, seed):
    X, k, w = problem
    init = X[:k]
    ref = _fit(backend, X, k, w, init=backend.asarray(init))
    C = backend.to_numpy(ref.cluster_centers_)
    assume(_margin(X, C) > 1e-9 * (1 + np.abs(X).max()) ** 2)
    perm = np.random.default_rng(seed).permutation(X.shape[0])
    out = _fit(backend, X[perm], k, None if w is None else w[perm], init=backend.asarray(init))
    np.testing.assert_array_equal(backend.to_numpy(out.labels_),
                                  backend.to_numpy(ref.labels_)[perm])
    np.testing.assert_allclose(backend.to_numpy(out.cluster_centers_), C, rtol=1e-9, atol=1e-9)
    assert out.n_iter_ == ref.n_iter_


@SETTINGS
@given(problems(dtypes=("float64",), allow_weights=False, duplicates=False),
       st.integers(0, 2**31 - 1))
def test_integer_weights_equal_repeated_rows(backend, problem, seed):
    X, k, _ = problem
    reps = np.random.default_rng(seed).integers(1, 4, X.shape[0])
    init = X[:k]
    weighted = _fit(backend, X, k, reps.astype(np.float64), init=backend.asarray(init))
    C = backend.to_numpy(weighted.cluster_centers_)
    assume(_margin(X, C) > 1e-9 * (1 + np.abs(X).max()) ** 2)
    repeated = _fit(backend, np.repeat(X, reps, axis=0), k, init=backend.asarray(init))
    np.testing.assert_allclose(backend.to_numpy(repeated.cluster_centers_), C,
                               rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(backend.to_numpy(repeated.labels_),
                                  np.repeat(backend.to_numpy(weighted.labels_), reps))
    assert repeated.inertia_ == pytest.approx(weighted.inertia_, rel=1e-9, abs=1e-9)


@SETTINGS
@given(problems(dtypes=("float64",), duplicates=False), st.sampled_from([0.5, 3.7, 1024.0]),
       st.floats(-1e3, 1e3))
def test_scaling_and_shifting_X_maps_the_centres(backend, problem, a, b):
    X, k, w = problem
    init = X[:k]
    ref = _fit(backend, X, k, w, init=backend.asarray(init))
    C = backend.to_numpy(ref.cluster_centers_)
    assume(_margin(X, C) > 1e-9 * (1 + np.abs(X).max()) ** 2)
    out = _fit(backend, a * X + b, k, w, init=backend.asarray(a * init + b))
    np.testing.assert_array_equal(backend.to_numpy(out.labels_), backend.to_numpy(ref.labels_))
    scale = a * (1 + np.abs(X).max()) + abs(b)
    np.testing.assert_allclose(backend.to_numpy(out.cluster_centers_), a * C + b,
                               rtol=0, atol=1e-9 * scale)
    assert out.inertia_ == pytest.approx(a * a * ref.inertia_, rel=1e-7, abs=1e-9 * scale**2)
