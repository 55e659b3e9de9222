"""Sparse X (scipy.sparse, torch sparse tensors, cupyx where present).

References: scikit-learn's KMeans / MiniBatchKMeans / kmeans_plusplus on the same scipy CSR
data (its own sparse code path), NumPy float64 computations on the densified data, and the
pure-standard reference kernel set on the densified data.  Containers run as the backend
selection allows: scipy ones with ``numpy``, torch ones with ``torch`` (``torch_cuda`` for CUDA),
cupyx with ``cupy``; array_api_strict has no sparse arrays, so no container runs on it.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from kmeans_xp import KMeans, MiniBatchKMeans, k_means, kmeans_plusplus
from kmeans_xp._validation import DataNamespaceError, DataTypeError
from tests._memory import peak_traced

sp = pytest.importorskip("scipy.sparse")
from conftest import SELECTED, get_backend

sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import KMeans as SKKMeans
from sklearn.cluster import MiniBatchKMeans as SKMiniBatchKMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus


# -- data ------------------------------------------------------------------------------------
def make_docs(n=600, d=400, topics=6, per_row=14, empty_rows=4, seed=0, dtype=np.float64,
              fmt="csr"):
    """TF-IDF-like rows: each document draws most words from its topic's part of the
    vocabulary, L2-normalised; a few documents are empty (all-zero rows)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, topics, n)
    width = d // topics
    own = rng.integers(0, width + 20, (n, per_row)) + (topic * width)[:, None]
    noise = rng.integers(0, d, (n, 3))
    cols = np.minimum(np.concatenate([own, noise], axis=1), d - 1)
    rows = np.repeat(np.arange(n), cols.shape[1])
    vals = rng.random(rows.shape[0]) + 0.1
    X = sp.csr_matrix((vals, (rows, cols.ravel())), shape=(n, d))  # sums duplicates
    X = sp.csr_matrix(X.multiply(1.0 / np.sqrt(X.multiply(X).sum(axis=1)).A))
    keep = np.ones(n)
    keep[rng.choice(n, empty_rows, replace=False)] = 0
    X = sp.csr_matrix(sp.diags(keep) @ X)
    X.eliminate_zeros()
    X.sort_indices()
    return X.astype(dtype).asformat(fmt)


def centres_from(X, rows, width=5):
    """Dense initial centres: the mean of ``width`` consecutive rows from each of
    ``rows``.  Not rows of X: orthogonal rows are exactly equidistant (distance^2 2) from
    many points, and exact ties are broken by rounding, differently by every code."""
    dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float64
    return np.stack([np.asarray(X[r:r + width].mean(axis=0)).ravel()
                     for r in rows]).astype(dtype)


# -- containers ------------------------------------------------------------------------------
def _scipy(name):
    def make(X):
        return getattr(sp, name)(X)
    return make


CONTAINERS = {  # id -> (backend that must be selected, constructor from a scipy CSR)
    "csr_matrix": ("numpy", _scipy("csr_matrix")),
    "csr_array": ("numpy", _scipy("csr_array")),
    "csc_matrix": ("numpy", _scipy("csc_matrix")),
    "coo_array": ("numpy", _scipy("coo_array")),
    "torch_csr": ("torch", None),
    "torch_coo": ("torch", None),
    "torch_cuda_csr": ("torch_cuda", None),
    "cupy_csr": ("cupy", None),
}


class Container:
    def __init__(self, name):
        self.name = name
        self.backend_name, self._make = CONTAINERS[name]
        self.backend = get_backend(self.backend_name)  # skips when unavailable

    def __call__(self, X):
        """The scipy CSR ``X`` in this container."""
        if self._make is not None:
            return self._make(X)
        if self.name.startswith("torch"):
            torch = self.backend.module
            X = sp.csr_matrix(X)
            with warnings.catch_warnings():  # torch: "sparse CSR support is in beta"
                warnings.simplefilter("ignore", UserWarning)
                T = torch.sparse_csr_tensor(torch.from_numpy(X.indptr.astype(np.int64)),
                                            torch.from_numpy(X.indices.astype(np.int64)),
                                            torch.from_numpy(X.data), size=X.shape,
                                            check_invariants=True)
            T = T.to(self.backend.device)
            return T.to_sparse_coo() if self.name == "torch_coo" else T
        import cupyx.scipy.sparse as cpsp  # pragma: no cover - needs a GPU

        return cpsp.csr_matrix(sp.csr_matrix(X))  # pragma: no cover

    def dense(self, a):
        """A dense array of this container's namespace, from NumPy."""
        return self.backend.asarray(a)

    def to_numpy(self, a):
        return self.backend.to_numpy(a)


def _selected(names):
    return [n for n in names if CONTAINERS[n][0] in SELECTED]


@pytest.fixture(params=_selected(list(CONTAINERS)))
def container(request):
    return Container(request.param)


@pytest.fixture(params=_selected(["csr_matrix", "torch_csr", "torch_cuda_csr", "cupy_csr"]))
def csr_container(request):
    return Container(request.param)


