"""Mini-batch steps on sparse X: the sparse kernel set's in-place step.

References: the standard step (``ReferenceKernels.minibatch_assign`` + ``minibatch_move``:
one Lloyd pass for the centre sums, then the functional update ``(c W + S) / W'``) on the
same batch, on every sparse container the backend selection gives; scikit-learn's
MiniBatchKMeans (its sparse code path) on the same seeded data for whole fits, in the cases
the update branches on (reassignment, empty clusters, sample weights, ``tol``).  The step
writes into centres the fit owns: the tests also prove that no input and no centres handed
to the user are ever written into, and that a step allocates no (k, d) array.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kmeans_xp import MiniBatchKMeans

sp = pytest.importorskip("scipy.sparse")
sklearn = pytest.importorskip("sklearn")
from sklearn.cluster import MiniBatchKMeans as SKMiniBatchKMeans
from test_sparse import (
    Container,
    _assert_unchanged,
    _selected,
    _snapshot,
    _wide,
    assert_labels_equal_up_to_ties,
    centres_from,
    make_counts,
)

from kmeans_xp._kernels._reference import Reassignment, ReferenceKernels
from kmeans_xp._kernels._sparse import SparseKernels
from kmeans_xp._kernels._sparse_ops import SparseOps
from tests._memory import peak_traced


@pytest.fixture(params=_selected(["csr_matrix", "torch_csr", "torch_cuda_csr", "cupy_csr"]))
def csr_container(request):
    return Container(request.param)


@pytest.fixture(params=["by_centre", "transposed"])
def products(request, monkeypatch):
    """Both ways of the batch's products with the centres (``SparseOps.products``), on
    every library: one matrix-vector product per centre, or the transposed copy."""
    from kmeans_xp._kernels import _sparse_ops

    limit = np.inf if request.param == "by_centre" else 0.0
    for cls in (_sparse_ops._ScipyOps, _sparse_ops._TorchOps, _sparse_ops._CupyOps):
        monkeypatch.setattr(cls, "matvec_max_nnz_per_feature", limit)
    if request.param == "by_centre":  # (CUDA tensors would still transpose)
        monkeypatch.setattr(_sparse_ops._TorchOps, "matvec_limit",
                            lambda self, C: np.inf)
    return request.param


def _sparse_data(container, X, k, weights=None, chunk_size=None):
    from kmeans_xp._base import check_input, make_data

    b = container.backend
    w = None if weights is None else b.asarray(weights)
    data = make_data(check_input(container(X), "X", "t"), weights=w, n_clusters=k,
                     chunk_size=chunk_size)
    data.prepare()
    assert isinstance(data.kernels, SparseKernels)
    return data


def _step(kern, sub, C, counts, *, standard, reassign=None, need_diff=False, owned=False,
          work=None):
    """One step's statistics and move, by the sparse set's fast path or the standard one."""
    xp = kern.xp
    if standard:
        stats = ReferenceKernels.minibatch_assign(kern, sub, C, work)
        assert stats.sums is not None
    else:
        stats = kern.minibatch_assign(sub, C, work)
        assert stats.sums is None and stats.labels is not None
    counts_new = counts + stats.wsum
    if reassign is not None:  # (centres, batch rows)
        mask = xp.asarray(np.isin(np.arange(int(C.shape[0])), reassign[0]),
                          device=kern.device)
        reassign = Reassignment(mask, np.asarray(reassign[1], dtype=np.int64), sub.take_rows)
    move = ReferenceKernels.minibatch_move if standard else type(kern).minibatch_move
    C_new, diff = move(kern, sub, stats, C, counts, counts_new, reassign=reassign,
                       need_diff=need_diff, owned=owned, work=work)
    return stats, counts_new, C_new, diff


@pytest.fixture(params=["rows", "whole"])
def row_ops(request, monkeypatch):
    """Both ways of scaling the centres and updating their norms: row by row over the
    changed centres (the CPU's way for wide rows), or whole-array operations."""
    if request.param == "rows":
        monkeypatch.setattr(SparseOps, "ROW_LOOP_MIN_FEATURES", 0)
        monkeypatch.setattr(SparseOps, "row_loop_max_fraction", 1.0)
        from kmeans_xp._kernels import _sparse_ops

        monkeypatch.setattr(_sparse_ops._TorchOps, "row_loop_max_fraction", 1.0)
    else:
        monkeypatch.setattr(SparseOps, "ROW_LOOP_MIN_FEATURES", 1 << 62)
    return request.param


@pytest.mark.parametrize("case", ["plain", "weighted", "reassign", "tol"])
def test_fast_step_equals_standard_step(csr_container, products, row_ops, case):
    """The in-place step (per-centre scaling + scatter of the batch's stored values) equals
    the standard functional step: labels, weights, inertia, centres, squared shift; centres
    with no weight before (W = 0: the batch mean replaces them), centres the batch does not
    reach (unchanged, bit for bit) and zero sample weights included."""
    b = csr_container.backend
    n = b.to_numpy
    X = make_counts(900, 250, 40)
    k = 7
    rng = np.random.default_rng(3)
    data = _sparse_data(csr_container, X, k, chunk_size=45)
    idx = rng.integers(0, 900, 300)
    w = None
    if case == "weighted":
        w = rng.uniform(0.0, 2.0, 300)
        w[::17] = 0.0
    sub = data.subset(b.asarray(idx), weights=None if w is None else b.asarray(w))
    C0 = centres_from(X, [3, 150, 300, 450, 600, 750, 10])
    C0[6] = 50.0  # far from every row: receives no point
    counts0 = np.array([0.0, 3.0, 10.0, 0.0, 250.0, 1.0, 4.0])
    reassign = None
    if case == "reassign":  # centres 1 (reached) and 6 (not reached) become batch rows
        reassign = ([1, 6], [5, 77])
    kern = data.kernels
    Cb, cb = b.asarray(C0), b.asarray(counts0)
    need_diff = case in ("tol", "reassign")

    sa, na, Ca, da = _step(kern, sub, Cb, cb, standard=True, reassign=reassign,
                           need_diff=need_diff)
    mine = b.asarray(C0.copy())  # owned by the step: written into
    work = {}
    sb, nb, Cf, df = _step(kern, sub, mine, cb, standard=False, reassign=reassign,
                           need_diff=need_diff, owned=True, work=work)
    assert Cf is mine
    np.testing.assert_array_equal(n(sb.labels), n(sa.labels))
    np.testing.assert_allclose(n(sb.wsum), n(sa.wsum), rtol=1e-13)
    assert float(sb.inertia) == pytest.approx(float(sa.inertia), rel=1e-12)
    np.testing.assert_allclose(n(nb), n(na), rtol=1e-13)
    np.testing.assert_allclose(n(Cf), n(Ca), rtol=1e-12, atol=1e-15)
    reached = n(sa.wsum) > 0
    assert 0 < reached.sum() < k and not reached[6]
    kept = ~reached
    if reassign is not None:
        kept[[1, 6]] = False
        np.testing.assert_array_equal(n(Cf)[[1, 6]], X[idx[[5, 77]]].toarray())
    np.testing.assert_array_equal(n(Cf)[kept], C0[kept])  # exactly: scaled by 1
    if need_diff:
        assert float(df) == pytest.approx(float(da), rel=1e-10)
        assert float(da) == pytest.approx(((n(Ca) - C0) ** 2).sum(), rel=1e-12)
    else:
        assert da is None and df is None
    # the squared norms carried to the next step are those of the new centres
    assert work["sq_of"] is Cf
    np.testing.assert_allclose(n(work["sq"]), (n(Ca) ** 2).sum(1), rtol=1e-12)

    # a second step from the carried norms equals a second standard step
    sub2 = data.subset(b.asarray(rng.integers(0, 900, 200)))
    _, _, Ca2, _ = _step(kern, sub2, Ca, na, standard=True)
    _, _, Cf2, _ = _step(kern, sub2, Cf, nb, standard=False, owned=True, work=work)
    assert Cf2 is Cf
    np.testing.assert_allclose(n(Cf2), n(Ca2), rtol=1e-12, atol=1e-15)


def test_fast_step_never_writes_into_centres_it_does_not_own(csr_container):
    """Not owned (the user's initial centres, centres handed out): one private copy."""
    b = csr_container.backend
    X = make_counts(400, 120, 41)
    data = _sparse_data(csr_container, X, 4)
    sub = data.subset(b.asarray(np.arange(0, 400, 3)))
    C0 = centres_from(X, [0, 100, 200, 300])
    Cb = b.asarray(C0.copy())
    work = {}
    _, _, C1, _ = _step(data.kernels, sub, Cb, b.asarray(np.zeros(4)), standard=False,
                        owned=False, work=work)
    assert C1 is not Cb and work["sq_of"] is C1
    np.testing.assert_array_equal(b.to_numpy(Cb), C0)
    assert not np.array_equal(b.to_numpy(C1), C0)


def test_products_by_centre_equal_transposed(csr_container):
    """``SparseOps.products``: one matrix-vector product per centre equals the product
    with the transposed centres (int32 and int64 indices)."""
    b = csr_container.backend
    X = make_counts(300, 500, 42)
    data = _sparse_data(csr_container, X, 6, chunk_size=70)
    ops = data.ops
    C = b.asarray(np.random.default_rng(4).random((6, 500)))
    for s, e, B, _ in data.chunks():
        want = ops.spmm(B, ops.transpose(C))
        got = ops.by_centre(B, C)
        assert tuple(got.shape) == (e - s, 6)
        np.testing.assert_allclose(b.to_numpy(got), b.to_numpy(want), rtol=1e-13,
                                   atol=1e-15)
    # the rule: by centre for passes over at most one stored value per feature (CPU)
    by_centre = type(ops).matvec_max_nnz_per_feature > 0 and ops.matvec_limit(C) > 0
    prod = ops.products(C, 500, {})
    assert (prod.__code__ is not SparseOps.products(ops, C, 10 ** 9, {}).__code__) \
        == by_centre


@pytest.mark.parametrize("kw", [
    {"reassignment_ratio": 0.3, "batch_size": 40, "max_iter": 3},
    {"tol": 1e-3, "batch_size": 128},
    {"batch_size": 100, "max_no_improvement": None, "max_iter": 2},
])
@pytest.mark.parametrize("weighted", [False, True])
def test_fast_fit_equals_standard_fit(csr_container, products, row_ops, monkeypatch, kw,
                                     weighted):
    """Whole fits with the fast step equal fits with the standard step: steps, centres,
    labels, inertia (reassignments, early stopping on the centre shift, weighted draws)."""
    X = make_counts(1500, 300, 43)
    sw = np.random.default_rng(9).uniform(0.2, 3.0, 1500) if weighted else None
    b = csr_container.backend

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return MiniBatchKMeans(6, random_state=2, n_init=1, **kw).fit(
                csr_container(X), sample_weight=None if sw is None else b.asarray(sw))

    fast = fit()
    monkeypatch.setattr(SparseKernels, "minibatch_assign",
                        lambda self, data, centers, work=None:
                        ReferenceKernels.minibatch_assign(self, data, centers, work))
    standard = fit()
    assert fast.n_steps_ == standard.n_steps_
    np.testing.assert_allclose(b.to_numpy(fast.cluster_centers_),
                               b.to_numpy(standard.cluster_centers_), rtol=1e-10,
                               atol=1e-13)
    np.testing.assert_array_equal(b.to_numpy(fast.labels_), b.to_numpy(standard.labels_))
    assert fast.inertia_ == pytest.approx(standard.inertia_, rel=1e-10)


@pytest.mark.parametrize("weighted", [False, True])
def test_empty_and_reassigned_clusters_equal_sklearn(csr_container, weighted):
    """A centre no row is near (empty: reassigned to a batch row while its weight is zero)
    and frequent low-weight reassignments: the same steps, centres, labels and inertia as
    scikit-learn's sparse MiniBatchKMeans from the same initial centres; X and the initial
    centres are left as they were."""
    X = make_counts(2000, 300, 44)
    C0 = centres_from(X, [3, 400, 800, 1200, 1600, 1900])
    C0[2] = 40.0
    sw = np.random.default_rng(10).uniform(0.2, 3.0, 2000) if weighted else None
    kw = {"init": C0, "n_init": 1, "random_state": 4, "batch_size": 64,
          "reassignment_ratio": 0.25, "max_iter": 2}
    Xc = csr_container(X)
    init = csr_container.dense(C0.copy())
    before = _snapshot(Xc)
    b = csr_container.backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = MiniBatchKMeans(6, **{**kw, "init": init}).fit(
            Xc, sample_weight=None if sw is None else b.asarray(sw))
        ref = SKMiniBatchKMeans(6, **kw).fit(X, sample_weight=sw)
    _assert_unchanged(Xc, before)
    np.testing.assert_array_equal(b.to_numpy(init), C0)
    assert ours.n_steps_ == ref.n_steps_
    np.testing.assert_allclose(b.to_numpy(ours.cluster_centers_), ref.cluster_centers_,
                               rtol=1e-9, atol=1e-12)
    assert ours.inertia_ == pytest.approx(ref.inertia_, rel=1e-9)
    assert_labels_equal_up_to_ties(X, ref.cluster_centers_, b.to_numpy(ours.labels_),
                                   ref.labels_)
    assert np.abs(ref.cluster_centers_[2]).max() < 5.0  # the far centre (40) was reassigned


def test_partial_fit_never_writes_into_centres_handed_out(csr_container):
    """``cluster_centers_`` of one partial_fit call are not changed by the next call (the
    step writes in place only into centres the estimator has not handed out)."""
    X = make_counts(1200, 200, 45)
    b = csr_container.backend
    km = MiniBatchKMeans(5, random_state=0)
    km.partial_fit(csr_container(X[:400]))
    first = km.cluster_centers_
    first_copy = b.to_numpy(first).copy()
    km.partial_fit(csr_container(X[400:800]))
    second = km.cluster_centers_
    np.testing.assert_array_equal(b.to_numpy(first), first_copy)
    assert not np.array_equal(b.to_numpy(second), first_copy)
    ref = SKMiniBatchKMeans(5, random_state=0)
    ref.partial_fit(X[:400]).partial_fit(X[400:800])
    np.testing.assert_allclose(b.to_numpy(second), ref.cluster_centers_, rtol=1e-9,
                               atol=1e-12)


def test_fast_step_allocates_no_centre_sized_array():
    """A step on wide data (d = 2**17, k = 8: the centres are 8 MiB) allocates per-batch
    arrays only: no (k, d) sums, transposed copy or temporaries (NumPy allocations traced)."""
    d, k = 2 ** 17, 8
    X = _wide(6000, d, 12)
    data = _sparse_data(Container("csr_matrix"), X, k)
    C = np.array(X[:k].toarray(), order="C")
    counts = np.zeros(k)
    work = {}
    subs = [data.subset(np.arange(i, 6000, 6)) for i in range(3)]
    _step(data.kernels, subs[0], C, counts, standard=False, owned=True, work=work)
    centre_bytes = 8 * k * d

    def steps():
        for sub in subs[1:]:
            _step(data.kernels, sub, C, counts, standard=False, owned=True, work=work)

    peak = peak_traced(steps)
    assert peak < centre_bytes / 4, (peak, centre_bytes)
    with_diff = peak_traced(lambda: _step(data.kernels, subs[1], C, counts, standard=False,
                                          owned=True, work=work, need_diff=True))
    assert with_diff < 1.25 * centre_bytes, (with_diff, centre_bytes)  # one block, kept
    again = peak_traced(lambda: _step(data.kernels, subs[2], C, counts, standard=False,
                                      owned=True, work=work, need_diff=True))
    assert again < centre_bytes / 4, (again, centre_bytes)


def test_minibatch_fit_peak_memory_on_wide_sparse_data(monkeypatch, capsys):
    """The steps of a fit on wide data (d = 2**17, k = 8: 8 MiB of centres) hold one (k, d)
    array, the private centres, and per-batch arrays; reassigned centres are written from
    the batch's stored values (no dense rows).  The user's initial centres are untouched."""
    import tracemalloc

    d, k, per_row = 2 ** 17, 8, 12
    X = _wide(20_000, d, per_row)
    init = X[:k].toarray()
    init_copy = init.copy()
    during_steps = []
    steps = MiniBatchKMeans._steps

    def traced_steps(self, *args, **kwargs):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = steps(self, *args, **kwargs)
        during_steps.append(tracemalloc.get_traced_memory()[1] - before)
        return out

    monkeypatch.setattr(MiniBatchKMeans, "_steps", traced_steps)
    peak_traced(lambda: MiniBatchKMeans(k, init=init, max_iter=2, batch_size=1024,
                                        random_state=0, verbose=1).fit(X))
    assert "Reassigning" in capsys.readouterr().out
    np.testing.assert_array_equal(init, init_copy)
    centre_bytes = 8 * k * d
    assert during_steps[0] <= 1.25 * centre_bytes, (during_steps, centre_bytes)
