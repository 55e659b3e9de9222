"""The kmeans-xp command, in-process and as a subprocess: iris as CSV, TSV, NPY and Parquet,
the files it writes, and one-line exit-2 errors for bad files, columns and options."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kmeans_xp import KMeans, select_k
from kmeans_xp.cli import main
from kmeans_xp.demo import load_iris

ROOT = Path(__file__).resolve().parents[1]
IRIS_CSV = ROOT / "kmeans_xp" / "data" / "iris.csv"
X, SPECIES, NAMES = load_iris()


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """``python -m kmeans_xp.cli`` in a fresh process, on this checkout's package."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "kmeans_xp.cli", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


@pytest.fixture
def iris_csv(tmp_path) -> Path:
    return Path(shutil.copy(IRIS_CSV, tmp_path / "iris.csv"))


def read_csv(path: Path, delimiter: str = ",") -> list[list[str]]:
    with open(path, newline="") as f:
        return list(csv.reader(f, delimiter=delimiter))


def test_fit_writes_labels_centers_summary(iris_csv, tmp_path, capsys):
    out, cen, summ = tmp_path / "labels.csv", tmp_path / "centers.csv", tmp_path / "s.json"
    rc = main([str(iris_csv), "--k", "3", "--seed", "2021", "--output", str(out),
               "--centers", str(cen), "--summary", str(summ)])
    assert rc == 0
    printed = capsys.readouterr()
    assert "skipping non-numeric column(s): species" in printed.err
    ref = KMeans(n_clusters=3, random_state=2021).fit(X)
    rows = read_csv(out)
    original = read_csv(iris_csv)
    assert rows[0] == original[0] + ["cluster"]
    assert [r[:-1] for r in rows[1:]] == original[1:]  # the input rows, verbatim
    np.testing.assert_array_equal([int(r[-1]) for r in rows[1:]], ref.labels_)
    centers = read_csv(cen)
    assert centers[0] == ["cluster"] + NAMES
    np.testing.assert_allclose([[float(v) for v in r[1:]] for r in centers[1:]],
                               ref.cluster_centers_, rtol=1e-15)
    s = json.loads(summ.read_text())
    assert (s["k"], s["n_iter"], s["n_samples"], s["n_features"]) == (3, ref.n_iter_, 150, 4)
    assert s["inertia"] == pytest.approx(ref.inertia_, rel=1e-15)
    assert s["sizes"] == np.bincount(ref.labels_).tolist()
    assert s["backend"] == "numpy" and s["columns"] == NAMES and s["select_k"] is None
    assert set(s["timings"]) == {"read_s", "fit_s", "write_s", "total_s"}
    assert f"inertia {ref.inertia_:.6g}" in printed.out


def test_select_k_standardize_columns(iris_csv, tmp_path, capsys):
    summ = tmp_path / "s.json"
    cols = "petal_length_cm,petal_width_cm,0"
    rc = main([str(iris_csv), "--select-k", "2..6", "--criterion", "silhouette", "--columns",
               cols, "--standardize", "--summary", str(summ), "--centers",
               str(tmp_path / "c.tsv"), "--no-progress"])
    assert rc == 0
    Z = X[:, [2, 3, 0]]
    Zs = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    ref = select_k(Zs, range(2, 7), criterion="silhouette", random_state=0)
    s = json.loads(summ.read_text())
    assert s["columns"] == ["petal_length_cm", "petal_width_cm", "sepal_length_cm"]
    assert s["k"] == ref.best_k and s["select_k"]["k_values"] == [2, 3, 4, 5, 6]
    np.testing.assert_allclose(s["select_k"]["silhouette"], ref.silhouette, rtol=1e-9)
    assert s["standardized"] is True
    centers = read_csv(tmp_path / "c.tsv", "\t")
    back = ref.best_model.cluster_centers_ * Z.std(axis=0) + Z.mean(axis=0)  # data units
    np.testing.assert_allclose([[float(v) for v in r[1:]] for r in centers[1:]], back,
                               rtol=1e-9)
    assert "* best k" in capsys.readouterr().out


