"""A metric is one object (kmeans_xp._metric): its centre update, distance factor and labels."""

from __future__ import annotations

import numpy as np
import pytest

from kmeans_xp import KMeans
from kmeans_xp._metric import METRICS, get_metric


def test_registry_is_what_the_estimator_accepts():
    from kmeans_xp._validation import METRICS as ACCEPTED
    from kmeans_xp._validation import PARAMETERS

    assert set(ACCEPTED) == set(METRICS) == {"euclidean", "cosine", "manhattan"}
    assert all(PARAMETERS["metric"].accepts(name) for name in METRICS)  # the parameter table
    for name, m in METRICS.items():
        assert get_metric(name) is m and get_metric(m) is m
        assert m.inertia_label and m.algorithm and m.distance_label
    with pytest.raises(Exception, match="metric"):
        KMeans(2, metric="chebyshev").fit(np.zeros((4, 2)))


@pytest.mark.parametrize("n_per", [4, 5])
def test_k_medians_centres_are_numpys_median(backend, n_per):
    """Unit weights: each centre is ``np.median`` of its cluster, feature by feature (the
    midpoint of the two middle values for an even count; it was the lower one)."""
    rng = np.random.default_rng(3)
    A = rng.uniform(0, 1, size=(n_per, 3))
    B = rng.uniform(0, 1, size=(n_per, 3)) + 10.0
    X = np.concatenate([A, B])
    init = np.array([[0.5] * 3, [10.5] * 3])
    km = KMeans(2, metric="manhattan", init=backend.asarray(init), n_init=1).fit(backend.asarray(X))
    C = backend.to_numpy(km.cluster_centers_)
    np.testing.assert_allclose(
        C, np.stack([np.median(A, axis=0), np.median(B, axis=0)]), rtol=1e-12
    )


def test_weighted_median_midpoint_only_where_half_the_weight_is_hit():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    init = np.array([[1.5]])
    # weights 1, 1, 1, 1: half is reached exactly after 1.0 -> the midpoint 1.5
    km = KMeans(1, metric="manhattan", init=init, n_init=1).fit(X)
    assert km.cluster_centers_[0, 0] == 1.5
    # weights 1, 2, 1, 1 (total 5, half 2.5): first exceeded at 1.0 -> 1.0
    km = KMeans(1, metric="manhattan", init=init, n_init=1).fit(
        X, sample_weight=np.array([1.0, 2.0, 1.0, 1.0])
    )
    assert km.cluster_centers_[0, 0] == 1.0
    # zero-weight rows are skipped: weights 1, 1, 0, 1, 1 over 0, 1, 2, 3, 4 -> (1 + 3) / 2
    X5 = np.arange(5.0)[:, None]
    km = KMeans(1, metric="manhattan", init=np.array([[2.0]]), n_init=1).fit(
        X5, sample_weight=np.array([1.0, 1.0, 0.0, 1.0, 1.0])
    )
    assert km.cluster_centers_[0, 0] == 2.0


def test_distance_factors():
    assert METRICS["euclidean"].distance_factor(4.0) == (16.0, True)
    assert METRICS["cosine"].distance_factor(4.0) == (0.5, False)
    assert METRICS["manhattan"].distance_factor(4.0) == (4.0, False)
