"""The Triton kernels against an independent float64 reference.

Runs without a GPU: when torch has no CUDA device, ``TRITON_INTERPRET=1`` is set before
triton is imported and the kernels run on CPU tensors in Triton's interpreter (slowly: the
sizes here are a few hundred rows).  There the kernels emulate the tensor-core formats
(TF32 by truncation, tf32x3, bf16), so the tests see the rounding errors of the GPU paths.
Tests marked ``cuda`` need a CUDA device and are skipped otherwise.  The whole module is
skipped only when triton (or torch) is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("triton and torch are needed for the Triton kernels (pip install triton)",
                allow_module_level=True)

import torch  # noqa: E402

CUDA = torch.cuda.is_available()
if not CUDA:
    # Triton chooses the interpreter once per process, when triton is imported and when each
    # kernel is decorated: the variable must be set before both, and stay set
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        pytest.skip("triton was imported before TRITON_INTERPRET=1 could be set and there is no "
                    "CUDA device: run this module with TRITON_INTERPRET=1",
                    allow_module_level=True)
    os.environ["TRITON_INTERPRET"] = "1"

T = pytest.importorskip("kmeans_xp._kernels._triton")

DEV = "cuda" if CUDA else "cpu"
cuda_only = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (runs on a GPU machine)")


# ---- the reference -----------------------------------------------------------------------
def working(X, shift=None, inv_scale=1.0):
    """The frame as the kernels apply it (fp32: x * inv_scale - shift), as float64."""
    xt = X.float() * inv_scale
    if shift is not None:
        xt = xt - shift.float()
    return xt.double()


def ref_dist(X, C, shift=None, inv_scale=1.0):
    """(n, k) squared distances in float64, by direct differences."""
    xt = working(X, shift, inv_scale).cpu()
    Cd = C.double().cpu()
    return ((xt[:, None, :] - Cd[None, :, :]) ** 2).sum(-1)


def near_tie_rows(D, X, C, shift, inv_scale, precision):
    """Rows whose two best float64 distances are within the kernel's proven error bound."""
    a, b = T.exactness_coefficients(X.shape[1], precision)
    two = torch.topk(D, min(2, D.shape[1]), dim=1, largest=False).values
    if D.shape[1] == 1:
        return torch.zeros(D.shape[0], dtype=torch.bool)
    xn = working(X, shift, inv_scale).cpu().norm(dim=1)
    cmax = C.double().cpu().norm(dim=1).max()
    return (two[:, 1] - two[:, 0]) <= a * xn * cmax + b * cmax ** 2


