"""The conformance suite over row sources: every source gives what the in-memory NumPy fit gives.

Sources: NumPy (the reference), torch CPU, array-api-strict, sparse (scipy CSR), streamed
(a host array moved to a device chunk by chunk), Dask (blocks on a local scheduler), and
batched (problem 0 of a batch of two).  For each, over metrics, initialisations, sample
weights and data at the edges of the dtype's range (near its maximum, subnormal, far from
the origin): ``fit`` (labels, centres, inertia, n_iter), ``predict``, ``transform``,
``score`` and ``fit_predict`` equal the reference (labels exactly: the data have no ties;
centres and distances within the dtype's rounding).  A source that does not take a metric
says so with a clear error, which is tested too.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from kmeans_xp import BatchedKMeans, KMeans

CASES = {
    # name: (dtype, scale, offset)
    "blobs": ("float64", 1.0, 0.0),
    "far": ("float64", 1.0, 1e6),
    "huge32": ("float32", 3e37, 0.0),  # values up to ~3e38: float32's maximum is 3.4e38
    "tiny32": ("float32", 1e-40, 0.0),  # subnormal float32
    "huge64": ("float64", 1e300, 0.0),
}
METRICS = ("euclidean", "cosine", "manhattan")
SOURCES = ("torch", "array_api_strict", "sparse", "streamed", "dask", "batched")
K = 3


def _data(case: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dtype, scale, offset = CASES[case]
    rng = np.random.default_rng(seed)
    centres = np.array([[6.0, 0.5, 1.0], [0.5, 6.0, 1.0], [0.5, 1.0, 6.0]])
    labels = np.repeat(np.arange(K), 30)
    X = centres[labels] + rng.uniform(-0.5, 0.5, size=(labels.size, 3))
    X = (X * scale + offset * scale).astype(dtype)
    w = rng.uniform(0.5, 2.0, size=labels.size)
    init = (centres + 0.3) * scale + offset * scale
    return X, w, init.astype(dtype)


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _host(a) -> np.ndarray:
    from kmeans_xp._compat import to_numpy

    if hasattr(a, "compute"):
        a = a.compute()
    if hasattr(a, "toarray"):
        a = a.toarray()
    return np.asarray(to_numpy(a))


def _to_source(source: str, X: np.ndarray):
    """X as the source holds it, and fit keyword arguments that select the source."""
    if source == "torch":
        _needs("torch")
        import torch

        return torch.asarray(X), {}
    if source == "array_api_strict":
        _needs("array_api_strict")
        import array_api_strict as xs

        return xs.asarray(X), {}
    if source == "sparse":
        _needs("scipy")
        import scipy.sparse as sp

        return sp.csr_matrix(X), {}
    if source == "streamed":
        _needs("torch")
        return X, {"device": "cpu"}
    if source == "dask":
        _needs("dask")
        import dask.array as da

        return da.from_array(X, chunks=(25, -1)), {}
    raise AssertionError(source)


def _supported(source: str, metric: str) -> bool:
    """Whether the source fits with ``metric`` (sparse, Dask and batched fits are Euclidean:
    they refuse the others with a clear error, tested below)."""
    return metric == "euclidean" or source in ("torch", "array_api_strict", "streamed")


def _tolerances(dtype: str, case: str = "", source: str = "", metric: str = "") -> dict:
    """The dtype's rounding; cosine distances (at most 2) near 0 are compared absolutely;
    sparse data are never centred (they would become dense): far from the origin their
    distances lose what the expansion ||x||^2 - 2 x.c + ||c||^2 cancels (as scikit-learn's)."""
    rtol = 2e-4 if dtype == "float32" else 1e-9
    atol = 10 * float(np.finfo(dtype).eps) if metric == "cosine" else 0.0
    if source == "sparse" and CASES[case][2]:  # d^2 off by eps * ||x||^2 = 6e-4 here
        rtol, atol = 1e-3, 0.01
    return {"rtol": rtol, "atol": atol}


COMBOS = [
    (c, m, i, w)
    for c in CASES
    for m in METRICS
    for (i, w) in (
        [("k-means++", False), ("random", True), ("array", True)]
        if c == "blobs"
        else [("k-means++", False)]
    )
]


def _ids(combo) -> str:
    return "-".join(str(v) for v in combo)


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
def test_source_equals_in_memory_reference(source, combo, dask_scheduler):
    case, metric, init_kind, weighted = combo
    X, w, init_arr = _data(case)
    dtype = CASES[case][0]
    tol = _tolerances(dtype, case, source, metric)
    init = init_arr if init_kind == "array" else init_kind
    if source == "dask" and init_kind != "array":
        # on Dask, 'k-means++' runs k-means|| (and 'random' draws rows block by block): the
        # same Lloyd from the same centres is what must agree
        from kmeans_xp import kmeans_plusplus

        init = kmeans_plusplus(X, K, random_state=7)[0]
    sw = w if weighted else None
    params = dict(n_clusters=K, init=init, metric=metric, random_state=7, n_init=1)
    ref = KMeans(**params).fit(X, sample_weight=sw)
    ref_labels = _host(ref.labels_)

    if source == "batched":
        if metric != "euclidean":
            pytest.skip("batched k-means is Euclidean (BatchedKMeans has no metric)")
        X2, w2, init2 = _data(case, seed=1)
        XB = np.stack([X, X2])
        binit = np.stack([init_arr, init2]) if init_kind == "array" else init_kind
        bw = np.stack([w, w2]) if weighted else None
        est = BatchedKMeans(K, init=binit, n_init=1, random_state=[7, 3]).fit(XB, sample_weight=bw)
        np.testing.assert_array_equal(_host(est.labels_)[0], ref_labels)
        np.testing.assert_allclose(
            _host(est.cluster_centers_)[0], _host(ref.cluster_centers_), **tol
        )
        np.testing.assert_allclose(_host(est.inertia_)[0], ref.inertia_, **tol)
        assert int(_host(est.n_iter_)[0]) == ref.n_iter_
        np.testing.assert_array_equal(_host(est.predict(XB))[0], _host(ref.predict(X)))
        np.testing.assert_allclose(_host(est.transform(XB))[0], _host(ref.transform(X)), **tol)
        np.testing.assert_allclose(
            _host(est.score(XB, sample_weight=bw))[0], ref.score(X, sample_weight=sw), **tol
        )
        np.testing.assert_array_equal(
            _host(
                BatchedKMeans(K, init=binit, n_init=1, random_state=[7, 3]).fit_predict(
                    XB, sample_weight=bw
                )
            )[0],
            ref_labels,
        )
        return

    Xs, fit_kw = _to_source(source, X)
    if not _supported(source, metric):
        with pytest.raises(ValueError, match=f"metric={metric!r}"):
            KMeans(**params).fit(Xs, sample_weight=sw, **fit_kw)
        # a model fitted in memory still serves the source (predict/transform/score)
        est = ref
    else:
        est = KMeans(**params).fit(Xs, sample_weight=sw, **fit_kw)
        np.testing.assert_array_equal(_host(est.labels_), ref_labels)
        np.testing.assert_allclose(_host(est.cluster_centers_), _host(ref.cluster_centers_), **tol)
        np.testing.assert_allclose(est.inertia_, ref.inertia_, **tol)
        assert est.n_iter_ == ref.n_iter_
        np.testing.assert_array_equal(
            _host(KMeans(**params).fit_predict(Xs, sample_weight=sw, **fit_kw)), ref_labels
        )
    if not _supported(source, metric) and source != "dask":
        return  # the in-memory model serves its own namespace (and Dask), not this one
    # a streamed fit's model lives on the device it streamed to: its passes take arrays there
    Xa = _to_source("torch", X)[0] if source == "streamed" else Xs
    np.testing.assert_array_equal(_host(est.predict(Xa)), _host(ref.predict(X)))
    np.testing.assert_allclose(_host(est.transform(Xa)), _host(ref.transform(X)), **tol)
    np.testing.assert_allclose(est.score(Xa), ref.score(X), **tol)


@pytest.fixture(scope="module")
def dask_scheduler():
    """Dask runs on its synchronous scheduler in this module (deterministic, no workers)."""
    if importlib.util.find_spec("dask") is None:
        yield None
        return
    import dask

    with dask.config.set(scheduler="synchronous"):
        yield "synchronous"


def test_dask_applies_the_fitted_metric():
    """The defect of issue 18: Dask ``transform``/``predict`` of a cosine or Manhattan model
    ran Euclidean blocks (the metric was left out of the block options)."""
    _needs("dask")
    import dask.array as da

    X, _, _ = _data("far")
    X = X - 1e6 + np.random.default_rng(5).normal(size=X.shape)
    for metric in ("cosine", "manhattan"):
        km = KMeans(4, metric=metric, random_state=0).fit(X)
        Xd = da.from_array(X, chunks=(20, -1))
        np.testing.assert_allclose(_host(km.transform(Xd)), km.transform(X), rtol=1e-12)
        np.testing.assert_array_equal(_host(km.predict(Xd)), km.predict(X))
        np.testing.assert_allclose(km.score(Xd), km.score(X), rtol=1e-12)


@pytest.mark.parametrize("scale", [3e37, 1e-40])
def test_batched_edges_of_float32(scale):
    """The defect of issue 18: batched k-means on float32 data near 3.4e38 or subnormal gave
    non-finite / NaN centres (the batched frame copied the scale rule without its clamp)."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(3, 60, 2)) * 3 * scale).astype(np.float32)
    est = BatchedKMeans(3, random_state=[0, 1, 2]).fit(X)
    C = _host(est.cluster_centers_)
    assert np.isfinite(C).all() and np.isfinite(_host(est.inertia_)).all()
    for b in range(3):
        ref = KMeans(3, random_state=b).fit(X[b])
        np.testing.assert_array_equal(_host(est.labels_)[b], _host(ref.labels_))
        np.testing.assert_allclose(C[b], ref.cluster_centers_, rtol=1e-5)


def test_batched_transform_and_score_serve_problems():
    """The defect of issue 18: ``BatchedKMeans.transform``/``score`` raised 'Expected 2D
    array, got 3D array'; they serve (B, n, d) problem by problem, with masks."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2, 40, 3))
    mask = np.ones((2, 40), dtype=bool)
    mask[1, 30:] = False
    est = BatchedKMeans(3, random_state=[4, 5]).fit(X, mask=mask)
    T, S = est.transform(X, mask=mask), est.score(X, mask=mask)
    assert T.shape == (2, 40, 3) and S.shape == (2,)
    assert np.isnan(T[1, 30:]).all() and np.isfinite(T[:, :30]).all()
    for b, n in ((0, 40), (1, 30)):
        ref = KMeans(3, random_state=[4, 5][b]).fit(X[b, :n])
        np.testing.assert_allclose(T[b, :n], ref.transform(X[b, :n]), rtol=1e-10)
        np.testing.assert_allclose(S[b], ref.score(X[b, :n]), rtol=1e-10)
    np.testing.assert_allclose(est.fit_transform(X, mask=mask)[:, :30], T[:, :30])