def _fit_pair(container, X, init, sample_weight=None, **kw):
    """Ours on the container, scikit-learn's on scipy CSR, from the same initial centres."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sw_ours = None if sample_weight is None else container.dense(sample_weight)
        ours = KMeans(init.shape[0], init=container.dense(init), n_init=1, **kw).fit(
            container(X), sample_weight=sw_ours)
        ref = SKKMeans(init.shape[0], init=init, n_init=1, **kw).fit(
            X, sample_weight=sample_weight)
    return ours, ref


def assert_labels_equal_up_to_ties(X, centers, a, b, rtol=1e-9):
    """Labels ``a`` and ``b`` differ only where two centres are equidistant (within
    ``rtol``) from the point, in float64 on the dense data."""
    diff = np.flatnonzero(a != b)
    if diff.size == 0:
        return
    Xd = np.asarray(X[diff].toarray(), dtype=np.float64)
    C = np.asarray(centers, dtype=np.float64)
    da = ((Xd - C[a[diff]]) ** 2).sum(1)
    db = ((Xd - C[b[diff]]) ** 2).sum(1)
    assert np.all(np.abs(da - db) <= rtol * np.maximum(da, db) + 1e-12), (diff, da, db)


# -- fits equal scikit-learn's ---------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_equals_sklearn_float64(container, weighted):
    X = make_docs()
    init = centres_from(X, [3, 50, 120, 300, 410, 555])
    sw = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    ours, ref = _fit_pair(container, X, init, sample_weight=sw)
    container.backend.assert_native(ours.cluster_centers_, container.backend.dtype("float64"))
    container.backend.assert_native(ours.labels_)
    labels = container.to_numpy(ours.labels_)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_, labels, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)
    np.testing.assert_allclose(container.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-7, atol=1e-10)
    assert ours.n_iter_ == ref.n_iter_


def test_fit_equals_sklearn_float32(csr_container):
    """float32: both compute ||x||^2 - 2 x.c + ||c||^2 without centring; on TF-IDF rows
    (norm 1) the labels agree up to float32 near-ties."""
    X = make_docs(dtype=np.float32, seed=3)
    init = centres_from(X, [1, 60, 130, 290, 420, 590])
    ours, ref = _fit_pair(csr_container, X, init)
    assert ours.cluster_centers_.dtype == csr_container.backend.dtype("float32")
    labels = csr_container.to_numpy(ours.labels_)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_, labels, ref.labels_, rtol=2e-5)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
    np.testing.assert_allclose(csr_container.to_numpy(ours.cluster_centers_),
                               ref.cluster_centers_, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_seeded_fit_equals_sklearn(csr_container, init):
    """Same seed, same initial centres (k-means++ greedy or random rows), same fit."""
    X = make_docs(seed=5)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0])
    n_init = 3 if init == "random" else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = KMeans(6, init=init, n_init=n_init, random_state=7).fit(
            csr_container(X), sample_weight=csr_container.dense(sw))
        ref = SKKMeans(6, init=init, n_init=n_init, random_state=7).fit(X, sample_weight=sw)
    labels = csr_container.to_numpy(ours.labels_)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_, labels, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def test_k_means_function_and_k_means_parallel_on_sparse(csr_container):
    X = make_docs(seed=2)
    c, lab, inertia, _ = k_means(csr_container(X), 6, random_state=0, return_n_iter=True)
    csr_container.backend.assert_native(c)
    Xd = X.toarray()
    C = csr_container.to_numpy(c)
    d = ((Xd[:, None, :] - C[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(csr_container.to_numpy(lab), d.argmin(1))
    assert inertia == pytest.approx(d.min(1).sum(), rel=1e-9)
    # k-means|| (dense candidates reduced with the fit's kernel set) lands near k-means++
    par = KMeans(6, init="k-means||", random_state=0).fit(csr_container(X))
    assert par.inertia_ <= 1.1 * inertia


def test_empty_cluster_relocation_equals_sklearn():
    """An initial centre far from every row gets no point: it takes the point farthest
    from its centre (scikit-learn's _relocate_empty_clusters_sparse rule).  (Identical
    initial centres would test ties instead: orthogonal TF-IDF rows are often exactly
    equidistant from a centre, and scikit-learn's argpartition orders ties arbitrarily.)"""
    X = make_docs(seed=4)
    init = centres_from(X, [0, 0, 200, 400])
    init[1] = 3.0
    ours, ref = _fit_pair(Container("csr_matrix"), X, init)
    np.testing.assert_array_equal(ours.labels_, ref.labels_)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-6)


def test_sparse_equals_dense_fit(container):
    """The sklearn test_dense_sparse property: the same clustering from X and X.toarray()."""
    X = make_docs(seed=6)
    init = centres_from(X, [5, 105, 205, 305, 405, 505])
    dense = KMeans(6, init=init, n_init=1).fit(X.toarray())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = KMeans(6, init=container.dense(init), n_init=1).fit(container(X))
    np.testing.assert_array_equal(container.to_numpy(ours.labels_), dense.labels_)
    np.testing.assert_allclose(container.to_numpy(ours.cluster_centers_),
                               dense.cluster_centers_, rtol=1e-9, atol=1e-12)


# -- using a fitted model --------------------------------------------------------------------
def check_apply_on_sparse(container, km, Xnew, sw):
    """predict / transform / score of a fitted ``km`` on sparse ``Xnew`` against float64
    distances to its centres, results native to the container's backend; returns the
    centres, ``Xnew`` dense and the distances (host float64)."""
    C = container.to_numpy(km.cluster_centers_)
    Xd = Xnew.toarray()
    D = ((Xd[:, None, :] - C[None]) ** 2).sum(-1)  # float64 reference
    pred = km.predict(container(Xnew))
    container.backend.assert_native(pred)
    np.testing.assert_array_equal(container.to_numpy(pred), D.argmin(1))
    T = km.transform(container(Xnew))
    container.backend.assert_native(T, container.backend.dtype("float64"))
    np.testing.assert_allclose(container.to_numpy(T), np.sqrt(D), rtol=1e-9, atol=1e-9)
    score = km.score(container(Xnew), sample_weight=container.dense(sw))
    assert score == pytest.approx(-(sw * D.min(1)).sum(), rel=1e-10)
    return C, Xd, D


def test_predict_transform_score_on_sparse(container):
    X = make_docs(seed=8)
    Xnew = make_docs(n=90, seed=9)
    sw = np.random.default_rng(3).uniform(0.5, 2.0, 90)
    km = KMeans(6, random_state=0, n_init=1).fit(container(X))
    C, Xd, D = check_apply_on_sparse(container, km, Xnew, sw)
    # a model fitted on sparse data predicts dense data, and the other way round
    np.testing.assert_array_equal(container.to_numpy(km.predict(container.dense(Xd))),
                                  D.argmin(1))
    dense_model = KMeans(6, init=C, n_init=1, max_iter=1).fit(container.dense(X.toarray()))
    np.testing.assert_array_equal(
        container.to_numpy(dense_model.predict(container(Xnew))),
        container.to_numpy(dense_model.predict(container.dense(Xd))))


def test_fit_transform_of_a_centre_row_is_near_zero():
    X = make_docs(seed=10)
    km = KMeans(6, init=X[[0, 100, 200, 300, 400, 500]].toarray(), n_init=1, max_iter=1)
    km.fit(X)
    centres_as_rows = sp.csr_matrix(km.cluster_centers_)
    D = km.transform(centres_as_rows)
    assert np.all(np.diag(D) <= 1e-7)


