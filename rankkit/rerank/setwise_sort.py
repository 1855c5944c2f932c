"""Setwise top-k sorting (heapsort, bubblesort) written as generators, so many queries share batches.

A sort over ``n`` candidates (indices ``0..n-1``, best first-stage candidate first)
yields one *comparison* at a time, a list of candidate indices; the caller sends
back the position (in that list) of the most relevant one. When the sort is done
the generator returns the full order: the top ``k`` sorted, then the remaining
candidates. :func:`drive` runs many such sorts together and answers their pending
comparisons in batches through one ``choose`` function (one batched LLM call).

Heapsort (Zhuang et al., setwise): a max-heap where node ``i`` has the ``num_child``
children ``num_child*i + 1 …``; each sift-down compares a node with all its
children in one comparison of up to ``num_child + 1`` documents. The heap is built
bottom-up and then the top ``k`` are extracted. Bubblesort: ``k`` passes of a window
of ``num_child + 1`` documents sliding from the bottom of the list to the top,
carrying the best of each window upwards.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

Sort = Generator[list[int], int, list[int]]


def _sift_down(heap: list[int], size: int, node: int, num_child: int) -> Generator[list[int], int, None]:
    while True:
        first = num_child * node + 1
        if first >= size:
            return
        children = list(range(first, min(first + num_child, size)))
        shown = [heap[node]] + [heap[c] for c in children]
        best = yield shown
        if best == 0:
            return
        child = children[best - 1]
        heap[node], heap[child] = heap[child], heap[node]
        node = child


def heapsort(n: int, k: int, num_child: int) -> Sort:
    """Setwise heapsort of ``n`` candidates returning the order with the top ``k`` sorted (see module docstring)."""
    if num_child < 1:
        raise ValueError(f"num_child must be >= 1, got {num_child}")
    heap = list(range(n))
    k = min(k, n)
    for node in range((n - 2) // num_child, -1, -1) if n > 1 else ():
        yield from _sift_down(heap, n, node, num_child)
    top: list[int] = []
    size = n
    while len(top) < k:
        top.append(heap[0])
        size -= 1
        heap[0] = heap[size]
        if len(top) < k and size > 1:
            yield from _sift_down(heap, size, 0, num_child)
    chosen = set(top)
    return top + [i for i in range(n) if i not in chosen]


def bubblesort(n: int, k: int, num_child: int) -> Sort:
    """Setwise bubblesort: ``k`` upward passes of a ``num_child + 1`` window (see module docstring)."""
    if num_child < 1:
        raise ValueError(f"num_child must be >= 1, got {num_child}")
    order = list(range(n))
    for i in range(min(k, n)):
        end = n
        while end - i > 1:
            start = max(i, end - num_child - 1)
            best = yield order[start:end]
            order[start], order[start + best] = order[start + best], order[start]
            end = start + 1
            if start == i:
                break
    return order


SORTS: dict[str, Callable[[int, int, int], Sort]] = {"heapsort": heapsort, "bubblesort": bubblesort}


def drive(sorts: dict[str, Sort], choose: Callable[[list[tuple[str, list[int]]]], Sequence[int]],
          batch_size: int, on_batch: Callable[[int], None] | None = None) -> dict[str, list[int]]:
    """Run every sort to completion, answering pending comparisons ``batch_size`` at a time.

    ``choose`` receives ``(key, shown indices)`` pairs and returns, for each, the
    position of the winner in its shown list. Each sort has at most one pending
    comparison, so a batch holds comparisons of different sorts. ``on_batch(size)``
    is called after each batch (progress bars).
    """
    pending: dict[str, list[int]] = {}
    results: dict[str, list[int]] = {}

    def advance(key: str, answer: int | None) -> None:
        try:
            request = next(sorts[key]) if answer is None else sorts[key].send(answer)
        except StopIteration as stop:
            results[key] = stop.value
            pending.pop(key, None)
            return
        pending[key] = request

    for key in sorts:
        advance(key, None)
    while pending:
        batch = list(pending.items())[:batch_size]
        answers = choose(batch)
        if len(answers) != len(batch):
            raise RuntimeError(f"choose returned {len(answers)} answers for {len(batch)} comparisons")
        for (key, shown), best in zip(batch, answers):
            if not 0 <= best < len(shown):
                raise RuntimeError(f"choose returned position {best} for a comparison of {len(shown)} documents")
            advance(key, int(best))
        if on_batch is not None:
            on_batch(len(batch))
    return results
