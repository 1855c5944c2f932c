"""Local search for the maximum-weight open Hamiltonian path (the heuristic of :mod:`rankkit.rerank.tsp`).

A path is an integer array ``p`` (a permutation of ``0..n-1``); its value is
``sum_t S[p[t], p[t+1]]``. ``S`` is asymmetric, so reversing a segment also turns its
internal edges around. Every neighbourhood below is scored as one numpy expression:
the prefix sums ``F`` (forward edges along the path) and ``B`` (the same edges walked
backwards) give the internal value of any segment in either direction in O(1).

- :func:`nearest_neighbour_paths`: the greedy path from every start at once;
- :func:`best_two_opt`: reverse ``p[i..j]`` (the whole path included);
- :func:`best_or_opt`: move a segment to another gap, in either orientation (any length on
  paths of up to 30 items, else up to 5 items);
- :func:`local_search`: best-improvement moves until none improves;
- :func:`iterated_local_search`: the above, then seeded kicks (window shuffles and double bridges).

Pure numpy; deterministic for a given seed.
"""

from __future__ import annotations

import functools
import time

import numpy as np

OR_OPT_MAX_LEN = 5
"""Longest segment or-opt moves on long paths ..."""
FULL_OR_OPT_N = 30
"""... while paths up to this length try every segment length (all orientation-keeping 3-opt moves)."""
KICK_WINDOW = 6
KICK_PATIENCE = 60
"""Iterated local search stops after this many kicks in a row without a better path."""


def _tolerance(S: np.ndarray) -> float:
    """The smallest gain counted as an improvement (float noise of the prefix sums stays below it)."""
    return 1e-9 * max(1.0, float(np.abs(S).max(initial=0.0)))


def nearest_neighbour_paths(S: np.ndarray) -> np.ndarray:
    """The greedy (best next item) path from every start: row ``s`` of the ``(n, n)`` result starts at ``s``."""
    n = S.shape[0]
    rows = np.arange(n)
    paths = np.empty((n, n), dtype=np.int64)
    paths[:, 0] = rows
    visited = np.zeros((n, n), dtype=bool)
    visited[rows, rows] = True
    cur = rows
    for t in range(1, n):
        nxt = np.where(visited, -np.inf, S[cur]).argmax(axis=1)
        paths[:, t] = nxt
        visited[rows, nxt] = True
        cur = nxt
    return paths


