"""The estimator and functions as users meet them, on every backend."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from kmeans_xp import ConvergenceWarning, KMeans, NotFittedError, k_means, kmeans_plusplus


def _blobs(n=600, d=4, k=4, seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(k, d))
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(dtype)


def test_fitted_attributes_live_where_the_data_lives(backend, dtype_name):
    X = _blobs(dtype=dtype_name)
    Xb = backend.asarray(X)
    km = KMeans(4, random_state=0).fit(Xb)
    dt = backend.dtype(dtype_name)
    backend.assert_native(km.cluster_centers_, dt)
    backend.assert_native(km.labels_)
    assert tuple(km.cluster_centers_.shape) == (4, 4)
    assert tuple(km.labels_.shape) == (600,)
    assert isinstance(km.inertia_, float) and km.inertia_ > 0
    assert isinstance(km.n_iter_, int) and 1 <= km.n_iter_ <= 300
    assert km.n_features_in_ == 4

    labels = km.predict(Xb)
    backend.assert_native(labels)
    np.testing.assert_array_equal(backend.to_numpy(labels), backend.to_numpy(km.labels_))
    D = km.transform(Xb)
    backend.assert_native(D, dt)
    assert tuple(D.shape) == (600, 4)
    Dn = backend.to_numpy(D).astype(np.float64)
    C = backend.to_numpy(km.cluster_centers_).astype(np.float64)
    expect = np.sqrt(((X.astype(np.float64)[:, None] - C[None]) ** 2).sum(-1))
    tol = 1e-8 if dtype_name == "float64" else 1e-3
    np.testing.assert_allclose(Dn, expect, rtol=tol, atol=tol)
    np.testing.assert_array_equal(Dn.argmin(1), backend.to_numpy(labels))
    assert km.score(Xb) == pytest.approx(-km.inertia_, rel=1e-5)


def test_inertia_is_the_within_cluster_sum_of_squares(backend, dtype_name):
    X = _blobs(dtype=dtype_name)
    w = np.random.default_rng(2).uniform(0.2, 2.0, X.shape[0]).astype(dtype_name)
    km = KMeans(4, random_state=1).fit(backend.asarray(X), sample_weight=backend.asarray(w))
    C = backend.to_numpy(km.cluster_centers_).astype(np.float64)
    lab = backend.to_numpy(km.labels_)
    expect = (w * ((X.astype(np.float64) - C[lab]) ** 2).sum(1)).sum()
    assert km.inertia_ == pytest.approx(expect, rel=1e-5 if dtype_name == "float32" else 1e-10)


def test_a_scalar_sample_weight_is_that_weight_for_every_sample(backend):
    """scikit-learn's rule: a scalar weight is the weight of every sample, so it scales
    inertia_ and score (the clustering does not change); it used to be ignored."""
    from kmeans_xp import MiniBatchKMeans, k_means

    X = _blobs()
    Xb = backend.asarray(X)
    full = backend.asarray(np.full(X.shape[0], 2.5))
    for est in (KMeans(4, random_state=0), MiniBatchKMeans(4, random_state=0, n_init=1)):
        a = clone_of(est).fit(Xb, sample_weight=2.5)
        b = clone_of(est).fit(Xb, sample_weight=full)
        plain = clone_of(est).fit(Xb)
        np.testing.assert_array_equal(backend.to_numpy(a.labels_), backend.to_numpy(b.labels_))
        assert a.inertia_ == pytest.approx(b.inertia_, rel=1e-12)
        assert a.inertia_ == pytest.approx(2.5 * plain.inertia_, rel=1e-9)
        assert a.score(Xb, sample_weight=2.5) == pytest.approx(2.5 * plain.score(Xb), rel=1e-9)
    inertia = k_means(Xb, 4, sample_weight=2.5, random_state=0)[2]
    assert inertia == pytest.approx(2.5 * k_means(Xb, 4, random_state=0)[2], rel=1e-9)
    assert KMeans(4, random_state=0).fit(Xb, sample_weight=1).inertia_ == \
        KMeans(4, random_state=0).fit(Xb).inertia_


def clone_of(est):
    return type(est)(**est.get_params())


def test_fit_predict_fit_transform_and_functions(backend):
    X = backend.asarray(_blobs())
    a = KMeans(4, random_state=3)
    labels = a.fit_predict(X)
    backend.assert_native(labels)
    D = KMeans(4, random_state=3).fit_transform(X)
    np.testing.assert_allclose(backend.to_numpy(D), backend.to_numpy(a.transform(X)))
    centers, labels2, inertia, n_iter = k_means(X, 4, random_state=3, return_n_iter=True)
    backend.assert_native(centers)
    np.testing.assert_array_equal(backend.to_numpy(labels2), backend.to_numpy(labels))
    assert inertia == pytest.approx(a.inertia_) and n_iter == a.n_iter_
    assert len(k_means(X, 4, random_state=3)) == 3
    c, idx = kmeans_plusplus(X, 4, random_state=0)
    backend.assert_native(c)
    np.testing.assert_array_equal(backend.to_numpy(c),
                                  backend.to_numpy(X)[backend.to_numpy(idx)])


def test_integer_and_bool_input_become_the_default_float(backend):
    X = np.random.default_rng(0).integers(0, 20, size=(200, 3))
    km = KMeans(3, random_state=0).fit(backend.asarray(X))
    from array_api_compat import array_namespace

    xp = array_namespace(backend.asarray(np.zeros(1)))
    default = xp.__array_namespace_info__().default_dtypes(device=backend.device)["real floating"]
    assert km.cluster_centers_.dtype == default
    kb = KMeans(2, random_state=0).fit(backend.asarray(X > 10))
    assert kb.cluster_centers_.dtype == default


def test_init_kinds(backend):
    X = _blobs()
    Xb = backend.asarray(X)
    for init in ("k-means++", "random", backend.asarray(X[:4]), X[:4], X[:4].tolist(),
                 lambda data, k, random_state: data[:k, ...]):
        km = KMeans(4, init=init, random_state=0).fit(Xb)
        assert np.isfinite(backend.to_numpy(km.cluster_centers_)).all()
    # the callable gets X as given and the generator
    seen = {}

    def init_fn(data, k, random_state):
        seen["type"], seen["rng"] = type(data), random_state
        return data[:k, ...]

    KMeans(4, init=init_fn, n_init=1, random_state=0).fit(Xb)
    assert seen["type"] is type(Xb)
    assert isinstance(seen["rng"], np.random.RandomState)


def test_n_init_keeps_the_best_run(backend):
    X = backend.asarray(_blobs(k=6, seed=4))
    best = KMeans(6, init="random", n_init=5, random_state=0).fit(X)
    rng = np.random.RandomState(0)
    singles = []
    for _ in range(5):  # the same generator, consumed in the same order
        singles.append(KMeans(6, init="random", n_init=1, random_state=rng).fit(X).inertia_)
    assert best.inertia_ == pytest.approx(min(singles), rel=1e-12)
    assert len(set(np.round(singles, 6))) > 1  # the runs really differed


def test_n_init_auto():
    from kmeans_xp._validation import resolve_n_init

    assert resolve_n_init("auto", "k-means++") == 1
    assert resolve_n_init("auto", "k-means||") == 1
    assert resolve_n_init("auto", "array") == 1
    assert resolve_n_init("auto", "random") == 10
    assert resolve_n_init("auto", "callable") == 10
    assert resolve_n_init("auto", "random", default_n_init=3) == 3
    assert resolve_n_init(4, "k-means++") == 4
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed"):
        KMeans(2, init=np.zeros((2, 2)) + [[0], [1]], n_init=3).fit(_blobs(d=2))


def test_random_state_generator_and_reproducibility(backend):
    X = backend.asarray(_blobs())
    a = KMeans(4, random_state=np.random.default_rng(5)).fit(X)
    b = KMeans(4, random_state=np.random.default_rng(5)).fit(X)
    np.testing.assert_array_equal(backend.to_numpy(a.cluster_centers_),
                                  backend.to_numpy(b.cluster_centers_))
    c = KMeans(4, random_state=11).fit(X)
    d = KMeans(4, random_state=11).fit(X)
    np.testing.assert_array_equal(backend.to_numpy(c.labels_), backend.to_numpy(d.labels_))


def test_verbose_prints_inertia_and_convergence(capsys):
    KMeans(3, random_state=0, verbose=1).fit(_blobs(k=3))
    out = capsys.readouterr().out
    assert "Initialization complete" in out
    assert "Iteration 0, inertia" in out
    assert "Converged at iteration" in out


def test_strict_convergence_and_tol_stop_label_consistency():
    X = _blobs(n=2000, k=5, seed=9)
    strict = KMeans(5, random_state=0, tol=0).fit(X)
    np.testing.assert_array_equal(strict.predict(X), strict.labels_)
    capped = KMeans(5, random_state=0, max_iter=1).fit(X)
    assert capped.n_iter_ == 1
    np.testing.assert_array_equal(capped.predict(X), capped.labels_)


def _last_convergence_line(out: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith("Converged at iteration")]
    assert len(lines) == 1, out
    return lines[0]


def test_tol_stop_really_stops_by_tol_then_relabels(backend, capsys):
    """A run stopped by ``tol`` (not by unchanged labels): the labels are recomputed
    against the returned centres, so ``predict(X) == labels_``."""
    X = np.random.default_rng(4).normal(size=(3000, 2))  # one blob: centres creep
    Xb = backend.asarray(X)
    km = KMeans(8, random_state=0, tol=1e-2, verbose=1).fit(Xb)
    line = _last_convergence_line(capsys.readouterr().out)
    assert "within tolerance" in line, line  # the test is about a tol stop
    i = int(line.split()[3].rstrip(":"))
    assert km.n_iter_ == i + 1 >= 3
    labels = backend.to_numpy(km.labels_)
    np.testing.assert_array_equal(backend.to_numpy(km.predict(Xb)), labels)
    # not vacuous: the labelling of the pass that stopped (against the centres before the
    # last update, those of a run capped at i iterations) differs from the final one
    before = KMeans(8, random_state=0, tol=0, max_iter=i).fit(Xb)
    assert (backend.to_numpy(before.predict(Xb)) != labels).any()
    # and the stop came early: a strict run goes further from the same start
    assert KMeans(8, random_state=0, tol=0).fit(Xb).n_iter_ > km.n_iter_


def test_strict_convergence_is_detected(backend, capsys):
    """Unchanged labels must stop the run as strict convergence, at scikit-learn's iteration.

    ``tol < 0`` (where only strict convergence could stop a run) is rejected by
    scikit-learn's parameter validation and by ours, so the closest setting is ``tol=0``.
    There a run whose label comparison never fires still stops at the same iteration,
    through a zero centre shift, but reports "within tolerance": the message is what tells
    the two apart, so it is checked, with the iteration, against scikit-learn's own.
    """
    X = _blobs(n=1500, k=5, seed=12)
    init = X[[0, 300, 600, 900, 1200]]
    km = KMeans(5, init=backend.asarray(init), tol=0, verbose=1).fit(backend.asarray(X))
    line = _last_convergence_line(capsys.readouterr().out)
    assert line.endswith("strict convergence."), line
    i = int(line.split()[3].rstrip(":"))
    assert km.n_iter_ == i + 1 >= 2
    sklearn = pytest.importorskip("sklearn.cluster")
    ref = sklearn.KMeans(5, init=init, n_init=1, tol=0, verbose=1).fit(X)
    ref_line = _last_convergence_line(capsys.readouterr().out)
    assert ref_line == line and ref.n_iter_ == km.n_iter_


def test_torch_meta_tensor_is_a_clear_value_error():
    torch = pytest.importorskip("torch")
    meta = torch.empty((20, 3), device="meta")
    with pytest.raises(ValueError, match=r"X is a tensor on torch's 'meta' device"):
        KMeans(2).fit(meta)
    km = KMeans(2, random_state=0).fit(_blobs(n=20, d=3, k=2))
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(ValueError, match="'meta' device"):
            method(meta)
    with pytest.raises(ValueError, match="'meta' device"):
        kmeans_plusplus(meta, 2)


def test_degenerate_input_warns_and_stays_finite(backend):
    X = backend.asarray(np.ones((10, 2)))
    with pytest.warns(ConvergenceWarning, match="Number of distinct clusters"):
        km = KMeans(3, random_state=0).fit(X)
    C = backend.to_numpy(km.cluster_centers_)
    assert np.isfinite(C).all() and np.allclose(C, 1.0)
    assert km.inertia_ == 0.0
    X2 = backend.asarray(np.repeat(np.eye(2), 5, axis=0))  # 2 distinct points, k = 3
    with pytest.warns(ConvergenceWarning):
        km2 = KMeans(3, random_state=0).fit(X2)
    assert np.isfinite(backend.to_numpy(km2.cluster_centers_)).all()


def test_single_cluster_and_k_equals_n(backend):
    X = _blobs(n=12)
    km = KMeans(1, random_state=0).fit(backend.asarray(X))
    np.testing.assert_allclose(backend.to_numpy(km.cluster_centers_)[0], X.mean(0), rtol=1e-10)
    kn = KMeans(12, random_state=0).fit(backend.asarray(X))
    assert kn.inertia_ == pytest.approx(0.0, abs=1e-12)
    assert sorted(backend.to_numpy(kn.labels_).tolist()) == list(range(12))


def test_inputs_are_never_modified(backend):
    """fit, predict, transform and score leave X, weights and init untouched, on data far
    from the origin (so the working frame centres every chunk)."""
    X = _blobs() + 1000.0
    assert (X.mean(0) ** 2).sum() > X.var(0).sum()  # the centring branch is taken
    w = np.linspace(0.5, 1.5, X.shape[0])
    init = X[:4].copy()
    X_ref, w_ref, init_ref = X.copy(), w.copy(), init.copy()
    Xb, wb, ib = backend.asarray(X), backend.asarray(w), backend.asarray(init)
    km = KMeans(4, init=ib).fit(Xb, sample_weight=wb)
    km.predict(Xb)
    km.transform(Xb)
    km.score(Xb, sample_weight=wb)
    KMeans(4, random_state=0).fit(Xb, sample_weight=wb)  # k-means++ too
    # against copies: with NumPy, Xb *is* X (a comparison with X could not fail)
    np.testing.assert_array_equal(backend.to_numpy(Xb), X_ref)
    np.testing.assert_array_equal(backend.to_numpy(wb), w_ref)
    np.testing.assert_array_equal(backend.to_numpy(ib), init_ref)


def test_read_only_fortran_and_strided_numpy_arrays():
    X = _blobs()
    ref = KMeans(4, random_state=0).fit(X)
    ro = X.copy()
    ro.setflags(write=False)
    for variant in (ro, np.asfortranarray(X), np.ascontiguousarray(np.repeat(X, 2, 1))[:, ::2]):
        km = KMeans(4, random_state=0).fit(variant)
        np.testing.assert_array_equal(km.labels_, ref.labels_)


def test_torch_requires_grad_and_non_contiguous():
    torch = pytest.importorskip("torch")
    X = _blobs()
    t = torch.tensor(X, requires_grad=True)
    km = KMeans(4, random_state=0).fit(t)
    assert not km.cluster_centers_.requires_grad and km.cluster_centers_.grad_fn is None
    ref = KMeans(4, random_state=0).fit(X)
    np.testing.assert_array_equal(km.labels_.numpy(), ref.labels_)
    wide = torch.tensor(np.repeat(X, 2, 1))[:, ::2]
    assert not wide.is_contiguous()
    np.testing.assert_array_equal(KMeans(4, random_state=0).fit(wide).labels_.numpy(), ref.labels_)
    np.testing.assert_array_equal(
        KMeans(4, random_state=0).fit(torch.tensor(X.T.copy()).T).labels_.numpy(), ref.labels_)


def test_lists_and_dataframes():
    pd = pytest.importorskip("pandas")
    X = _blobs()
    ref = KMeans(4, random_state=0).fit(X)
    km = KMeans(4, random_state=0).fit(X.tolist())
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    kd = KMeans(4, random_state=0).fit(df)
    assert list(kd.feature_names_in_) == ["a", "b", "c", "d"]
    np.testing.assert_array_equal(kd.predict(df), ref.labels_)
    with pytest.raises(ValueError, match="feature names"):
        kd.predict(df.rename(columns={"a": "z"}))
    assert list(kd.get_feature_names_out()) == [f"kmeans{i}" for i in range(4)]


def test_chunk_size_does_not_change_the_result(backend):
    X = backend.asarray(_blobs(n=1000))
    ref = KMeans(4, random_state=0).fit(X)
    for chunk in (1, 7, 128, 999, 5000):
        km = KMeans(4, random_state=0, chunk_size=chunk).fit(X)
        np.testing.assert_array_equal(backend.to_numpy(km.labels_), backend.to_numpy(ref.labels_))
        assert km.n_iter_ == ref.n_iter_


def test_not_fitted():
    km = KMeans(3)
    for method in (km.predict, km.transform, km.score):
        with pytest.raises(NotFittedError, match="not fitted yet"):
            method(_blobs())
    assert issubclass(NotFittedError, ValueError)


def test_model_and_data_on_different_backends_is_an_error():
    torch = pytest.importorskip("torch")
    X = _blobs()
    km = KMeans(3, random_state=0).fit(torch.asarray(X))
    with pytest.raises(TypeError, match="fitted on torch"):
        km.predict(X)
    # lists and other array-likes go where the model is
    assert isinstance(km.predict(X.tolist()), torch.Tensor)


def test_get_set_params_clone_pipeline_and_repr():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    km = KMeans(5, init="random", random_state=1, chunk_size=64)
    params = km.get_params()
    assert params["n_clusters"] == 5 and params["chunk_size"] == 64
    c = clone(km)
    assert c.get_params() == params and c is not km
    km.set_params(n_clusters=3, tol=0.0)
    assert km.n_clusters == 3 and km.tol == 0.0
    with pytest.raises(ValueError, match="Invalid parameter 'bogus'"):
        km.set_params(bogus=1)
    assert repr(KMeans(3, random_state=0)) == "KMeans(n_clusters=3, random_state=0)"
    pipe = make_pipeline(StandardScaler(), KMeans(4, random_state=0)).fit(_blobs())
    assert pipe.predict(_blobs()).shape == (600,)
    assert sklearn.base.is_clusterer(KMeans())
    assert sklearn.utils.validation.check_is_fitted(pipe[-1]) is None


def test_import_does_not_import_torch_or_cupy():
    code = ("import sys, kmeans_xp; import numpy as np; "
            "kmeans_xp.KMeans(2, random_state=0).fit(np.arange(8.0).reshape(4, 2)); "
            "bad = [m for m in ('torch', 'cupy', 'jax', 'dask', 'sklearn') if m in sys.modules]; "
            "print(bad); assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + res.stdout


def test_float64_free_device_works():
    """array-api-strict's 'no_float64' device stands for Apple MPS-like devices."""
    xs = pytest.importorskip("array_api_strict")
    dev = xs.Device("no_float64")
    X = xs.asarray(_blobs(dtype="float32"), device=dev)
    w = xs.asarray(np.linspace(0.5, 1.5, 600).astype(np.float32), device=dev)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        km = KMeans(4, random_state=0).fit(X, sample_weight=w)
    assert km.cluster_centers_.device == dev and km.cluster_centers_.dtype == xs.float32
    ref = KMeans(4, random_state=0).fit(_blobs(dtype="float32"),
                                         sample_weight=np.linspace(0.5, 1.5, 600)
                                         .astype(np.float32))
    from kmeans_xp._compat import to_numpy

    np.testing.assert_array_equal(to_numpy(km.labels_), ref.labels_)
