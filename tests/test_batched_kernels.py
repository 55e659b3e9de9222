"""The batched whole-pass kernels (a problem axis) of every kernel set against the reference,
the host draws of batched k-means++, and the number of kernel calls per fit against B."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kmeans_xp._kernels import available_sets
from kmeans_xp._solvers.batched import BatchedData, kpp_draws, kpp_uniforms

B, N, D, K = 6, 300, 5, 4


def _data(backend, kernels, *, frame=True, masked=True, weighted=True, dtype="float64", seed=0):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=4.0, size=(B, K, D))
    X = (
        np.take_along_axis(C, rng.integers(0, K, (B, N))[:, :, None], axis=1)
        + rng.normal(size=(B, N, D))
        + 20.0
    )
    mask = None
    if masked:
        mask = np.arange(N)[None, :] < np.array([N, 200, 37, N, 150, 290])[:, None]
        mask[3] = rng.random(N) < 0.7
        X[~mask] = np.nan  # padding may hold anything
    w = rng.uniform(0.5, 2.0, size=(B, N)) if weighted else None
    if mask is not None:
        w = mask.astype(np.float64) if w is None else w * mask
    Xb = backend.asarray(X.astype(dtype))
    from kmeans_xp._compat import array_namespace
    from kmeans_xp._frame import Frame

    xp = array_namespace(Xb)
    dt = getattr(xp, dtype)
    n_valid = np.full(B, N) if mask is None else mask.sum(axis=1)
    data = BatchedData(
        Xb,
        xp=xp,
        dtype=dt,
        weights=None if w is None else xp.asarray(backend.asarray(w.astype(dtype)), dtype=dt),
        mask=None if mask is None else backend.asarray(mask),
        n_valid=n_valid,
        kernels=kernels,
        n_clusters=K,
    )
    if frame:  # a per-problem frame: scales 1, 2, 4 and a shift
        scale = 2.0 ** rng.integers(0, 3, B)
        inv = xp.asarray(backend.asarray(1.0 / scale), dtype=dt)
        shift = xp.asarray(backend.asarray(np.full((B, D), 20.0) / 2.0), dtype=dt)
        data.frame = Frame(scale.astype(np.float64), shift * inv[:, None] * 2.0, np.zeros(B))
    return data, X, mask, w


def _working(data, backend, X, mask):
    """Problems in working coordinates (float64 host), masked rows zeroed first."""
    Xh = np.where(mask[:, :, None], X, 0.0) if mask is not None else X
    Xh = Xh.astype(backend.to_numpy(data.X).dtype).astype(np.float64)
    if data.inv_scale is not None:
        Xh = Xh * backend.to_numpy(data.inv_scale)[:, None, None]
    if data.shift is not None:
        Xh = Xh - backend.to_numpy(data.shift)[:, None, :]
    return Xh


def _sets(backend, dtype):
    from kmeans_xp._compat import array_namespace, device_of

    probe = backend.asarray(np.zeros(2, dtype=dtype))
    xp = array_namespace(probe)
    return available_sets(xp, device_of(probe), getattr(xp, dtype))


@pytest.mark.parametrize("frame", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_batched_passes_of_every_set_equal_the_reference(backend, dtype_name, frame, masked):
    sets = _sets(backend, dtype_name)
    ref = sets["reference"]
    tol = 1e-10 if dtype_name == "float64" else 2e-4
    problems = np.array([5, 0, 3, 2])
    for name, kern in sets.items():
        data, X, mask, w = _data(
            backend, kern, frame=frame, masked=masked, weighted=masked, dtype=dtype_name
        )
        Xw = _working(data, backend, X, mask)[problems]
        rng = np.random.default_rng(2)
        C = Xw[np.arange(4)[:, None], rng.integers(0, 37, (4, K))]
        Cb = data.xp.asarray(backend.asarray(C.astype(dtype_name)), dtype=data.dtype)
        for need in (False, True):
            lab, sums, counts, inert = kern.batched_lloyd_pass(
                data, Cb, problems, need_inertia=need
            )
            lab_r, _, _, inert_r = ref.batched_lloyd_pass(data, Cb, problems, need_inertia=need)
            lab, lab_r = backend.to_numpy(lab), backend.to_numpy(lab_r)
            valid = np.ones((4, N), bool) if mask is None else mask[problems]
            np.testing.assert_array_equal(lab[valid], lab_r[valid], err_msg=name)
            # the truth in float64 on the host
            Ch = backend.to_numpy(Cb).astype(np.float64)
            dist = ((Xw[:, :, None, :] - Ch[:, None, :, :]) ** 2).sum(-1)
            np.testing.assert_array_equal(lab[valid], dist.argmin(-1)[valid], err_msg=name)
            ww = np.ones((4, N)) if w is None else w[problems]
            ww = np.where(valid, ww, 0.0)
            oh = (lab_r[:, :, None] == np.arange(K)) * ww[:, :, None]
            np.testing.assert_allclose(backend.to_numpy(counts), oh.sum(1), rtol=tol)
            np.testing.assert_allclose(
                backend.to_numpy(sums), np.einsum("bnk,bnd->bkd", oh, Xw), rtol=tol, atol=tol * 100
            )
            assert (inert is None) == (not need)
            if need:
                expect = (dist.min(-1) * ww).sum(1)
                np.testing.assert_allclose(backend.to_numpy(inert), expect, rtol=tol)
                np.testing.assert_allclose(backend.to_numpy(inert_r), expect, rtol=tol)
        labels, inertia = kern.batched_labels_inertia(data, Cb, problems)
        np.testing.assert_array_equal(backend.to_numpy(labels)[valid], lab_r[valid])
        np.testing.assert_allclose(backend.to_numpy(inertia), (dist.min(-1) * ww).sum(1), rtol=tol)
        lab_in = np.where(valid, lab_r, -1)
        sq = kern.batched_sq_dist_to_assigned(data, Cb, backend.asarray(lab_in), problems)
        expect = np.where(
            valid, np.take_along_axis(dist, np.maximum(lab_in, 0)[:, :, None], 2)[:, :, 0], 0.0
        )
        np.testing.assert_allclose(backend.to_numpy(sq), expect, rtol=tol, atol=tol)
        # all problems when ``problems`` is None
        lab_all = backend.to_numpy(
            kern.batched_lloyd_pass(data, data.xp.concat([Cb, Cb[:2, ...]]), None)[0]
        )
        assert lab_all.shape == (B, N)


def _kpp_host(Xw, w, mask, k, u, m):
    """Greedy k-means++ of one problem on its valid rows (float64 host): scikit-learn's
    draws from the uniforms u."""
    valid = np.nonzero(mask)[0] if mask is not None else np.arange(Xw.shape[0])
    x = Xw[valid]
    ww = np.ones(len(valid)) if w is None else w[valid]
    n = len(valid)
    cdf = np.cumsum(ww)
    first = (
        min(int(np.searchsorted(cdf, u[0] * cdf[-1], side="right")), n - 1)
        if w is not None
        else min(int(u[0] * n), n - 1)
    )
    idx = [first]
    closest = ((x - x[first]) ** 2).sum(1)
    pot = (ww * closest).sum()
    for s in range(k - 1):
        r = u[1 + s * m : 1 + (s + 1) * m] * pot
        cand = np.minimum(np.searchsorted(np.cumsum(ww * closest), r), n - 1)
        Dc = ((x[None, :, :] - x[cand][:, None, :]) ** 2).sum(-1)
        pots = (ww * np.minimum(closest, Dc)).sum(1)
        best = int(np.argmin(pots))
        pot = pots[best]
        idx.append(int(cand[best]))
        closest = np.minimum(closest, Dc[best])
    return valid[np.asarray(idx)]


@pytest.mark.parametrize("frame", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_batched_kmeans_plusplus_of_every_set_draws_as_the_single_problem_rule(
    backend, dtype_name, frame, masked
):
    sets = _sets(backend, dtype_name)
    k = 5
    m, used = kpp_draws(k)
    assert m == 2 + int(math.log(k))
    U = kpp_uniforms(np.arange(B) + 100, used)
    for name, kern in sets.items():
        data, X, mask, w = _data(
            backend, kern, frame=frame, masked=masked, weighted=masked, dtype=dtype_name
        )
        data.k = k
        Xw = _working(data, backend, X, mask)
        idx = backend.to_numpy(
            kern.batched_kmeans_plusplus(data, k, U[:, 0], U[:, 1:].reshape(B, k - 1, m), m)
        )
        assert idx.shape == (B, k) and idx.dtype == np.int64, name
        for b in range(B):
            expect = _kpp_host(
                Xw[b], None if w is None else w[b], None if mask is None else mask[b], k, U[b], m
            )
            np.testing.assert_array_equal(idx[b], expect, err_msg=f"{name} problem {b}")


def test_kpp_uniforms_are_the_per_problem_generators_draws():
    seeds = np.array([0, 7, 2**31 - 2, 123456])
    k, m = 6, 3
    U = kpp_uniforms(seeds, 1 + (k - 1) * m)
    for b, s in enumerate(seeds):
        rs = np.random.RandomState(int(s))
        expect = [rs.random_sample()] + [v for _ in range(k - 1) for v in rs.uniform(size=m)]
        np.testing.assert_array_equal(U[b], expect)


class _Counting:
    """A kernel set whose public method calls are counted."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if callable(attr) and not name.startswith("_"):

            def counted(*a, **kw):
                self.calls += 1
                return attr(*a, **kw)

            return counted
        return attr