# -- k-means++ -------------------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_picks_sklearns_indices(container, weighted):
    X = make_docs(seed=11)
    sw = np.random.default_rng(4).uniform(0.5, 2.0, X.shape[0]) if weighted else None
    for seed in (0, 1, 2):
        centers, idx = kmeans_plusplus(container(X), 8, random_state=seed,
                                       sample_weight=None if sw is None else container.dense(sw))
        ref_centers, ref_idx = sk_kmeans_plusplus(X, 8, random_state=seed, sample_weight=sw)
        np.testing.assert_array_equal(container.to_numpy(idx), ref_idx)
        container.backend.assert_native(centers, container.backend.dtype("float64"))
        np.testing.assert_array_equal(container.to_numpy(centers), ref_centers)


def test_kmeans_plusplus_float32_sparse_matches_sklearn():
    X = make_docs(seed=12, dtype=np.float32)
    for seed in range(3):
        c, idx = kmeans_plusplus(X, 8, random_state=seed)
        np.testing.assert_array_equal(idx, sk_kmeans_plusplus(X, 8, random_state=seed)[1])
        assert c.dtype == np.float32


# -- the kernel set against the reference on the dense data ------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_kernels_equal_reference_kernels(csr_container, weighted):
    from kmeans_xp._base import check_input, make_data
    from kmeans_xp._kernels import ReferenceKernels

    X = make_docs(n=300, d=120, seed=13)
    rng = np.random.default_rng(5)
    C = rng.random((5, 120)) * 0.2
    sw = rng.uniform(0.5, 2.0, 300) if weighted else None
    b = csr_container.backend
    w = None if sw is None else b.asarray(sw)
    data_s = make_data(check_input(csr_container(X), "X", "t"), weights=w, n_clusters=5,
                       chunk_size=37)
    data_s.prepare()
    inp = check_input(b.asarray(X.toarray()), "X", "t")
    data_d = make_data(inp, weights=w, n_clusters=5, chunk_size=41)
    data_d.scale_only()  # no centring: the same frame as the sparse data
    ref = ReferenceKernels(b.module if b.kind != "numpy" else data_d.xp, b.device,
                           data_d.dtype)
    ref.xp = data_d.xp
    sk = data_s.kernels
    assert sk.name == "sparse"
    Cx = b.asarray(C)
    n = b.to_numpy

    la, sa, ca, ia = sk.lloyd_pass(data_s, Cx, need_inertia=True)
    lb, sb, cb, ib = ref.lloyd_pass(data_d, Cx, need_inertia=True)
    np.testing.assert_array_equal(n(la), n(lb))
    np.testing.assert_allclose(n(sa), n(sb), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(n(ca), n(cb), rtol=1e-12)
    assert float(ia) == pytest.approx(float(ib), rel=1e-10)
    for name in ("assign", "labels_inertia", "sq_distances"):
        ra, rb = getattr(sk, name)(data_s, Cx), getattr(ref, name)(data_d, Cx)
        ra, rb = (ra, rb) if isinstance(ra, tuple) else ((ra,), (rb,))
        for u, v in zip(ra, rb):
            np.testing.assert_allclose(n(u), n(v), rtol=1e-9, atol=1e-12)
    for name in ("sq_dist_to_assigned", "inertia_for_labels"):
        u, v = getattr(sk, name)(data_s, Cx, la), getattr(ref, name)(data_d, Cx, lb)
        np.testing.assert_allclose(n(u), n(v), rtol=1e-9, atol=1e-12)
    closest = ref.kpp_update(data_d, None, Cx[:1])
    np.testing.assert_allclose(n(sk.kpp_update(data_s, None, Cx[:1])), n(closest),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(n(sk.kpp_update(data_s, closest, Cx[1:2])),
                               n(ref.kpp_update(data_d, closest, Cx[1:2])), rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(n(sk.kpp_potentials(data_s, closest, Cx[1:4])),
                               n(ref.kpp_potentials(data_d, closest, Cx[1:4])), rtol=1e-9)
    # on dense data the sparse set hands over to the dense set
    np.testing.assert_array_equal(n(sk.lloyd_pass(data_d, Cx)[0]), n(lb))


def test_subset_is_the_sparse_data_of_those_rows(csr_container):
    """``SparseData.subset`` (mini-batches): the same passes as on X[rows] itself."""
    from kmeans_xp._base import check_input, make_data

    X = make_docs(n=300, d=120, seed=25)
    b = csr_container.backend
    rows = np.array([5, 3, 299, 17, 17, 150, 42])
    w = np.arange(1.0, 8.0)
    data = make_data(check_input(csr_container(X), "X", "t"), weights=None, n_clusters=4,
                     chunk_size=50)
    data.prepare()
    sub = data.subset(b.asarray(rows), weights=b.asarray(w))
    ref = make_data(check_input(csr_container(X[rows]), "X", "t"), weights=b.asarray(w),
                    n_clusters=4, chunk_size=50)
    ref.prepare()
    C = b.asarray(centres_from(X, [0, 50, 100, 200]))
    for u, v in zip(sub.kernels.lloyd_pass(sub, C, need_inertia=True)[:3] +
                    sub.kernels.labels_inertia(sub, C)[1:],
                    ref.kernels.lloyd_pass(ref, C, need_inertia=True)[:3] +
                    ref.kernels.labels_inertia(ref, C)[1:]):
        np.testing.assert_allclose(b.to_numpy(u), b.to_numpy(v), rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(b.to_numpy(sub.take_rows(b.asarray(np.array([0, 3])))),
                                  X[rows[[0, 3]]].toarray())


def test_torch_sorted_scatter_add_equals_index_add():
    """The deterministic scatter of torch CUDA (sort, run totals), run on the CPU."""
    if "torch" not in SELECTED:
        pytest.skip("torch not selected")
    torch = get_backend("torch").module
    from kmeans_xp._kernels._sparse_ops import _TorchOps

    rng = np.random.default_rng(26)
    index = torch.from_numpy(rng.integers(0, 50, 1000))
    values = torch.from_numpy(rng.random(1000))
    target = torch.from_numpy(rng.random(60))
    want = target.clone().index_add_(0, index, values)
    got = _TorchOps.sorted_scatter_add(target.clone(), index, values)
    torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
    empty = torch.zeros(0, dtype=torch.int64)
    assert torch.equal(_TorchOps.sorted_scatter_add(target.clone(), empty,
                                                    values[:0]), target)


def test_tolerance_is_sklearns_mean_variance():
    """``tol`` scales with the mean per-feature variance of X, as for dense X."""
    from kmeans_xp._base import check_input, make_data

    X = make_docs(seed=14)
    data = make_data(check_input(X, "X", "t"), weights=None, n_clusters=6, chunk_size=None)
    data.prepare()
    assert data.shift is None
    assert data.mean_variance == pytest.approx(np.var(X.toarray(), axis=0).mean(), rel=1e-12)


def test_chunking_does_not_change_the_fit():
    X = make_docs(seed=15)
    init = centres_from(X, [0, 100, 200, 300, 400, 500])
    a = KMeans(6, init=init, n_init=1).fit(X)
    b = KMeans(6, init=init, n_init=1, chunk_size=7).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-12)


def test_large_values_are_scaled_exactly():
    """Values near 1e30 (squares near 1e60) are scaled by a power of two, which keeps
    the clustering (the same labels as on X / 2**100)."""
    X = make_docs(seed=16)
    big = X * 2.0 ** 100
    init = centres_from(X, [0, 100, 200, 300, 400, 500])
    a = KMeans(6, init=init, n_init=1).fit(X)
    b = KMeans(6, init=init * 2.0 ** 100, n_init=1).fit(big)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(b.cluster_centers_ / 2.0 ** 100, a.cluster_centers_, rtol=1e-12)
    assert b.inertia_ == pytest.approx(a.inertia_ * 2.0 ** 200, rel=1e-9)


# -- MiniBatchKMeans ---------------------------------------------------------------------------
def make_counts(n, d, seed, dtype=np.float64):
    """make_docs rows scaled by random factors: rows of different topics are orthogonal,
    so unit rows as centres would be exactly equidistant from them (ties that each code
    breaks by its own rounding of ||c||^2); distinct norms leave no exact ties."""
    X = make_docs(n=n, d=d, seed=seed)
    scale = np.random.default_rng(seed + 1000).uniform(0.5, 2.0, n)
    X = sp.csr_matrix(sp.diags(scale) @ X)
    X.sort_indices()
    return X.astype(dtype)


MINIBATCH_CASES = [{}, {"tol": 1e-3}, {"init": "random"},
                   {"batch_size": 100, "max_iter": 2, "max_no_improvement": None},
                   {"reassignment_ratio": 0.2, "batch_size": 64}]


def _snapshot(X):
    """Copies of what a sparse input holds, to prove it is never modified."""
    if sp.issparse(X):
        X = X.tocsr() if X.format == "csr" else X
        return [np.array(a, copy=True) for a in
                ((X.data, X.indices, X.indptr) if X.format in ("csr", "csc")
                 else (X.data, X.row, X.col) if X.format == "coo" else (X.toarray(),))]
    if X.layout == X.to_sparse_csr().layout:
        return [X.crow_indices().clone(), X.col_indices().clone(), X.values().clone()]
    return [X._indices().clone(), X._values().clone()]


def _assert_unchanged(X, snapshot):
    for got, want in zip(_snapshot(X), snapshot):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.parametrize("kw", MINIBATCH_CASES)
def test_minibatch_fit_equals_sklearn_float64(container, kw):
    """The same host draws on sparse data: same steps, centres, inertia and labels as
    scikit-learn's MiniBatchKMeans (its sparse code path), on every container."""
    X = make_counts(2000, 300, 30)
    Xc = container(X)
    before = _snapshot(Xc)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MiniBatchKMeans(6, random_state=0, **kw).fit(Xc)
    ref = SKMiniBatchKMeans(6, random_state=0, **kw).fit(X)
    b = container.backend
    b.assert_native(ours.cluster_centers_, b.dtype("float64"))
    b.assert_native(ours.labels_)
    assert ours.n_steps_ == ref.n_steps_ and ours.n_iter_ == ref.n_iter_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_allclose(container.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-9, atol=1e-12)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_, container.to_numpy(ours.labels_),
                                   ref.labels_)
    _assert_unchanged(Xc, before)


def test_minibatch_weighted_and_compute_labels_false_equal_sklearn(csr_container):
    """Weighted draws (batches drawn with probability proportional to the weights), the
    weighted validation inertia of n_init=3 random inits, and the EWA inertia."""
    X = make_counts(2000, 300, 31)
    sw = np.random.default_rng(6).uniform(0.2, 3.0, X.shape[0])
    Xc = csr_container(X)
    sw_c = csr_container.dense(sw)
    kw = {"init": "random", "n_init": 3, "compute_labels": False, "random_state": 3}
    ours = MiniBatchKMeans(6, **kw).fit(Xc, sample_weight=sw_c)
    ref = SKMiniBatchKMeans(6, **kw).fit(X, sample_weight=sw)
    assert not hasattr(ours, "labels_")
    assert ours.n_steps_ == ref.n_steps_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    np.testing.assert_allclose(csr_container.to_numpy(ours.cluster_centers_),
                               ref.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert ours.score(Xc, sample_weight=sw_c) == pytest.approx(
        ref.score(X, sample_weight=sw), rel=1e-9)


def test_minibatch_float32_equals_sklearn(csr_container):
    X = make_counts(2000, 300, 1, dtype=np.float32)
    ours = MiniBatchKMeans(6, random_state=1).fit(csr_container(X))
    ref = SKMiniBatchKMeans(6, random_state=1).fit(X)
    csr_container.backend.assert_native(ours.cluster_centers_,
                                        csr_container.backend.dtype("float32"))
    assert ours.n_steps_ == ref.n_steps_
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
    np.testing.assert_allclose(csr_container.to_numpy(ours.cluster_centers_),
                               ref.cluster_centers_, rtol=1e-4, atol=1e-5)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_,
                                   csr_container.to_numpy(ours.labels_), ref.labels_,
                                   rtol=2e-5)


@pytest.mark.parametrize("init", ["array", "callable", "k-means||"])
def test_minibatch_other_inits_on_sparse(csr_container, init):
    X = make_counts(1500, 300, 32)
    C0 = centres_from(X, [3, 250, 500, 750, 1000, 1250])
    if init == "array":
        ours = MiniBatchKMeans(6, init=csr_container.dense(C0), random_state=0).fit(
            csr_container(X))
        ref = SKMiniBatchKMeans(6, init=C0, random_state=0).fit(X)
        assert ours.n_steps_ == ref.n_steps_
        np.testing.assert_allclose(csr_container.to_numpy(ours.cluster_centers_),
                                   ref.cluster_centers_, rtol=1e-9, atol=1e-12)
        return
    seen = []

    def from_sample(X, k, random_state):  # receives sparse rows (the init_size sample)
        seen.append(X.shape)
        return csr_container.dense(C0)
    km = MiniBatchKMeans(6, init=from_sample if init == "callable" else init,
                         random_state=0).fit(csr_container(X))
    if init == "callable":
        assert [tuple(shape) for shape in seen] == [(1500, 300)] * 3  # n_init='auto': 3
    Xd = X.toarray()
    C = csr_container.to_numpy(km.cluster_centers_)
    D = ((Xd[:, None, :] - C[None]) ** 2).sum(-1)
    assert km.inertia_ == pytest.approx(D.min(1).sum(), rel=1e-9)
    # a fair clustering of the six topics: within 10 % of KMeans from the same seed
    assert km.inertia_ <= 1.1 * KMeans(6, random_state=0).fit(X).inertia_


def test_minibatch_predict_transform_score_on_sparse(container):
    X = make_counts(1500, 300, 33)
    Xnew = make_counts(90, 300, 34)
    sw = np.random.default_rng(7).uniform(0.5, 2.0, 90)
    km = MiniBatchKMeans(6, random_state=0).fit(container(X))
    _, Xd, D = check_apply_on_sparse(container, km, Xnew, sw)
    np.testing.assert_array_equal(container.to_numpy(km.predict(container.dense(Xd))),
                                  D.argmin(1))


def test_minibatch_partial_fit_on_a_sparse_stream_equals_sklearn(csr_container):
    """Chunks of a sparse stream, weighted: the same centres, labels and inertia per chunk
    as scikit-learn's partial_fit on the same chunks; the inputs are left as they were."""
    X = make_counts(2400, 300, 35)
    sw = np.random.default_rng(8).uniform(0.5, 2.0, X.shape[0])
    ours, ref = MiniBatchKMeans(6, random_state=0), SKMiniBatchKMeans(6, random_state=0)
    for s in range(0, 2400, 400):
        chunk = csr_container(X[s:s + 400])
        before = _snapshot(chunk)
        ours.partial_fit(chunk, sample_weight=csr_container.dense(sw[s:s + 400]))
        ref.partial_fit(X[s:s + 400], sample_weight=sw[s:s + 400])
        _assert_unchanged(chunk, before)
        np.testing.assert_allclose(csr_container.to_numpy(ours.cluster_centers_),
                                   ref.cluster_centers_, rtol=1e-9, atol=1e-12)
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
        assert_labels_equal_up_to_ties(X[s:s + 400], ref.cluster_centers_,
                                       csr_container.to_numpy(ours.labels_), ref.labels_)
    assert ours.n_steps_ == ref.n_steps_ == 6


def test_minibatch_partial_fit_frame_is_fixed_on_the_first_sparse_chunk():
    """Values near 2**50 are scaled by a power of two chosen on the first chunk and kept:
    a later chunk with other magnitudes is clustered in the same frame (same fit as on the
    data divided by 2**50, times 2**50)."""
    X = make_counts(1200, 200, 36)
    big = X * 2.0 ** 50
    a, b = MiniBatchKMeans(4, random_state=0), MiniBatchKMeans(4, random_state=0)
    a.partial_fit(big[:600])
    frame = a._frame
    assert frame.scale == 2.0 ** round(np.log2(abs(big).max()))
    assert frame.shift is None  # never centred
    a.partial_fit(big[600:] * 4.0)
    assert a._frame is frame
    b.partial_fit(X[:600]).partial_fit(X[600:] * 4.0)
    np.testing.assert_allclose(a.cluster_centers_ / 2.0 ** 50, b.cluster_centers_,
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_minibatch_partial_fit_mixes_dense_and_sparse_chunks():
    """A dense first chunk far from the origin fixes a centred frame; sparse chunks after
    it (never centred) step in uncentred coordinates: the same centres as scikit-learn's
    partial_fit on the same chunks."""
    rng = np.random.default_rng(9)
    X = make_counts(1800, 60, 37)
    first = X[:600].toarray() + 3.0 + rng.normal(scale=0.01, size=(600, 60))
    ours, ref = MiniBatchKMeans(5, random_state=0), SKMiniBatchKMeans(5, random_state=0)
    ours.partial_fit(first)
    ref.partial_fit(first)
    assert ours._frame.shift is not None  # centred on the dense chunk
    for chunk in (X[600:1200], X[1200:].toarray(), X[600:900]):
        ours.partial_fit(chunk)
        ref.partial_fit(chunk)
        np.testing.assert_allclose(ours.cluster_centers_, ref.cluster_centers_, rtol=1e-9,
                                   atol=1e-9)
        assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)


def test_minibatch_pickles_and_continues():
    import pickle

    X = make_counts(800, 100, 38)
    km = MiniBatchKMeans(4, random_state=0).partial_fit(X[:400])
    copy = pickle.loads(pickle.dumps(km))
    km.partial_fit(X[400:])
    copy.partial_fit(X[400:])
    np.testing.assert_array_equal(copy.cluster_centers_, km.cluster_centers_)


BAD_SPARSE = [
    (lambda X: X.astype(np.complex128), None, DataTypeError, "complex"),
    (lambda X: sp.coo_array(np.ones(5)), None, ValueError, "Expected 2D"),
    (lambda X: sp.csr_matrix((0, 5)), None, ValueError, "0 sample"),
    (lambda X: sp.csr_matrix((5, 0)), None, ValueError, "0 feature"),
    (lambda X: _with_value(X, np.nan), None, ValueError, "Input X contains NaN"),
    (lambda X: _with_value(X, np.inf), None, ValueError, "Input X contains infinity"),
    (lambda X: X, lambda n: sp.csr_matrix(np.ones((1, n))), TypeError,
     "sparse matrix was passed as sample_weight"),
    (lambda X: X, lambda n: np.ones(n - 1), ValueError, "sample_weight"),
]


@pytest.mark.parametrize("make,weights,exc,match", BAD_SPARSE)
def test_minibatch_bad_sparse_input_as_kmeans(make, weights, exc, match):
    """The same exception and message as KMeans for the same bad sparse input, in fit,
    in a first partial_fit and in a later one."""
    X = make_counts(40, 20, 22)
    bad = make(X)
    sw = None if weights is None else weights(40)
    with pytest.raises(exc, match=match) as theirs:
        KMeans(2, n_init=1).fit(bad, sample_weight=sw)
    with pytest.raises(exc, match=match) as ours:
        MiniBatchKMeans(2).fit(bad, sample_weight=sw)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value).replace("MiniBatchKMeans", "KMeans") == str(theirs.value)
    with pytest.raises(exc, match=match):
        MiniBatchKMeans(2).partial_fit(bad, sample_weight=sw)
    started = MiniBatchKMeans(2, random_state=0).partial_fit(X)
    if bad.ndim == 2 and bad.shape[1] == 20:  # (other shapes: the features check first)
        with pytest.raises(exc, match=match):
            started.partial_fit(bad, sample_weight=sw)


def test_minibatch_few_samples_and_features_on_sparse():
    X = make_counts(40, 20, 22)
    with pytest.raises(ValueError, match="n_samples=40 should be >= n_clusters=41"):
        MiniBatchKMeans(41).fit(X)
    km = MiniBatchKMeans(2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 21 features"):
        km.partial_fit(make_counts(40, 21, 22))
    with pytest.raises(ValueError, match="X has 21 features"):
        km.predict(make_counts(40, 21, 22))


def test_minibatch_peak_memory_is_bounded_on_wide_sparse_data():
    """20k x 2**17 data (a dense batch of 1024 rows would be 1 GiB): the peak is a few
    dense (k, d) centre arrays, a batch of stored values and O(n) vectors."""
    d, k, per_row = 2 ** 17, 8, 12
    X = _wide(20_000, d, per_row)
    init = X[:k].toarray()
    peak = peak_traced(lambda: MiniBatchKMeans(k, init=init, max_iter=1, batch_size=1024,
                                               random_state=0).fit(X))
    centre_bytes = 8 * k * d
    assert peak <= 12 * centre_bytes + 64 * 20_000, (peak, centre_bytes)


# -- validation --------------------------------------------------------------------------
def _with_value(X, value):
    Y = X.copy()
    Y.data[3] = value
    return Y


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (np.inf, "infinity"),
                                        (-np.inf, "infinity")])
