"""Setwise heapsort and bubblesort against a deterministic oracle: exact top-k and comparison counts."""

from __future__ import annotations

import random

import pytest

from rankkit.rerank.setwise_sort import bubblesort, drive, heapsort


def oracle(scores: list[float]):
    """A mock LLM: picks the shown candidate with the highest true score; counts its calls."""
    calls: list[list[int]] = []

    def choose(batch: list[tuple[str, list[int]]]) -> list[int]:
        out = []
        for _, shown in batch:
            calls.append(shown)
            out.append(max(range(len(shown)), key=lambda j: scores[shown[j]]))
        return out

    return choose, calls


def sort_with_oracle(algo, scores: list[float], k: int, c: int) -> tuple[list[int], list[list[int]]]:
    choose, calls = oracle(scores)
    order = drive({"q": algo(len(scores), k, c - 1)}, choose, batch_size=4)["q"]
    return order, calls


def test_heapsort_n100_c20_k10_returns_true_top10_with_19_comparisons() -> None:
    # Candidates arrive best first (the first stage is right). With 19 children per node, the
    # heap's internal nodes are 0..5, so building it costs 6 comparisons and no swaps. Each of
    # the first 4 extractions moves a bottom leaf to the root, which sinks two levels (root,
    # then one of nodes 1-4): 2 comparisons each. Extractions 5-9 sink it one level only (its
    # new place, node 5..9, has no children left inside the shrunken heap): 1 each. The 10th
    # extraction needs no repair. Total 6 + 4*2 + 5*1 = 19.
    scores = [100.0 - i for i in range(100)]
    order, calls = sort_with_oracle(heapsort, scores, k=10, c=20)
    assert order[:10] == list(range(10))
    assert len(calls) == 19
    assert all(len(shown) <= 20 for shown in calls)
    assert sorted(order) == list(range(100))


def test_bubblesort_n100_c20_k10_returns_true_top10_with_54_comparisons() -> None:
    # Pass i slides a 20-document window up over candidates i..99, advancing 19 per
    # comparison: ceil((99 - i) / 19) comparisons, i.e. 6 for i = 0..3 and 5 for i = 4..9.
    scores = [100.0 - i for i in range(100)]
    order, calls = sort_with_oracle(bubblesort, scores, k=10, c=20)
    assert order[:10] == list(range(10))
    assert len(calls) == 4 * 6 + 6 * 5


@pytest.mark.parametrize("algo", [heapsort, bubblesort])
def test_random_inputs_give_the_exact_top_k(algo) -> None:
    rng = random.Random(7)
    for _ in range(300):
        n, k, c = rng.randint(1, 70), rng.randint(1, 15), rng.randint(2, 21)
        scores = [rng.random() for _ in range(n)]
        order, calls = sort_with_oracle(algo, scores, k, c)
        assert sorted(order) == list(range(n))
        assert order[:min(k, n)] == sorted(range(n), key=lambda i: -scores[i])[:min(k, n)]
        assert all(2 <= len(shown) <= c for shown in calls)


def test_heapsort_is_cheaper_than_sorting_everything() -> None:
    scores = [random.Random(1).random() for _ in range(100)]
    _, top10 = sort_with_oracle(heapsort, scores, k=10, c=4)
    _, full = sort_with_oracle(heapsort, scores, k=100, c=4)
    assert len(top10) < len(full)


def test_tiny_inputs() -> None:
    for algo in (heapsort, bubblesort):
        assert sort_with_oracle(algo, [], 10, 4) == ([], [])
        assert sort_with_oracle(algo, [1.0], 10, 4) == ([0], [])
        order, calls = sort_with_oracle(algo, [0.1, 0.9], 10, 4)
        assert order == [1, 0] and len(calls) >= 1


def test_drive_batches_across_sorts_and_is_independent_of_batch_size() -> None:
    rng = random.Random(3)
    tables = {f"q{i}": [rng.random() for _ in range(30)] for i in range(9)}

    def run(batch_size: int) -> tuple[dict[str, list[int]], list[int]]:
        sizes: list[int] = []

        def choose(batch: list[tuple[str, list[int]]]) -> list[int]:
            keys = [key for key, _ in batch]
            assert len(set(keys)) == len(keys), "a batch holds at most one comparison per sort"
            return [max(range(len(s)), key=lambda j: tables[key][s[j]]) for key, s in batch]

        sorts = {q: heapsort(30, 5, 3) for q in tables}
        return drive(sorts, choose, batch_size, on_batch=sizes.append), sizes

    one, sizes1 = run(1)
    many, sizes8 = run(8)
    assert one == many
    assert max(sizes8) == 8 and sum(sizes8) == sum(sizes1)


def test_drive_rejects_an_out_of_range_answer() -> None:
    with pytest.raises(RuntimeError, match="position 7"):
        drive({"q": heapsort(10, 3, 3)}, lambda batch: [7 for _ in batch], 2)
