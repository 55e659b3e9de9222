"""Lloyd's algorithm: ONE driver over any row source, with a problem axis.

A source (``_data.ChunkedData`` in memory, sparse or streamed; ``_solvers.batched.BatchedData``,
a batch of independent problems; the Dask source of ``_dask``) runs the passes through its
kernel set; the driver owns the algorithm: the centre update of the metric, the convergence
tests (strict: no label changed; or the squared centre shift <= tol, per problem), empty
clusters, problems leaving the working set once converged, the final assignment, and the
choice of the best of ``n_init`` runs.

Per iteration there is exactly one host sync for all problems together: a host copy of a
(problems,) code that folds strict convergence (-1), empty clusters (-2) and the centre
shift into one number per problem.

The source interface (see ``ChunkedData`` for the one-problem form):
``n_problems``, ``xp``, ``metric``, ``frame``, ``lloyd_pass(C, labels_old, active,
need_inertia) -> labels, sums, counts, inertia, same``, ``fused_update(labels, sums, counts,
C, labels_old) -> (updated, code) or None``, ``squared_shift(new, old)``,
``relocate(labels, C, sums, counts, which, active)``, ``final(C, labels, strict)``,
``same_clusterings(labels1, labels2, k)`` and, for several problems, ``take(a, keep)`` and
``merge(full, part, active)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import to_numpy


def _code(xp: Any, shift: Any, same: Any) -> Any:
    """The shift, or -1 where no label changed."""
    if same is None:
        return shift
    return xp.where(same, xp.full_like(shift, -1.0), shift)


def lloyd(src: Any, centers: Any, *, max_iter: int, tol: Any, verbose: int = 0
          ) -> tuple[Any, Any, Any, np.ndarray]:
    """Lloyd's algorithm from ``centers`` (working coordinates; a leading problem axis for a
    source of several problems) with scikit-learn's semantics, per problem: stop on
    unchanged labels (strict convergence) or on a squared centre shift <= ``tol``; after a
    ``tol`` stop (or ``max_iter``) one more assignment so that the labels match the returned
    centres.

    Returns ``labels, inertia, centers, n_iter``: inertia in working units (a 0-d array for
    one problem, (P,) for several), ``n_iter`` a host int64 array (P,).
    """
    xp, P = src.xp, src.n_problems
    tol = np.broadcast_to(np.asarray(tol, dtype=np.float64), (P,))
    active = np.arange(P)
    C = final = centers
    labels_old = labels = None
    finished: list = []  # (problems, their last labels) as they finish (several problems)
    n_iter = np.zeros(P, dtype=np.int64)
    strict = np.zeros(P, dtype=bool)
    factor = src.frame.distance_factor()[0]
    scale2 = src.frame.scale * src.frame.scale
    for i in range(max_iter):
        labels, sums, counts, inertia, same = src.lloyd_pass(C, labels_old, active,
                                                             bool(verbose))
        if verbose:
            print(f"Iteration {i}, inertia {float(inertia) * factor}.")
        # (an empty cluster makes the code -2: these centres are then made again)
        fused = src.fused_update(labels, sums, counts, C, labels_old)
        if fused is not None:  # the kernel set folded the update and the code into one call
            updated, code = fused
        else:
            updated = src.metric.update(src, labels, sums, counts, C, none_empty=True)
            code = _code(xp, src.squared_shift(updated, C), same)
            code = xp.where(xp.any(counts == 0, axis=-1), xp.full_like(code, -2.0), code)
        host = np.array(to_numpy(code), dtype=np.float64, ndmin=1)  # THE host sync (a copy)
        empty = np.nonzero(host == -2.0)[0]
        if empty.size:  # rare: relocate where a cluster is empty, then re-test those
            sums, counts, labels = src.relocate(labels, C, sums, counts, empty, active)
            updated = src.metric.update(src, labels, sums, counts, C)
            redo = np.atleast_1d(np.asarray(to_numpy(
                _code(xp, src.squared_shift(updated, C), same)), dtype=np.float64))
            host[empty] = redo[empty]
        C = updated
        n_iter[active] = i + 1
        converged = host == -1.0
        strict[active[converged]] = True
        done = converged | (host <= tol[active])
        if verbose and P == 1:
            if converged[0]:
                print(f"Converged at iteration {i}: strict convergence.")
            elif done[0]:
                print(f"Converged at iteration {i}: center shift {host[0] * scale2} within "
                      f"tolerance {tol[0] * scale2}.")
        if i == max_iter - 1:
            done[:] = True
        if not done.any():
            labels_old = labels
            continue
        if P == 1:
            final = C
            break
        final = src.merge(final, C, active)
        ended = np.nonzero(done)[0]
        finished.append((active[ended], labels if ended.size == len(active)
                         else src.take(labels, ended)))
        keep = np.nonzero(~done)[0]
        if keep.size == 0:
            break
        C, labels_old = src.take(C, keep), src.take(labels, keep)
        active = active[keep]
    if P > 1:  # every problem's last labels, in problem order (one gather)
        ids = np.concatenate([f[0] for f in finished])
        parts = [f[1] for f in finished]
        labels = parts[0] if len(parts) == 1 else xp.concat(parts)
        if len(parts) > 1 or not np.array_equal(ids, np.arange(P)):
            labels = src.take(labels, np.argsort(ids, kind="stable"))
    labels, inertia = src.final(final, labels, strict)
    return labels, inertia, final, n_iter


@dataclass
class Run:
    """The best run so far (per problem): labels, inertia (host, working units), centres,
    iterations, and what the source's final pass left (``src.final_info``)."""

    labels: Any
    inertia: np.ndarray
    centers: Any
    n_iter: np.ndarray
    info: Any = None


def best_of(src: Any, initial: Callable[[], Any], n_init: int, *, n_clusters: int,
            max_iter: int, tol: Any, verbose: int = 0) -> Run:
    """``n_init`` runs of :func:`lloyd` from ``initial()`` centres; per problem, keep the
    run of least inertia unless it is the same clustering as the best so far (scikit-learn's
    rule).  One host sync per run (the inertia) besides Lloyd's."""
    xp, P = src.xp, src.n_problems
    best: Run | None = None
    for _ in range(n_init):
        c0 = initial()
        if verbose:
            print("Initialization complete")
        labels, inertia, centers, n_iter = lloyd(src, c0, max_iter=max_iter, tol=tol,
                                                 verbose=verbose)
        inertia_h = np.atleast_1d(np.asarray(to_numpy(inertia), dtype=np.float64))
        info = getattr(src, "final_info", None)
        if best is None:
            best = Run(labels, inertia_h, centers, n_iter, info)
            continue
        better = inertia_h < best.inertia
        if better.any():
            better &= ~src.same_clusterings(labels, best.labels, n_clusters)
        if not better.any():
            continue
        if P == 1:
            best = Run(labels, inertia_h, centers, n_iter, info)
            continue
        sel = xp.asarray(better, device=src.device)
        best = Run(xp.where(sel[:, None], labels, best.labels),
                   np.where(better, inertia_h, best.inertia),
                   xp.where(sel[:, None, None], centers, best.centers),
                   np.where(better, n_iter, best.n_iter))
    assert best is not None  # n_init >= 1
    return best
