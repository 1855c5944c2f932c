"""Maximum-weight open Hamiltonian path: the decoder of TSPRank.

TSPRank (Li, Ziser, Xie, Cohen and Ma, "TSPRank: Bridging Pairwise and Listwise Methods
with a Bilinear Travelling Salesman Model", KDD 2025, arXiv 2411.12064) scores every
ordered pair of candidates, ``S[i, j]`` = "item i comes immediately before item j", and
ranks by the order ``p`` that maximises ``sum_t S[p[t], p[t+1]]``: an open path (any
start, any end) through all ``n`` items. The diagonal of ``S`` is ignored (it may even
hold ``-inf``); ties and negative scores are fine.

Decoders (each returns a :class:`PathResult` naming the method that ran and whether the
path is proven optimal):

- :func:`held_karp` (``"held_karp"``/``"dp"``): exact dynamic programme over subsets, n <= 18;
- :func:`milp`: exact integer programme on HiGHS with lazily added subtour cuts, time-limited;
- :func:`heuristic`: greedy construction, 2-opt and or-opt local search and seeded kicks
  (:mod:`rankkit.rerank.tsp_local`);
- :func:`lkh`: Lin-Kernighan-Helsgaun through ``elkai`` (``pip install rankkit[tsp]``);
- :func:`decode`: ``"auto"`` picks DP for n <= 13, MILP for n <= 60, then LKH (heuristic
  without elkai).

Pure numpy plus highspy (and optionally elkai); no torch.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rankkit.errors import ConfigError
from rankkit.rerank.tsp_local import iterated_local_search

log = logging.getLogger(__name__)

HELD_KARP_MAX_N = 18
"""Largest n :func:`held_karp` accepts (about 38 MB of values and 5 MB of parents at 18)."""
AUTO_DP_MAX_N = 13
"""``decode(method="auto")`` uses the DP up to this n ..."""
AUTO_MILP_MAX_N = 60
"""... and the MILP up to this n, then LKH (or the heuristic without elkai)."""
METHODS = ("auto", "held_karp", "dp", "milp", "heuristic", "lkh")
HEURISTIC_KICKS = 120
MILP_START_KICKS = 20
LKH_RUNS = 5
LKH_SCALE = 1_000_000
"""Integer cost range handed to LKH: ``S`` is mapped affinely onto ``0..LKH_SCALE``."""


class LKHUnavailableError(ImportError):
    """The ``lkh`` decoder needs the optional ``elkai`` package."""


@dataclass(frozen=True)
class PathResult:
    """A decoded order and how it was found.

    ``value`` is ``path_value(scores, order)``; ``method`` the decoder that produced
    ``order`` (``"milp->heuristic"`` when the MILP ran out of time and returned its start
    path); ``gap`` the relative gap to the solver's bound (0.0 when proven optimal, None
    without a bound); ``seconds`` the wall time.
    """

    order: list[int]
    value: float
    method: str
    optimal: bool
    gap: float | None
    seconds: float


def check_scores(scores: Any, time_limit: float | None = None, method: str | None = None) -> np.ndarray:
    """``scores`` as a float64 ``(n, n)`` array with a zero diagonal; :class:`ConfigError` on bad input.

    Rejects a non-square or non-2-D input, an empty one, NaN or infinite off-diagonal
    entries, a non-positive ``time_limit`` and a ``method`` not in :data:`METHODS`.
    """
    if method is not None and method not in METHODS:
        raise ConfigError(f"unknown TSP decoder method {method!r}; allowed: {', '.join(METHODS)}")
    if time_limit is not None and not time_limit > 0:
        raise ConfigError(f"time_limit must be a positive number of seconds, got {time_limit!r}")
    try:
        S = np.array(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"scores must be a numeric square matrix: {exc}") from None
    if S.ndim != 2 or S.shape[0] != S.shape[1]:
        raise ConfigError(f"scores must be a square 2-D matrix (n x n), got shape {S.shape}")
    n = S.shape[0]
    if n == 0:
        raise ConfigError("no candidates: scores is an empty 0 x 0 matrix")
    np.fill_diagonal(S, 0.0)
    bad = ~np.isfinite(S)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ConfigError(f"scores has {int(bad.sum())} NaN or infinite off-diagonal entries "
                          f"(first at [{i}, {j}])")
    return S


def _check_order(order: Sequence[int], n: int, what: str = "order") -> np.ndarray:
    p = np.asarray(order)
    if p.shape != (n,) or not np.array_equal(np.sort(p), np.arange(n)):
        raise ConfigError(f"{what} must be a permutation of 0..{n - 1}, got {list(order)!r}")
    return p.astype(np.int64)


def path_value(scores: np.ndarray, order: Sequence[int]) -> float:
    """``sum_t scores[order[t], order[t+1]]`` for a permutation ``order`` of ``0..n-1``."""
    S = check_scores(scores)
    p = _check_order(order, S.shape[0])
    return float(S[p[:-1], p[1:]].sum())


def _result(S: np.ndarray, order: Sequence[int], method: str, optimal: bool, gap: float | None,
            t0: float) -> PathResult:
    p = [int(i) for i in order]
    value = float(S[p[:-1], p[1:]].sum()) if len(p) > 1 else 0.0
    return PathResult(p, value, method, optimal, gap, time.perf_counter() - t0)


def _tiny(S: np.ndarray, method: str, t0: float) -> PathResult | None:
    """The exact answer for n <= 2 (the better direction; ties keep 0 first), else None."""
    n = S.shape[0]
    if n == 1:
        return _result(S, [0], method, True, 0.0, t0)
    if n == 2:
        return _result(S, [1, 0] if S[1, 0] > S[0, 1] else [0, 1], method, True, 0.0, t0)
    return None


def held_karp(scores: np.ndarray) -> PathResult:
    """Exact optimum by dynamic programming over subsets (Held-Karp), for n <= :data:`HELD_KARP_MAX_N`.

    ``best[mask, k]`` is the best path through exactly the items in ``mask`` ending at
    ``k``; each subset size is one numpy pass per end item. Time O(n^2 2^n); memory a
    value table of n * 2^n float64 (37.7 MB at n = 18) plus an int8 parent table of the
    same shape (4.7 MB). Larger n raises :class:`ConfigError` (a ValueError).
    """
    S = check_scores(scores)
    t0 = time.perf_counter()
    n = S.shape[0]
    if n > HELD_KARP_MAX_N:
        raise ConfigError(f"held_karp handles at most HELD_KARP_MAX_N = {HELD_KARP_MAX_N} items, got {n}; "
                          "use method 'milp', 'heuristic' or 'lkh'")
    if (tiny := _tiny(S, "held_karp", t0)) is not None:
        return tiny
    masks = np.arange(1 << n, dtype=np.int64)
    size = np.zeros(1 << n, dtype=np.int8)
    for k in range(n):
        size += ((masks >> k) & 1).astype(np.int8)
    best = np.full((1 << n, n), -np.inf)
    parent = np.full((1 << n, n), -1, dtype=np.int8)
    best[1 << np.arange(n), np.arange(n)] = 0.0
    for s in range(2, n + 1):
        of_size = masks[size == s]
        for k in range(n):
            ending = of_size[(of_size >> k) & 1 == 1]
            cand = best[ending ^ (1 << k)] + S[:, k]  # best[prev, k] is -inf: k is not in prev
            j = cand.argmax(axis=1)
            best[ending, k] = cand[np.arange(len(ending)), j]
            parent[ending, k] = j
    mask, k = (1 << n) - 1, int(best[-1].argmax())
    order = [k]
    while mask != 1 << k:
        mask, k = mask ^ (1 << k), int(parent[mask, k])
        order.append(k)
    return _result(S, order[::-1], "held_karp", True, 0.0, t0)


def heuristic(scores: np.ndarray, seed: int = 0, time_limit: float | None = None,
              restarts: int = HEURISTIC_KICKS) -> PathResult:
    """Iterated local search: greedy paths, 2-opt and or-opt, then up to ``restarts`` seeded random kicks.

    Kicking stops after 60 kicks in a row without a better path (``tsp_local.KICK_PATIENCE``).
    Deterministic for a given ``seed`` (unless ``time_limit`` seconds cut it short); no
    optimality bound, so ``optimal`` is False (True only for n <= 2) and ``gap`` None.
    """
    S = check_scores(scores, time_limit=time_limit)
    t0 = time.perf_counter()
    if (tiny := _tiny(S, "heuristic", t0)) is not None:
        return tiny
    deadline = None if time_limit is None else t0 + time_limit
    order = iterated_local_search(S, seed=seed, kicks=restarts, deadline=deadline)
    return _result(S, order, "heuristic", False, None, t0)


_highs_lock = threading.Lock()
_highs_banner_done = False


def _new_highs() -> Any:
    """A silent ``highspy.Highs``. HiGHS prints a banner to the C-level stdout when the first
    instance of a process is built, before any option can be set: that one construction
    runs with file descriptor 1 pointed at /dev/null."""
    global _highs_banner_done
    import highspy

    with _highs_lock:
        saved = None
        if not _highs_banner_done:
            try:
                sys.stdout.flush()
                saved = os.dup(1)
            except (OSError, ValueError):  # no usable stdout: nothing to protect
                saved = None
            if saved is not None:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, 1)
                os.close(null)
        try:
            h = highspy.Highs()
            if saved is not None:
                import ctypes

                ctypes.CDLL(None).fflush(None)  # the banner leaves the C buffer while 1 is /dev/null
        finally:
            if saved is not None:
                os.dup2(saved, 1)
                os.close(saved)
            _highs_banner_done = True
    h.setOptionValue("output_flag", False)
    return h


def _path_and_cycles(succ: np.ndarray) -> tuple[list[int], list[list[int]]]:
    """Split ``n - 1`` edges with in- and out-degree <= 1 (``succ[i]`` = next item, -1 = none) into
    the one path (from the one item without a predecessor) and the cycles."""
    n = len(succ)
    seen = np.zeros(n, dtype=bool)
    seen[succ[succ >= 0]] = True
    path, k = [], int(np.flatnonzero(~seen)[0])
    seen[:] = False
    while k >= 0:
        path.append(k)
        seen[k], k = True, int(succ[k])
    cycles = []
    for s in np.flatnonzero(~seen):
        cyc, k = [], int(s)
        while not seen[k]:
            cyc.append(k)
            seen[k], k = True, int(succ[k])
        if cyc:
            cycles.append(cyc)
    return path, cycles


def _gap(bound: float, value: float) -> float | None:
    if not np.isfinite(bound):
        return None
    if value == 0.0:
        return 0.0 if bound <= 0.0 else None
    return max(0.0, bound - value) / abs(value)


def milp(scores: np.ndarray, time_limit: float = 10.0, warm_start: Sequence[int] | None = None) -> PathResult:
    """Exact optimum as an integer programme on HiGHS, within ``time_limit`` seconds in all.

    Binary ``x[i, j]`` (i != j) for "j follows i"; out- and in-degree <= 1, ``n - 1`` edges,
    ``x[i, j] + x[j, i] <= 1``. Those edges form one path plus possibly cycles, so after
    each solve every cycle ``C`` gets the cut ``sum_{i, j in C} x[i, j] <= |C| - 1`` and the
    model is solved again, until the solution is one path (``optimal=True, gap=0.0``).
    ``warm_start`` (default: :func:`heuristic`'s path) is passed to HiGHS as a MIP start.
    Out of time, the result is HiGHS's incumbent if it is one path (``method="milp"``),
    else the start path (``method="milp->heuristic"``, or ``"milp->warm_start"``), with
    ``optimal=False``, ``gap`` against the best bound (None if there is none) and a warning.
    """
    S = check_scores(scores, time_limit=time_limit)
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    n = S.shape[0]
    if (tiny := _tiny(S, "milp", t0)) is not None:
        return tiny
    if warm_start is None:
        start = np.asarray(heuristic(S, time_limit=0.1 * time_limit, restarts=MILP_START_KICKS).order)
        start_name = "milp->heuristic"
    else:
        start = _check_order(warm_start, n, "warm_start")
        start_name = "milp->warm_start"
    start_value = float(S[start[:-1], start[1:]].sum())

    import highspy

    I, J = np.nonzero(~np.eye(n, dtype=bool))
    m = len(I)
    col = np.full((n, n), -1, dtype=np.int32)
    col[I, J] = np.arange(m, dtype=np.int32)
    iu, ju = np.triu_indices(n, 1)
    rows = [np.flatnonzero(I == i) for i in range(n)] + [np.flatnonzero(J == j) for j in range(n)]
    rows += [np.arange(m)] + [np.array([a, b]) for a, b in zip(col[iu, ju], col[ju, iu], strict=True)]
    upper = np.array([1.0] * (2 * n) + [n - 1.0] + [1.0] * len(iu))
    lower = np.array([-np.inf] * (2 * n) + [n - 1.0] + [-np.inf] * len(iu))
    starts = np.concatenate(([0], np.cumsum([len(r) for r in rows])))[:-1].astype(np.int32)
    index = np.concatenate(rows).astype(np.int32)
    h = _new_highs()
    h.passModel(m, len(rows), len(index), int(highspy.MatrixFormat.kRowwise), int(highspy.ObjSense.kMaximize),
                0.0, S[I, J], np.zeros(m), np.ones(m), lower, upper, starts, index, np.ones(len(index)),
                np.ones(m, dtype=np.int32))
    h.setOptionValue("mip_rel_gap", 0.0)
    start_x = np.zeros(m)
    start_x[col[start[:-1], start[1:]]] = 1.0
    bound, solves, cuts = np.inf, 0, 0
    status = highspy.HighsModelStatus.kNotset
    while (left := deadline - time.perf_counter()) > 0:
        h.setOptionValue("time_limit", float(left))
        h.setSolution(m, np.arange(m, dtype=np.int32), start_x)
        h.run()
        solves += 1
        status, info = h.getModelStatus(), h.getInfo()
        if np.isfinite(info.mip_dual_bound):
            bound = min(bound, float(info.mip_dual_bound))
        if info.primal_solution_status != int(highspy.SolutionStatus.kSolutionStatusFeasible):
            break
        x = np.asarray(h.getSolution().col_value) > 0.5
        succ = np.full(n, -1)
        succ[I[x]] = J[x]
        order, cyc = _path_and_cycles(succ)
        if not cyc:
            if status == highspy.HighsModelStatus.kOptimal:
                log.debug("milp: n=%d optimal after %d solves, %d cuts", n, solves, cuts)
                return _result(S, order, "milp", True, 0.0, t0)
            gap = float(info.mip_gap) if np.isfinite(info.mip_gap) else None
            if order == start.tolist() or path_value(S, order) <= start_value:
                order, method = start.tolist(), start_name
            else:
                method = "milp"
            log.warning("milp: time limit %.3gs reached for n=%d; returning the %s path, not proven optimal "
                        "(gap %s)", time_limit, n, "incumbent" if method == "milp" else "start", gap)
            return _result(S, order, method, False, gap, t0)
        if status != highspy.HighsModelStatus.kOptimal:
            break
        for c in cyc:
            idx = col[np.ix_(c, c)][~np.eye(len(c), dtype=bool)]
            h.addRow(-np.inf, len(c) - 1.0, len(idx), idx.astype(np.int32), np.ones(len(idx)))
            cuts += 1
    log.warning("milp: no proven optimum for n=%d within %.3gs (%d solves, %d cuts, HiGHS status %s); "
                "returning the start path", n, time_limit, solves, cuts, h.modelStatusToString(status))
    return _result(S, start, start_name, False, _gap(bound, start_value), t0)


def _import_elkai() -> Any:
    try:
        import elkai
    except ImportError:
        raise LKHUnavailableError("the 'lkh' TSP decoder needs the optional package elkai: "
                                  "pip install rankkit[tsp]") from None
    return elkai


def lkh_available() -> bool:
    """Whether the optional ``elkai`` package (LKH) can be imported."""
    try:
        _import_elkai()
    except LKHUnavailableError:
        return False
    return True


def lkh(scores: np.ndarray, runs: int = LKH_RUNS) -> PathResult:
    """Lin-Kernighan-Helsgaun (LKH-3 through ``elkai``, ``runs`` runs): near-optimal, no proof.

    The open path becomes a closed tour through a dummy item joined to every item at cost
    0; the other costs are ``max(S) - S`` mapped onto the integers ``0..LKH_SCALE``. elkai
    solves asymmetric matrices as ATSP (LKH's own symmetric transformation), and the tour
    is cut at the dummy. Raises :class:`LKHUnavailableError` (an ImportError) without elkai.
    """
    S = check_scores(scores)
    elkai = _import_elkai()
    t0 = time.perf_counter()
    n = S.shape[0]
    if (tiny := _tiny(S, "lkh", t0)) is not None:
        return tiny
    off = ~np.eye(n, dtype=bool)
    hi, span = S[off].max(), np.ptp(S[off])
    cost = np.zeros((n + 1, n + 1), dtype=np.int64)
    if span > 0:
        cost[:n, :n] = np.rint((hi - S) * (LKH_SCALE / span)) * off
    tour = elkai.DistanceMatrix(cost.tolist()).solve_tsp(runs=int(runs))[:-1]
    cut = tour.index(n)
    return _result(S, tour[cut + 1:] + tour[:cut], "lkh", False, None, t0)


def decode(scores: np.ndarray, method: str = "auto", time_limit: float = 10.0, seed: int = 0) -> PathResult:
    """The best order for ``scores`` by ``method`` (one of :data:`METHODS`).

    ``"auto"``: :func:`held_karp` for n <= 13, :func:`milp` (``time_limit``) for n <= 60,
    then :func:`lkh` if elkai is installed, else :func:`heuristic`. n = 1 gives ``[0]``,
    n = 2 the better direction. ``time_limit`` bounds the MILP and the heuristic.
    """
    S = check_scores(scores, time_limit=time_limit, method=method)
    n = S.shape[0]
    if method == "auto":
        if n <= AUTO_DP_MAX_N:
            method = "held_karp"
        elif n <= AUTO_MILP_MAX_N:
            method = "milp"
        else:
            method = "lkh" if lkh_available() else "heuristic"
    if method in ("held_karp", "dp"):
        return held_karp(S)
    if method == "milp":
        return milp(S, time_limit=time_limit)
    if method == "lkh":
        return lkh(S)
    return heuristic(S, seed=seed, time_limit=time_limit)
