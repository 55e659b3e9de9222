"""``kmeans-xp``: cluster the rows of a CSV, TSV, NPY or Parquet file from the shell.

Also ``python -m kmeans_xp`` (or ``python -m kmeans_xp.cli``).  CSV, TSV and NPY need
nothing beyond NumPy; Parquet needs pandas and pyarrow (``pip install 'kmeans_xp[io]'``),
``--plot`` matplotlib, and the progress bar of ``--select-k`` tqdm (``pip install
'kmeans_xp[cli]'`` installs all three).  A bad file, column or option ends with one line on
stderr and exit status 2, never a traceback (``KMEANS_XP_DEBUG=1`` shows it).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ._compat import BACKEND_DTYPES
from ._exceptions import InvalidParameterError
from ._validation import METRICS, PARAMETERS, integer, validate_params

EXAMPLES = """\
examples:
  kmeans-xp iris.csv --k 3 --output labels.csv
      3 clusters of the numeric columns; labels.csv is iris.csv with a 'cluster' column
  kmeans-xp iris.csv --select-k 2..10 --criterion silhouette --summary summary.json --plot iris.png
      fit k = 2..10, keep the best silhouette, write a JSON summary and a plot
  kmeans-xp data.parquet --columns x,y,z --standardize --k 8 --centers centers.csv
      three columns, each scaled to mean 0 and variance 1 (centres written in the
      original units)
  kmeans-xp big.npy --k 256 --backend torch --device cuda --n-init 3 --seed 7
      on a GPU with torch

