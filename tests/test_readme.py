"""The README and the workflow page of the user guide (docs/guide/workflow.md, moved out of
the README) run as written: the README's two commands and its example; the handbook workflow
(choose k by the elbow and the silhouette, fit with random_state=2021, scatter with centroids,
labels column in the DataFrame) on NumPy and on torch with scikit-learn blocked and no
hand-written matplotlib; the pipeline block with scikit-learn; the command-line block in a
shell-like run."""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
WORKFLOW = (ROOT / "docs" / "guide" / "workflow.md").read_text()


def workflow_blocks() -> list[tuple[str, str]]:
    """(language, code) of each fenced block between the workflow markers."""
    m = re.search(r"<!-- workflow:begin.*?-->(.*?)<!-- workflow:end -->", WORKFLOW, re.S)
    assert m, "docs/guide/workflow.md lacks the workflow section markers"
    return re.findall(r"```(\w+)\n(.*?)```", m.group(1), re.S)


def test_readme_is_short_with_the_two_commands_and_links_that_exist():
    assert len(README.splitlines()) <= 120
    assert 'pip install ".[plot]" && python -m kmeans_xp.demo' in README
    assert ('pip install "torch==2.13.0" && pip install -e ".[test,plot,accel]" && '
            "python -m pytest") in README
    for target in re.findall(r"\]\(((?:docs/|CHANGELOG)[^)#]*)\)", README):
        assert (ROOT / target).exists(), target


def test_readme_example_runs(tmp_path):
    (code,) = [c for lang, c in re.findall(r"```(\w+)\n(.*?)```", README, re.S)
               if lang == "python"]
    if importlib.util.find_spec("torch") is None:
        code = code.split("import torch")[0]
    code += "\nprint('README example ok')\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "README example ok" in r.stdout


def env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")


def test_blocks_use_no_hand_written_matplotlib_or_sklearn():
    blocks = [code for lang, code in workflow_blocks() if lang == "python"]
    assert len(blocks) >= 6
    handbook = [c for c in blocks if "sklearn" not in c]
    assert len(handbook) == len(blocks) - 1  # only the pipeline block uses scikit-learn
    for code in blocks:
        assert "matplotlib" not in code and "plt." not in code, code
    assert any("random_state=2021" in c and "KMeans(" in c for c in handbook)
    assert any('df["cluster"] = km.labels_' in c for c in handbook)


def test_python_blocks_run_as_written(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    has_torch = importlib.util.find_spec("torch") is not None
    has_sklearn = importlib.util.find_spec("sklearn") is not None
    blocks = [code for lang, code in workflow_blocks() if lang == "python"]
    script = ["import sys", "sys.modules['sklearn'] = None  # blocked: import sklearn fails",
              "ns = {}"]
    for code in blocks:
        if "import torch" in code and not has_torch:
            continue
        if "sklearn" in code:
            script.append("assert not [m for m in sys.modules if m.startswith('sklearn.')]")
            if not has_sklearn:
                continue
            script.append("del sys.modules['sklearn']")
        script.append(f"exec(compile({code!r}, 'workflow.md', 'exec'), ns)")
    script.append(textwrap.dedent(f"""
        g = ns
        assert g['result'].best_k == 3, g['result'].best_k
        assert g['by_silhouette'].best_k == 2
        import kmeans_xp
        assert round(kmeans_xp.metrics.silhouette_score(g['X'], g['km'].labels_), 3) == 0.551
        assert 'cluster' in g['df'].columns and len(g['df']) == 150
        if {has_torch}:
            assert g['result_t'].best_k == 3
        print('README workflow ok')
        """))
    r = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "README workflow ok" in r.stdout
    made = {p.name for p in tmp_path.glob("*.png")}
    expected = {"elbow.png", "clusters.png", "clusters_pca.png", "silhouette.png"}
    if has_torch:
        expected |= {"clusters_torch.png", "silhouette_torch.png"}
    assert expected <= made, made


def test_cli_block_runs_as_written(tmp_path):
    pytest.importorskip("pandas")
    pytest.importorskip("matplotlib")
    (code,) = [c for lang, c in workflow_blocks() if lang == "bash"]
    for line in code.strip().splitlines():
        argv = shlex.split(line)
        if argv[0] == "kmeans-xp":
            argv = [sys.executable, "-m", "kmeans_xp.cli", *argv[1:]]
            if "torch" in argv and importlib.util.find_spec("torch") is None:
                continue
        else:
            assert argv[0] == "python"
            argv[0] = sys.executable
        r = subprocess.run(argv, cwd=tmp_path, env=env(), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, (line, r.stderr)
    for name in ("iris.csv", "iris_labels.csv", "centers.csv", "summary.json", "iris.png",
                 "choose_k.png"):
        assert (tmp_path / name).exists(), name
