"""Every kernel set equals the pure-standard reference (and a float64 NumPy truth), on every
backend: the chunk primitives and the whole passes, with the frame (shift, scale) active,
weights, several chunks and a last short chunk."""

from __future__ import annotations

import numpy as np
import pytest
from array_api_compat import array_namespace

from kmeans_xp import _kernels
from kmeans_xp._data import ChunkedData
from kmeans_xp._kernels._numpy import NUMPY_ONEHOT_MAX_K


def _case(backend, dtype_name, n=1500, d=7, k=5, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) + offset).astype(dtype_name)
    labels = rng.integers(0, k, n)
    w = rng.uniform(0.1, 2.0, n).astype(dtype_name)
    C = (rng.normal(size=(k, d)) + offset).astype(dtype_name)
    Xb = backend.asarray(X)
    return X, labels, w, C, Xb, array_namespace(Xb)


def _tol(dtype_name):
    return dict(rtol=1e-4, atol=1e-3) if dtype_name == "float32" else dict(rtol=1e-10, atol=1e-9)


def _sets(backend, dtype_name):
    xp = array_namespace(backend.asarray(np.zeros(1)))
    sets = _kernels.available_sets(xp, backend.device, backend.dtype(dtype_name))
    assert "reference" in sets
    return sets


def _data(backend, dtype_name, kern, X, w=None, k=5, chunk=97):
    Xb = backend.asarray(X)
    xp = array_namespace(Xb)
    wb = None if w is None else backend.asarray(w)
    data = ChunkedData(Xb, xp=xp, dtype=backend.dtype(dtype_name), weights=wb, n_clusters=k,
                       chunk_size=chunk, kernels=kern)
    data.prepare("X")
    return data


def _np(a):
    from kmeans_xp._compat import to_numpy

    return np.asarray(to_numpy(a))


# k on both sides of NumPy's one-hot / bincount switch
@pytest.mark.parametrize("k", [1, 5, NUMPY_ONEHOT_MAX_K + 1])
@pytest.mark.parametrize("weighted", [False, True])
def test_cluster_sums(backend, dtype_name, k, weighted):
    X, labels, w, _, Xb, xp = _case(backend, dtype_name, k=k)
    lb = backend.asarray(labels)
    wb = backend.asarray(w) if weighted else None
    ww = w if weighted else np.ones_like(w)
    expect_sums = np.zeros((k, X.shape[1]))
    np.add.at(expect_sums, labels, X.astype(np.float64) * ww[:, None])
    expect_counts = np.bincount(labels, weights=ww, minlength=k)
    for name, kern in _sets(backend, dtype_name).items():
        sums, counts = kern.cluster_sums(Xb, lb, wb, k)
        backend.assert_native(sums, Xb.dtype)
        backend.assert_native(counts, Xb.dtype)
        np.testing.assert_allclose(_np(sums), expect_sums, **_tol(dtype_name), err_msg=name)
        np.testing.assert_allclose(_np(counts), expect_counts, **_tol(dtype_name), err_msg=name)


# k below and above twice the number of features (NumPy folds ||c||^2 into the product then)
@pytest.mark.parametrize("k", [5, 16])
def test_partial_distances_and_argmin(backend, dtype_name, k):
    X, _, _, C, Xb, xp = _case(backend, dtype_name, k=k)
    Cb = backend.asarray(C)
    m2t = -2.0 * xp.matrix_transpose(Cb)
    c_sq = xp.sum(Cb * Cb, axis=1)
    X64, C64 = X.astype(np.float64), C.astype(np.float64)
    expect = (C64 ** 2).sum(1)[None, :] - 2 * X64 @ C64.T
    for name, kern in _sets(backend, dtype_name).items():
        D = kern.partial_sq_distances(Xb, m2t, c_sq)
        backend.assert_native(D, Xb.dtype)
        np.testing.assert_allclose(_np(D), expect, **_tol(dtype_name), err_msg=name)
        vals, idx = kern.min_argmin(D)
        np.testing.assert_array_equal(_np(idx), expect.argmin(1), err_msg=name)
        np.testing.assert_array_equal(_np(kern.argmin_rows(D)), expect.argmin(1), err_msg=name)
        np.testing.assert_allclose(_np(vals), expect.min(1), **_tol(dtype_name), err_msg=name)
        # a reused work block: same values, including a shorter chunk after a longer one
        buffers: dict = {}
        for rows in (X.shape[0], 37):
            Db = kern.partial_sq_distances(Xb[:rows, ...], m2t, c_sq, buffers)
            backend.assert_native(Db, Xb.dtype)
            np.testing.assert_allclose(_np(Db), expect[:rows], **_tol(dtype_name),
                                       err_msg=name)


