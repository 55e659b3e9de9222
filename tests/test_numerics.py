"""Numerics and precision, determinism, and memory bounds."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kmeans_xp import KMeans, _base
from tests._memory import peak_traced


def _mixture(n=3000, d=6, k=5, seed=0, scale=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=scale, size=(k, d))
    return centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))


# -- precision -------------------------------------------------------------------------------
def test_large_offset_float32_clusters_like_float64(backend):
    """1e6 + small noise in float32 (a grid of 0.0625): centring keeps float32 distances
    accurate, so the clustering is float64's up to float32 near-ties, while the textbook
    ||x||^2 - 2 x.c + ||c||^2 in float32 without centring gets a large share wrong."""
    X32 = (_mixture() + 1e6).astype(np.float32)
    init = X32[:5]
    a = KMeans(5, init=backend.asarray(init)).fit(backend.asarray(X32))
    b = KMeans(5, init=init.astype(np.float64)).fit(X32.astype(np.float64))
    agree = float((backend.to_numpy(a.labels_) == b.labels_).mean())
    assert agree >= 0.99, agree
    assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-3)  # a neighbouring local optimum
    np.testing.assert_allclose(backend.to_numpy(a.cluster_centers_), b.cluster_centers_,
                               rtol=0, atol=0.25)  # float32 grid 0.0625, + the few moved points
    # the naive float32 assignment against float64's own centres
    C32 = b.cluster_centers_.astype(np.float32)
    naive = ((X32 * X32).sum(1)[:, None] - 2 * X32 @ C32.T + (C32 * C32).sum(1)).argmin(1)
    assert (naive == b.labels_).mean() < 0.9


@pytest.mark.parametrize("magnitude", [1e30, 1e-30, 1e18, 1e-18])
def test_extreme_magnitudes_neither_overflow_nor_underflow(backend, dtype_name, magnitude):
    base = _mixture(n=800).astype(dtype_name)
    X = (base.astype(np.float64) * magnitude).astype(dtype_name)
    ref = KMeans(5, init=base[:5]).fit(base)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value RuntimeWarning either
        km = KMeans(5, init=backend.asarray(X[:5])).fit(backend.asarray(X))
        D = backend.to_numpy(km.transform(backend.asarray(X)))
    C = backend.to_numpy(km.cluster_centers_).astype(np.float64)
    assert np.isfinite(C).all() and np.isfinite(D).all() and np.isfinite(km.inertia_)
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), ref.labels_)
    np.testing.assert_allclose(C / magnitude, ref.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert km.inertia_ / magnitude**2 == pytest.approx(ref.inertia_, rel=1e-3)
    assert km.score(backend.asarray(X)) / magnitude**2 == pytest.approx(-ref.inertia_, rel=1e-3)


@pytest.mark.parametrize("dtype_name, top", [
    ("float32", 3e38), ("float32", 1e-39), ("float64", 1e300), ("float64", 1e-310)])
def test_magnitudes_at_the_edges_of_the_dtype_range(backend, dtype_name, top):
    """Largest |x| near the dtype's maximum, or subnormal: the power-of-two scale (and its
    inverse) must stay representable, so the fit neither crashes nor returns NaN; labels
    are those of a float64 fit of the same values scaled to 1.  The inertia in data units
    of 1e300 data is beyond float64: inf, as scikit-learn gives, not an error."""
    if backend.kind == "jax" and top < 1:
        pytest.xfail("XLA's CPU backend flushes subnormal values to zero (FTZ/DAZ): "
                     "subnormal data are all zeros to JAX")
    base = _mixture(n=400)
    X = (base / np.abs(base).max() * top).astype(dtype_name)
    unit = X.astype(np.float64) / top
    ref = KMeans(5, init=unit[:5]).fit(unit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = KMeans(5, init=backend.asarray(X[:5])).fit(backend.asarray(X))
        score = km.score(backend.asarray(X))
    with warnings.catch_warnings():  # float32 distances past 3.4e38 overflow (to inf)
        warnings.simplefilter("ignore", RuntimeWarning)
        D = backend.to_numpy(km.transform(backend.asarray(X[:50])))
    np.testing.assert_array_equal(backend.to_numpy(km.labels_), ref.labels_)
    C = backend.to_numpy(km.cluster_centers_).astype(np.float64)
    tol = 1e-4 if top > 1 else 1e-3  # subnormal float32 values carry ~16 bits
    np.testing.assert_allclose(C / top, ref.cluster_centers_, rtol=tol, atol=tol)
    # distances past the dtype's maximum are inf, as the dtype holds them
    with np.errstate(over="ignore"):
        ref_D = (ref.transform(unit[:50]) * top).astype(dtype_name).astype(np.float64)
    np.testing.assert_allclose(D, ref_D, rtol=tol, atol=tol * top)
    if top * top * ref.inertia_ < np.finfo(np.float64).max:
        assert km.inertia_ == pytest.approx(ref.inertia_ * top * top, rel=1e-3, abs=1e-300)
    else:
        assert km.inertia_ == np.inf and score == -np.inf


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_torch_half_precision(half):
    torch = pytest.importorskip("torch")
    X = _mixture().astype(np.float32)
    Xh = torch.asarray(X).to(getattr(torch, half))
    ref = KMeans(5, init=Xh[:5].float().numpy()).fit(Xh.float().numpy())  # same values, f32
    km = KMeans(5, init=Xh[:5]).fit(Xh)
    assert km.cluster_centers_.dtype == getattr(torch, half)  # stored as given
    assert km.transform(Xh).dtype == torch.float32  # distances: the compute dtype
    # accumulated in float32: labels as float32's, centres within the storage precision
    np.testing.assert_array_equal(km.labels_.numpy(), ref.labels_)
    eps = 2.0 ** -8 if half == "float16" else 2.0 ** -7
    np.testing.assert_allclose(km.cluster_centers_.float().numpy(), ref.cluster_centers_,
                               rtol=eps, atol=eps * np.abs(X).max())
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


def test_numpy_float16():
    X = _mixture().astype(np.float16)
    km = KMeans(5, init=X[:5]).fit(X)
    ref = KMeans(5, init=X[:5].astype(np.float32)).fit(X.astype(np.float32))
    assert km.cluster_centers_.dtype == np.float16
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


def _f64_distances(X, C):
    """Euclidean distances of X to C computed in float64 (the reference)."""
    X, C = np.asarray(X, np.float64), np.asarray(C, np.float64)
    return np.sqrt(((X[:, None, :] - C[None, :, :]) ** 2).sum(-1))


def _half_case(half, top):
    """20,000 x 8 values uniform in [-top, top], stored in ``half`` (numpy or torch)."""
    X = np.random.default_rng(3).uniform(-top, top, size=(20_000, 8))
    if half == "numpy-float16":
        return X.astype(np.float16)
    torch = pytest.importorskip("torch")
    return torch.asarray(X.astype(np.float32)).to(getattr(torch, half.split("-")[1]))


@pytest.mark.parametrize("half, top", [
    ("numpy-float16", 6e4), ("torch-float16", 6e4),  # distances reach 1.8e5 > 65504
    ("numpy-float16", 1e-4), ("torch-float16", 1e-4),  # distances in float16's subnormals
    ("torch-bfloat16", 1e37), ("torch-bfloat16", 1e-36)])  # near float32's range both ways
def test_half_storage_results_are_in_the_compute_dtype(half, top):
    """Distances, scores and inertia of half-precision data come back in float32 (the
    dtype of the arithmetic), where they hold their values; the centres stay in the storage
    dtype.  Cast back to float16 the distances past 65504 were inf (and those below 6e-5
    lost their digits); cast to bfloat16 they carried its 2**-8 rounding."""
    from kmeans_xp import MiniBatchKMeans
    from kmeans_xp._compat import to_numpy

    X = _half_case(half, top)
    Xh = np.asarray(to_numpy(X.float() if hasattr(X, "float") else X), np.float64)
    half_dtype = X.dtype
    f32 = np.float32 if isinstance(X, np.ndarray) else __import__("torch").float32
    for est in (KMeans(5, random_state=0), MiniBatchKMeans(5, random_state=0, n_init=1)):
        D = est.fit_transform(X)
        assert est.cluster_centers_.dtype == half_dtype  # centres: the storage dtype
        assert D.dtype == f32, (type(est).__name__, D.dtype)
        D = np.asarray(to_numpy(D), np.float64)
        C = to_numpy(est.cluster_centers_.float() if hasattr(X, "float")
                     else est.cluster_centers_)
        ref = _f64_distances(Xh, C)
        assert np.isfinite(D).all(), int((~np.isfinite(D)).sum())
        # float32 rounding of distances computed in float32 from centred data
        np.testing.assert_allclose(D, ref, rtol=1e-5, atol=1e-5 * ref.max())
        D2 = np.asarray(to_numpy(est.transform(X)), np.float64)
        np.testing.assert_array_equal(D2, D)
        inertia = float((ref.min(axis=1) ** 2).sum())
        assert np.isfinite(est.inertia_) and np.isfinite(est.score(X))
        assert est.score(X) == pytest.approx(-inertia, rel=1e-4)
        if isinstance(est, KMeans):
            assert est.inertia_ == pytest.approx(inertia, rel=1e-4)


def test_half_storage_dask_transform_in_float32():
    """A Dask array of float16: a lazy float32 transform (its meta too), equal to NumPy's."""
    da = pytest.importorskip("dask.array")
    X = _half_case("numpy-float16", 6e4)
    km = KMeans(5, random_state=0).fit(X)
    D = km.transform(da.from_array(X, chunks=7000))
    assert D.dtype == np.float32 and D._meta.dtype == np.float32
    np.testing.assert_array_equal(D.compute(scheduler="sync"), km.transform(X))


