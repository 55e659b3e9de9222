"""Compile every Triton kernel the package can launch, for several NVIDIA archs, without a GPU.

Run by ``tests/test_triton_compile.py`` in a fresh process (Triton's interpreter must be off
and its cache empty, so that ptxas runs and reports spills)::

    python tests/_triton_matrix.py --archs 75,80,86,89,90,100 --variant default --out r.json

For each arch, a :class:`~kmeans_xp._kernels._triton.DeviceSpec` (the documented opt-in
shared memory of the arch) goes to the package's own chooser through
:func:`~kmeans_xp._kernels._triton.launch_plan` for every shape and precision of the grid;
each distinct launch is compiled with ``triton.compile(ASTSource(...),
target=GPUTarget("cuda", arch, 32))`` and reported as a JSON record: the shared memory of
the compiled kernel (``metadata.shared``), the registers and spill bytes ptxas reports, the
chooser's shared-memory estimate (assignment kernel), or the error.  Nothing here imports
triton at module level (pytest's doctest collection imports this file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

#: (n, d, k) of the default grid (the issue's shapes) and of the exhaustive one (more d)
SHAPES = [
    (10_000_000, 32, 256),
    (1_000_000, 128, 1024),
    (2_000_000, 256, 4096),
    (1_000_000, 16, 16),
    (1000, 2, 3),
]
MORE_SHAPES = [(1_000_000, d, 256) for d in (8, 64, 65, 512)] + [(5000, 65, 40)]
PRECISIONS = ["exact", "tf32", "bf16"]
MORE_PRECISIONS = ["exact-tf32", "ieee", "exact-ieee"]


def _spec(arch: int):
    from kmeans_xp._kernels import _triton as T

    cap = (arch // 10, arch % 10)
    sms = [s.sm_count for s in T.KNOWN_DEVICES.values() if s.capability == cap]
    return T.DeviceSpec(cap, T.SMEM_PER_BLOCK[arch], max(sms) if sms else 100, f"sm_{arch}")


def _signature(kernel, args: dict, meta: dict):
    import torch
    from triton._C.libtriton import native_specialize_impl
    from triton.backends.compiler import BaseBackend

    ptr = {
        torch.float32: "*fp32",
        torch.float16: "*fp16",
        torch.bfloat16: "*bf16",
        torch.float64: "*fp64",
        torch.int64: "*i64",
        torch.int32: "*i32",
        torch.int16: "*i16",
    }
    sig, consts, attrs = {}, {}, {}
    for i, name in enumerate(kernel.arg_names):
        if name in meta:
            sig[name], consts[name] = "constexpr", meta[name]
            continue
        v = args[name]
        if isinstance(v, torch.dtype):
            sig[name], attr = ptr[v], "D"  # torch's allocations are 16-byte aligned
        else:
            sig[name], attr = native_specialize_impl(BaseBackend, v, False, True, True)
            if sig[name] == "constexpr":  # Triton specialises an int equal to 1
                consts[name] = attr
                continue
        if attr == "D":
            attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, consts, attrs


def jobs(archs: list, variant: str) -> list:
    """The distinct launches to compile: (arch, kernel name, meta, args, estimate)."""
    import torch

    from kmeans_xp._kernels import _triton as T

    shapes = SHAPES + (MORE_SHAPES if variant == "full" else [])
    precs = PRECISIONS + (MORE_PRECISIONS if variant == "full" else [])
    x_dtypes = [torch.float32] + ([torch.bfloat16, torch.float16] if variant == "full" else [])
    seen, out = set(), []
    for arch in archs:
        spec = _spec(arch)
        for n, d, k in shapes:
            for p in precs:
                for xd in x_dtypes:
                    every = variant == "full" and xd == torch.float32 and p in PRECISIONS
                    for kernel, args, meta in T.launch_plan(
                        spec, n, d, k, p, x_dtype=xd, every_flag=every
                    ):
                        sig, consts, attrs = _signature(kernel, args, meta)
                        opts = {o: meta[o] for o in ("num_warps", "num_stages") if o in meta}
                        key = (
                            arch,
                            kernel.__name__,
                            json.dumps(sig, sort_keys=True),
                            repr(sorted(consts.items())),
                            repr(sorted(attrs.items())),
                            repr(sorted(opts.items())),
                        )
                        if key in seen:
                            continue
                        seen.add(key)
                        est = None
                        if kernel is T._assign_kernel:
                            cfg = {
                                kk: meta[kk]
                                for kk in ("BLOCK_M", "BLOCK_N", "BLOCK_K", "X_ONCE", "num_stages")
                            }
                            est = T.assign_smem_estimate(spec, cfg, p)
                        out.append(
                            dict(
                                arch=arch,
                                kernel=kernel.__name__,
                                shape=[n, d, k],
                                limit=spec.smem_per_block,
                                precision=p,
                                x_dtype=str(xd).split(".")[-1],
                                meta={kk: v for kk, v in meta.items()},
                                est=est,
                            )
                        )
    return out


def _compile(job: dict) -> dict:
    import contextlib
    import io
    import re

    import torch
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from kmeans_xp._kernels import _triton as T

    kernel = getattr(T, job["kernel"])
    n, d, k = job["shape"]
    spec = _spec(job["arch"])
    plan = T.launch_plan(
        spec, n, d, k, job["precision"], x_dtype=getattr(torch, job["x_dtype"]), every_flag=True
    )
    args = next(a for kern, a, m in plan if kern is kernel)
    meta = job["meta"]
    consts_meta = {kk: v for kk, v in meta.items() if kk not in ("num_warps", "num_stages")}
    sig, consts, attrs = _signature(kernel, args, consts_meta)
    opts = {o: meta[o] for o in ("num_warps", "num_stages") if o in meta}
    rec = dict(job)
    buf = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(buf):
            compiled = triton.compile(
                ASTSource(fn=kernel, signature=sig, constexprs=consts, attrs=attrs),
                target=GPUTarget("cuda", job["arch"], 32),
                options=opts,
            )
    except Exception as exc:  # noqa: BLE001 - reported, the test fails on it
        rec["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        return rec
    log = buf.getvalue()
    regs = re.findall(r"Used (\d+) registers", log)
    spills = re.findall(r"(\d+) bytes spill stores, (\d+) bytes spill loads", log)
    rec.update(
        shared=int(compiled.metadata.shared),
        seconds=time.perf_counter() - t0,
        regs=int(regs[-1]) if regs else None,
        spill_stores=int(spills[-1][0]) if spills else None,
        spill_loads=int(spills[-1][1]) if spills else None,
    )
    return rec


def supported(arch: int) -> str | None:
    """None if the installed Triton compiles a trivial kernel for ``arch``, else why not."""
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    @triton.jit
    def _probe(P, BLOCK: tl.constexpr):
        tl.store(P + tl.arange(0, BLOCK), 1.0)

    import contextlib
    import io

    try:
        with contextlib.redirect_stdout(io.StringIO()):
            triton.compile(
                ASTSource(
                    fn=_probe,
                    signature={"P": "*fp32", "BLOCK": "constexpr"},
                    constexprs={"BLOCK": 16},
                ),
                target=GPUTarget("cuda", arch, 32),
            )
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
    return None


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="75,80,86,89,90,100")
    ap.add_argument("--variant", choices=("default", "full"), default="default")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)
    os.environ["TRITON_DUMP_PTXAS_LOG"] = "1"  # ptxas -v: registers and spills
    os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, stated
    import triton

    archs = [int(x) for x in a.archs.split(",")]
    unsupported = {arch: why for arch in archs if (why := supported(arch))}
    todo = jobs([x for x in archs if x not in unsupported], a.variant)
    t0 = time.perf_counter()
    if a.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.jobs) as pool:
            results = pool.map(_compile, todo, chunksize=1)
    else:
        results = [_compile(j) for j in todo]
    from kmeans_xp._kernels import _triton as T

    kernels = sorted(
        name
        for name, v in vars(T).items()
        if name.endswith("_kernel") and isinstance(v, triton.runtime.JITFunction)
    )
    with open(a.out, "w") as f:
        json.dump(
            dict(
                unsupported={str(k): v for k, v in unsupported.items()},
                kernels=kernels,
                results=results,
                seconds=time.perf_counter() - t0,
            ),
            f,
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
