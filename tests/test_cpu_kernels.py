"""The fused CPU kernels (kmeans_xp._kernels._cpu) against a float64 NumPy reference.

The compiled kernels (skipped, with the reason, when numba is not installed) run with the
BLAS GEMM in both layouts and with the direct distance loop, whatever the size would
choose.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from kmeans_xp._kernels import _cpu

HAS_NUMBA = importlib.util.find_spec("numba") is not None
NO_NUMBA = "numba is not installed (pip install kmeans_xp[cpu]): compiled kernels not tested"

# distance modes: "gemm"/"direct" force the compiled kernel's choice; "gemm" runs the
# row-major GEMM (then transposed) and "gemm-kxm" the (k, m) one
VARIANTS = [
    pytest.param(mode, id=f"numba-{mode}", marks=pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA))
    for mode in ("gemm", "gemm-kxm", "direct")
]


@pytest.fixture(params=VARIANTS)
def impl(request, monkeypatch):
    """The compiled kernels in one distance mode."""
    mode = request.param
    if mode == "gemm":
        monkeypatch.setattr(_cpu, "GEMM_MIN_DK", 0)
        monkeypatch.setattr(_cpu, "ROWMAJOR_MAX_K", 2**62)
    elif mode == "gemm-kxm":
        monkeypatch.setattr(_cpu, "GEMM_MIN_DK", 0)
        monkeypatch.setattr(_cpu, "ROWMAJOR_MAX_K", 0)
    elif mode == "direct":
        monkeypatch.setattr(_cpu, "GEMM_MIN_DK", 2**62)
    return mode


# ----------------------------------------------------------------------------------------
# the reference: float64, written from the definitions
# ----------------------------------------------------------------------------------------
def frame64(X, shift, inv_scale):
    Xs = X.astype(np.float64) if X.dtype != np.uint16 else bf16_to_f64(X)
    Xt = Xs * inv_scale
    return Xt if shift is None else Xt - shift.astype(np.float64)


def bf16_to_f64(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def ref_dist(Xt, C):
    diff = Xt[:, None, :] - C.astype(np.float64)[None, :, :]
    return np.einsum("ijk,ijk->ij", diff, diff)


def ref_pass(X, C, w, shift, inv_scale):
    Xt = frame64(X, shift, inv_scale)
    D = ref_dist(Xt, C)
    labels = np.argmin(D, axis=1)  # NumPy: first index of the minimum
    w64 = np.ones(len(X)) if w is None else w.astype(np.float64)
    sums = np.zeros(C.shape)
    np.add.at(sums, labels, Xt * w64[:, None])
    counts = np.bincount(labels, weights=w64, minlength=C.shape[0])
    mins = D[np.arange(len(X)), labels]
    return labels, sums, counts, float(w64 @ mins), D


def tie_free_mask(D, rel):
    """Rows whose two nearest centres differ by more than ``rel`` of the distance scale."""
    if D.shape[1] < 2:
        return np.ones(D.shape[0], bool)
    two = np.sort(D, axis=1)[:, :2]
    return (two[:, 1] - two[:, 0]) > rel * (1.0 + two[:, 1])


def compute_dtype(dt):
    return np.float64 if dt == np.float64 else np.float32


def make(n, d, k, dtype=np.float32, offset=0.0, seed=0, weights=False):
    rng = np.random.default_rng(seed)
    cd = compute_dtype(dtype)
    protos = rng.normal(scale=3.0, size=(max(k, 1), d))
    X = protos[rng.integers(0, max(k, 1), n)] + rng.normal(size=(n, d)) + offset
    X = X.astype(dtype)
    C = (protos[:k] + rng.normal(scale=0.3, size=(k, d))).astype(cd)
    w = rng.uniform(0.2, 3.0, n).astype(cd) if weights else None
    return X, C, w


def tol(dtype):
    return dict(rtol=1e-5, atol=1e-4) if compute_dtype(dtype) == np.float32 else \
        dict(rtol=1e-11, atol=1e-9)


CASES = [  # (n, d, k): small d/k, n not a multiple of the block, n < block, k = 1, n = 1
    (1000, 5, 7), (1037, 16, 33), (300, 40, 130), (97, 3, 1), (1, 4, 3), (2, 6, 2),
]


# ----------------------------------------------------------------------------------------
# lloyd_pass
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,d,k", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_pass_matches_float64_reference(impl, n, d, k, dtype, weighted):
    X, C, w = make(n, d, k, dtype, seed=n + d + k, weights=weighted)
    labels, sums, counts, inertia = _cpu.lloyd_pass(X, C, w, None, 1.0, need_inertia=True)
    rl, rs, rc, ri, D = ref_pass(X, C, w, None, 1.0)
    assert labels.dtype == np.int64 and labels.shape == (n,)
    assert sums.dtype == compute_dtype(dtype) and counts.dtype == compute_dtype(dtype)
    ok = tie_free_mask(D, 1e-4)
    assert ok.mean() > 0.97  # the comparison below is not vacuous
    np.testing.assert_array_equal(labels[ok], rl[ok])
    # sums/counts of the labelling the kernel chose (near-ties may go either way in fp32)
    _, s2, c2, i2, _ = ref_pass_for_labels(X, C, w, None, 1.0, labels)
    scale = max(1.0, np.abs(s2).max())
    np.testing.assert_allclose(sums, s2, rtol=0, atol=tol(dtype)["rtol"] * scale * 10)
    np.testing.assert_allclose(counts, c2, **tol(dtype))
    assert inertia == pytest.approx(i2, rel=1e-5 if dtype != np.float64 else 1e-11)
    assert _cpu.lloyd_pass(X, C, w, None, 1.0)[3] is None


def ref_pass_for_labels(X, C, w, shift, inv_scale, labels):
    Xt = frame64(X, shift, inv_scale)
    w64 = np.ones(len(X)) if w is None else w.astype(np.float64)
    sums = np.zeros(C.shape)
    np.add.at(sums, labels, Xt * w64[:, None])
    counts = np.bincount(labels, weights=w64, minlength=C.shape[0])
    diff = Xt - C.astype(np.float64)[labels]
    return labels, sums, counts, float(w64 @ np.einsum("ij,ij->i", diff, diff)), None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_frame_is_applied_per_block(impl, dtype):
    """Data far from the origin, centred and scaled by the kernel (shift, inv_scale != 1)."""
    n, d, k = 1500, 12, 9
    X, _, w = make(n, d, k, np.float64, offset=300.0, seed=3, weights=True)
    X = X.astype(dtype)
    inv_scale = 0.25
    shift = (X.astype(np.float64).mean(axis=0) * inv_scale).astype(compute_dtype(dtype))
    Xt = frame64(X, shift, inv_scale)  # centres: rows in working coordinates
    C = Xt[np.random.default_rng(0).choice(n, k, replace=False)].astype(compute_dtype(dtype))
    X_before = X.copy()
    labels, sums, counts, inertia = _cpu.lloyd_pass(X, C, w, shift, inv_scale,
                                                    need_inertia=True)
    np.testing.assert_array_equal(X, X_before)  # the input is not modified
    rl, rs, rc, ri, D = ref_pass(X, C, w, shift, inv_scale)
    ok = tie_free_mask(D, 1e-4)
    assert ok.mean() > 0.97
    np.testing.assert_array_equal(labels[ok], rl[ok])
    _, s2, c2, i2, _ = ref_pass_for_labels(X, C, w, shift, inv_scale, labels)
    np.testing.assert_allclose(sums, s2, rtol=0, atol=1e-4 * np.abs(s2).max())
    np.testing.assert_allclose(counts, c2, **tol(dtype))
    assert inertia == pytest.approx(i2, rel=1e-5)
    # the frame matters: without it the answer is different
    l0 = _cpu.lloyd_pass(X, C, w, None, 1.0)[0]
    assert not np.array_equal(l0, labels)


def test_bfloat16_bits(impl):
    """uint16 storage is read as bfloat16 (bits << 16), computed in float32."""
    X32, C, _ = make(700, 8, 5, np.float32, seed=5)
    bits = (X32.view(np.uint32) >> 16).astype(np.uint16)  # truncation to bfloat16
    labels, sums, counts, _ = _cpu.lloyd_pass(bits, C, None, None, 1.0)
    rl, rs, rc, _, D = ref_pass(bits, C, None, None, 1.0)
    ok = tie_free_mask(D, 1e-4)
    np.testing.assert_array_equal(labels[ok], rl[ok])
    _, s2, c2, _, _ = ref_pass_for_labels(bits, C, None, None, 1.0, labels)
    np.testing.assert_allclose(sums, s2, rtol=0, atol=1e-4 * np.abs(s2).max())
    np.testing.assert_array_equal(counts, c2)


def test_exact_ties_take_the_lowest_index(impl):
    # duplicated centres: every distance to 1 equals the one to 3 bit for bit
    X, C, _ = make(800, 6, 5, np.float32, seed=8)
    C[3] = C[1]
    labels = _cpu.lloyd_pass(X, C, None, None, 1.0)[0]
    assert (labels == 1).any() and not (labels == 3).any()
    assert not (_cpu.assign(X, C, None, 1.0)[0] == 3).any()
    # exact geometric ties between distinct centres (small integers: exact arithmetic)
    X = np.array([[0, 0], [0, 0], [2, 1], [5, 5]], np.float32)
    C = np.array([[1, 0], [-1, 0], [0, 1], [0, -1], [5, 5]], np.float32)
    labels = _cpu.lloyd_pass(X, C, None, None, 1.0)[0]
    np.testing.assert_array_equal(labels, [0, 0, 0, 4])  # (2,1): 2 to c0 and 4 to c2
    X = np.array([[0, 0]], np.float32)
    C = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], np.float32)
    assert _cpu.assign(X, C, None, 1.0)[0].tolist() == [0]


def test_repeated_runs_are_bit_identical(impl):
    X, C, w = make(5003, 20, 40, np.float32, offset=50.0, seed=11, weights=True)
    shift = X.mean(axis=0).astype(np.float32)
    C = C + 50.0 - shift
    runs = [_cpu.lloyd_pass(X, C, w, shift, 1.0, need_inertia=True)
            for _ in range(3)]
    for labels, sums, counts, inertia in runs[1:]:
        np.testing.assert_array_equal(labels, runs[0][0])
        assert sums.tobytes() == runs[0][1].tobytes()
        assert counts.tobytes() == runs[0][2].tobytes()
        assert inertia == runs[0][3]
    closest = np.full(len(X), 5.0, np.float32)
    pots = [_cpu.kpp_potentials(X, closest, C[:4], w, shift, 1.0).tobytes() for _ in range(2)]
    assert pots[0] == pots[1]


@pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA)
def test_compiled_pass_is_independent_of_the_thread_count():
    import numba

    X, C, w = make(4000, 10, 20, np.float32, seed=12, weights=True)
    before = numba.get_num_threads()
    try:
        out = []
        for t in sorted({1, before}):
            numba.set_num_threads(t)
            out.append(_cpu.lloyd_pass(X, C, w, None, 1.0, need_inertia=True))
    finally:
        numba.set_num_threads(before)
    for got in out[1:]:
        np.testing.assert_array_equal(got[0], out[0][0])
        assert got[1].tobytes() == out[0][1].tobytes() and got[3] == out[0][3]


@pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA)
def test_large_k_and_d_take_the_gemm_path_correctly():
    """Sizes where the default rule picks BLAS."""
    X, C, _ = make(600, 72, 90, np.float32, seed=13)
    rl, _, _, _, D = ref_pass(X, C, None, None, 1.0)
    ok = tie_free_mask(D, 1e-4)
    labels, sums, counts, _ = _cpu.lloyd_pass(X, C, None, None, 1.0)
    np.testing.assert_array_equal(labels[ok], rl[ok])
    _, s2, c2, _, _ = ref_pass_for_labels(X, C, None, None, 1.0, labels)
    np.testing.assert_allclose(sums, s2, rtol=0, atol=1e-4 * np.abs(s2).max())
    np.testing.assert_array_equal(counts, c2)


# ----------------------------------------------------------------------------------------
# assign, sq_dist_to_assigned, k-means++ steps
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,d,k", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_assign_and_distances_to_assigned(impl, n, d, k, dtype):
    X, C, _ = make(n, d, k, dtype, offset=20.0, seed=2 * n + k)
    shift = np.full(d, 20.0, compute_dtype(dtype))
    C = C + 20.0 - shift
    labels, mins = _cpu.assign(X, C, shift, 0.5 if dtype != np.float16 else 1.0)
    s = 0.5 if dtype != np.float16 else 1.0
    rl, _, _, _, D = ref_pass(X, C, None, shift, s)
    ok = tie_free_mask(D, 1e-4)
    assert ok.mean() > 0.97
    np.testing.assert_array_equal(labels[ok], rl[ok])
    assert mins.dtype == compute_dtype(dtype) and (mins >= 0).all()
    np.testing.assert_allclose(mins, D[np.arange(n), labels], rtol=1e-5 if dtype != np.float64
                               else 1e-12, atol=1e-6)
    other = (labels + 1) % k
    got = _cpu.sq_dist_to_assigned(X, C, other, shift, s)
    np.testing.assert_allclose(got, D[np.arange(n), other],
                               rtol=1e-5 if dtype != np.float64 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("n,d", [(1000, 7), (1, 3), (517, 30)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("weighted", [False, True])
def test_kpp_potentials_and_update(impl, n, d, dtype, weighted):
    X, C, w = make(n, d, 6, dtype, offset=-40.0, seed=n + d, weights=weighted)
    shift = np.full(d, -40.0, compute_dtype(dtype))
    Xt = frame64(X, shift, 1.0)
    first = Xt[0].astype(compute_dtype(dtype))
    closest = _cpu.kpp_update(X, np.full(n, np.inf, compute_dtype(dtype)), first[None, :],
                              shift, 1.0)
    ref_closest = ref_dist(Xt, first[None, :])[:, 0]
    np.testing.assert_allclose(closest, ref_closest, rtol=1e-5 if dtype != np.float64 else 1e-12,
                               atol=1e-6)
    cand = (C + 40.0 - shift).astype(compute_dtype(dtype))
    pots = _cpu.kpp_potentials(X, closest, cand, w, shift, 1.0)
    assert pots.dtype == np.float64 and pots.shape == (len(cand),)
    w64 = np.ones(n) if w is None else w.astype(np.float64)
    ref = w64 @ np.minimum(closest.astype(np.float64)[:, None], ref_dist(Xt, cand))
    np.testing.assert_allclose(pots, ref, rtol=1e-5 if dtype != np.float64 else 1e-12)
    new = _cpu.kpp_update(X, closest, cand[2], shift, 1.0)
    np.testing.assert_allclose(new, np.minimum(closest, ref_dist(Xt, cand[2:3])[:, 0]),
                               rtol=1e-5 if dtype != np.float64 else 1e-12, atol=1e-6)
    assert (new <= closest).all()


# ----------------------------------------------------------------------------------------
# inputs, views, optional numba
# ----------------------------------------------------------------------------------------
def test_non_contiguous_x_and_bad_inputs(impl):
    X, C, _ = make(400, 6, 4, np.float64, seed=21)
    wide = np.repeat(X, 2, axis=1)[:, ::2]
    assert not wide.flags.c_contiguous
    # the compiled kernels read C-contiguous rows in place, others through a block copy
    got, expect = (_cpu.lloyd_pass(A, C, None, None, 1.0) for A in (wide, X))
    np.testing.assert_array_equal(got[0], expect[0])
    np.testing.assert_allclose(got[1], expect[1], rtol=1e-12)
    with pytest.raises(TypeError, match="float32"):
        _cpu.lloyd_pass(X.astype(np.int32), C, None, None, 1.0)
    with pytest.raises(ValueError, match="centers"):
        _cpu.lloyd_pass(X, C[:, :3], None, None, 1.0)
    with pytest.raises(ValueError, match="weights"):
        _cpu.lloyd_pass(X, C, np.ones(3), None, 1.0)
    with pytest.raises(ValueError, match="labels"):
        _cpu.sq_dist_to_assigned(X, C, np.full(len(X), 4), None, 1.0)


def test_torch_tensors_as_zero_copy_views():
    torch = pytest.importorskip("torch")
    X, C, _ = make(300, 5, 4, np.float32, seed=31)
    t = torch.from_numpy(X.copy()).requires_grad_(True)
    v = _cpu.numpy_view(t)
    assert v.ctypes.data == t.data_ptr()  # no copy
    np.testing.assert_array_equal(_cpu.assign(v, C, None, 1.0)[0], _cpu.assign(X, C, None, 1.0)[0])
    b = torch.from_numpy(X).to(torch.bfloat16)
    vb = _cpu.numpy_view(b)
    assert vb.dtype == np.uint16 and vb.ctypes.data == b.data_ptr()
    np.testing.assert_array_equal(bf16_to_f64(vb), b.to(torch.float64).numpy())
    labels = _cpu.assign(vb, C, None, 1.0)[0]
    np.testing.assert_array_equal(labels, _cpu.assign(b.to(torch.float32).numpy(), C, None,
                                                      1.0)[0])
    h = torch.from_numpy(X).to(torch.float16)
    assert _cpu.numpy_view(h).dtype == np.float16


ROOT = str(__import__("pathlib").Path(__file__).resolve().parents[1])


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT)


def test_numba_is_imported_only_on_first_use():
    res = _run("import sys, kmeans_xp, kmeans_xp._kernels._cpu as c\n"
               "c.available(); assert 'numba' not in sys.modules, 'numba imported early'\n"
               "assert 'torch' not in sys.modules and 'scipy' not in sys.modules\n")
    assert res.returncode == 0, res.stderr


def test_without_numba_the_vendor_set_serves():
    """numba missing: select() gives the NumPy set, a fit runs, and the compiled kernels
    say what to install."""
    code = (
        "import sys\n"
        "sys.modules['numba'] = None  # as if not installed: find_spec gives None\n"
        "import numpy as np\n"
        "import kmeans_xp\n"
        "from kmeans_xp._kernels import _cpu, select\n"
        "assert not _cpu.available() and not _cpu.usable()\n"
        "assert select(np, 'cpu', np.float32).name == 'numpy'\n"
        "X = np.random.default_rng(0).normal(size=(500, 4)).astype(np.float32)\n"
        "km = kmeans_xp.KMeans(3, random_state=0).fit(X)\n"
        "assert km.labels_.shape == (500,)\n"
        "try:\n"
        "    _cpu.lloyd_pass(X, X[:3], None, None, 1.0)\n"
        "except ImportError as e:\n"
        "    assert 'kmeans_xp[cpu]' in str(e)\n"
        "else:\n"
        "    raise AssertionError('the compiled path ran without numba')\n"
    )
    res = _run(code)
    assert res.returncode == 0, res.stderr


def test_a_broken_numba_hands_every_pass_to_the_parent_set(tmp_path):
    """numba installed but failing to import: the fused set is chosen (numba is found) and
    runs its parent's (NumPy) loops, giving the generic set's answer exactly."""
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('a broken numba, for this test')\n")
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numpy as np\n"
        "import kmeans_xp\n"
        "from kmeans_xp._kernels import _cpu, select\n"
        "assert select(np, 'cpu', np.float32).name == 'cpu'\n"
        "X = np.random.default_rng(0).normal(size=(2000, 5)).astype(np.float32)\n"
        "a = kmeans_xp.KMeans(4, random_state=0).fit(X)\n"
        "assert not _cpu.usable()\n"
        "import os\n"
        "os.environ['KMEANS_XP_KERNELS'] = 'generic'\n"
        "b = kmeans_xp.KMeans(4, random_state=0).fit(X)\n"
        "assert (a.labels_ == b.labels_).all() and a.inertia_ == b.inertia_\n"
        "assert np.array_equal(a.cluster_centers_, b.cluster_centers_)\n"
    )
    res = _run(code)
    assert res.returncode == 0, res.stderr


def _has_tbb() -> bool:
    import importlib.metadata as md

    try:
        return bool(md.files("tbb"))
    except md.PackageNotFoundError:
        return False


@pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA)
@pytest.mark.parametrize("user_layer", [None, "workqueue"])
def test_threading_layer_is_tbb_when_installed_and_never_gnu_openmp(user_layer):
    """The compiled kernels run on numba's tbb layer where the tbb package is installed,
    else on workqueue; never on GNU OpenMP (not fork-safe); a layer the user names wins."""
    import os

    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if user_layer:
        env["NUMBA_THREADING_LAYER"] = user_layer
    code = ("import numpy as np, numba\n"
            "from kmeans_xp._kernels import _cpu\n"
            "X = np.random.default_rng(0).standard_normal((2000, 4)).astype(np.float32)\n"
            "_cpu.lloyd_pass(X, X[:3], None, None, 1.0)\n"
            "print(numba.threading_layer())\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    expect = user_layer or ("tbb" if _has_tbb() else "workqueue")
    assert res.stdout.strip() == expect


@pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA)
def test_processes_forked_after_a_fit_run_the_kernels():
    """multiprocessing's fork start method after the parent ran the compiled kernels:
    the children fit too (GNU OpenMP would have them terminated) and give the parent's
    answer, bit for bit."""
    code = (
        "import multiprocessing as mp, numpy as np\n"
        "from kmeans_xp._kernels import _cpu\n"
        "X = np.random.default_rng(1).standard_normal((20000, 6)).astype(np.float32)\n"
        "def job(_):\n"
        "    labels, sums, counts, _ = _cpu.lloyd_pass(X, X[:5], None, None, 1.0)\n"
        "    return labels.tobytes() + sums.tobytes()\n"
        "if __name__ == '__main__':\n"
        "    parent = job(0)\n"
        "    with mp.get_context('fork').Pool(2) as pool:\n"
        "        outs = pool.map_async(job, range(2)).get(timeout=120)\n"
        "    assert all(o == parent for o in outs)\n"
        "    print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"


def test_concurrent_calls_from_python_threads(impl):
    """Two threads calling the kernels at once get the same answers as one at a time
    (numba's workqueue threading layer takes one caller at a time: the kernels lock)."""
    from concurrent.futures import ThreadPoolExecutor

    X, C, w = make(3000, 9, 12, np.float32, seed=41, weights=True)
    expect = _cpu.lloyd_pass(X, C, w, None, 1.0)
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: _cpu.lloyd_pass(X, C, w, None, 1.0),
                             range(8)))
    for labels, sums, _counts, _ in outs:
        np.testing.assert_array_equal(labels, expect[0])
        assert sums.tobytes() == expect[1].tobytes()


