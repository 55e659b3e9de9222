"""Every fast path in kmeans_xp._ops equals its pure-standard fallback, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace

from kmeans_xp import _ops


def _case(backend, dtype_name, n=1500, d=7, k=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(dtype_name)
    labels = rng.integers(0, k, n)
    w = rng.uniform(0.1, 2.0, n).astype(dtype_name)
    C = rng.normal(size=(k, d)).astype(dtype_name)
    Xb = backend.asarray(X)
    return X, labels, w, C, Xb, array_namespace(Xb)


def _tol(dtype_name):
    return dict(rtol=1e-4, atol=1e-3) if dtype_name == "float32" else dict(rtol=1e-10, atol=1e-9)


# k on both sides of NumPy's one-hot / bincount switch
@pytest.mark.parametrize("k", [1, 5, _ops.NUMPY_ONEHOT_MAX_K + 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cluster_sums_fast_equals_fallback(backend, dtype_name, k, weighted):
    X, labels, w, _, Xb, xp = _case(backend, dtype_name, k=k)
    lb = backend.asarray(labels)
    wb = backend.asarray(w) if weighted else None
    fast = _ops.cluster_sums(Xb, lb, wb, k, xp=xp, fast=True)
    slow = _ops.cluster_sums(Xb, lb, wb, k, xp=xp, fast=False)
    ww = w if weighted else np.ones_like(w)
    expect_sums = np.zeros((k, X.shape[1]))
    np.add.at(expect_sums, labels, X.astype(np.float64) * ww[:, None])
    expect_counts = np.bincount(labels, weights=ww, minlength=k)
    for sums, counts in (fast, slow):
        backend.assert_native(sums, Xb.dtype)
        backend.assert_native(counts, Xb.dtype)
        np.testing.assert_allclose(backend.to_numpy(sums), expect_sums, **_tol(dtype_name))
        np.testing.assert_allclose(backend.to_numpy(counts), expect_counts, **_tol(dtype_name))


# k below and above twice the number of features (NumPy folds ||c||^2 into the product then)
@pytest.mark.parametrize("k", [5, 16])
def test_partial_distances_and_argmin_fast_equal_fallback(backend, dtype_name, k):
    X, _, _, C, Xb, xp = _case(backend, dtype_name, k=k)
    Cb = backend.asarray(C)
    m2t = -2.0 * xp.matrix_transpose(Cb)
    c_sq = xp.sum(Cb * Cb, axis=1)
    fast = _ops.partial_sq_distances(Xb, m2t, c_sq, xp=xp, fast=True)
    slow = _ops.partial_sq_distances(Xb, m2t, c_sq, xp=xp, fast=False)
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    expect = (C64 ** 2).sum(1)[None, :] - 2 * X64 @ C64.T
    for D in (fast, slow):
        backend.assert_native(D, Xb.dtype)
        np.testing.assert_allclose(backend.to_numpy(D), expect, **_tol(dtype_name))
    (vf, i_f), (vs, i_s) = (_ops.min_argmin(fast, xp=xp, fast=True),
                            _ops.min_argmin(fast, xp=xp, fast=False))
    np.testing.assert_array_equal(backend.to_numpy(i_f), backend.to_numpy(i_s))
    np.testing.assert_array_equal(backend.to_numpy(vf), backend.to_numpy(vs))
    np.testing.assert_array_equal(backend.to_numpy(i_f), expect.argmin(1))
    # with a reused work block: same values, including a shorter (last) chunk after a longer one
    buffers: dict = {}
    for rows in (X.shape[0], 37):
        D = _ops.partial_sq_distances(Xb[:rows, ...], m2t, c_sq, xp=xp, buffers=buffers)
        backend.assert_native(D, Xb.dtype)
        np.testing.assert_allclose(backend.to_numpy(D), expect[:rows], **_tol(dtype_name))
    a_fast = _ops.argmin_rows(fast, xp=xp, fast=True)
    backend.assert_native(a_fast)
    np.testing.assert_array_equal(backend.to_numpy(a_fast),
                                  backend.to_numpy(_ops.argmin_rows(fast, xp=xp, fast=False)))


def test_fit_with_fast_paths_off_gives_the_same_clustering(backend, monkeypatch):
    """The whole fit through the fallbacks only equals the fit through the fast paths."""
    from kmeans_xp import KMeans

    X, *_ = _case(backend, "float64", k=4)
    Xb = backend.asarray(X)
    ref = KMeans(4, random_state=0).fit(Xb)
    for name in ("cluster_sums", "partial_sq_distances", "min_argmin", "argmin_rows",
                 "sq_dist_to_assigned"):
        orig = getattr(_ops, name)
        monkeypatch.setattr(_ops, name, lambda *a, _f=orig, **kw: _f(*a, **{**kw, "fast": False}))
    slow = KMeans(4, random_state=0).fit(Xb)
    np.testing.assert_array_equal(backend.to_numpy(slow.labels_), backend.to_numpy(ref.labels_))
    assert slow.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(backend.to_numpy(slow.cluster_centers_),
                               backend.to_numpy(ref.cluster_centers_), rtol=1e-10, atol=1e-10)


def test_sq_dist_to_assigned_fast_equals_fallback(backend, dtype_name):
    X, labels, _, C, Xb, xp = _case(backend, dtype_name)
    Cb, lb = backend.asarray(C), backend.asarray(labels)
    expect = ((X.astype(np.float64) - C.astype(np.float64)[labels]) ** 2).sum(1)
    buffers: dict = {}
    for rows in (X.shape[0], 37):  # a reused block, then a shorter chunk
        for fast in (True, False):
            got = _ops.sq_dist_to_assigned(Xb[:rows, ...], Cb, lb[:rows], xp=xp, fast=fast,
                                           buffers=buffers)
            backend.assert_native(got, Xb.dtype)
            np.testing.assert_allclose(backend.to_numpy(got), expect[:rows], **_tol(dtype_name))