def test_sq_dist_to_assigned_chunk(backend, dtype_name):
    X, labels, _, C, Xb, xp = _case(backend, dtype_name)
    Cb, lb = backend.asarray(C), backend.asarray(labels)
    expect = ((X.astype(np.float64) - C.astype(np.float64)[labels]) ** 2).sum(1)
    for name, kern in _sets(backend, dtype_name).items():
        buffers: dict = {}
        for rows in (X.shape[0], 37):  # a reused block, then a shorter chunk
            got = kern.sq_dist_to_assigned_chunk(Xb[:rows, ...], Cb, lb[:rows], buffers)
            backend.assert_native(got, Xb.dtype)
            np.testing.assert_allclose(_np(got), expect[:rows], **_tol(dtype_name),
                                       err_msg=name)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("offset", [0.0, 50.0])
def test_whole_passes_equal_truth(backend, dtype_name, weighted, offset):
    """Every set's passes (Lloyd, assign, labels+inertia, transform, k-means++ steps) on
    chunked data with the frame active (offset data are centred) equal the float64 truth."""
    n, d, k = 1003, 6, 7
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(n, d)) * 3 + offset).astype(dtype_name)
    w = rng.uniform(0.1, 2.0, n).astype(dtype_name) if weighted else None
    ww = np.ones(n) if w is None else w.astype(np.float64)
    C0 = X[rng.choice(n, k, replace=False)]
    tol = _tol(dtype_name)
    for name, kern in _sets(backend, dtype_name).items():
        data = _data(backend, dtype_name, kern, X, w, k)
        assert data.rows < n  # several chunks and a short last one
        if offset:
            assert data.shift is not None  # centring is active
        Cw = data.to_working_coords(backend.asarray(C0))
        Xt = X.astype(np.float64) - (0.0 if data.shift is None else _np(data.shift))
        Cn = _np(Cw).astype(np.float64)
        D = ((Xt[:, None, :] - Cn[None, :, :]) ** 2).sum(-1)
        lab_true = D.argmin(1)
        assert np.sort(D, 1)[:, 1].min() > 0  # no exact ties in this data
        labels, sums, counts, inertia = kern.lloyd_pass(data, Cw, need_inertia=True)
        backend.assert_native(labels)
        np.testing.assert_array_equal(_np(labels), lab_true, err_msg=name)
        exp_sums = np.zeros((k, d))
        np.add.at(exp_sums, lab_true, Xt * ww[:, None])
        np.testing.assert_allclose(_np(sums), exp_sums, **tol, err_msg=name)
        np.testing.assert_allclose(_np(counts), np.bincount(lab_true, ww, k), **tol,
                                   err_msg=name)
        exp_inertia = (D.min(1) * ww).sum()
        np.testing.assert_allclose(float(inertia), exp_inertia, rtol=1e-4 if
                                   dtype_name == "float32" else 1e-10, err_msg=name)
        lab2, mins = kern.assign(data, Cw)
        np.testing.assert_array_equal(_np(lab2), lab_true, err_msg=name)
        np.testing.assert_allclose(_np(mins), D.min(1), rtol=1e-3, atol=1e-3 * d, err_msg=name)
        lab3, inertia3 = kern.labels_inertia(data, Cw)
        np.testing.assert_array_equal(_np(lab3), lab_true, err_msg=name)
        np.testing.assert_allclose(float(inertia3), exp_inertia, rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(float(kern.inertia_for_labels(data, Cw, lab3)), exp_inertia,
                                   rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(_np(kern.sq_dist_to_assigned(data, Cw, lab3)), D.min(1),
                                   rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(_np(kern.sq_distances(data, Cw)), D, rtol=1e-3,
                                   atol=1e-3 * d, err_msg=name)
        # k-means++ steps: potentials of candidates, closest-distance update
        closest = kern.kpp_update(data, None, Cw[:1, ...])
        np.testing.assert_allclose(_np(closest), D[:, 0], rtol=1e-3, atol=1e-3 * d, err_msg=name)
        pots = kern.kpp_potentials(data, closest, Cw[1:4, ...])
        exp_pots = (np.minimum(D[:, :1], D[:, 1:4]) * ww[:, None]).sum(0)
        np.testing.assert_allclose(_np(pots), exp_pots, rtol=1e-4, err_msg=name)
        upd = kern.kpp_update(data, closest, Cw[2:3, ...])
        np.testing.assert_allclose(_np(upd), np.minimum(D[:, 0], D[:, 2]), rtol=1e-3,
                                   atol=1e-3 * d, err_msg=name)


def test_transform_of_a_centre_is_exactly_zero(backend, dtype_name):
    from kmeans_xp import KMeans

    X, *_ = _case(backend, dtype_name, offset=20.0)
    km = KMeans(4, random_state=0).fit(backend.asarray(X))
    D = _np(km.transform(km.cluster_centers_))
    assert np.all(np.diag(D) == 0.0), np.diag(D)
    assert np.all(D + np.eye(4) > 0)


def test_fit_on_every_kernel_set_gives_the_same_clustering(backend, monkeypatch):
    """The whole fit through the reference set equals the fit through the fastest set."""
    from kmeans_xp import KMeans

    X, *_ = _case(backend, "float64", k=4)
    Xb = backend.asarray(X)
    ref = KMeans(4, random_state=0).fit(Xb)
    monkeypatch.setenv("KMEANS_XP_KERNELS", "reference")
    slow = KMeans(4, random_state=0).fit(Xb)
    np.testing.assert_array_equal(_np(slow.labels_), _np(ref.labels_))
    assert slow.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(_np(slow.cluster_centers_), _np(ref.cluster_centers_),
                               rtol=1e-10, atol=1e-10)


def test_select_rejects_an_unknown_preference(monkeypatch):
    monkeypatch.setenv("KMEANS_XP_KERNELS", "fastest")
    with pytest.raises(ValueError, match="KMEANS_XP_KERNELS"):
        _kernels.select(np, "cpu", np.float64)


def test_the_fused_gpu_set_is_among_those_tested_where_it_can_run(backend):
    """Triton's set joins the comparisons above on CUDA, and on torch CPU under Triton's
    interpreter (how CI proves it): this keeps that coverage from vanishing silently."""
    import importlib.util
    import os

    xp = array_namespace(backend.asarray(np.zeros(1)))
    sets = _kernels.available_sets(xp, backend.device, backend.dtype("float32"))
    interpreting = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    has_triton = importlib.util.find_spec("triton") is not None
    gpu = backend.name in ("torch_cuda", "cupy")
    if has_triton and (gpu or (backend.name == "torch" and interpreting)):
        assert "triton" in sets
        assert "triton" not in _kernels.available_sets(xp, backend.device,
                                                       backend.dtype("float64"))
    else:
        assert "triton" not in sets
    if backend.name == "torch":  # never the interpreter for a user's CPU tensors
        assert _kernels.select(xp, backend.device, xp.float32).name != "triton"
