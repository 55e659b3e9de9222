"""JAX specifics: the jitted kernel set is chosen and compiles once per shape, JAX's default
32-bit mode (the backend fixture runs with ``jax_enable_x64``), the fused k-means++ step
draws what the step-by-step loop draws, the clear error inside ``jax.jit``/``jax.vmap``, and
the functional :func:`kmeans_xp.jax.lloyd` under both."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = pytest.importorskip("jax.numpy")

import kmeans_xp
from kmeans_xp import _kernels
from kmeans_xp._kernels import _jax as J


def _blobs(n=3000, d=5, k=4, seed=0, dtype="float32", offset=0.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 6
    X = centers[rng.integers(0, k, n)] + rng.normal(size=(n, d)) + offset
    return X.astype(dtype)


def test_the_jax_set_is_chosen_and_results_stay_jax_arrays():
    X = jnp.asarray(_blobs())
    sel = _kernels.select(jnp, jax.devices("cpu")[0], jnp.float32)
    assert sel.name == "jax"
    km = kmeans_xp.KMeans(4, random_state=0).fit(X)
    for a in (km.labels_, km.cluster_centers_, km.predict(X), km.transform(X)):
        assert isinstance(a, jax.Array)
        assert a.devices() == X.devices()


def test_a_second_fit_of_the_same_shape_compiles_nothing():
    X = jnp.asarray(_blobs(seed=1))
    kmeans_xp.KMeans(4, random_state=0, n_init=1).fit(X)
    sizes = [f._cache_size() for f in (J._lloyd, J._kpp_all, J._assign, J._frame_moments)]
    X2 = jnp.asarray(_blobs(seed=2))  # same shape, other values
    kmeans_xp.KMeans(4, random_state=3, n_init=1).fit(X2)
    assert [f._cache_size() for f in (J._lloyd, J._kpp_all, J._assign, J._frame_moments)] == sizes
    assert min(sizes) >= 1


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("offset", [0.0, 40.0])
def test_passes_equal_the_reference_set(x64, offset):
    """The jitted passes equal the pure-standard set within rounding, in JAX's default
    32-bit mode (no float64: float32 accumulators, int32 labels) and with x64."""
    from kmeans_xp._data import ChunkedData

    with jax.enable_x64(x64):
        X = jnp.asarray(_blobs(n=1003, d=6, k=7, offset=offset, seed=4))
        w = jnp.asarray(np.random.default_rng(5).uniform(0.1, 2, 1003).astype("float32"))
        dev = jax.devices("cpu")[0]
        out = {}
        for name in ("reference", "jax"):
            kern = (_kernels.ReferenceKernels if name == "reference" else J.JaxKernels)(
                jnp, dev, jnp.float32
            )
            data = ChunkedData(
                X, xp=jnp, dtype=jnp.float32, weights=w, n_clusters=7, chunk_size=97, kernels=kern
            )
            data.prepare("X")
            C = data.take_rows(jnp.asarray([0, 5, 9, 100, 200, 300, 400]))
            lab, sums, counts, inertia = kern.lloyd_pass(data, C, need_inertia=True)
            closest = kern.kpp_update(data, None, C[:1])
            out[name] = {
                "shift": None if data.shift is None else np.asarray(data.shift),
                "labels": np.asarray(lab),
                "sums": np.asarray(sums),
                "counts": np.asarray(counts),
                "inertia": float(inertia),
                "assign": np.asarray(kern.assign(data, C)[1]),
                "li": float(kern.labels_inertia(data, C)[1]),
                "ifl": float(kern.inertia_for_labels(data, C, lab)),
                "sda": np.asarray(kern.sq_dist_to_assigned(data, C, lab)),
                "sqd": np.asarray(kern.sq_distances(data, C)),
                "pots": np.asarray(kern.kpp_potentials(data, closest, C[1:4])),
                "closest": np.asarray(closest),
                "eq": bool(kern.labels_equal(lab, lab)),
                "nd": kern.n_distinct(lab, 7),
            }
            assert isinstance(lab, jax.Array)
            assert lab.dtype == (jnp.int64 if x64 else jnp.int32)
    ref, got = out["reference"], out["jax"]
    assert (ref["shift"] is None) == (offset == 0.0)
    for key, val in ref.items():
        if key in ("labels", "eq", "nd"):
            np.testing.assert_array_equal(got[key], val, err_msg=key)
        elif key == "shift":
            if val is not None:
                np.testing.assert_allclose(got[key], val, rtol=1e-6, err_msg=key)
        else:
            np.testing.assert_allclose(got[key], val, rtol=2e-5, atol=1e-3, err_msg=key)


@pytest.mark.parametrize("d", [3, 40])  # the transposed layout (d <= 32) and the product
def test_the_fused_kpp_steps_draw_what_the_loop_draws(monkeypatch, d):
    """The jitted k-means++ (``kpp_steps``: every step in one ``lax.scan``) picks the same
    rows as the solver's step-by-step loop over the reference passes, same seed (float64,
    x64 mode), weighted, with duplicated rows (zero potential) among the data."""
    with jax.enable_x64(True):
        Xn = _blobs(n=4000, d=d, k=9, seed=6, dtype="float64")
        Xn[3000:3400] = Xn[0]  # 400 copies of one row: once chosen, zero weight in the draws
        X = jnp.asarray(Xn)
        w = jnp.asarray(np.random.default_rng(7).uniform(0.5, 2, 4000))
        assert (d <= J._T_MAX_D) == (d == 3)
        fused = np.asarray(kmeans_xp.kmeans_plusplus(X, 9, sample_weight=w, random_state=0)[1])
        monkeypatch.setenv("KMEANS_XP_KERNELS", "reference")
        loop = np.asarray(kmeans_xp.kmeans_plusplus(X, 9, sample_weight=w, random_state=0)[1])
    np.testing.assert_array_equal(fused, loop)
    assert len(set(fused.tolist())) == 9


@pytest.mark.parametrize("a", [1, 2, 5, 64, 100, 1000])
def test_batched_groups_have_few_power_of_two_sizes(a):
    """The batched passes' groups (``_pow2_groups``): every active problem once, in order,
    sizes powers of two within the budget's cap, so at most log2(cap) + 1 shapes compile
    however the active set shrinks."""
    cap = 48
    groups = J._pow2_groups(a, cap)
    assert [s for s, _ in groups] == [0] + [e for _, e in groups[:-1]] and groups[-1][1] == a
    sizes = {e - s for s, e in groups}
    assert all(g & (g - 1) == 0 and g <= cap for g in sizes)
    shapes = {e - s for b in range(1, a + 1) for s, e in J._pow2_groups(b, cap)}
    assert len(shapes) <= 6  # 1, 2, 4, 8, 16, 32


def test_the_two_level_draw_is_searchsorted_on_the_running_sum():
    """``_draw`` (block sums, then one block's running sum) finds what ``searchsorted(
    cumsum(w), t)`` finds, and never a row of zero weight, targets past the total included."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        for n in (1, 7, 1024, 1025, 5000):
            w = rng.uniform(size=n)
            w[rng.uniform(size=n) < 0.3] = 0.0  # zero-weight rows, some whole runs of them
            w[n // 2 :] = 0.0 if n > 2 else w[n // 2 :]
            w[0] = max(w[0], 0.1)
            cum = np.cumsum(w)
            t = np.concatenate([rng.uniform(size=50) * cum[-1], [0.0, cum[-1], cum[-1] * 1.01]])
            got = np.asarray(J._draw(jnp.asarray(w), jnp.asarray(t)))
            want = np.minimum(np.searchsorted(cum, t, side="left"), n - 1)
            np.testing.assert_array_equal(got[:-1], want[:-1], err_msg=str(n))
            assert (w[got] > 0).all(), n  # past the total too: the last row of weight


def test_a_fit_in_32_bit_mode_equals_the_numpy_fit():
    with jax.enable_x64(False):
        Xn = _blobs(n=5000, d=4, k=5, seed=8)
        km = kmeans_xp.KMeans(5, random_state=0).fit(jnp.asarray(Xn))
        assert km.labels_.dtype == jnp.int32
    ref = kmeans_xp.KMeans(5, random_state=0).fit(Xn)
    np.testing.assert_array_equal(np.asarray(km.labels_), ref.labels_)
    np.testing.assert_allclose(
        np.asarray(km.cluster_centers_), ref.cluster_centers_, rtol=1e-5, atol=1e-5
    )
    assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)


