"""Rank-R1 on SmolLM2-135M-Instruct, SciFact: zero-shot vs GRPO vs Setwise-SFT (issue 4's experiment).

Needs the two adapters trained first (``make rank-r1`` does all of it)::

    rankkit train grpo --config pipelines/rank_r1_grpo.yaml
    rankkit train sft-setwise --config pipelines/setwise_sft.yaml
    python eval/rank_r1_scifact.py --prompts 100 --queries 20

Measures, on SciFact *test* (never used in training):
1. top-1 accuracy on ``--prompts`` held-out setwise prompts (1 relevant + 3 BM25
   negatives, shuffled; the same prompts for every system), greedy decoding;
2. nDCG@10 of setwise heapsort (c = 4, k = 10) over BM25's top 20 for a seeded
   sample of ``--queries`` test queries, against BM25 (paired t-test, Holm);
3. the GRPO curve (reward and format score per step) from the adapter's log, as a PNG.
Writes ``eval/results/rank_r1_scifact.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "eval" / "results"


def _systems(args: argparse.Namespace) -> dict[str, dict]:
    grpo_meta = json.loads((Path(args.grpo) / "rankkit_setwise.json").read_text())
    prefix = grpo_meta["config"]["prefix"] or ""
    return {
        "zero-shot (setwise-r1)": {"adapter": None, "template": "setwise-r1", "prefix": prefix},
        "zero-shot (setwise)": {"adapter": None, "template": "setwise", "prefix": None},
        "GRPO (Rank-R1)": {"adapter": args.grpo, "template": None, "prefix": None},
        "SFT (Setwise-SFT)": {"adapter": args.sft, "template": None, "prefix": None},
    }


def _template(spec: dict):
    from rankkit.rerank.setwise_prompt import load_template, saved_template
    from rankkit.train.setwise_common import resolve_template

    if spec["adapter"]:
        return load_template(saved_template(spec["adapter"]))
    return resolve_template(spec["template"], spec["prefix"])


def top1(llm, examples: list[dict], batch: int) -> dict:
    """Top-1 accuracy, strict-format rate and parse outcomes of ``llm`` on setwise ``examples``."""
    from rankkit.rerank.setwise_parse import format_ok, parse_choice

    llm.stats.clear()
    correct = strict = 0
    t0 = time.perf_counter()
    for i in range(0, len(examples), batch):
        chunk = examples[i:i + batch]
        prompts = [llm.prompt_text(e["query"], e["documents"]) for e in chunk]
        texts = llm.generate(prompts)
        for e, text in zip(chunk, texts):
            choice = parse_choice(llm.template.prefix + text, len(e["documents"]), "lenient")
            llm.stats[f"parse_{choice.how}"] += 1
            correct += choice.index is not None and f"[{choice.index + 1}]" == e["label"]
            strict += format_ok(llm.template.prefix + text) if llm.template.reasoning else choice.how == "answer"
    n = len(examples)
    return {"top1_accuracy": round(correct / n, 4), "format_rate": round(strict / n, 4),
            "parse": {k[6:]: v for k, v in llm.stats.items() if k.startswith("parse_")},
            "generated_tokens_per_prompt": round(llm.stats["generated_tokens"] / n, 1),
            "wall_s": round(time.perf_counter() - t0, 1)}


def plot_curve(log_history: list[dict], path: Path) -> list[dict]:
    """Plot GRPO reward and format score per step to ``path``; returns the per-step points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = [{"step": h["step"], "correct": h["rewards/correct/mean"], "format": h["rewards/format/mean"],
               "length": h.get("completions/mean_length")} for h in log_history if "rewards/correct/mean" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [p["step"] for p in points]
    for key, label in (("correct", "Rank-R1 reward (correct answer)"), ("format", "format score")):
        ys = [p[key] for p in points]
        smooth = [sum(ys[max(0, i - 4):i + 1]) / len(ys[max(0, i - 4):i + 1]) for i in range(len(ys))]
        line, = ax.plot(steps, ys, alpha=0.3)
        ax.plot(steps, smooth, color=line.get_color(), label=f"{label} (5-step mean)")
    ax.set_xlabel("GRPO step (2 prompts x 4 completions)")
    ax.set_ylabel("mean over completions")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Rank-R1 GRPO, SmolLM2-135M-Instruct, SciFact train (CPU)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return points


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95%) of a proportion ``p`` observed over ``n`` trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5
    return round(centre - half, 3), round(centre + half, 3)