@pytest.mark.parametrize("prefer", [None, "generic", "reference"])
def test_kernel_calls_per_fit_do_not_grow_with_the_number_of_problems(monkeypatch, prefer):
    import kmeans_xp._batched as mod
    from kmeans_xp import batched_k_means

    made = []
    real = mod.select

    def select(*a, **kw):
        made.append(_Counting(real(*a, prefer=prefer, **kw)))
        return made[-1]

    monkeypatch.setattr(mod, "select", select)
    rng = np.random.default_rng(0)
    base = rng.normal(size=(4, 200, 3)) + rng.normal(scale=4, size=(4, 1, 3))
    counts = []
    for reps in (1, 16):  # the same 4 problems, 4 and 64 of them: the same iterations
        batched_k_means(np.tile(base, (reps, 1, 1)), 3, random_state=list(range(4)) * reps)
        counts.append(made[-1].calls)
    assert counts[0] == counts[1] > 0


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_fused_cpu_set_runs_its_compiled_batched_passes(monkeypatch, backend):
    """A default batched fit on the CPU runs the compiled batched kernels (k-means++, the
    frame statistics, the Lloyd passes), not the per-problem fallback of the reference set:
    a source whose metric the kernel set misreads would silently run the slow path."""
    pytest.importorskip("numba")
    xp_mod = pytest.importorskip(backend)
    import kmeans_xp._kernels._cpu as cpu
    from kmeans_xp import batched_k_means

    used = set()
    real = cpu._batched_kernels()

    class Spy:
        def __getattr__(self, name):
            used.add(name)
            return getattr(real, name)

    monkeypatch.setattr(cpu, "_batched_kernels", lambda: Spy())
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(6, 300, 3)) + rng.normal(scale=4, size=(6, 1, 3))).astype(np.float32)
    batched_k_means(xp_mod.asarray(X), 3, random_state=0)
    assert {"kmeans_plusplus", "frame_stats", "lloyd_pass"} <= used