@pytest.mark.parametrize("transform", ["jit", "vmap"])
@pytest.mark.parametrize("call", ["fit", "predict", "k_means", "init", "sample_weight"])
def test_inside_jit_or_vmap_a_clear_type_error(transform, call):
    Xn = _blobs(n=200)
    fitted = kmeans_xp.KMeans(4, random_state=0, n_init=1).fit(Xn)
    X = jnp.asarray(Xn)

    def f(x):
        if call == "fit":
            return kmeans_xp.KMeans(4, random_state=0).fit(x).cluster_centers_
        if call == "predict":
            return fitted.predict(x)
        if call == "k_means":
            return kmeans_xp.k_means(x, 4, random_state=0)[0]
        if call == "init":  # traced initial centres, concrete data
            return kmeans_xp.KMeans(4, init=x[:4], n_init=1).fit(Xn).cluster_centers_
        return kmeans_xp.KMeans(4).fit(Xn, sample_weight=x[:, 0] ** 2).cluster_centers_

    g = jax.jit(f) if transform == "jit" else jax.vmap(f, in_axes=0)
    arg = X if transform == "jit" else X[None].repeat(2, axis=0)
    with pytest.raises(TypeError, match=r"JAX tracer.*jax\.jit, jax\.vmap.*kmeans_xp\.jax"):
        g(arg)