exit status: 0 success, 2 bad file, column or option (one line on stderr), 1 internal error
"""

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".npy": "npy", ".parquet": "parquet",
           ".pq": "parquet"}
MISSING = {"", "na", "n/a", "nan", "null", "none"}
DEFAULT_SEED = 0


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see kmeans-xp --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kmeans-xp", formatter_class=argparse.RawDescriptionHelpFormatter,
                description="k-means clustering of the rows of a table file (CSV, TSV, NPY, "
                            "Parquet), on NumPy, torch or CuPy.",
                epilog=EXAMPLES)
    p.add_argument("input", help="the data: .csv, .tsv, .npy or .parquet (or see --format)")
    g = p.add_argument_group("clusters")
    k = g.add_mutually_exclusive_group()
    k.add_argument("--k", type=int, metavar="K", help="number of clusters")
    k.add_argument("--select-k", metavar="RANGE",
                   help="try several k and keep the best: 2..10 (inclusive) or 2,3,5")
    g.add_argument("--criterion", default="elbow",
                   choices=["elbow", "silhouette", "calinski_harabasz", "davies_bouldin"],
                   help="how --select-k chooses (default: elbow, the Kneedle knee)")
    g.add_argument("--metric", default="euclidean", choices=list(METRICS),
                   help="distance (default euclidean; the others need a KMeans with 'metric')")
    g.add_argument("--n-init", default="auto", help="runs per k: 'auto' or an int")
    g.add_argument("--max-iter", type=int, default=300, help="Lloyd iterations (default 300)")
    g.add_argument("--tol", type=float, default=1e-4, help="relative tolerance (default 1e-4)")
    g.add_argument("--seed", type=int, default=DEFAULT_SEED,
                   help=f"random seed (default {DEFAULT_SEED}: the same clusters every run)")
    d = p.add_argument_group("data")
    d.add_argument("--format", choices=["csv", "tsv", "npy", "parquet"],
                   help="input format (default: from the extension)")
    d.add_argument("--columns", help="comma-separated names or 0-based indices of the columns "
                                     "to cluster (default: every numeric column)")
    d.add_argument("--no-header", action="store_true",
                   help="the CSV/TSV has no header row (columns are named 0, 1, ...)")
    d.add_argument("--standardize", action="store_true",
                   help="scale each column to mean 0 and variance 1 before clustering")
    b = p.add_argument_group("backend")
    b.add_argument("--backend", default="numpy", choices=list(BACKEND_DTYPES))
    b.add_argument("--device", help="torch device (cpu, cuda, cuda:1; default cuda if "
                                    "available) or CuPy device number")
    b.add_argument("--dtype", choices=["float32", "float64"],
                   help="default: " + ", ".join(f"{d} on {b}" for b, d in BACKEND_DTYPES.items()))
    o = p.add_argument_group("outputs")
    o.add_argument("--output", metavar="PATH", help="the input rows with a 'cluster' column "
                   "(.csv, .tsv, .parquet; .npy: the labels alone)")
    o.add_argument("--centers", metavar="PATH", help="the centres (.csv, .tsv or .npy)")
    o.add_argument("--summary", metavar="PATH", help="a JSON summary (k, inertia, n_iter, sizes, "
                                                     "timings, backend, scores of --select-k)")
    o.add_argument("--plot", metavar="PNG", help="a plot of the clusters (and of the elbow "
                                                 "with --select-k)")
    o.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar for --select-k (default: when it runs > 2 s)")
    o.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    from . import __version__

    p.add_argument("--version", action="version", version=f"kmeans-xp {__version__}")
    return p


# -- reading ----------------------------------------------------------------------------------
@dataclass
class Table:
    """A table as read: column names, one array per column (float64 if numeric)."""

    names: list
    columns: list
    fmt: str
    raw: list | None = None  # CSV/TSV: the header and rows as read, to write back verbatim
    frame: Any = None  # Parquet: the DataFrame
    notes: list = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return int(self.columns[0].shape[0]) if self.columns else 0


def _format_of(path: str, given: str | None, what: str) -> str:
    if given:
        return given
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise CLIError(f"{what} {path}: unknown extension {Path(path).suffix or '(none)'!r}; "
                       "use .csv, .tsv, .npy or .parquet" +
                       (" (or --format)" if what == "input" else ""))
    return fmt


def _as_number(cell: str) -> float | None:
    """The cell as a float, NaN if it is a missing-value marker, None if it is text."""
    s = cell.strip()
    if s.lower() in MISSING:
        return math.nan
    try:
        return float(s)
    except ValueError:
        return None


def read_delimited(path: str, delimiter: str, header: bool) -> Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, delimiter=delimiter) if any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise CLIError(f"cannot read {path} as text (UTF-8): is it a CSV/TSV file?") from None
    except csv.Error as exc:
        raise CLIError(f"cannot parse {path}: {exc}") from None
    if not rows:
        raise CLIError(f"{path} is empty")
    names = [c.strip() for c in rows[0]] if header else [str(i) for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    if not body:
        raise CLIError(f"{path} has a header but no data rows")
    width = len(names)
    for i, r in enumerate(body):
        if len(r) != width:
            line = i + (2 if header else 1)
            raise CLIError(f"{path}, line {line}: {len(r)} fields, expected {width} "
                           f"(like the {'header' if header else 'first line'})")
    columns = []
    for j in range(width):
        cells = [r[j] for r in body]
        values = [_as_number(c) for c in cells]
        if all(v is not None for v in values):
            columns.append(np.asarray(values, dtype=np.float64))
        else:
            columns.append(np.asarray(cells, dtype=object))
    return Table(names, columns, "csv" if delimiter == "," else "tsv",
                 raw=([rows[0]] if header else []) + body)


def read_npy(path: str) -> Table:
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a NumPy .npy file: {_one_line(exc)}") from None
    if not isinstance(a, np.ndarray) or a.ndim not in (1, 2):
        raise CLIError(f"{path}: expected a 1-D or 2-D array, got shape "
                       f"{getattr(a, 'shape', '?')}")
    if a.dtype.kind not in "biuf":
        raise CLIError(f"{path}: expected a numeric array, got dtype {a.dtype}")
    a = a.reshape(-1, 1) if a.ndim == 1 else a
    return Table([str(j) for j in range(a.shape[1])],
                 [np.asarray(a[:, j], dtype=np.float64) for j in range(a.shape[1])], "npy")


def _pandas(purpose: str) -> Any:
    try:
        import pandas as pd
    except ImportError:
        raise CLIError(f"{purpose} needs pandas and pyarrow: pip install 'kmeans_xp[io]'") \
            from None
    return pd


def read_parquet(path: str) -> Table:
    pd = _pandas("reading Parquet")
    try:
        df = pd.read_parquet(path)
    except ImportError as exc:
        raise CLIError(f"reading Parquet needs pyarrow: pip install 'kmeans_xp[io]' "
                       f"({_one_line(exc)})") from None
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: not a readable Parquet
        raise CLIError(f"cannot read {path} as Parquet: {_one_line(exc)}") from None
    names, columns = [str(c) for c in df.columns], []
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            columns.append(s.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            columns.append(s.to_numpy(dtype=object))
    if not columns:
        raise CLIError(f"{path} has no columns")
    return Table(names, columns, "parquet", frame=df)


def read_table(path: str, fmt: str | None, header: bool) -> Table:
    if not os.path.exists(path):
        raise CLIError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CLIError(f"{path} is a directory, not a data file")
    fmt = _format_of(path, fmt, "input")
    if fmt == "csv":
        return read_delimited(path, ",", header)
    if fmt == "tsv":
        return read_delimited(path, "\t", header)
    if fmt == "npy":
        return read_npy(path)
    return read_parquet(path)


def select_columns(table: Table, spec: str | None, path: str) -> tuple[list[str], np.ndarray]:
    """The named (or all numeric) columns as an (n, d) float64 array, checked."""
    if spec is None:
        chosen = [j for j, c in enumerate(table.columns) if c.dtype != object]
        skipped = [table.names[j] for j, c in enumerate(table.columns) if c.dtype == object]
        if not chosen:
            raise CLIError(f"{path} has no numeric column (columns: {', '.join(table.names)})")
        if skipped:
            table.notes.append(f"skipping non-numeric column(s): {', '.join(skipped)}")
    else:
        chosen = []
        for token in (t.strip() for t in spec.split(",")):
            if token in table.names:
                chosen.append(table.names.index(token))
            elif re.fullmatch(r"-?\d+", token) and -len(table.names) <= int(token) \
                    < len(table.names):
                chosen.append(int(token) % len(table.names))
            else:
                raise CLIError(f"--columns: no column {token!r} in {path} (columns: "
                               f"{', '.join(table.names)}; or 0-based indices)")
        if len(set(chosen)) != len(chosen):
            raise CLIError(f"--columns: a column is listed twice in {spec!r}")
        for j in chosen:
            if table.columns[j].dtype == object:
                bad = next(v for v in table.columns[j] if _as_number(str(v)) is None)
                raise CLIError(f"--columns: column {table.names[j]!r} is not numeric "
                               f"(it holds {str(bad)!r})")
    X = np.stack([table.columns[j] for j in chosen], axis=1)
    for bad, what in ((np.isnan(X), "has {count} missing value(s)"),
                      (np.isinf(X), "holds infinite values")):
        if bad.any():
            j = int(np.nonzero(bad.any(axis=0))[0][0])
            i = int(np.nonzero(bad[:, j])[0][0])
            raise CLIError(f"column {table.names[chosen[j]]!r} "
                           + what.format(count=int(bad[:, j].sum()))
                           + f" (first in data row {i + 1}): drop or fill them first")
    return [table.names[j] for j in chosen], X


# -- options ----------------------------------------------------------------------------------
def parse_k_range(spec: str, n: int) -> list[int]:
    m = re.fullmatch(r"\s*(\d+)\s*(?:\.\.|-|:)\s*(\d+)\s*", spec)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo > hi:
            raise CLIError(f"--select-k {spec}: the range is empty ({lo} > {hi})")
        ks = list(range(lo, hi + 1))
    elif re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", spec):
        ks = sorted({int(t) for t in spec.split(",")})
    else:
        raise CLIError(f"--select-k {spec!r}: expected a range such as 2..10, or a list "
                       "such as 2,3,5")
    if ks[0] < 1 or ks[-1] > n:
        raise CLIError(f"--select-k {spec}: k must be between 1 and {n} (the number of rows)")
    return ks


#: The options that are parameters of KMeans, by option, and the parameter they set.
PARAMETER_OPTIONS = {"k": "n_clusters", "n_init": "n_init", "max_iter": "max_iter",
                     "tol": "tol", "seed": "random_state", "metric": "metric"}
#: Their rules: the parameter table's, a seed being an int.
CLI_PARAMETERS = {**PARAMETERS, "random_state": integer(0, 2**32 - 1)}


def check_options(args: argparse.Namespace) -> dict:
    """The options that are KMeans parameters, checked by the parameter table of
    :mod:`kmeans_xp._validation`: parameter name -> value, for the options given."""
    given = {}
    for option, param in PARAMETER_OPTIONS.items():
        value = getattr(args, option)
        if option == "n_init" and isinstance(value, str) and re.fullmatch(r"\d+", value):
            value = int(value)
        if value is not None:
            given[param] = value
    try:
        return validate_params(given, "kmeans-xp", CLI_PARAMETERS)
    except InvalidParameterError as exc:
        option = next(o for o, p in PARAMETER_OPTIONS.items() if p == exc.param)
        raise CLIError(f"--{option.replace('_', '-')} {getattr(args, option)!r}: must be "
                       f"{exc.expected}") from None


def metric_params(metric: str) -> dict:
    """``{"metric": ...}`` for KMeans, or {} for euclidean (the default)."""
    return {} if metric == "euclidean" else {"metric": metric}


def _check_output_path(path: str | None, option: str, allowed: tuple[str, ...]) -> str | None:
    if path is None:
        return None
    fmt = _format_of(path, None, option)
    if fmt not in allowed:
        raise CLIError(f"{option} {path}: {fmt} is not available here; use "
                       f"{', '.join('.' + a for a in allowed)}")
    parent = Path(path).resolve().parent
    if not parent.is_dir():
        raise CLIError(f"{option} {path}: the directory {parent} does not exist")
    return fmt


# -- writing ----------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    return repr(float(v)) if isinstance(v, (float, np.floating)) else str(v)


def write_labels(table: Table, labels: np.ndarray, path: str, fmt: str, header: bool) -> None:
    name = "cluster" if "cluster" not in table.names else "cluster_kmeans"
    if fmt == "npy":
        np.save(path, labels.astype(np.int64))
        return
    if fmt == "parquet":
        pd = _pandas("writing Parquet")
        df = table.frame.copy() if table.frame is not None else pd.DataFrame(
            {n: c for n, c in zip(table.names, table.columns)})
        df[name] = labels
        df.to_parquet(path, index=False)
        return
    delimiter = "," if fmt == "csv" else "\t"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter=delimiter, lineterminator="\n")
        if table.raw is not None:
            body = table.raw[1:] if header else table.raw
            if header:
                w.writerow(list(table.raw[0]) + [name])
            else:
                w.writerow(list(table.names) + [name])
            for r, lab in zip(body, labels):
                w.writerow(list(r) + [int(lab)])
        else:
            w.writerow(list(table.names) + [name])
            for i, lab in enumerate(labels):
                w.writerow([_cell(c[i]) for c in table.columns] + [int(lab)])


def write_centers(centers: np.ndarray, names: list[str], path: str, fmt: str) -> None:
    if fmt == "npy":
        np.save(path, centers)
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
        w.writerow(["cluster"] + list(names))
        for c, row in enumerate(centers):
            w.writerow([c] + [repr(float(v)) for v in row])


def _json_ready(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_ready(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_ready(x) for x in v]
    return v


def _plot(path: str, Xb: Any, km: Any, names: list[str], result: Any, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_clusters, plot_elbow

    if result is not None:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.8), constrained_layout=True)
        plot_elbow(result, ax=a1,
                   score=None if result.criterion == "elbow" else result.criterion)
    else:
        fig, a2 = plt.subplots(figsize=(6.4, 5.2), constrained_layout=True)
    plot_clusters(Xb, model=km, feature_names=names, ax=a2)
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- the command ------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def run(argv: list[str] | None = None) -> int:
    t_start = time.perf_counter()
    args = build_parser().parse_args(argv)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a))
    # every option is checked before the data is read or any work is done
    if args.k is None and args.select_k is None:
        raise CLIError("give the number of clusters with --k K, or a range to try with "
                       "--select-k 2..10")
    n_init = check_options(args)["n_init"]
    extra = metric_params(args.metric)
    out_fmt = _check_output_path(args.output, "--output", ("csv", "tsv", "parquet", "npy"))
    centers_fmt = _check_output_path(args.centers, "--centers", ("csv", "tsv", "npy"))
    if args.summary and not Path(args.summary).resolve().parent.is_dir():
        raise CLIError(f"--summary {args.summary}: the directory does not exist")
    if args.plot:
        if not Path(args.plot).resolve().parent.is_dir():
            raise CLIError(f"--plot {args.plot}: the directory does not exist")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib: pip install 'kmeans_xp[plot]'") from None
    if out_fmt == "parquet":
        _pandas("writing Parquet")

    t0 = time.perf_counter()
    table = read_table(args.input, args.format, not args.no_header)
    names, X = select_columns(table, args.columns, args.input)
    n, d = X.shape
    for note in table.notes:
        if not args.quiet:
            print(f"kmeans-xp: note: {note}", file=sys.stderr)
    mean = std = None
    if args.standardize:
        mean, std = X.mean(axis=0), X.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        X = (X - mean) / std
    ks = parse_k_range(args.select_k, n) if args.select_k else None
    if args.k is not None and args.k > n:
        raise CLIError(f"--k {args.k}: more clusters than rows ({n}) in {args.input}")
    from ._compat import to_backend

    try:
        Xb = to_backend(X, args.backend, args.device, args.dtype)
    except (ImportError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    t_read = time.perf_counter() - t0

    from . import KMeans, select_k
    from ._compat import device_of, to_numpy

    t0 = time.perf_counter()
    result = None
    if ks is not None:
        result = select_k(Xb, ks, criterion=args.criterion, n_init=n_init,
                          random_state=args.seed, progress=args.progress,
                          max_iter=args.max_iter, tol=args.tol, **extra)
        km = result.best_model
    else:
        km = KMeans(n_clusters=args.k, n_init=n_init, max_iter=args.max_iter, tol=args.tol,
                    random_state=args.seed, **extra).fit(Xb)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    labels = np.asarray(to_numpy(km.labels_)).astype(np.int64)
    k = int(km.cluster_centers_.shape[0])
    centers = np.asarray(to_numpy(km.cluster_centers_), dtype=np.float64)
    if mean is not None and std is not None:  # --standardize
        centers = centers * std + mean  # back in the data's units
    sizes = np.bincount(labels, minlength=k).tolist()
    written = []
    if args.output and out_fmt is not None:
        write_labels(table, labels, args.output, out_fmt, not args.no_header)
        written.append(args.output)
    if args.centers and centers_fmt is not None:
        write_centers(centers, names, args.centers, centers_fmt)
        written.append(args.centers)
    if args.plot:
        _plot(args.plot, Xb, km, names, result,
              f"kmeans-xp {Path(args.input).name}: k = {k}"
              + (" (standardized)" if args.standardize else ""))
        written.append(args.plot)
    t_write = time.perf_counter() - t0
    summary = {
        "input": str(args.input), "n_samples": int(n), "n_features": int(d),
        "columns": names, "k": k, "inertia": float(km.inertia_), "n_iter": int(km.n_iter_),
        "sizes": sizes, "backend": args.backend, "device": str(device_of(km.cluster_centers_)),
        "dtype": str(km.cluster_centers_.dtype).split(".")[-1],
        "metric": args.metric, "standardized": bool(args.standardize), "seed": args.seed,
        "n_init": n_init, "timings": {"read_s": t_read, "fit_s": t_fit, "write_s": t_write},
        "select_k": None if result is None else result.as_dict(),
    }
    if args.summary:
        summary["timings"]["total_s"] = time.perf_counter() - t_start
        with open(args.summary, "w", encoding="utf-8") as f:
            json.dump(_json_ready(summary), f, indent=2)
        written.append(args.summary)

    say(f"kmeans-xp: {args.input}: {n} rows x {d} columns ({', '.join(names)}); backend "
        f"{args.backend} ({summary['device']}, {summary['dtype']})")
    if result is not None:
        say(str(result))
    say(f"k = {k}: inertia {km.inertia_:.6g}, {km.n_iter_} iterations, cluster sizes "
        f"{', '.join(map(str, sizes))} ({t_fit:.2f} s)")
    if written:
        say(f"wrote {', '.join(written)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The console script: ``kmeans-xp --help``.  Returns the exit status."""
    try:
        return run(argv)
    except CLIError as exc:
        print(f"kmeans-xp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kmeans-xp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, MemoryError, ImportError) as exc:
        if os.environ.get("KMEANS_XP_DEBUG"):
            raise
        print(f"kmeans-xp: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, but say so
        if os.environ.get("KMEANS_XP_DEBUG"):
            raise
        print(f"kmeans-xp: internal error: {type(exc).__name__}: {_one_line(exc)} (run with "
              "KMEANS_XP_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
