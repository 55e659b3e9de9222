"""scikit-learn's own k-means tests, run against kmeans_xp.

The installed ``sklearn/cluster/tests/test_k_means.py`` is loaded as a fresh module (scikit-learn's
copy is left untouched), its public names ``KMeans``, ``k_means``, ``kmeans_plusplus`` and
``MiniBatchKMeans`` are rebound to kmeans_xp's, the same substitution is made in every
``parametrize`` value, and every applicable test function is collected here.

Every collected case runs, dense and sparse (SciPy CSR matrices and arrays), ``KMeans`` and
``MiniBatchKMeans``: no case is marked xfail or skip (``test_harness_substitutes_kmeans_xp``
checks it).  The tests left out are listed in ``LEFT_OUT`` below with the reason for each.

The comparison objects of the tests (``ConvergenceWarning``, ``pairwise_distances``,
``v_measure_score``, ...) stay scikit-learn's: they are the reference.

``global_random_seed`` is 42 as in scikit-learn's default run; set
``SKLEARN_TESTS_GLOBAL_RANDOM_SEED`` to a number, ``a-b`` or ``all`` (0-99) for more seeds, as
scikit-learn's conftest reads it.  ``global_dtype`` is float64, plus float32 with
``SKLEARN_RUN_FLOAT32_TESTS=1``.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import pathlib

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
scipy_sparse = pytest.importorskip("scipy.sparse")

import kmeans_xp

# -- tests left out, with the reason for each -----------------------------------------
PRIVATE = "tests a private scikit-learn function or attribute, not the public API"
LEFT_OUT = {
    "test_relocate_empty_clusters":
        PRIVATE + " (_relocate_empty_clusters_dense/_sparse); our relocation is exercised "
        "through KMeans by test_kmeans_relocated_clusters and "
        "test_kmeans_empty_cluster_relocated",
    "test_minibatch_update_consistency":
        PRIVATE + " (_mini_batch_step, _labels_inertia)",
    "test_minibatch_reassign": PRIVATE + " (_mini_batch_step, _labels_inertia)",
    "test_minibatch_kmeans_init_size": PRIVATE + " (MiniBatchKMeans._init_size)",
    "test_euclidean_distance":
        PRIVATE + " (_euclidean_dense_dense_wrapper, _euclidean_sparse_dense_wrapper)",
    "test_inertia": PRIVATE + " (_inertia_dense, _inertia_sparse)",
    "test_is_same_clustering": PRIVATE + " (_is_same_clustering)",
    "test_sample_weight_init":
        PRIVATE + " (KMeans._init_centroids); weighted k-means++ and random init are "
        "compared with scikit-learn through the public API in tests/test_consistency.py",
    "test_sample_weight_zero": PRIVATE + " (KMeans._init_centroids)",
}
# Nothing is left out for algorithm="elkan": kmeans_xp accepts it and runs the Lloyd kernel,
# so the elkan tests that go through the public API (same results as lloyd, n_iter_, the
# one-cluster warning) apply and run; scikit-learn has no test of elkan internals in this
# module beyond the private helpers above.

def _load_sklearn_tests():
    """A fresh copy of scikit-learn's installed test module (scikit-learn's own untouched)."""
    path = pathlib.Path(sklearn.__file__).parent / "cluster" / "tests" / "test_k_means.py"
    spec = importlib.util.spec_from_file_location("_kmeans_xp_sklearn_test_k_means", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, path


_SK, SKLEARN_TEST_FILE = _load_sklearn_tests()
_SK_KMEANS, _SK_MINIBATCH = _SK.KMeans, _SK.MiniBatchKMeans
SUBSTITUTES = {
    id(_SK.KMeans): kmeans_xp.KMeans,
    id(_SK.k_means): kmeans_xp.k_means,
    id(_SK.kmeans_plusplus): kmeans_xp.kmeans_plusplus,
    id(_SK.MiniBatchKMeans): kmeans_xp.MiniBatchKMeans,
}
# Module globals the test functions read at call time.
_SK.KMeans = kmeans_xp.KMeans
_SK.k_means = kmeans_xp.k_means
_SK.kmeans_plusplus = kmeans_xp.kmeans_plusplus
_SK.MiniBatchKMeans = kmeans_xp.MiniBatchKMeans


def _substitute(value):
    """One parametrize value with scikit-learn's estimators and functions replaced by
    kmeans_xp's (tuples element-wise)."""
    if isinstance(value, tuple):
        return tuple(_substitute(v) for v in value)
    return SUBSTITUTES.get(id(value), value)


