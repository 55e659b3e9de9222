"""The batched Triton kernels (``_triton_batched``) against the reference set, in Triton's
interpreter on CPU tensors (on a CUDA device where there is one), and their ahead-of-time
compilation for sm_80 / sm_90 (no GPU needed: ``triton.compile`` to cubin).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("triton") is None:
    pytest.skip("triton and torch are needed (pip install triton)", allow_module_level=True)

import torch  # noqa: E402

CUDA = torch.cuda.is_available()
if not CUDA:
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET", "0") in ("", "0"):
        pytest.skip(
            "triton was imported before TRITON_INTERPRET=1 could be set and there is "
            "no CUDA device: run this module with TRITON_INTERPRET=1",
            allow_module_level=True,
        )
    os.environ["TRITON_INTERPRET"] = "1"

TB = pytest.importorskip("kmeans_xp._kernels._triton_batched")

from kmeans_xp._kernels import ReferenceKernels  # noqa: E402
from kmeans_xp._solvers.batched import BatchedData  # noqa: E402

DEV = "cuda" if CUDA else "cpu"


def _data(kern, storage, *, frame, masked, B=4, n=150, d=20, k=19, seed=0):
    rng = np.random.default_rng(seed)
    C = rng.normal(scale=4.0, size=(B, k, d))
    X = (
        np.take_along_axis(C, rng.integers(0, k, (B, n))[:, :, None], axis=1)
        + rng.normal(size=(B, n, d))
        + 8.0
    )
    mask = None
    w = rng.uniform(0.5, 2.0, size=(B, n))
    if masked:
        mask = np.arange(n)[None, :] < np.array([n, 90, 30, 120])[:, None]
        X[~mask] = np.nan
        w = w * mask
    Xt = torch.from_numpy(X).to(getattr(torch, storage)).to(DEV)
    data = BatchedData(
        Xt,
        xp=_xp(),
        dtype=torch.float32,
        weights=torch.from_numpy(w).float().to(DEV),
        mask=None if mask is None else torch.from_numpy(mask).to(DEV),
        n_valid=np.full(B, n) if mask is None else mask.sum(1),
        kernels=kern,
        n_clusters=k,
    )
    if frame:
        from kmeans_xp._frame import Frame

        inv = torch.tensor([1.0, 0.5, 2.0, 0.25], device=DEV)
        data.frame = Frame(
            1.0 / inv.double().cpu().numpy(),
            torch.full((B, d), 8.0, device=DEV) * inv[:, None],
            np.zeros(B),
        )
    return data, mask


def _xp():
    from kmeans_xp._compat import array_namespace

    return array_namespace(torch.zeros(1))


@pytest.mark.parametrize("storage", ["float32", "bfloat16"])
@pytest.mark.parametrize("frame", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_batched_triton_pass_equals_the_reference(storage, frame, masked):
    kern = TB.TritonBatchedTorchKernels(_xp(), torch.device(DEV), torch.float32)
    ref = ReferenceKernels(_xp(), torch.device(DEV), torch.float32)
    data, mask = _data(kern, storage, frame=frame, masked=masked)
    problems = np.array([3, 1, 2])
    Xw = ref._batched_rows(data, problems)
    C = Xw[
        torch.arange(3)[:, None],
        torch.tensor([[0, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 28, 1, 2, 4, 6]] * 3),
    ]
    C = C + 0.01
    for need in (False, True):
        got = kern.batched_lloyd_pass(data, C, problems, need_inertia=need)
        exp = ref.batched_lloyd_pass(data, C, problems, need_inertia=need)
        valid = np.ones(got[0].shape, bool) if mask is None else mask[problems]
        np.testing.assert_array_equal(got[0].cpu().numpy()[valid], exp[0].cpu().numpy()[valid])
        for g, e in zip(got[1:3], exp[1:3]):
            np.testing.assert_allclose(g.cpu().numpy(), e.cpu().numpy(), rtol=1e-4, atol=1e-3)
        if need:
            np.testing.assert_allclose(got[3].cpu().numpy(), exp[3].cpu().numpy(), rtol=1e-5)
        else:
            assert got[3] is None
    # deterministic: the same bits again
    a = kern.batched_lloyd_pass(data, C, problems)
    b = kern.batched_lloyd_pass(data, C, problems)
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
    lab, inertia = kern.batched_labels_inertia(data, C, problems)
    lab_r, inertia_r = ref.batched_labels_inertia(data, C, problems)
    np.testing.assert_array_equal(lab.cpu().numpy()[valid], lab_r.cpu().numpy()[valid])
    np.testing.assert_allclose(inertia.cpu().numpy(), inertia_r.cpu().numpy(), rtol=1e-5)


AOT = textwrap.dedent("""
    import os
    os.environ.pop("TRITON_INTERPRET", None)
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from kmeans_xp._kernels import _triton_batched as TB

    cfg = dict(BLOCK_M=64, BLOCK_K=16, BLOCK_D=32)
    flags = dict(HAS_SHIFT=True, HAS_SCALE=True)
    kernels = {
        "assign": (TB._assign_kernel,
                   {"X": "*bf16", "PROB": "*i64", "C": "*fp32", "SHIFT": "*fp32",
                    "INV": "*fp32", "LABELS": "*i64", "MINS": "*fp32", "n": "i32",
                    "k": "i32", "d": "i32", "stride_xb": "i64", "stride_xm": "i64"},
                   dict(flags, PREC="ieee", INTERPRET=False, **cfg)),
        "sums": (TB._sums_kernel,
                 {"X": "*fp32", "PROB": "*i64", "LABELS": "*i64", "W": "*fp32",
                  "SHIFT": "*fp32", "INV": "*fp32", "SUMS": "*fp32", "COUNTS": "*fp32",
                  "n": "i32", "k": "i32", "d": "i32", "stride_xb": "i64",
                  "stride_xm": "i64"},
                 dict(flags, HAS_W=True, **cfg)),
    }
    for cap in (80, 90):
        for name, (fn, sig, const) in kernels.items():
            sig = dict(sig, **{c: "constexpr" for c in const})
            out = triton.compile(ASTSource(fn, sig, constexprs=const),
                                 target=GPUTarget("cuda", cap, 32))
            assert len(out.asm["cubin"]) > 1000, (cap, name)
            print(cap, name, len(out.asm["cubin"]))
""")


def test_batched_triton_kernels_compile_ahead_of_time_for_sm80_and_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([os.getcwd(), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-c", AOT],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("\n") == 4