# ----------------------------------------------------------------------------------------
# frame_stats: the compiled pass behind ChunkedData.check_finite_and_scale / center
# ----------------------------------------------------------------------------------------
needs_numba = pytest.mark.skipif(not HAS_NUMBA, reason=NO_NUMBA)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, "bf16"])
@pytest.mark.parametrize("framed", [False, True])
def test_frame_stats_matches_float64_reference(dtype, framed):
    X, _, _ = make(1531, 7, 3, np.float64 if dtype == "bf16" else dtype, offset=40.0, seed=5)
    if dtype == "bf16":  # bfloat16 bits: the top half of float32
        X = (X.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    cd = compute_dtype(np.float32 if dtype == "bf16" else dtype)
    shift = (np.linspace(30, 50, 7).astype(cd) if framed else None)
    inv = 0.25 if framed else 1.0
    finite, amax, sums, sqs = _cpu.frame_stats(X, shift, inv, np.inf)
    Xt = frame64(X, shift, inv)
    assert finite is True and sums.dtype == np.float64 and sqs.shape == (7,)
    assert amax == pytest.approx(np.abs(Xt).max(), rel=1e-6 if cd == np.float32 else 1e-15)
    rel = 1e-6 if cd == np.float32 else 1e-12  # rows are framed in the compute dtype
    np.testing.assert_allclose(sums, Xt.sum(0), rtol=rel, atol=rel * np.abs(Xt).sum(0).max())
    np.testing.assert_allclose(sqs, (Xt * Xt).sum(0), rtol=rel)


@needs_numba
def test_frame_stats_flags_nan_inf_and_leaves_big_values_out():
    X = np.arange(60, dtype=np.float32).reshape(20, 3)
    X[7, 1] = 1e30
    finite, amax, sums, sqs = _cpu.frame_stats(X, None, 1.0, 2.0**40)
    assert finite and amax == pytest.approx(1e30)
    keep = np.where(np.abs(X) <= 2.0**40, X, 0).astype(np.float64)
    np.testing.assert_array_equal(sums, keep.sum(0))
    np.testing.assert_array_equal(sqs, (keep * keep).sum(0))
    for bad in (np.nan, np.inf, -np.inf):
        Y = X.copy()
        Y[13, 2] = bad
        finite, amax, _, _ = _cpu.frame_stats(Y, None, 1.0, 2.0**40)
        assert finite is False and amax == pytest.approx(1e30)  # the largest finite value


@needs_numba
@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_chunked_data_frame_is_the_reference_frame(offset):
    """The fused set's compiled pass gives ChunkedData the frame (shift, variance, scale)
    of the pure-standard chunk loop, and the same errors."""
    from kmeans_xp._data import ChunkedData
    from kmeans_xp._kernels import _reference
    from kmeans_xp._kernels._cpu import FusedNumpyKernels

    X, _, _ = make(3001, 6, 4, np.float32, offset=offset, seed=8)
    frames = []
    for kern in (FusedNumpyKernels(np, "cpu", np.float32), _reference.ReferenceKernels(
            np, "cpu", np.float32)):
        data = ChunkedData(X, xp=np, dtype=np.float32, n_clusters=4, kernels=kern)
        data.prepare("X")
        frames.append(data)
    fused, ref = frames
    assert (fused.shift is None) == (ref.shift is None) == (offset == 0.0)
    if offset:
        assert fused.shift.dtype == np.float32
        np.testing.assert_allclose(fused.shift, ref.shift, rtol=1e-6)
    assert fused.mean_variance == pytest.approx(ref.mean_variance, rel=1e-5)
    assert fused.scale == ref.scale == 1.0
    big = X * np.float32(2.0**60)
    data = ChunkedData(big, xp=np, dtype=np.float32, n_clusters=4,
                       kernels=FusedNumpyKernels(np, "cpu", np.float32))
    data.prepare("X")
    assert data.scale == 2.0 ** round(np.log2(np.abs(big).max()))
    for bad, word in ((np.nan, "NaN"), (np.inf, "infinity")):
        Y = X.copy()
        Y[100, 3] = bad
        data = ChunkedData(Y, xp=np, dtype=np.float32, n_clusters=4,
                           kernels=FusedNumpyKernels(np, "cpu", np.float32))
        with pytest.raises(ValueError, match=f"Input X contains {word}"):
            data.prepare("X")


@needs_numba
def test_label_counts_and_equality_of_the_fused_sets():
    from kmeans_xp._kernels._cpu import FusedNumpyKernels

    kern = FusedNumpyKernels(np, "cpu", np.float32)
    lab = np.array([0, 3, 3, 5, 0], dtype=np.int64)
    assert kern.n_distinct(lab, 7) == 3
    assert bool(kern.labels_equal(lab, lab.copy()))
    other = lab.copy()
    other[4] = 1
    assert not bool(kern.labels_equal(lab, other))
    torch = pytest.importorskip("torch")
    from kmeans_xp._compat import array_namespace
    from kmeans_xp._kernels._cpu import FusedTorchKernels

    t = torch.from_numpy(lab)
    tk = FusedTorchKernels(array_namespace(t), t.device, torch.float32)
    assert tk.n_distinct(t, 6) == 3
    same = tk.labels_equal(t, t.clone())
    assert isinstance(same, torch.Tensor) and same.ndim == 0 and bool(same)
    assert not bool(tk.labels_equal(t, torch.from_numpy(other)))


def test_small_data_runs_the_vendor_set_and_large_data_the_fused_set(monkeypatch):
    """The size rule: below FUSED_CPU_MIN_ELEMENTS (n * d) a fit takes the NumPy / torch set
    (no compile on a fresh install); from it on, the fused set; the environment sets it."""
    pytest.importorskip("numba")
    from kmeans_xp._kernels import FUSED_CPU_MIN_ELEMENTS, select

    monkeypatch.delenv("KMEANS_XP_FUSED_CPU_MIN_ELEMENTS", raising=False)
    assert select(np, "cpu", np.float32, n_elements=150 * 4).name == "numpy"
    assert select(np, "cpu", np.float32, n_elements=FUSED_CPU_MIN_ELEMENTS - 1).name == "numpy"
    assert select(np, "cpu", np.float32, n_elements=FUSED_CPU_MIN_ELEMENTS).name == "cpu"
    assert select(np, "cpu", np.float32).name == "cpu"  # no size given: no rule
    monkeypatch.setenv("KMEANS_XP_FUSED_CPU_MIN_ELEMENTS", "0")
    assert select(np, "cpu", np.float32, n_elements=600).name == "cpu"
    monkeypatch.setenv("KMEANS_XP_FUSED_CPU_MIN_ELEMENTS", "many")
    with pytest.raises(ValueError, match="KMEANS_XP_FUSED_CPU_MIN_ELEMENTS must be an int"):
        select(np, "cpu", np.float32, n_elements=600)


def test_a_first_small_fit_and_its_scores_never_load_the_compiler():
    """A textbook first fit (150 x 4), its silhouette and a choice of k, in a fresh process
    with the default rule: numba is never imported (nothing to compile on a fresh install)."""
    pytest.importorskip("numba")
    code = ("import sys, numpy as np\n"
            "from kmeans_xp import KMeans\n"
            "from kmeans_xp import select_k\n"
            "from kmeans_xp.metrics import silhouette_score\n"
            "X = np.random.default_rng(0).normal(size=(150, 4))\n"
            "km = KMeans(3, random_state=0).fit(X)\n"
            "silhouette_score(X, km.labels_)\n"
            "select_k(X, range(2, 6), random_state=0)\n"
            "assert 'numba' not in sys.modules, 'numba was imported'\n")
    env = {k: v for k, v in os.environ.items() if k != "KMEANS_XP_FUSED_CPU_MIN_ELEMENTS"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