def test_the_final_assignment_runs_only_for_problems_not_strictly_converged(monkeypatch):
    """After a strict stop the last labels already match the centres: the final pass of
    those problems only sums the distances to the assigned centres; problems stopped by
    ``max_iter`` get the full assignment.  Labels and inertia equal separate fits."""
    import kmeans_xp._batched as mod
    from kmeans_xp import KMeans, batched_k_means
    from kmeans_xp._kernels import ReferenceKernels

    searched = []
    real = ReferenceKernels.batched_labels_inertia

    def spy(self, data, centers, problems=None):
        searched.append(int(centers.shape[0]))
        return real(self, data, centers, problems)

    monkeypatch.setattr(ReferenceKernels, "batched_labels_inertia", spy)
    monkeypatch.setattr(mod, "select", lambda *a, **kw: ReferenceKernels(*a[:3]))
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=6, size=(5, 3, 2))
    X = centres[:, rng.integers(0, 3, 300)] + rng.normal(size=(5, 300, 2))
    X[4] = rng.uniform(size=(300, 2))  # no clear clusters: many iterations
    init = X[:, :3].copy()
    for max_iter in (300, 2):
        searched.clear()
        C, labels, inertia, n_iter = batched_k_means(
            X, 3, init=init, n_init=1, max_iter=max_iter, tol=0.0
        )
        fits = [
            KMeans(3, init=init[b], n_init=1, max_iter=max_iter, tol=0.0).fit(X[b])
            for b in range(5)
        ]
        strict = [f.n_iter_ < max_iter for f in fits]
        assert sum(searched) == sum(not s for s in strict)
        for b, f in enumerate(fits):
            np.testing.assert_array_equal(np.asarray(labels[b]), f.labels_)
            assert float(inertia[b]) == pytest.approx(f.inertia_, rel=1e-9)
    assert sum(searched) == 5  # max_iter=2: none converged, all searched


@pytest.mark.parametrize("case", ["finite", "nan_masked", "inf_unmasked", "huge_float64"])
def test_compiled_frame_statistics_equal_numpy_on_every_kind_of_value(case):
    """The compiled per-problem statistics (one fast read; a careful second read only for a
    problem whose sums come out non-finite) against NumPy: finiteness, the largest finite
    magnitude, column sums and sums of squares of the valid rows."""
    pytest.importorskip("numba")
    from kmeans_xp._kernels import _cpu_batched as cb

    rng = np.random.default_rng(4)
    dtype = np.float64 if case == "huge_float64" else np.float32
    X = rng.normal(size=(3, 300, 5)).astype(dtype)
    mask = np.ones((3, 300), bool)
    if case == "nan_masked":
        X[1, 7, 2] = np.nan
        mask[1, 7] = False
    elif case == "inf_unmasked":
        X[2, 11, 0] = -np.inf
    elif case == "huge_float64":
        X[0, 3, 1] = 1e200  # its square is beyond float64's range
    B, n, d = X.shape
    fin, amax = np.empty(B, np.bool_), np.empty(B)
    sums, sqs = np.empty((B, d)), np.empty((B, d))
    cb.frame_stats(
        X.reshape(B * n, d), n, None, None, None, mask, np.empty(0, dtype), fin, amax, sums, sqs
    )
    for b in range(B):
        v = X[b][mask[b]].astype(np.float64)
        ok = np.isfinite(v)
        assert bool(fin[b]) == bool(ok.all())
        w = np.where(ok, v, 0.0)
        assert amax[b] == np.abs(w).max()
        with np.errstate(over="ignore"):
            np.testing.assert_allclose(sums[b], w.sum(axis=0), rtol=1e-12)
            np.testing.assert_allclose(sqs[b], (w * w).sum(axis=0), rtol=1e-12)