def make(n, d, k, seed=0, dtype=torch.float32, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    X = (torch.randn(n, d, generator=g) + offset).to(dtype).to(DEV)
    C = (torch.randn(k, d, generator=g) + offset).to(DEV)
    return X, C


def shift_of(X):
    return X.float().mean(dim=0)


# ---- basic contract -------------------------------------------------------------------------
def test_available_and_supports():
    assert T.available(torch.zeros(2, 2, device=DEV))
    assert T.INTERPRETED == (not CUDA)
    assert T.supports(torch.float32) and T.supports(torch.float16) and T.supports("bfloat16")
    assert not T.supports(torch.float64) and not T.supports(np.float64)
    assert not T.supports(torch.int32)
    assert not T.available(np.zeros((2, 2), dtype=np.float32))


def test_import_kmeans_xp_imports_neither_triton_nor_torch():
    code = ("import sys, kmeans_xp; bad = [m for m in ('triton', 'torch') if m in sys.modules];"
            "assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr


# ---- assign -------------------------------------------------------------------------------
SHAPES = [
    (300, 20, 37),   # nothing a multiple of a tile; small d (X loaded once)
    (200, 70, 20),   # d > 64: the K loop
    (150, 5, 1),     # k = 1
    (1, 3, 4),       # n = 1
    (90, 16, 140),   # k > BLOCK_N: two centre blocks
]


@pytest.mark.parametrize("n,d,k", SHAPES)
@pytest.mark.parametrize("framed", [False, True])
def test_assign_exact_equals_float64(n, d, k, framed):
    X, C = make(n, d, k, seed=n + d + k)
    shift, inv = (shift_of(X) * 0.5, 0.5) if framed else (None, 1.0)
    labels, mins = T.assign(X, C, shift=shift, inv_scale=inv)
    D = ref_dist(X, C, shift, inv)
    assert labels.dtype == torch.int64 and labels.shape == (n,) and labels.device == X.device
    assert mins.dtype == torch.float32 and mins.shape == (n,)
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    best = D.min(dim=1).values
    np.testing.assert_allclose(mins.cpu().double(), best, rtol=2e-6, atol=1e-6 * best.max())


@pytest.mark.parametrize("precision", ["tf32", "bf16", "ieee", "exact-tf32"])
def test_assign_fast_precisions_differ_only_on_near_ties(precision):
    n, d, k = 300, 24, 40
    X, C = make(n, d, k, seed=3)
    shift = shift_of(X)
    labels, mins, count = T.assign(X, C, shift=shift, precision=precision,
                                   _return_flag_count=True)
    D = ref_dist(X, C, shift)
    labels = labels.cpu()
    wrong = labels != D.argmin(dim=1)
    if precision == "exact-tf32":
        # the TF32 bound is loose enough that random data has rows to re-check
        assert int(count.item()) > 0
        assert not wrong.any()
    else:
        assert not (wrong & ~near_tie_rows(D, X, C, shift, 1.0, precision)).any()
    # mins: the float64 distance to the centre chosen, whatever the precision of the choice
    chosen = D.gather(1, labels[:, None])[:, 0]
    np.testing.assert_allclose(mins.cpu().double(), chosen, rtol=2e-6, atol=1e-6 * chosen.max())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_assign_half_storage(dtype):
    X, C = make(257, 33, 19, seed=5, dtype=dtype)
    shift = shift_of(X)
    labels, mins = T.assign(X, C, shift=shift, inv_scale=2.0)
    D = ref_dist(X, C, shift, 2.0)  # the reference reads the same half values
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    np.testing.assert_allclose(mins.cpu().double(), D.min(dim=1).values, rtol=2e-6, atol=1e-5)


def test_assign_row_strided_and_non_contiguous_X():
    big, C = make(130, 50, 9, seed=7)
    X = big[:, 5:35]  # row-strided: read in place
    C = C[:, :30].contiguous()
    D = ref_dist(X, C)
    assert torch.equal(T.assign(X, C)[0].cpu(), D.argmin(dim=1))
    Xt = X.t().contiguous().t()  # column-major: copied once
    assert torch.equal(T.assign(Xt, C)[0].cpu(), D.argmin(dim=1))


@pytest.mark.parametrize("precision", T.PRECISIONS)
def test_assign_exact_ties_go_to_the_lowest_index(precision):
    # small integers: every product and sum is exact in every precision (bf16 included)
    g = torch.Generator().manual_seed(11)
    k = 140  # the duplicate lies in the second centre block
    C = torch.randint(-8, 9, (k, 4), generator=g).float()
    C[:, 0] += 40.0  # everything far away but the four centres below
    C[1] = torch.tensor([2.0, 0.0, 0.0, 0.0])
    C[2] = torch.tensor([-2.0, 0.0, 0.0, 0.0])
    C[133] = C[1]  # duplicate of centre 1, in the later centre block
    C[7] = C[2]  # duplicate of centre 2, same block
    X = torch.zeros(40, 4)
    X[:, 1:] = torch.randint(-1, 2, (40, 3), generator=g).float() * 0.25
    X[:20, 0] = 1.75  # nearer to 1 (and its duplicate 133)
    X[20:30, 0] = -1.75  # nearer to 2 (and its duplicate 7)
    X[30:, 0] = 0.0  # equidistant from 1 and 2 (and their duplicates)
    labels, _ = T.assign(X.to(DEV), C.to(DEV), precision=precision)
    expect = torch.tensor([1] * 20 + [2] * 10 + [1] * 10)
    assert torch.equal(labels.cpu(), expect)


def test_assign_forced_recheck_equals_float64():
    X, C = make(190, 21, 23, seed=13)
    shift = shift_of(X)
    labels, mins, count = T.assign(X, C, shift=shift, inv_scale=0.5, _force_recheck=True,
                                   _return_flag_count=True)
    assert int(count.item()) == 190  # every row went through the float64 kernel
    D = ref_dist(X, C, shift, 0.5)
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    np.testing.assert_allclose(mins.cpu().double(), D.min(dim=1).values, rtol=1e-6)


def test_assign_recheck_catches_cancellation_far_from_the_origin():
    # 1e4 + noise without a shift: fp32 ||c||^2 - 2 x.c loses ~6 absolute in ~1e9, more than
    # many gaps; those rows are flagged and re-checked in float64: labels still exact
    X, C = make(256, 8, 12, seed=17, offset=1e4)
    C = X[torch.arange(12) * 20].float() + 0.05 * torch.randn(12, 8, generator=torch.Generator()
                                                             .manual_seed(1)).to(DEV)
    labels, mins, count = T.assign(X, C, _return_flag_count=True)
    D = ref_dist(X, C)
    assert int(count.item()) > 0
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    np.testing.assert_allclose(mins.cpu().double(), D.min(dim=1).values, rtol=1e-4, atol=1e-3)


def test_assign_large_offset_with_shift():
    X, C = make(256, 8, 12, seed=19, offset=1e4)
    shift = shift_of(X)
    Ct = C.float() - shift  # centres in working coordinates
    labels, mins = T.assign(X, Ct, shift=shift)
    D = ref_dist(X, Ct, shift)
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    np.testing.assert_allclose(mins.cpu().double(), D.min(dim=1).values, rtol=1e-5)


def test_exactness_coefficients_order():
    a3, b3 = T.exactness_coefficients(32, "exact")
    a1, b1 = T.exactness_coefficients(32, "exact-tf32")
    assert 0 < a3 < a1 and 0 < b3 <= b1
    assert T.exactness_coefficients(256, "exact")[0] > a3


# ---- centre sums --------------------------------------------------------------------------
def ref_sums(X, labels, w, k, shift=None, inv=1.0):
    xt = working(X, shift, inv).cpu()
    lab = labels.cpu()
    wd = torch.ones(len(lab), dtype=torch.float64) if w is None else w.double().cpu()
    sums = torch.zeros(k, X.shape[1], dtype=torch.float64).index_add_(0, lab, xt * wd[:, None])
    counts = torch.zeros(k, dtype=torch.float64).index_add_(0, lab, wd)
    return sums, counts


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("atomic", [False, True])
@pytest.mark.parametrize("piece", [T.PIECE_ROWS, 16])
def test_centre_sums(weighted, atomic, piece):
    n, d, k = 301, 19, 13
    X, _ = make(n, d, 1, seed=23)
    g = torch.Generator().manual_seed(29)
    labels = torch.randint(0, k - 2, (n,), generator=g)  # clusters k-2, k-1 stay empty
    labels[:150] = 3  # one long run: several pieces with piece=16
    w = torch.rand(n, generator=g).to(DEV) if weighted else None
    shift = shift_of(X)
    sums, counts = T.centre_sums(X, labels.to(DEV), w, k, shift=shift, inv_scale=0.5,
                                 atomic=atomic, _piece_rows=piece)
    rs, rc = ref_sums(X, labels, w, k, shift, 0.5)
    assert sums.shape == (k, d) and sums.dtype == torch.float32 and counts.shape == (k,)
    np.testing.assert_allclose(sums.cpu().double(), rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(counts.cpu().double(), rc, rtol=1e-6)
    assert float(counts[k - 1]) == 0.0 and float(sums[k - 1].abs().sum()) == 0.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_centre_sums_half_storage(dtype):
    X, _ = make(200, 40, 1, seed=31, dtype=dtype)
    labels = torch.randint(0, 5, (200,), generator=torch.Generator().manual_seed(2))
    sums, counts = T.centre_sums(X, labels.to(DEV), None, 5)
    rs, rc = ref_sums(X, labels, None, 5)
    np.testing.assert_allclose(sums.cpu().double(), rs, rtol=1e-5, atol=1e-4)
    assert torch.equal(counts.cpu().double(), rc)


def test_centre_sums_deterministic_bit_identical():
    X, _ = make(400, 17, 1, seed=37)
    labels = torch.randint(0, 6, (400,), generator=torch.Generator().manual_seed(3)).to(DEV)
    w = torch.rand(400, generator=torch.Generator().manual_seed(4)).to(DEV)
    runs = [T.centre_sums(X, labels, w, 6, shift=shift_of(X), _piece_rows=32) for _ in range(3)]
    for s, c in runs[1:]:
        assert torch.equal(s, runs[0][0]) and torch.equal(c, runs[0][1])


# ---- the whole pass -----------------------------------------------------------------------
@pytest.mark.parametrize("weighted", [False, True])
def test_lloyd_pass(weighted):
    n, d, k = 333, 12, 21
    X, C = make(n, d, k, seed=41)
    shift = shift_of(X)
    w = torch.rand(n, generator=torch.Generator().manual_seed(5)).to(DEV) if weighted else None
    out = [T.lloyd_pass(X, C, w, shift=shift, inv_scale=0.5, need_inertia=True)
           for _ in range(2)]
    labels, sums, counts, inertia = out[0]
    D = ref_dist(X, C, shift, 0.5)
    assert torch.equal(labels.cpu(), D.argmin(dim=1))
    rs, rc = ref_sums(X, labels, w, k, shift, 0.5)
    np.testing.assert_allclose(sums.cpu().double(), rs, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(counts.cpu().double(), rc, rtol=1e-6)
    wd = torch.ones(n, dtype=torch.float64) if w is None else w.double().cpu()
    assert inertia.dtype == torch.float64 and inertia.ndim == 0
    np.testing.assert_allclose(float(inertia), float((D.min(dim=1).values * wd).sum()),
                               rtol=1e-6)
    for a, b in zip(out[0], out[1]):  # bit-identical
        assert torch.equal(a, b)
    labels2, sums2, counts2, none = T.lloyd_pass(X, C, w, shift=shift, inv_scale=0.5,
                                                 deterministic=False, precision="tf32")
    assert none is None
    np.testing.assert_allclose(sums2.cpu().double(), rs, rtol=1e-5, atol=1e-5)


# ---- k-means++ ----------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 5, 18])
@pytest.mark.parametrize("weighted", [False, True])
def test_kpp_potentials(m, weighted):
    n, d = 210, 23
    X, cand = make(n, d, m, seed=43 + m)
    shift = shift_of(X)
    g = torch.Generator().manual_seed(6)
    closest = (torch.rand(n, generator=g) * 40).to(DEV)
    w = torch.rand(n, generator=g).to(DEV) if weighted else None
    pots = T.kpp_potentials(X, closest, cand, w, shift=shift, inv_scale=0.5)
    D = ref_dist(X, cand, shift, 0.5)
    wd = torch.ones(n, dtype=torch.float64) if w is None else w.double().cpu()
    ref = (torch.minimum(D, closest.double().cpu()[:, None]) * wd[:, None]).sum(dim=0)
    assert pots.dtype == torch.float64 and pots.shape == (m,)
    np.testing.assert_allclose(pots.cpu(), ref, rtol=1e-6)
    assert torch.equal(pots, T.kpp_potentials(X, closest, cand, w, shift=shift, inv_scale=0.5))


def test_kpp_update():
    X, C = make(170, 9, 2, seed=47, dtype=torch.bfloat16)
    shift = shift_of(X)
    first = T.kpp_update(X, None, C[0], shift=shift)
    D = ref_dist(X, C, shift)
    np.testing.assert_allclose(first.cpu().double(), D[:, 0], rtol=1e-5, atol=1e-6)
    second = T.kpp_update(X, first, C[1:2], shift=shift)
    np.testing.assert_allclose(second.cpu().double(), D.min(dim=1).values, rtol=1e-5, atol=1e-6)


# ---- bad arguments ------------------------------------------------------------------------
def test_bad_arguments():
    X, C = make(10, 3, 2)
    with pytest.raises(TypeError, match="float64"):
        T.assign(X.double(), C)
    with pytest.raises(ValueError, match="precision"):
        T.assign(X, C, precision="fp8")
    with pytest.raises(ValueError, match="centers"):
        T.assign(X, C[:, :2])
    with pytest.raises(ValueError, match="inv_scale"):
        T.assign(X, C, inv_scale=0.0)
    with pytest.raises(ValueError, match="shift"):
        T.assign(X, C, shift=torch.zeros(4, device=DEV))
    with pytest.raises(ValueError, match="k must"):
        T.centre_sums(X, torch.zeros(10, dtype=torch.int64, device=DEV), None, 0)
    with pytest.raises(TypeError, match="labels"):
        T.centre_sums(X, torch.zeros(10, device=DEV), None, 2)
    with pytest.raises(ValueError, match="weights"):
        T.lloyd_pass(X, C, torch.ones(9, device=DEV))
    with pytest.raises(ValueError, match="closest"):
        T.kpp_potentials(X, None, C, None)
    with pytest.raises(ValueError, match="center"):
        T.kpp_update(X, None, C)
    with pytest.raises(TypeError, match="torch tensor"):
        T.assign(np.zeros((3, 2), dtype=np.float32), C)


# ---- CUDA only ----------------------------------------------------------------------------
@cuda_only
@pytest.mark.parametrize("n,d,k", [(200_000, 32, 256), (50_000, 128, 1024), (100_000, 16, 16)])
def test_cuda_lloyd_pass_large_exact_and_no_host_sync(n, d, k):
    g = torch.Generator(device="cuda").manual_seed(0)
    X = torch.randn(n, d, device="cuda", generator=g)
    C = X[torch.randperm(n, device="cuda", generator=g)[:k]].clone()
    shift = X.mean(dim=0)
    Ct = C - shift
    T.lloyd_pass(X, Ct, None, shift=shift)  # compile outside the sync check
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        labels, sums, counts, inertia = T.lloyd_pass(X, Ct, None, shift=shift, need_inertia=True)
        again = T.lloyd_pass(X, Ct, None, shift=shift, need_inertia=True)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    xt = (X - shift).double()
    ref = torch.cdist(xt, Ct.double()).argmin(dim=1)  # float64 on the GPU
    assert torch.equal(labels, ref)
    for a, b in zip((labels, sums, counts, inertia), again):
        assert torch.equal(a, b)
    rs = torch.zeros(k, d, dtype=torch.float64, device="cuda").index_add_(0, labels, xt)
    torch.testing.assert_close(sums.double(), rs, rtol=1e-5, atol=1e-3)


@cuda_only
def test_cuda_cupy_arrays_round_trip():
    cupy = pytest.importorskip("cupy")
    X, C = make(5000, 32, 64, seed=53)
    lab_t, _ = T.assign(X, C)
    Xc, Cc = cupy.from_dlpack(X), cupy.from_dlpack(C)
    lab_c, mins_c = T.assign(Xc, Cc)
    assert isinstance(lab_c, cupy.ndarray) and isinstance(mins_c, cupy.ndarray)
    assert np.array_equal(cupy.asnumpy(lab_c), lab_t.cpu().numpy())
    out = T.lloyd_pass(Xc, Cc, None, need_inertia=True)
    assert all(isinstance(a, cupy.ndarray) for a in out)


# ---- the kernel set in a whole fit ------------------------------------------------------------
@pytest.mark.parametrize("precision", ["exact", "tf32"])
def test_kmeans_fit_through_the_triton_set_equals_the_torch_set(monkeypatch, precision):
    """KMeans with the Triton set (forced onto CPU tensors under the interpreter, or on CUDA)
    gives the generic torch set's clustering, and bit-identical reruns."""
    from kmeans_xp import KMeans, _base, _kernels

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 6)) * 5
    X = torch.asarray(centres[rng.integers(0, 5, 400)] + rng.normal(size=(400, 6)) + 30.0,
                      dtype=torch.float32, device=DEV)
    ref = KMeans(5, random_state=0, max_iter=20).fit(X)

    used = []

    def triton_select(xp, device, dtype, **kw):
        kern = T.TritonTorchKernels(xp, device, dtype, precision=kw.get("precision", "exact"),
                                    deterministic=kw.get("deterministic", True))
        used.append(kern)
        return kern

    monkeypatch.setattr(_base, "select", triton_select)
    fits = [KMeans(5, random_state=0, max_iter=20, precision=precision).fit(X)
            for _ in range(2)]
    assert used and all(k.name == "triton" for k in used)
    for km in fits:
        assert torch.equal(km.labels_.cpu(), ref.labels_.cpu())
        assert km.n_iter_ == ref.n_iter_
        torch.testing.assert_close(km.cluster_centers_, ref.cluster_centers_, rtol=1e-5,
                                   atol=1e-4)
        assert km.inertia_ == pytest.approx(ref.inertia_, rel=1e-5)
    assert torch.equal(fits[0].cluster_centers_, fits[1].cluster_centers_)  # bit-identical
    assert fits[0].inertia_ == fits[1].inertia_
    assert _kernels.select(np, "cpu", np.float32).name != "triton"


# ---- k-means++ through the Triton set: the float64 path's picks --------------------------
def _triton_select(used=None):
    def select(xp, device, dtype, **kw):
        kern = T.TritonTorchKernels(xp, device, dtype, precision=kw.get("precision", "exact"),
                                    deterministic=kw.get("deterministic", True))
        if used is not None:
            used.append(kern)
        return kern
    return select


@pytest.mark.parametrize("weighted", [False, True])
def test_kmeans_plusplus_through_the_triton_set_draws_the_reference_centres(monkeypatch,
                                                                            weighted):
    """The k-means++ kernels compute in float64 (as the reference): the same seed picks the
    same rows as the reference set, for several seeds, weighted or not."""
    from kmeans_xp import _base, kmeans_plusplus

    rng = np.random.default_rng(7)
    X = torch.asarray(rng.normal(size=(300, 5)) * 3 + 20.0, dtype=torch.float32, device=DEV)
    w = (torch.asarray(rng.uniform(0.5, 2.0, 300), dtype=torch.float32, device=DEV)
         if weighted else None)
    ref = [kmeans_plusplus(X, 9, sample_weight=w, random_state=s)[1] for s in range(4)]
    used = []
    monkeypatch.setattr(_base, "select", _triton_select(used))
    calls = []
    real = T._launch

    def record(kernel, grid, args, meta):
        calls.append(kernel.__name__)
        return real(kernel, grid, args, meta)

    monkeypatch.setattr(T, "_launch", record)
    got = [kmeans_plusplus(X, 9, sample_weight=w, random_state=s)[1] for s in range(4)]
    assert used and {"_kpp_potentials_kernel", "_kpp_update_kernel"} <= set(calls)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(np.asarray(b.cpu()), np.asarray(a.cpu()))


# ---- the safe fallback --------------------------------------------------------------------
def torch_xp():
    from array_api_compat import array_namespace

    return array_namespace(torch.zeros(1))


def test_a_failing_launch_falls_back_to_the_generic_set_once_and_is_remembered(monkeypatch):
    """A Triton launch that fails (injected): the fit equals the generic torch set's, with
    exactly one KernelFallbackWarning naming the cause; a second fit does not retry."""
    import warnings

    from kmeans_xp import KMeans, _base, _kernels
    from kmeans_xp._kernels import KernelFallbackWarning

    rng = np.random.default_rng(1)
    X = torch.asarray(rng.normal(size=(300, 4)) + 10.0, dtype=torch.float32, device=DEV)
    monkeypatch.setenv("KMEANS_XP_KERNELS", "generic")
    generic = KMeans(4, random_state=0, max_iter=15).fit(X)
    assert _kernels.select(torch_xp(), X.device, torch.float32).name == "torch"
    monkeypatch.delenv("KMEANS_XP_KERNELS")
    monkeypatch.setattr(T, "FAILED", {})
    calls = []

    def boom(kernel, grid, args, meta):
        calls.append(kernel.__name__)
        raise RuntimeError("injected: Triton Error [CUDA]: device kernel image is invalid")

    monkeypatch.setattr(T, "_launch", boom)
    monkeypatch.setattr(_base, "select", _triton_select())
    fits = []
    for _ in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits.append(KMeans(4, random_state=0, max_iter=15).fit(X))
        fallback = [c for c in caught if issubclass(c.category, KernelFallbackWarning)]
        if len(fits) == 1:
            assert len(fallback) == 1, [str(c.message) for c in caught]
            assert "injected" in str(fallback[0].message)
            assert "generic torch" in str(fallback[0].message)
            tried = len(calls)
            assert tried == 1
        else:
            assert not fallback and len(calls) == tried  # remembered: no retry
    assert len(T.FAILED) == 1 and next(iter(T.FAILED))[1] is None  # the whole device
    for km in fits:
        assert torch.equal(km.labels_, generic.labels_)
        assert torch.equal(km.cluster_centers_, generic.cluster_centers_)
        assert km.inertia_ == generic.inertia_ and km.n_iter_ == generic.n_iter_


def test_out_of_resources_is_remembered_per_configuration(monkeypatch):
    """Out of resources marks the failing configuration only: another shape class still
    runs on the Triton kernels; one warning per device."""
    import warnings

    from triton.runtime.errors import OutOfResources

    from kmeans_xp._kernels import KernelFallbackWarning

    monkeypatch.setattr(T, "FAILED", {})
    real = T._launch

    def small_only(kernel, grid, args, meta):
        if kernel is T._assign_kernel and meta["BLOCK_N"] > 16:
            raise OutOfResources(200_000, 101_376, "shared memory")
        return real(kernel, grid, args, meta)

    monkeypatch.setattr(T, "_launch", small_only)
    from array_api_compat import array_namespace

    from kmeans_xp._data import ChunkedData

    X, C = make(200, 6, 40, seed=3)
    xp = array_namespace(X)
    kern = T.TritonTorchKernels(xp, X.device, xp.float32)
    data = ChunkedData(X, xp=xp, dtype=xp.float32, n_clusters=40, kernels=kern)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        big = kern.assign(data, C)  # BLOCK_N = 64: fails, falls back
        small = kern.assign(data, C[:5])  # BLOCK_N = 16: runs
        kern.assign(data, C)  # remembered
    assert sum(issubclass(c.category, KernelFallbackWarning) for c in caught) == 1
    assert "OutOfResources" in str(caught[0].message)
    assert list(T.FAILED)[0][1] is not None and len(T.FAILED) == 1
    D = ref_dist(X, C)
    assert torch.equal(big[0].cpu(), D.argmin(dim=1))
    assert torch.equal(small[0].cpu(), D[:, :5].argmin(dim=1))


# ---- the device description -----------------------------------------------------------------
def test_devices_without_tf32_run_exact_ieee_and_warn_for_fast_precisions(monkeypatch):
    """On sm_75 (T4) 'exact' runs the fp32 FMA pass with the float64 re-check (labels exact),
    'tf32' / 'bf16' run 'ieee' with one warning per device and precision."""
    import warnings

    t4 = T.KNOWN_DEVICES["T4"]
    assert T.kernel_precision(t4, "exact") == "exact-ieee"
    assert T.kernel_precision(t4, "tf32") == T.kernel_precision(t4, "bf16") == "ieee"
    assert T.kernel_precision(T.KNOWN_DEVICES["A10"], "bf16") == "bf16"
    X, C = make(260, 70, 30, seed=9)
    launched = []
    real = T._launch
    monkeypatch.setattr(T, "_launch", lambda kern, g, a, m: (launched.append(m),
                                                             real(kern, g, a, m))[1])
    labels, _ = T.assign(X, C, spec=t4)
    assert launched[0]["PREC"] == "ieee" and launched[0]["EXACT"]
    assert torch.equal(labels.cpu(), ref_dist(X, C).argmin(dim=1))
    monkeypatch.setattr(T, "_PRECISION_WARNED", set())
    from array_api_compat import array_namespace

    from kmeans_xp._data import ChunkedData

    xp = array_namespace(X)
    kern = T.TritonTorchKernels(xp, X.device, xp.float32, precision="tf32")
    kern.spec = t4
    data = ChunkedData(X, xp=xp, dtype=xp.float32, n_clusters=30, kernels=kern)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        kern.assign(data, C)
        kern.assign(data, C)
    msgs = [str(c.message) for c in caught if "tensor cores" in str(c.message)]
    assert len(msgs) == 1 and "sm_75" in msgs[0]


@pytest.mark.parametrize("precision", ["exact", "bf16"])
def test_the_launch_plan_is_what_the_host_code_launches(monkeypatch, precision):
    """The compile test compiles ``launch_plan``: every launch of a Lloyd pass (both sums)
    and of the k-means++ steps is in it, with the same compile-time arguments and options."""
    n, d, k = 300, 20, 37
    X, C = make(n, d, k, seed=5)
    w = torch.rand(n, generator=torch.Generator().manual_seed(1)).to(DEV)
    shift = shift_of(X)
    seen = []
    real = T._launch
    monkeypatch.setattr(T, "_launch", lambda kern, g, a, m: (seen.append((kern, m)),
                                                             real(kern, g, a, m))[1])
    for det in (True, False):
        T.lloyd_pass(X, C, w, shift=shift, precision=precision, need_inertia=True,
                     deterministic=det)
    closest = T.kpp_update(X, None, C[0], shift=shift)
    T.kpp_potentials(X, closest, C[:T.kpp_candidates(k)], w, shift=shift)
    plan = T.launch_plan(T.device_spec(X.device), n, d, k, precision, every_flag=True)
    planned = [(kern, m) for kern, _, m in plan]
    assert {kern.__name__ for kern, _ in seen} == {kern.__name__ for kern, _ in planned} - (
        set() if precision == "exact" else {"_recheck_kernel"})
    for kern, meta in seen:
        assert (kern, meta) in planned, (kern.__name__, meta)