def path_values(S: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """The value of each row of ``paths`` (shape ``(k, n)``)."""
    if paths.shape[1] < 2:
        return np.zeros(paths.shape[0])
    return S[paths[:, :-1], paths[:, 1:]].sum(axis=1)


Prefix = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _prefix(S: np.ndarray, p: np.ndarray) -> Prefix:
    """``Sp[a, b] = S[p[a], p[b]]``, the forward edges and the prefix sums ``F`` (forward) and ``B`` (backward)."""
    Sp = S[np.ix_(p, p)]
    fwd = np.diagonal(Sp, 1)
    F = np.concatenate(([0.0], np.cumsum(fwd)))
    B = np.concatenate(([0.0], np.cumsum(np.diagonal(Sp, -1))))
    return Sp, fwd, F, B


@functools.lru_cache(maxsize=64)
def _lower_mask(n: int) -> np.ndarray:
    """0 above the diagonal, -inf on and below it (the pairs ``i >= j`` that are no reversal)."""
    mask = np.where(np.triu(np.ones((n, n), dtype=bool), 1), 0.0, -np.inf)
    mask.flags.writeable = False  # shared through the cache
    return mask


@functools.lru_cache(maxsize=64)
def _segments(n: int, max_len: int) -> tuple[np.ndarray, ...]:
    """Every segment of 1..max_len items: starts, inclusive ends, and 0/-inf for each (segment, gap) move."""
    lengths = range(1, min(max_len, n - 1) + 1)
    starts = np.concatenate([np.arange(n - L + 1) for L in lengths])
    ends = np.concatenate([np.arange(L - 1, n) for L in lengths])
    gaps = np.arange(n + 1)
    own = (gaps[None, :] >= starts[:, None]) & (gaps[None, :] <= ends[:, None] + 1)  # no move
    out = starts, ends, np.where(own, -np.inf, 0.0)
    for a in out:
        a.flags.writeable = False  # shared through the cache
    return out


def best_two_opt(S: np.ndarray, p: np.ndarray, pre: Prefix | None = None) -> tuple[float, int, int]:
    """The best segment reversal ``p[i..j]`` (``i < j``): ``(gain, i, j)``; the gain may be <= 0."""
    n = len(p)
    Sp, fwd, F, B = pre or _prefix(S, p)
    turn = B - F
    delta = turn[None, :] - turn[:, None] + _lower_mask(n)  # internal edges turned around
    delta[1:, :] += Sp[:-1, :] - fwd[:, None]  # left boundary: p[i-1] -> p[j] replaces p[i-1] -> p[i]
    delta[:, :-1] += Sp[:, 1:] - fwd[None, :]  # right boundary: p[i] -> p[j+1] replaces p[j] -> p[j+1]
    i, j = divmod(int(delta.argmax()), n)
    return float(delta[i, j]), i, j


def best_or_opt(S: np.ndarray, p: np.ndarray, max_len: int = 3,
                pre: Prefix | None = None) -> tuple[float, int, int, int, bool]:
    """The best move of a segment ``p[i:i+L]`` (``1 <= L <= max_len``) to gap ``g`` (between ``p[g-1]`` and ``p[g]``).

    Both orientations are tried. Returns ``(gain, i, L, g, reversed)``; the gain is
    ``-inf`` when no move exists (n < 2).
    """
    n = len(p)
    if n < 2 or max_len < 1:
        return (-np.inf, 0, 0, 0, False)
    Sp, fwd, F, B = pre or _prefix(S, p)
    starts, ends, own = _segments(n, max_len)  # own: (segment, gap), 0 or -inf
    cut = np.zeros(n + 1)  # the edge a gap breaks, 0 at either end
    cut[1:n] = fwd
    before = np.concatenate(([0.0], fwd))[starts]  # p[i-1] -> p[i], 0 at the head
    after = np.concatenate((fwd, [0.0]))[ends]  # p[e] -> p[e+1], 0 at the tail
    bridge = np.zeros((n + 1, n + 1))
    bridge[1:, :-1] = Sp
    remove = bridge[starts, ends + 1] * ((starts > 0) & (ends < n - 1)) - before - after
    turn = (B[ends] - F[ends]) - (B[starts] - F[starts])
    SpT = np.ascontiguousarray(Sp.T)
    best: tuple[float, int, int, int, bool] = (-np.inf, 0, 0, 0, False)
    for rev in (False, True):
        head, tail = (ends, starts) if rev else (starts, ends)
        delta = own + (remove + turn if rev else remove)[:, None]
        delta -= cut[None, :]
        delta[:, 1:] += SpT[head]  # p[g-1] -> head
        delta[:, :n] += Sp[tail]  # tail -> p[g]
        r, g = divmod(int(delta.argmax()), n + 1)
        if delta[r, g] > best[0]:
            best = (float(delta[r, g]), int(starts[r]), int(ends[r] - starts[r] + 1), g, rev)
    return best


def apply_or_opt(p: np.ndarray, i: int, L: int, g: int, rev: bool) -> np.ndarray:
    """The path after moving ``p[i:i+L]`` (reversed if ``rev``) to gap ``g`` of the original path."""
    seg = p[i:i + L][::-1] if rev else p[i:i + L]
    rest = np.concatenate((p[:i], p[i + L:]))
    pos = g if g < i else g - L
    return np.concatenate((rest[:pos], seg, rest[pos:]))


def local_search(S: np.ndarray, p: np.ndarray, deadline: float | None = None,
                 max_len: int | None = None) -> np.ndarray:
    """Best-improvement 2-opt and or-opt moves from ``p`` until none gains (or ``deadline`` passes).

    Or-opt moves segments of up to ``max_len`` items (default: any length up to
    :data:`FULL_OR_OPT_N` items, else :data:`OR_OPT_MAX_LEN`).
    """
    p = np.asarray(p, dtype=np.int64).copy()
    if len(p) < 2:
        return p
    if max_len is None:
        max_len = len(p) if len(p) <= FULL_OR_OPT_N else OR_OPT_MAX_LEN
    tol = _tolerance(S)
    while deadline is None or time.perf_counter() < deadline:
        pre = _prefix(S, p)
        g2, i, j = best_two_opt(S, p, pre)
        go, oi, L, gap, rev = best_or_opt(S, p, max_len, pre)
        if max(g2, go) <= tol:
            break
        if g2 >= go:
            p[i:j + 1] = p[i:j + 1][::-1]
        else:
            p = apply_or_opt(p, oi, L, gap, rev)
    return p


def double_bridge(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut ``p`` into A B C D (D may be empty) and return A C B D (a segment exchange); ``p`` when n < 3."""
    n = len(p)
    if n < 3:
        return p.copy()
    a, b, c = np.sort(rng.choice(np.arange(1, n + 1), size=3, replace=False))
    return np.concatenate((p[:a], p[b:c], p[a:b], p[c:]))


def shuffle_window(p: np.ndarray, rng: np.random.Generator, width: int = KICK_WINDOW) -> np.ndarray:
    """``p`` with a random window of ``width`` consecutive items put in random order."""
    width = min(width, len(p))
    a = int(rng.integers(0, len(p) - width + 1))
    q = p.copy()
    q[a:a + width] = rng.permutation(q[a:a + width])
    return q


def kick(p: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random perturbation: a :func:`double_bridge` one time in four, else a :func:`shuffle_window`."""
    return double_bridge(p, rng) if rng.random() < 0.25 else shuffle_window(p, rng)


def iterated_local_search(S: np.ndarray, seed: int = 0, kicks: int = 120, starts: int = 3,
                          deadline: float | None = None, patience: int | None = KICK_PATIENCE) -> np.ndarray:
    """Local search from the ``starts`` best greedy paths, then up to ``kicks`` random kicks (:func:`kick`).

    A kicked copy of the current path is improved by :func:`local_search` and becomes the
    current path when it is at least as good (plateaus are crossed); the best path seen is
    returned. Stops after ``patience`` kicks in a row without a better path (None: never)
    or at ``deadline`` (``time.perf_counter()`` seconds).
    """
    n = S.shape[0]
    tol = _tolerance(S)
    greedy = nearest_neighbour_paths(S)
    ranked = np.argsort(-path_values(S, greedy), kind="stable")
    best, best_v = greedy[ranked[0]], -np.inf
    for s in ranked[:starts]:
        cand = local_search(S, greedy[s], deadline)
        v = float(path_values(S, cand[None])[0])
        if v > best_v + tol:
            best, best_v = cand, v
        if deadline is not None and time.perf_counter() >= deadline:
            return best
    rng = np.random.default_rng(seed)
    cur, cur_v = best, best_v
    stale = 0
    for _ in range(kicks if n >= 4 else 0):
        if (deadline is not None and time.perf_counter() >= deadline) or (patience is not None and stale >= patience):
            break
        stale += 1
        cand = local_search(S, kick(cur, rng), deadline)
        v = float(path_values(S, cand[None])[0])
        if v >= cur_v - tol:
            cur, cur_v = cand, v
        if v > best_v + tol:
            best, best_v, stale = cand, v, 0
    return best