def test_half_storage_silhouette_in_float32():
    """silhouette_samples of float16 data: float32 values (the compute dtype)."""
    from kmeans_xp.metrics import silhouette_samples

    X = _half_case("numpy-float16", 6e4)[:2000]
    labels = KMeans(3, random_state=0).fit_predict(X)
    s = silhouette_samples(X, labels)
    assert s.dtype == np.float32 and np.isfinite(s).all()


# -- determinism -----------------------------------------------------------------------------
def test_same_seed_bit_identical_on_one_backend(backend, dtype_name):
    X = backend.asarray(_mixture(n=2000).astype(dtype_name))
    runs = [KMeans(5, random_state=42, n_init=3, init="random").fit(X) for _ in range(3)]
    first = runs[0]
    for r in runs[1:]:
        assert np.array_equal(backend.to_numpy(r.cluster_centers_),
                              backend.to_numpy(first.cluster_centers_))
        assert np.array_equal(backend.to_numpy(r.labels_), backend.to_numpy(first.labels_))
        assert r.inertia_ == first.inertia_ and r.n_iter_ == first.n_iter_


# -- memory ----------------------------------------------------------------------------------
def test_numpy_peak_memory_is_bounded_by_the_chunk_not_by_X():
    """Peak allocation grows with n only through O(n) vectors (labels), never a copy of X
    (d floats per sample) nor an n x k matrix."""
    d, k, chunk = 200, 64, 512
    # warm up: a compiled kernel set (numba) loads its code on the first call, a one-off
    # allocation of the process that is not the fit's working memory
    warm = np.random.default_rng(1).normal(size=(300, d))
    KMeans(k, init=warm[:k].copy(), max_iter=3, chunk_size=chunk).fit(warm)
    # both sizes past n = 32 x 256 rows, where the fused CPU pass (numba) has reached its
    # fixed number of row chunks and so its bounded per-chunk partial sums (<= 4 MiB)
    peaks = {}
    for n in (10_000, 40_000):
        X = np.random.default_rng(0).normal(size=(n, d))
        init = X[:k].copy()
        peaks[n] = peak_traced(lambda X=X, init=init: KMeans(k, init=init, max_iter=3,
                                                             chunk_size=chunk).fit(X))
    per_sample = (peaks[40_000] - peaks[10_000]) / 30_000
    assert per_sample <= 64, per_sample  # O(n) int/float vectors only; X is 1600 B/sample
    chunk_bytes = 8 * chunk * max(k, d)
    partials = 4 << 20  # the fused CPU pass's per-chunk partial sums, at most
    assert peaks[10_000] <= 64 * 10_000 + 12 * chunk_bytes + 8 * 4 * k * d + partials, peaks