def markdown(report: dict, means: dict) -> str:
    """The result tables as Markdown (top-1 on held-out prompts, nDCG@10 of setwise heapsort over BM25 top 20)."""
    card = report["run_card"]
    lines = [f"# Rank-R1 on SmolLM2-135M-Instruct, SciFact test ({card['date']})", "",
             f"`{card['command']}` on {card['machine'].get('cpu', 'this machine')}; total {card['wall_time_s']} s.",
             "", f"## Top-1 accuracy, {card['held_out_prompts']} held-out prompts (1 relevant + 3 BM25 negatives)", "",
             "| system | top-1 | 95% CI (Wilson) | format rate | parse (strict/answer/label/failed) | gen. tokens/prompt |",
             "|---|---|---|---|---|---|"]
    for name, r in report["top1"].items():
        p = r["parse"]
        lo, hi = wilson(r["top1_accuracy"], card["held_out_prompts"])
        lines.append(f"| {name} | {r['top1_accuracy']:.3f} | {lo:.3f}-{hi:.3f} | {r['format_rate']:.3f} | "
                     f"{p.get('strict', 0)}/{p.get('answer', 0)}/{p.get('label', 0)}/{p.get('failed', 0)} | "
                     f"{r['generated_tokens_per_prompt']} |")
    lines += ["", "Chance is 0.250.", "",
              f"## nDCG@10, setwise heapsort (c=4, k=10) over BM25 top 20, {len(card['ndcg_queries'])} test queries",
              "", "| run | nDCG@10 | p vs BM25 (t-test, Holm) | MRR@10 | LLM calls | parse failures | wall s |",
              "|---|---|---|---|---|---|---|"]
    adjusted = report["ndcg_comparison"].get("p_adjusted", {})
    for name, m in means.items():
        st = report["ndcg"].get(name, {})
        s = st.get("stats", {})
        p = adjusted.get(name, {}).get("ndcg@10")
        p_cell = "-" if p is None or name == report["ndcg_comparison"].get("baseline") else f"{p:.2g}"
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {p_cell} | {m['mrr@10']:.4f} | {s.get('llm_calls', '-')} | "
                     f"{s.get('parse_failed', 0) if s else '-'} | {st.get('wall_s', '-')} |")
    tr = report["training"]
    lines += ["", "## Training (CPU, 2 cores)", "",
              f"- GRPO: {tr['grpo']['steps']} steps, {tr['grpo']['wall_time_s']} s, pool of {tr['grpo']['num_prompts']} prompts.",
              f"- SFT: {tr['sft']['steps']} steps, {tr['sft']['wall_time_s']} s, {tr['sft']['num_prompts']} prompts.",
              "- Curve: `rank_r1_scifact.png` (reward and format score per GRPO step)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpo", default=str(ROOT / "models" / "rank-r1-smollm2"))
    ap.add_argument("--sft", default=str(ROOT / "models" / "setwise-sft-smollm2"))
    ap.add_argument("--base", default="smollm2", help="base model of both adapters")
    ap.add_argument("--prompts", type=int, default=100)
    ap.add_argument("--queries", type=int, default=20)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--output", default=str(RESULTS / "rank_r1_scifact"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from rankkit.data import load_dataset
    from rankkit.evaluate import compare
    from rankkit.llm import load_causal_lm
    from rankkit.pipeline import Pipeline
    from rankkit.rerank.setwise import Setwise
    from rankkit.rerank.setwise_llm import SetwiseLLM
    from rankkit.runcard import machine, versions, write_json
    from rankkit.train.setwise_data import build_setwise_examples
    from rankkit.types import Run

    t_start = time.perf_counter()
    test = load_dataset("beir/scifact/test")
    bm25 = Pipeline.from_yaml(ROOT / "pipelines" / "bm25.yaml", test)(test.queries).with_name("BM25")
    systems = _systems(args)
    qids = sorted(random.Random(0).sample(sorted(q.qid for q in test.queries), args.queries))
    subset = test.subset(qids=qids)
    base_model = None
    report: dict = {"dataset": "beir/scifact/test", "systems": {}, "top1": {}, "ndcg": {}}
    runs = {"BM25": Run({q: bm25[q] for q in qids}, name="BM25").top_k(20)}
    reference = None
    for name, spec in systems.items():
        template = _template(spec)
        model, tok = load_causal_lm(args.base, spec["adapter"], device="cpu")
        base_model = base_model or tok.name_or_path
        examples = build_setwise_examples(test, bm25, template, tok, set_size=4, negatives_depth=30,
                                          num_prompts=args.prompts, passage_tokens=64, query_tokens=48, seed=123)
        key = [(e["qid"], e["docids"], e["label"]) for e in examples]
        assert reference is None or key == reference, "every system must see the same held-out prompts"
        reference = key
        llm = SetwiseLLM(model, tok, template, max_new_tokens=args.max_new_tokens)
        report["systems"][name] = {"adapter": spec["adapter"], "template": template.name,
                                   "prefix": template.prefix, "reasoning": template.reasoning}
        report["top1"][name] = top1(llm, examples, args.batch)
        logging.info("%s top-1: %s", name, report["top1"][name])
        if name == "zero-shot (setwise)":
            continue  # nDCG for the three systems the issue names; this row is the SFT prompt's zero-shot
        stage = Setwise(subset, llm=llm, method="heapsort", num_child=3, k=10, depth=20, batch_size=args.batch,
                        passage_tokens=64, query_tokens=48, seed=0, show_progress=True, name=name)
        t0 = time.perf_counter()
        runs[name] = stage(subset.queries, runs["BM25"])
        report["ndcg"][name] = {"stats": dict(stage.stats), "wall_s": round(time.perf_counter() - t0, 1)}
    cmp = compare(list(runs.values()), subset.qrels, ["ndcg@10", "mrr@10"], baseline="BM25",
                  stat_test="student", correction="holm")
    report["ndcg_comparison"] = cmp.to_dict()
    grpo_meta = json.loads((Path(args.grpo) / "rankkit_setwise.json").read_text())
    sft_meta = json.loads((Path(args.sft) / "rankkit_setwise.json").read_text())
    out = Path(args.output)
    report["grpo_curve"] = plot_curve(grpo_meta["log_history"], out.with_suffix(".png"))
    report["training"] = {
        k: {"steps": m["steps"], "wall_time_s": m["wall_time_s"], "num_prompts": m["num_prompts"],
            "config": m["config"]} for k, m in (("grpo", grpo_meta), ("sft", sft_meta))}
    report["run_card"] = {"command": "python " + " ".join(sys.argv), "machine": machine(), "versions": versions(),
                          "date": time.strftime("%Y-%m-%d"), "base_model": base_model,
                          "wall_time_s": round(time.perf_counter() - t_start, 1),
                          "held_out_prompts": args.prompts, "ndcg_queries": qids}
    write_json(report, out.with_suffix(".json"))
    out.with_suffix(".md").write_text(markdown(report, cmp.means), encoding="utf-8")
    print(json.dumps({"top1": report["top1"], "means": cmp.means}, indent=1))


if __name__ == "__main__":
    main()