def test_non_finite_stored_values_raise(container, value, word):
    X = _with_value(make_docs(n=50, d=30, seed=17), value)
    with pytest.raises(ValueError, match=f"Input X contains {word}"):
        KMeans(3, n_init=1).fit(container(X))
    with pytest.raises(ValueError, match=f"Input X contains {word}"):
        kmeans_plusplus(container(X), 3)
    km = KMeans(3, n_init=1, random_state=0).fit(container(make_docs(n=50, d=30, seed=17)))
    with pytest.raises(ValueError, match=f"Input X contains {word}"):
        km.predict(container(X))


def test_duplicate_and_unsorted_indices_are_summed_without_touching_the_input():
    X = make_docs(n=200, d=80, seed=18)
    coo = X.tocoo()
    # every stored value split in two halves, listed in reverse order within rows
    rows = np.concatenate([coo.row, coo.row])[::-1]
    cols = np.concatenate([coo.col, coo.col])[::-1]
    vals = np.concatenate([coo.data * 0.25, coo.data * 0.75])[::-1]
    order = np.argsort(rows, kind="stable")
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=200))])
    D = sp.csr_matrix((vals[order], cols[order], indptr), shape=X.shape)
    assert not D.has_canonical_format
    before = (D.data.copy(), D.indices.copy(), D.indptr.copy())
    init = centres_from(X, [0, 40, 80, 120])
    a = KMeans(4, init=init, n_init=1).fit(D)
    b = SKKMeans(4, init=init, n_init=1).fit(X)  # scikit-learn on the summed matrix
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-9)
    for got, want in zip((D.data, D.indices, D.indptr), before):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(kmeans_plusplus(D, 4, random_state=0)[1],
                                  sk_kmeans_plusplus(X, 4, random_state=0)[1])