def test_torch_cuda_peak_memory_is_bounded(backend):
    if backend.name != "torch_cuda":
        pytest.skip("torch.cuda.max_memory_allocated needs the torch_cuda backend")
    torch = backend.module
    d, k, chunk = 128, 256, 4096
    peaks = {}
    for n in (100_000, 400_000):
        X = torch.randn(n, d, device=backend.device)
        init = X[:k].clone()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        KMeans(k, init=init, max_iter=3, chunk_size=chunk).fit(X)
        peaks[n] = torch.cuda.max_memory_allocated() - base
    assert (peaks[400_000] - peaks[100_000]) / 300_000 <= 64  # X is 512 B/sample


def test_clear_memory_error_when_the_budget_cannot_be_met(monkeypatch):
    import kmeans_xp._data as data_mod

    X = _mixture(n=1000)
    monkeypatch.setattr(data_mod, "available_memory", lambda xp, device: 1 << 16)
    with pytest.raises(MemoryError, match=r"needs about .* GiB .* Pass a smaller chunk_size"):
        KMeans(5, random_state=0).fit(X)


def test_backend_out_of_memory_is_reported_with_advice(backend, monkeypatch):
    def oom(*a, **k):
        raise MemoryError("Unable to allocate 40.0 GiB")

    select = _base.select

    def oom_kernels(*a, **k):  # the fit's kernel set, whose passes run out of memory
        kern = select(*a, **k)
        for name in ("partial_sq_distances", "lloyd_pass", "kpp_update", "kpp_potentials"):
            setattr(kern, name, oom)
        return kern

    monkeypatch.setattr(_base, "select", oom_kernels)
    with pytest.raises(MemoryError, match=r"chunks of \d+ rows: pass a smaller chunk_size"):
        KMeans(5, random_state=0).fit(backend.asarray(_mixture(n=500)))
