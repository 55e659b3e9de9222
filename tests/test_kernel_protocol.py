"""Every kernel set keeps the contract of kmeans_xp._kernels._protocol.KernelSet: the methods
it defines have the Protocol's signatures (names, kinds and defaults of the parameters), and
the Protocol's signatures are the reference set's."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import numpy as np
import pytest

from kmeans_xp._kernels import ReferenceKernels, select
from kmeans_xp._kernels._protocol import KernelData, KernelSet

METHODS = [name for name, v in vars(KernelSet).items() if callable(v) and not name.startswith("_")]

# (module, class) of every kernel set; the optional ones are skipped where their library is
# missing (the classes import their library inside their methods, except Triton's module)
SETS = [
    ("kmeans_xp._kernels._reference", "ReferenceKernels"),
    ("kmeans_xp._kernels._numpy", "NumpyKernels"),
    ("kmeans_xp._kernels._torch", "TorchKernels"),
    ("kmeans_xp._kernels._cupy", "CupyKernels"),
    ("kmeans_xp._kernels._cpu", "FusedNumpyKernels"),
    ("kmeans_xp._kernels._cpu", "FusedTorchKernels"),
    ("kmeans_xp._kernels._manhattan", "ManhattanKernels"),
    ("kmeans_xp._kernels._sparse", "SparseKernels"),
    ("kmeans_xp._kernels._triton", "TritonTorchKernels"),
    ("kmeans_xp._kernels._triton", "TritonCupyKernels"),
]


def _shape(fn) -> list:
    """(name, kind, default) of each parameter but ``self``."""
    params = list(inspect.signature(fn).parameters.values())[1:]
    return [(p.name, p.kind, p.default) for p in params]


def test_the_protocol_lists_every_public_method_of_the_reference():
    public = {n for n, v in vars(ReferenceKernels).items() if callable(v) and not n.startswith("_")}
    assert public == set(METHODS)


@pytest.mark.parametrize("module,cls", SETS, ids=[c for _, c in SETS])
def test_kernel_set_keeps_the_protocol_signatures(module, cls):
    if module.endswith("_triton") and importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    kernel_set = getattr(importlib.import_module(module), cls)
    wrong = {}
    for name in METHODS:
        ours = getattr(kernel_set, name)
        if _shape(ours) != _shape(getattr(KernelSet, name)):
            wrong[name] = (
                str(inspect.signature(ours)),
                str(inspect.signature(getattr(KernelSet, name))),
            )
    assert not wrong, wrong


def test_selected_sets_and_their_data_are_instances_of_the_protocols():
    from kmeans_xp._data import ChunkedData

    X = np.random.default_rng(0).normal(size=(50, 3))
    kernels = select(np, "cpu", np.float64)
    assert isinstance(kernels, KernelSet)
    data = ChunkedData(X, xp=np, dtype=np.float64, kernels=kernels)
    data.prepare("X")
    assert isinstance(data, KernelData)
