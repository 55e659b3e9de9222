"""What a newcomer sees, per metric: the elbow plot's axis label, the cluster plot's title,
the ``inertia_`` docstrings, a legend that hides no centre (the handbook's data), and the
message for a random_state of another library (issue 21)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import kmeans_xp
from kmeans_xp import InvalidParameterError, KMeans, MiniBatchKMeans, select_k

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kmeans_xp.plotting import plot_clusters, plot_elbow  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(c, 0.5, size=(30, 3)) for c in (1.0, 4.0, 8.0)])


METRICS = {
    "euclidean": ("squares", "k-means"),
    "manhattan": ("L1", "k-medians"),
    "cosine": ("cosine", "spherical k-means"),
}


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_elbow_label_says_what_the_inertia_sums(metric):
    result = select_k(_blobs(), range(1, 5), random_state=0, metric=metric)
    label = plot_elbow(result).get_ylabel()
    assert METRICS[metric][0] in label, label
    if metric != "euclidean":
        assert "squares" not in label, label
    # plain values: the metric is a keyword
    ks, inertia = result.k_values, result.inertia
    assert METRICS[metric][0] in plot_elbow(ks, inertia, metric=metric).get_ylabel()
    with pytest.raises(ValueError, match="metric"):
        plot_elbow(ks, inertia, metric="chebyshev")


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_cluster_plot_title_names_the_method(metric):
    X = _blobs()
    km = KMeans(3, random_state=0, metric=metric).fit(X)
    title = plot_clusters(X, model=km).get_title()
    assert title.startswith(f"{METRICS[metric][1]} clusters (k = 3"), title
    result = select_k(X, range(2, 5), random_state=0, metric=metric)
    assert plot_clusters(X, model=result).get_title().startswith(METRICS[metric][1])


def test_inertia_docstrings_say_what_inertia_means_per_metric():
    for est, words in ((KMeans, ("squared", "cosine", "L1")), (MiniBatchKMeans, ("squared",))):
        m = re.search(r"\n\s*inertia_ : .*?\n(.*?)(?:\n\s*\w+_ :|\n\s*\n)", est.__doc__, re.S)
        assert m, est
        text = " ".join(m.group(1).split())
        for word in words:
            assert word in text, (est.__name__, text)
    text = " ".join(kmeans_xp.SelectKResult.__doc__.split())
    assert "L1" in text and "cosine" in text


def _handbook_data(seed: int) -> np.ndarray:
    """The handbook chapter's toy data: 300 rows, an integer 0-3 and a uniform 0-10."""
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(0, 4, 300), rng.uniform(0, 10, 300)]).astype(float)


def _covered_centres(ax) -> list:
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = ax.get_legend().get_window_extent(renderer)
    centres = ax.collections[-1]
    assert centres.get_label() == "centres"
    disp = ax.transData.transform(np.asarray(centres.get_offsets(), dtype=float))
    r = 8.0 * fig.dpi / 72.0  # most of the X marker (s=300: about 17 points wide)
    return [
        tuple(p) for p in disp if box.x0 - r < p[0] < box.x1 + r and box.y0 - r < p[1] < box.y1 + r
    ]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("layout", ["alone", "cli_select_k"])
def test_legend_hides_no_centre_on_the_handbook_data(seed, layout):
    X = _handbook_data(seed)
    km = KMeans(4, random_state=seed).fit(X)
    if layout == "alone":
        ax = plot_clusters(X, model=km)
    else:  # the CLI's --plot with --select-k: the clusters beside the elbow
        _, (_, ax) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
        plot_clusters(X, model=km, ax=ax)
    assert _covered_centres(ax) == []
    assert len(ax.get_legend().get_texts()) == 5  # 4 clusters and the centres


def test_legend_stays_inside_when_it_hides_nothing():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal((0, 0), 0.3, (50, 2)), rng.normal((6, 0), 0.3, (50, 2))])
    ax = plot_clusters(X, model=KMeans(2, random_state=0).fit(X))
    ax.figure.canvas.draw()
    box = ax.get_legend().get_window_extent(ax.figure.canvas.get_renderer())
    axbox = ax.get_window_extent(ax.figure.canvas.get_renderer())
    assert axbox.x0 <= box.x0 and box.x1 <= axbox.x1 + 1
    assert _covered_centres(ax) == []


def test_random_state_of_another_library_says_to_pass_an_int():
    torch = pytest.importorskip("torch")
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(InvalidParameterError) as info:
        KMeans(3, random_state=torch.Generator()).fit(X)
    msg = str(info.value)
    assert "Got torch.Generator" in msg and "not supported" in msg and "int seed" in msg, msg
    with pytest.raises(InvalidParameterError, match=r"Got 'seed' instead\.$"):
        KMeans(3, random_state="seed").fit(X)


def test_demo_figure_has_the_elbow_and_the_silhouette_panels():
    from kmeans_xp import demo

    X, species, names = demo.load_iris()
    km = KMeans(3, random_state=0).fit(X)
    sweep = select_k(X, range(1, 11), random_state=0)
    fig = demo.figure(X, km.labels_, km.cluster_centers_, names, "demo", sweep)
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("Choosing k") for t in titles), titles
    assert any(t.startswith("Silhouette diagram (k = 3") for t in titles), titles
    elbow = next(ax for ax in fig.axes if ax.get_title().startswith("Choosing k"))
    assert "silhouette" in elbow.right_ax.get_ylabel()
    assert sum(len(ax.collections) >= 4 for ax in fig.axes) >= 2  # the two cluster panels


def test_without_scipy_the_fused_pass_steps_aside():
    """numba compiles np.dot to SciPy's BLAS: with numba but no SciPy (an environment the
    default install does not make, but a user's can be), the NumPy set runs instead of a
    compile error (the wheel's demo failed so before SciPy joined numba's dependencies)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    code = textwrap.dedent("""
        import sys
        class _Blocker:
            def find_spec(self, name, path=None, target=None):
                if name == "scipy" or name.startswith("scipy."):
                    raise ModuleNotFoundError(f"No module named {name!r} (hidden)", name=name)
        sys.meta_path.insert(0, _Blocker())
        import numpy as np
        from kmeans_xp import KMeans
        from kmeans_xp._kernels import _cpu
        assert not _cpu.available()
        X = np.random.default_rng(0).normal(size=(300, 4))
        km = KMeans(3, random_state=0).fit(X)
        print("ok", km.n_iter_)
    """)
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok")
