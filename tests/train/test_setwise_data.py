"""Setwise training prompts: one relevant document among shuffled negatives, label recorded, deterministic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rankkit.data import load_dataset
from rankkit.rerank.setwise_prompt import load_template
from rankkit.train.setwise_data import build_setwise_examples
from rankkit.types import Run


class _Tok:
    def __call__(self, texts, add_special_tokens=False, truncation=True, max_length=None):
        return {"input_ids": [t.split()[:max_length] for t in texts]}

    def decode(self, ids, skip_special_tokens=True):
        return " ".join(ids)

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + ("<assistant>" if add_generation_prompt else "")


@pytest.fixture(scope="module")
def data(train_folder: Path):
    ds = load_dataset(str(train_folder), "train")
    return ds, Run.from_trec(train_folder / "run.trec")


def test_examples_hold_one_positive_at_the_recorded_label(data) -> None:
    ds, run = data
    examples = build_setwise_examples(ds, run, load_template("setwise-r1"), _Tok(), set_size=4, negatives_depth=20,
                                      passage_tokens=12, seed=3)
    assert len(examples) == sum(len(ds.qrels.relevant(q.qid)) for q in ds.queries)
    labels = Counter()
    for e in examples:
        assert len(e["docids"]) == 4 and len(set(e["docids"])) == 4
        judged = ds.qrels.get(e["qid"], {})
        relevant = [i for i, d in enumerate(e["docids"]) if judged.get(d, 0) > 0]
        assert len(relevant) == 1 and e["label"] == f"[{relevant[0] + 1}]"
        top20 = set(sorted(run[e["qid"]], key=lambda d: -run[e["qid"]][d])[:20])
        assert all(d in top20 for i, d in enumerate(e["docids"]) if i != relevant[0])
        assert e["completion"] == "<think>  </think> <answer>" + e["label"] + "</answer>"
        assert e["prompt"].endswith("<assistant>") and f"[4] {e['documents'][3]}" in e["prompt"]
        assert all(len(t.split()) <= 12 for t in e["documents"])
        labels[e["label"]] += 1
    assert len(labels) > 1, "positions are shuffled"


def test_deterministic_sampling_and_prefix(data) -> None:
    ds, run = data
    tpl = load_template("setwise")
    a = build_setwise_examples(ds, run, tpl, _Tok(), set_size=3, num_prompts=5, seed=1)
    b = build_setwise_examples(ds, run, tpl, _Tok(), set_size=3, num_prompts=5, seed=1)
    c = build_setwise_examples(ds, run, tpl, _Tok(), set_size=3, num_prompts=5, seed=2)
    assert a == b and a != c and len(a) == 5
    assert a[0]["completion"] == f"<answer>{a[0]['label']}</answer>"
    import dataclasses

    think = dataclasses.replace(load_template("setwise-r1"), prefix="<think>")
    e = build_setwise_examples(ds, run, think, _Tok(), set_size=3, num_prompts=1, seed=1)[0]
    assert e["prompt"].endswith("<assistant><think>") and e["completion"].startswith("  </think>")
    with pytest.raises(ValueError, match="set_size"):
        build_setwise_examples(ds, run, tpl, _Tok(), set_size=1)