def test_npy_and_tsv_inputs(tmp_path):
    np.save(tmp_path / "x.npy", X)
    assert main([str(tmp_path / "x.npy"), "--k", "3", "--output", str(tmp_path / "l.npy"),
                 "-q"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"),
                                  KMeans(n_clusters=3, random_state=0).fit(X).labels_)
    with open(tmp_path / "x.tsv", "w") as f:
        for row in X:
            f.write("\t".join(map(str, row)) + "\n")
    assert main([str(tmp_path / "x.tsv"), "--no-header", "--k", "3", "--output",
                 str(tmp_path / "o.csv"), "-q"]) == 0
    rows = read_csv(tmp_path / "o.csv")
    assert rows[0] == ["0", "1", "2", "3", "cluster"] and len(rows) == 151


def test_parquet_in_and_out(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = load_iris(as_frame=True)
    df.to_parquet(tmp_path / "iris.parquet")
    r = cli("iris.parquet", "--k", "3", "--output", "out.parquet", "--summary", "s.json",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert list(out.columns) == list(df.columns) + ["cluster"]
    pd.testing.assert_frame_equal(out.drop(columns="cluster"), df)
    np.testing.assert_array_equal(out["cluster"],
                                  KMeans(n_clusters=3, random_state=0).fit(X).labels_)
    assert json.loads((tmp_path / "s.json").read_text())["k"] == 3


def test_subprocess_csv_plot_and_help(iris_csv, tmp_path):
    pytest.importorskip("matplotlib")
    r = cli("iris.csv", "--select-k", "2..8", "--plot", "p.png", "--output", "o.csv",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = select_k(X, range(2, 9), random_state=0).best_k  # Kneedle on k = 2..8
    assert f"k = {best}: inertia" in r.stdout
    h = cli("--help", cwd=tmp_path)
    assert h.returncode == 0 and "examples:" in h.stdout and "--select-k" in h.stdout


def test_python_dash_m_kmeans_xp_is_the_command(iris_csv, tmp_path):
    """``python -m kmeans_xp`` runs the same command as ``python -m kmeans_xp.cli``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "kmeans_xp", "iris.csv", "--k", "3", "-q",
                        "--output", "o.csv"], capture_output=True, text=True, cwd=tmp_path,
                       env=env, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    labels = [int(row[-1]) for row in read_csv(tmp_path / "o.csv")[1:]]
    np.testing.assert_array_equal(labels, KMeans(3, random_state=0).fit_predict(X))
    bad = subprocess.run([sys.executable, "-m", "kmeans_xp", "iris.csv"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=300, check=False)
    assert bad.returncode == 2 and bad.stderr.startswith("kmeans-xp: error: ")


def test_torch_backend(iris_csv, tmp_path):
    pytest.importorskip("torch")
    summ = tmp_path / "s.json"
    assert main([str(iris_csv), "--k", "3", "--backend", "torch", "--device", "cpu",
                 "--summary", str(summ), "-q"]) == 0
    s = json.loads(summ.read_text())
    assert (s["backend"], s["device"], s["dtype"]) == ("torch", "cpu", "float32")
    ref = KMeans(n_clusters=3, random_state=0).fit(X.astype(np.float32))
    assert sorted(s["sizes"]) == sorted(np.bincount(ref.labels_).tolist())


@pytest.mark.parametrize("metric", ["cosine", "manhattan"])
def test_metric_option(iris_csv, tmp_path, metric):
    """--metric reaches KMeans: the clusters and inertia of KMeans(metric=...) on the same data."""
    summ = tmp_path / "s.json"
    assert main([str(iris_csv), "--k", "3", "--metric", metric, "--seed", "0",
                 "--summary", str(summ), "-q"]) == 0
    s = json.loads(summ.read_text())
    ref = KMeans(n_clusters=3, random_state=0, metric=metric).fit(X)
    assert sorted(s["sizes"]) == sorted(np.bincount(ref.labels_).tolist())
    assert s["inertia"] == pytest.approx(ref.inertia_, rel=1e-9)


BAD = [
    (["missing.csv", "--k", "3"], "missing.csv: no such file"),
    (["iris.csv"], "give the number of clusters with --k K"),
    (["iris.csv", "--k", "0"], "--k 0: must be an int in the range [1, inf)"),
    (["iris.csv", "--k", "200"], "--k 200: more clusters than rows (150)"),
    (["iris.csv", "--k", "three"], "argument --k: invalid int value: 'three'"),
    (["iris.csv", "--k", "3", "--columns", "petal"], "--columns: no column 'petal'"),
    (["iris.csv", "--k", "3", "--columns", "species"], "column 'species' is not numeric"),
    (["iris.csv", "--k", "3", "--columns", "9"], "--columns: no column '9'"),
    (["iris.csv", "--select-k", "6..2"], "the range is empty"),
    (["iris.csv", "--select-k", "2..500"], "k must be between 1 and 150"),
    (["iris.csv", "--select-k", "2..3"], "needs at least 3 values in k_range"),
    (["iris.csv", "--k", "3", "--select-k", "2..5"], "not allowed with argument"),
    (["iris.csv", "--k", "3", "--n-init", "0"], "--n-init '0'"),
    (["iris.csv", "--k", "3", "--max-iter", "0"],
     "--max-iter 0: must be an int in the range [1, inf)"),
    (["iris.csv", "--k", "3", "--n-init", "often"], "--n-init 'often': must be 'auto' or an int"),
    (["iris.csv", "--k", "3", "--tol", "-1"],
     "--tol -1.0: must be a float in the range [0.0, inf)"),
    (["iris.csv", "--k", "3", "--tol", "nan"], "--tol nan: must be a float"),
    (["iris.csv", "--k", "3", "--seed", "-1"],
     "--seed -1: must be an int in the range [0, 4294967295]"),
    (["iris.csv", "--k", "3", "--backend", "jax"], "invalid choice: 'jax'"),
    (["iris.csv", "--k", "3", "--output", "o.xlsx"], "unknown extension '.xlsx'"),
    (["iris.csv", "--k", "3", "--centers", "c.parquet"], "parquet is not available here"),
    (["iris.csv", "--k", "3", "--output", "nodir/o.csv"], "does not exist"),
    (["iris.csv", "--k", "3", "--bogus"], "unrecognized arguments: --bogus"),
    (["data.json", "--k", "3"], "unknown extension '.json'"),
    (["ragged.csv", "--k", "2"], "ragged.csv, line 3: 3 fields, expected 2"),
    (["holes.csv", "--k", "2"], "column 'b' has 1 missing value(s) (first in data row 2)"),
    (["empty.csv", "--k", "2"], "empty.csv is empty"),
    (["binary.csv", "--k", "2"], "cannot read binary.csv as text"),
    (["fake.parquet", "--k", "2"], "fake.parquet"),
    (["fake.npy", "--k", "2"], "cannot read fake.npy as a NumPy .npy file"),
    (["text.csv", "--k", "2"], "text.csv has no numeric column"),
    (["dup.csv", "--k", "2"], "column 'a' holds infinite values (first in data row 2)"),
]


@pytest.fixture
def bad_files(iris_csv, tmp_path) -> Path:
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3,4,5\n")
    (tmp_path / "holes.csv").write_text("a,b\n1,2\n3,\n5,6\n")
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    (tmp_path / "fake.parquet").write_text("not parquet")
    (tmp_path / "fake.npy").write_text("not npy")
    (tmp_path / "text.csv").write_text("a,b\nx,y\nz,w\n")
    (tmp_path / "dup.csv").write_text("a,b\n1,2\ninf,4\n5,6\n")
    (tmp_path / "data.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2(bad_files, args, message, capsys, monkeypatch):
    if args[0] == "fake.parquet":
        pytest.importorskip("pandas")
    monkeypatch.chdir(bad_files)
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert err[-1].startswith("kmeans-xp: error: ") and message in err[-1], err
    assert all(line.startswith("kmeans-xp: ") for line in err)  # no traceback


def test_bad_input_subprocess(bad_files):
    for args, message in [(["missing.csv", "--k", "3"], "no such file"),
                          (["iris.csv", "--k", "3", "--columns", "petal"], "no column"),
                          (["ragged.csv", "--k", "2"], "line 3")]:
        r = cli(*args, cwd=bad_files)
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_demo_bad_k_one_line_exit_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for k in ("0", "200", "x"):
        r = subprocess.run([sys.executable, "-m", "kmeans_xp.demo", "--k", k, "--plot", ""],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
        assert r.returncode == 2
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("python -m kmeans_xp.demo: error: ")
        assert "--k" in lines[0]
        assert "Traceback" not in r.stderr


def test_one_to_backend_for_the_cli_and_the_demo():
    """kmeans_xp._compat.to_backend serves both (they had a copy each)."""
    import kmeans_xp.cli as cli_mod
    import kmeans_xp.demo as demo_mod
    from kmeans_xp._compat import to_backend

    assert not hasattr(cli_mod, "to_backend") or cli_mod.to_backend is to_backend
    assert demo_mod.to_backend is to_backend
    X = np.arange(6.0).reshape(3, 2)
    assert to_backend(X, "numpy").dtype == np.float64
    assert to_backend(X, "numpy", dtype="float32").dtype == np.float32
    with pytest.raises(ValueError, match="device 'gpu': NumPy arrays live on the cpu"):
        to_backend(X, "numpy", "gpu")
    with pytest.raises(ValueError, match="backend 'jax'"):
        to_backend(X, "jax")
    torch = pytest.importorskip("torch")
    t = to_backend(X, "torch", "cpu")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    assert t.device.type == "cpu"
    xp = pytest.importorskip("array_api_strict")
    a = to_backend(X, "array_api_strict")
    assert a.dtype == xp.float64
