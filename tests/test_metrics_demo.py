"""Metrics against scikit-learn on every backend, and the demo (the README's main job)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmeans_xp.metrics import adjusted_rand_score, silhouette_score

sk_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("chunk_size", [None, 13])
def test_silhouette_matches_sklearn(backend, dtype_name, chunk_size):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(dtype_name)
    X[:100] += 4
    labels = np.r_[np.zeros(100, int), rng.integers(1, 4, 200)]
    ours = silhouette_score(backend.asarray(X), backend.asarray(labels), chunk_size=chunk_size)
    ref = sk_metrics.silhouette_score(X.astype(np.float64), labels)
    assert ours == pytest.approx(ref, rel=1e-4 if dtype_name == "float32" else 1e-10)


def test_silhouette_singletons_and_bad_k():
    X = np.array([[0.0, 0], [0, 1], [5, 5], [9, 9]])
    labels = np.array([0, 0, 1, 2])
    assert silhouette_score(X, labels) == pytest.approx(sk_metrics.silhouette_score(X, labels))
    with pytest.raises(ValueError, match="Number of labels is 1"):
        silhouette_score(X, np.zeros(4, int))


def test_adjusted_rand_matches_sklearn(backend):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 3, 500), rng.integers(0, 5, 500)
    b[:300] = a[:300]
    ours = adjusted_rand_score(backend.asarray(a), backend.asarray(b))
    assert ours == pytest.approx(sk_metrics.adjusted_rand_score(a, b), rel=1e-12)
    names = np.array(["x", "y", "z"])[a]
    assert adjusted_rand_score(names.tolist(), backend.asarray(a)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        adjusted_rand_score(a, backend.asarray(b[:10]))


@pytest.mark.parametrize("args", [[], ["--backend", "torch"], ["--backend", "array_api_strict"]])
def test_demo_runs_and_recovers_the_species(args, tmp_path):
    if args:
        pytest.importorskip(args[1])
    png = tmp_path / "iris.png"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))  # this checkout
    res = subprocess.run([sys.executable, "-m", "kmeans_xp.demo", *args, "--plot", str(png)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for heading in ("Cluster sizes and centres", "Clusters against species",
                    "Choosing k", "silhouette", "The elbow (Kneedle) is at k = 3"):
        assert heading in out
    ari = float(re.search(r"Adjusted Rand index with the species: ([0-9.]+)", out).group(1))
    assert ari > 0.7  # k-means on iris recovers setosa and most of the other two
    sizes = [int(m) for m in re.findall(r"^\s+\d\s+(\d+)\s", out, re.M)[:3]]
    assert sum(sizes) == 150 and 50 in sizes  # setosa is found whole
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "no plot" in out
    else:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