def _rewrite_parametrize(mark):
    argvalues = []
    for value in mark.args[1]:
        if isinstance(value, type(pytest.param(None))):  # already a ParameterSet
            new = _substitute(value.values)
            argvalues.append(pytest.param(*new, marks=value.marks, id=value.id))
        else:
            argvalues.append(_substitute(value))
    return pytest.mark.parametrize(mark.args[0], argvalues, *mark.args[2:], **mark.kwargs)


def _flat(argvalues) -> list:
    """Every single value of a parametrize list (tuples and ParameterSets opened)."""
    out = []
    for v in argvalues:
        v = v.values if isinstance(v, type(pytest.param(None))) else v
        out.extend(v if isinstance(v, tuple) else (v,))
    return out


COLLECTED = []
for _name, _func in list(vars(_SK).items()):
    if not (_name.startswith("test_") and inspect.isfunction(_func)):
        continue
    if _name in LEFT_OUT:
        continue
    _func.pytestmark = [_rewrite_parametrize(m) if m.name == "parametrize" else m
                        for m in getattr(_func, "pytestmark", [])]
    globals()[_name] = _func
    COLLECTED.append(_name)


# -- the two fixtures of scikit-learn's conftest these tests use ---------------------------
def _seeds() -> list[int]:
    raw = os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42").strip()
    if raw == "all":
        return list(range(100))
    if "-" in raw:
        lo, hi = (int(s) for s in raw.split("-"))
        return list(range(lo, hi + 1))
    return [int(raw)]


@pytest.fixture(params=_seeds())
def global_random_seed(request):
    return request.param


_DTYPES = [np.float64] + ([np.float32] if os.environ.get(
    "SKLEARN_RUN_FLOAT32_TESTS", "0") == "1" else [])


@pytest.fixture(params=_DTYPES, ids=[np.dtype(d).name for d in _DTYPES])
def global_dtype(request):
    return request.param


# -- the harness itself ------------------------------------------------------------------------
def test_harness_substitutes_kmeans_xp():
    """The loaded tests really call kmeans_xp, and every sklearn test is run or listed."""
    assert _SK.KMeans is kmeans_xp.KMeans and _SK.k_means is kmeans_xp.k_means
    assert _SK.kmeans_plusplus is kmeans_xp.kmeans_plusplus
    assert _SK.MiniBatchKMeans is not _SK_MINIBATCH  # never scikit-learn's in our place
    names = {n for n, f in vars(_SK).items() if n.startswith("test_") and inspect.isfunction(f)}
    assert set(LEFT_OUT) <= names, "a left-out test no longer exists in scikit-learn"
    assert names == set(LEFT_OUT) | set(COLLECTED)
    # every Estimator parametrization now names kmeans_xp's estimator, not scikit-learn's
    for name in COLLECTED:
        for mark in getattr(_SK.__dict__[name], "pytestmark", []):
            if mark.name == "parametrize":
                flat = _flat(mark.args[1])
                assert not any(v is _SK_KMEANS or v is _SK_MINIBATCH for v in flat), name


def test_harness_runs_every_case():
    """No collected case is expected to fail or skipped here: no xfail or skip mark on a
    test or a parametrization, and scikit-learn's own skipif (no BLAS found) is off."""
    for name in COLLECTED:
        for mark in getattr(_SK.__dict__[name], "pytestmark", []):
            assert mark.name not in ("xfail", "skip"), (name, mark)
            if mark.name == "skipif":
                assert not any(mark.args), (name, mark)
            if mark.name == "parametrize":
                for value in mark.args[1]:
                    assert not getattr(value, "marks", ()), (name, value)