def test_torch_duplicates_are_summed():
    torch = get_backend("torch").module if "torch" in SELECTED else pytest.skip("torch")
    X = make_docs(n=120, d=50, seed=19)
    coo = X.tocoo()
    idx = torch.from_numpy(np.stack([np.r_[coo.row, coo.row], np.r_[coo.col, coo.col]]))
    T = torch.sparse_coo_tensor(idx, torch.from_numpy(np.r_[coo.data, coo.data] / 2),
                                size=X.shape, check_invariants=True)  # uncoalesced
    init = centres_from(X, [0, 60, 100])
    a = KMeans(3, init=torch.from_numpy(init), n_init=1).fit(T)
    b = KMeans(3, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(a.labels_.numpy(), b.labels_)
    # a CSR tensor with a duplicate column in a row
    crow = torch.tensor([0, 3, 4])
    col = torch.tensor([1, 1, 0, 2])
    vals = torch.tensor([1.0, 2.0, 5.0, 4.0], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Tc = torch.sparse_csr_tensor(crow, col, vals, size=(2, 3), check_invariants=False)
    c, _ = kmeans_plusplus(Tc, 2, random_state=0)
    np.testing.assert_array_equal(np.sort(c.numpy(), axis=0),
                                  np.sort(np.array([[5.0, 3.0, 0.0], [0.0, 0.0, 4.0]]), axis=0))


def test_int64_indices_give_the_int32_result():
    X = make_docs(seed=20)
    X64 = X.copy()
    X64.indices = X64.indices.astype(np.int64)
    X64.indptr = X64.indptr.astype(np.int64)
    init = centres_from(X, [0, 100, 200, 300, 400, 500])
    a = KMeans(6, init=init, n_init=1).fit(X64)
    b = KMeans(6, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_


def test_integer_and_bool_values_become_float64():
    X = (make_docs(seed=21) * 10).astype(np.int64)
    init = centres_from(X, [0, 100, 200, 300])
    a = KMeans(4, init=init, n_init=1).fit(X)
    b = KMeans(4, init=init.astype(np.float64), n_init=1).fit(X.astype(np.float64))
    assert a.cluster_centers_.dtype == np.float64
    np.testing.assert_array_equal(a.labels_, b.labels_)
    Xb = X.astype(bool)
    assert KMeans(4, n_init=1, random_state=0).fit(Xb).cluster_centers_.dtype == np.float64


def test_all_zero_and_empty_rows():
    X = sp.csr_matrix((30, 10))
    km = KMeans(2, n_init=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km.fit(X)
    assert km.inertia_ == 0.0
    assert np.all(km.cluster_centers_ == 0)


def test_bad_sparse_input():
    X = make_docs(n=40, d=20, seed=22)
    with pytest.raises(TypeError):
        KMeans(2, n_init=1).fit(X.astype(np.complex128))
    with pytest.raises(DataTypeError, match="complex"):
        KMeans(2, n_init=1).fit(X.astype(np.complex128))
    with pytest.raises(ValueError, match="Expected 2D"):
        KMeans(2, n_init=1).fit(sp.coo_array(np.ones(5)))
    with pytest.raises(ValueError, match="0 sample"):
        KMeans(2, n_init=1).fit(sp.csr_matrix((0, 5)))
    with pytest.raises(ValueError, match="0 feature"):
        KMeans(2, n_init=1).fit(sp.csr_matrix((5, 0)))
    with pytest.raises(ValueError, match="n_samples=40 should be >= n_clusters=41"):
        KMeans(41, n_init=1).fit(X)
    with pytest.raises(TypeError, match="sparse matrix was passed as sample_weight"):
        KMeans(2, n_init=1).fit(X, sample_weight=sp.csr_matrix(np.ones((1, 40))))
    km = KMeans(2, n_init=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="X has 21 features"):
        km.predict(make_docs(n=40, d=21, seed=22))
    # sparse initial centres are made dense, as scikit-learn does for a callable's
    init = X[[0, 30]]
    a = KMeans(2, init=lambda X, k, random_state: init, n_init=1).fit(X)
    b = KMeans(2, init=init.toarray(), n_init=1).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)


def test_predict_sparse_of_another_library_is_refused():
    if "torch" not in SELECTED:
        pytest.skip("torch not selected")
    X = make_docs(n=60, d=20, seed=23)
    km = KMeans(2, n_init=1, random_state=0).fit(X)
    with pytest.raises(DataNamespaceError, match="torch"):  # the data's fault, not a parameter
        km.predict(Container("torch_csr")(X))


# -- metrics ----------------------------------------------------------------------------------
SIL_METRICS = ["euclidean", "sqeuclidean", "cosine", "manhattan"]


def _sk_silhouette(func, X, y, metric, **kw):
    """scikit-learn's value; its 'sqeuclidean' (a scipy metric) refuses sparse X, so that
    one is computed on the dense copy (kmeans_xp takes it sparse: a superset)."""
    from sklearn import metrics as skm

    return getattr(skm, func)(X.toarray() if metric == "sqeuclidean" else X, y,
                              metric=metric, **kw)


@pytest.mark.parametrize("metric", SIL_METRICS)
def test_silhouette_on_sparse_equals_sklearn(container, metric):
    from kmeans_xp import metrics

    X = make_docs(n=500, d=200, seed=40)
    y = np.random.default_rng(10).integers(0, 5, 500)
    Xc = container(X)
    before = _snapshot(Xc)
    ref = _sk_silhouette("silhouette_score", X, y, metric)
    got = metrics.silhouette_score(Xc, container.dense(y), metric=metric)
    assert type(got) is float
    assert got == pytest.approx(ref, rel=1e-10, abs=1e-14)
    samples = metrics.silhouette_samples(Xc, container.dense(y), metric=metric)
    container.backend.assert_native(samples, container.backend.dtype("float64"))
    np.testing.assert_allclose(container.to_numpy(samples),
                               _sk_silhouette("silhouette_samples", X, y, metric), atol=1e-12)
    _assert_unchanged(Xc, before)


@pytest.mark.parametrize("metric", SIL_METRICS)
def test_silhouette_on_sparse_blocks_of_odd_sizes_and_samples(csr_container, metric):
    """Blocks that do not divide n (a diagonal split across blocks), a sample of rows
    drawn as scikit-learn draws it, string labels."""
    from kmeans_xp import metrics

    X = make_docs(n=300, d=120, seed=41)
    y = np.random.default_rng(11).integers(0, 4, 300)
    ref = _sk_silhouette("silhouette_score", X, y, metric)
    for chunk in (37, 299):
        assert metrics.silhouette_score(csr_container(X), y, metric=metric,
                                        chunk_size=chunk) == pytest.approx(ref, rel=1e-10)
    for seed in (0, 7):
        want = _sk_silhouette("silhouette_score", X, y, metric, sample_size=80,
                              random_state=seed)
        assert metrics.silhouette_score(csr_container(X), y, metric=metric, sample_size=80,
                                        random_state=seed) == pytest.approx(want, rel=1e-10)
    names = np.array(["a", "b", "c", "d"])[y]
    assert metrics.silhouette_score(csr_container(X), names, metric=metric) == \
        pytest.approx(ref, rel=1e-10)


def test_silhouette_on_sparse_float32_and_integers(csr_container):
    """float32: distances in float64 (as scikit-learn's Euclidean distances of float32
    data), samples returned in float32; integer data: float64."""
    from kmeans_xp import metrics

    X = make_docs(n=400, d=150, seed=42, dtype=np.float32)
    y = np.arange(400) % 3
    samples = metrics.silhouette_samples(csr_container(X), y)
    csr_container.backend.assert_native(samples, csr_container.backend.dtype("float32"))
    ref = _sk_silhouette("silhouette_samples", X, y, "euclidean")
    np.testing.assert_allclose(csr_container.to_numpy(samples), ref, atol=1e-6)
    Xi = (X * 10).astype(np.int64)
    assert metrics.silhouette_score(Xi, y) == pytest.approx(
        _sk_silhouette("silhouette_score", Xi.astype(np.float64), y, "euclidean"), rel=1e-10)


def test_metrics_on_sparse_errors():
    """Bad sparse X raises as the estimators do; Calinski-Harabasz, Davies-Bouldin (which
    scikit-learn refuses on sparse X too) and inertia refuse sparse X with a TypeError
    that says how to make it dense."""
    from sklearn import metrics as skm

    from kmeans_xp import metrics

    X = make_docs(n=60, d=20, seed=24)
    y = np.arange(60) % 2
    for func in ("calinski_harabasz_score", "davies_bouldin_score"):
        with pytest.raises(TypeError):
            getattr(skm, func)(X, y)
        with pytest.raises(TypeError, match="sparse matrix was passed as X.*toarray"):
            getattr(metrics, func)(X, y)
    with pytest.raises(TypeError, match="sparse matrix was passed as X"):
        metrics.inertia(X, y)
    f = metrics.silhouette_score
    with pytest.raises(ValueError, match="Input X contains NaN"):
        f(_with_value(X, np.nan), y)
    with pytest.raises(ValueError, match="Number of labels is 1"):
        f(X, np.zeros(60, dtype=np.int64))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[60, 59\]"):
        f(X, y[:59])
    with pytest.raises(DataTypeError, match="complex"):
        f(X.astype(np.complex128), y)
    with pytest.raises(ValueError, match="'metric' parameter of silhouette_samples"):
        metrics.silhouette_samples(X, y, metric="chebyshev")


@pytest.mark.parametrize("metric,n,limit", [("euclidean", 3000, 20e6),
                                            ("cosine", 3000, 20e6),
                                            ("manhattan", 600, 80e6)])
def test_silhouette_on_wide_sparse_data_is_chunked(metric, n, limit):
    """n x 2**17 data (dense: 3 GB for n = 3000): the peak is a few blocks, never X dense
    nor n x n; the value is scikit-learn's."""
    from kmeans_xp import metrics

    X = _wide(n, 2 ** 17, 12)
    y = np.arange(n) % 4
    out = []
    peak = peak_traced(lambda: out.append(metrics.silhouette_score(X, y, metric=metric,
                                                                   chunk_size=500)))
    assert peak < limit, peak
    assert out[0] == pytest.approx(_sk_silhouette("silhouette_score", X, y, metric),
                                   rel=1e-9, abs=1e-15)


def test_import_does_not_import_scipy():
    code = ("import sys, kmeans_xp, kmeans_xp._sparse, kmeans_xp._kernels._sparse; "
            "bad = [m for m in ('scipy', 'torch', 'cupy') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- memory ----------------------------------------------------------------------------------
def _wide(n, d, per_row, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix((rng.random(n * per_row), rng.integers(0, d, n * per_row),
                       np.arange(n + 1) * per_row), shape=(n, d))
    X.sum_duplicates()
    return X


def test_peak_memory_is_bounded_by_chunks_and_centres(monkeypatch):
    """20k x 2**17 data (a dense copy would be 21 GB): the peak grows with n by O(n)
    vectors only, and is a few dense (k, d) centre arrays plus a few chunks."""
    from kmeans_xp._kernels._sparse_ops import _ScipyOps

    # both sizes multiply by the transposed centres (at n = 5000, X stores fewer values
    # than d: the products by centre would make no (d, k) copy, and the difference of the
    # peaks would be that copy, not a growth with n)
    monkeypatch.setattr(_ScipyOps, "matvec_max_nnz_per_feature", 0.0)
    d, k, chunk, per_row = 2 ** 17, 8, 1000, 12
    peaks = {}
    for n in (5_000, 20_000):
        X = _wide(n, d, per_row)
        init = X[:k].toarray()
        peaks[n] = peak_traced(lambda X=X, init=init: KMeans(
            k, init=init, max_iter=3, chunk_size=chunk).fit(X))
    per_sample = (peaks[20_000] - peaks[5_000]) / 15_000
    assert per_sample <= 64, per_sample  # labels, norms: O(n); never n x d, nor n x k
    centre_bytes = 8 * k * d
    chunk_bytes = 8 * chunk * (k + 4 * per_row)
    assert peaks[5_000] <= 64 * 5_000 + 8 * centre_bytes + 12 * chunk_bytes, (
        peaks, centre_bytes, chunk_bytes)


def test_lloyd_peak_is_three_centre_arrays_on_wide_data():
    """KMeans on wide sparse data (d = 2**18, k = 16: 32 MiB of centres): the peak holds
    the transposed centres, the sums and the new centres, and chunk-sized arrays; no
    (k, d) temporary for the new centres' selection nor for the centre shift (scikit-learn's
    sparse Lloyd holds the centres, the new centres and one (k, d) sum per thread)."""
    d, k = 2 ** 18, 16
    X = _wide(20_000, d, 12)
    init = X[:k].toarray()  # (not traced: made before)
    peak = peak_traced(lambda: KMeans(k, init=init, n_init=1, max_iter=3, tol=0).fit(X))
    centre_bytes = 8 * k * d
    assert peak <= 3.75 * centre_bytes, (peak / centre_bytes)


def test_kmeans_plusplus_peak_is_one_centre_array_on_wide_data():
    """kmeans_plusplus on wide sparse data (d = 2**18, k = 16: 32 MiB of centres): the
    result and chunk-sized arrays; the chosen centres are not kept twice (step by step and
    concatenated, then taken again in X's values)."""
    d, k = 2 ** 18, 16
    X = _wide(20_000, d, 12)
    peak = peak_traced(lambda: kmeans_plusplus(X, k, random_state=0))
    assert peak <= 1.6 * 8 * k * d, peak / (8 * k * d)