def test_functional_lloyd_under_jit_equals_kmeans():
    from kmeans_xp.jax import lloyd

    Xn = _blobs(n=2000, d=3, k=4, seed=9)
    C0 = Xn[[0, 10, 20, 30]]
    C, labels, inertia, n_iter = jax.jit(lloyd, static_argnums=2)(
        jnp.asarray(Xn), jnp.asarray(C0), 100, 1e-4
    )
    ref = kmeans_xp.KMeans(4, init=C0, n_init=1, max_iter=100, tol=1e-4).fit(Xn)
    np.testing.assert_array_equal(np.asarray(labels), ref.labels_)
    np.testing.assert_allclose(np.asarray(C), ref.cluster_centers_, rtol=1e-5, atol=1e-5)
    assert float(inertia) == pytest.approx(ref.inertia_, rel=1e-5)
    assert int(n_iter) == ref.n_iter_


def test_functional_lloyd_under_vmap_solves_each_problem():
    from kmeans_xp.jax import lloyd

    Xs = np.stack([_blobs(n=800, d=2, k=3, seed=s) for s in (10, 11, 12)])
    C0s = Xs[:, [0, 1, 2]]
    Cs, labels, inertia, n_iter = jax.vmap(lloyd, in_axes=(0, 0, None, None))(
        jnp.asarray(Xs), jnp.asarray(C0s), 50, 0.0
    )
    for b in range(3):
        ref = kmeans_xp.KMeans(3, init=C0s[b], n_init=1, max_iter=50, tol=0.0).fit(Xs[b])
        np.testing.assert_array_equal(np.asarray(labels[b]), ref.labels_)
        assert int(n_iter[b]) == ref.n_iter_
        assert float(inertia[b]) == pytest.approx(ref.inertia_, rel=1e-5)
        np.testing.assert_allclose(np.asarray(Cs[b]), ref.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_the_fused_centre_update_relocates_an_empty_cluster_as_numpy_does():
    """``lloyd_update`` on JAX: an empty cluster (a far initial centre) gives code -2 and
    the solver's relocation, as on NumPy; the iterations and labels agree."""
    Xn = _blobs(n=1000, d=2, k=3, seed=13)
    C0 = Xn[:3].copy()
    C0[2] = 1e3  # nearest to no row
    km = kmeans_xp.KMeans(3, init=jnp.asarray(C0), n_init=1).fit(jnp.asarray(Xn))
    ref = kmeans_xp.KMeans(3, init=C0, n_init=1).fit(Xn)
    assert len(np.unique(np.asarray(km.labels_))) == 3
    np.testing.assert_array_equal(np.asarray(km.labels_), ref.labels_)
    assert km.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(
        np.asarray(km.cluster_centers_), ref.cluster_centers_, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("metric, fused", [("euclidean", True), ("cosine", False)])
def test_a_euclidean_fit_takes_the_fused_centre_update(monkeypatch, metric, fused):
    """The jitted centre update serves every euclidean iteration (cosine's unit means take
    the solver's path): a fit whose metric the kernel set misreads would silently run the
    slow path."""
    from kmeans_xp._kernels._jax import JaxKernels

    served = []
    real = JaxKernels.lloyd_update

    def spy(self, *a, **kw):
        out = real(self, *a, **kw)
        served.append(out is not None)
        return out

    monkeypatch.setattr(JaxKernels, "lloyd_update", spy)
    Xn = _blobs(n=600, d=3, k=3, seed=14)
    kmeans_xp.KMeans(3, n_init=1, random_state=0, metric=metric).fit(jnp.asarray(Xn))
    assert all(s == fused for s in served) and (served or not fused)


def test_a_cosine_fit_runs_the_jitted_passes_and_equals_the_reference(monkeypatch):
    """The cosine frame (rows scaled to unit length) is applied inside the jitted passes:
    no pass falls back to the reference set's chunk loop, and the fit equals the reference
    set's fit (same seed, float64)."""
    from kmeans_xp._kernels._reference import ReferenceKernels

    with jax.enable_x64(True):
        Xn = _blobs(n=3000, d=4, k=5, seed=11, dtype="float64")
        Xn[:10] = 0.0  # rows of zeros stay zero
        X = jnp.asarray(Xn)
        with monkeypatch.context() as m:
            for name in ("lloyd_pass", "labels_inertia", "kpp_update", "kpp_potentials"):

                def fail(*a, _n=name, **k):
                    raise AssertionError(f"{_n} fell back to the reference chunk loop")

                m.setattr(ReferenceKernels, name, fail)
            km = kmeans_xp.KMeans(5, metric="cosine", random_state=0, n_init=2).fit(X)
        monkeypatch.setenv("KMEANS_XP_KERNELS", "reference")
        ref = kmeans_xp.KMeans(5, metric="cosine", random_state=0, n_init=2).fit(X)
    np.testing.assert_array_equal(np.asarray(km.labels_), np.asarray(ref.labels_))
    np.testing.assert_allclose(
        np.asarray(km.cluster_centers_), np.asarray(ref.cluster_centers_), rtol=1e-9, atol=1e-12
    )
    assert float(km.inertia_) == pytest.approx(float(ref.inertia_), rel=1e-9)
