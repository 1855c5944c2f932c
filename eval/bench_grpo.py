"""GRPO step time: `rankkit train grpo` vs a bare `trl.GRPOTrainer` script, same model, data and settings.

    python eval/bench_grpo.py --steps 4

Both runs train SmolLM2-135M-Instruct with the same LoRA, the same GRPO settings
(``pipelines/rank_r1_grpo.yaml``), the same seed and the same setwise prompts
(built once by rankkit and handed to the bare script as a plain dataset). The bare
run is what a user would write by hand: ``from_pretrained`` + ``LoraConfig`` +
an inline regex reward + ``GRPOTrainer``. Step time is trl's own ``step_time`` log,
median over the steps after the first (warm-up). The ratio is bare / rankkit
(>= 1 means rankkit is not slower). Writes ``eval/results/bench_grpo.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATTERN = re.compile(r"<think>.*?</think>\s*<answer>(.*?)</answer>", re.DOTALL)


def bare_trl(cfg, examples: list[dict], prefix: str, output: str) -> list[dict]:
    """The hand-written baseline: plain transformers + peft + trl with the same settings; returns trl's log."""
    import datasets
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import GRPOConfig, GRPOTrainer

    from rankkit.models import resolve_model
    from rankkit.precision import mixed_precision

    set_seed(cfg.seed)
    path = resolve_model(cfg.model)
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype="float32")

    def correct(completions, label, **kw):
        out = []
        for c, gt in zip(completions, label):
            m = PATTERN.search(prefix + c)
            out.append(1.0 if m and m.group(1).strip() == gt else 0.0)
        return out

    def fmt(completions, **kw):
        out = []
        for c in completions:
            m = re.match(r"^\s*<think>.*?</think>", prefix + c, re.DOTALL)
            out.append(0.0 if m is None else 1.0 if re.search(r"<answer>.*?</answer>", (prefix + c)[m.end():],
                                                                re.DOTALL) else 0.5)
        return out

    g = cfg.grpo
    args = GRPOConfig(
        output_dir=output, learning_rate=g.learning_rate, beta=g.beta, num_generations=g.num_generations,
        temperature=g.temperature, top_p=g.top_p, top_k=g.top_k, max_completion_length=g.max_completion_length,
        per_device_train_batch_size=g.per_device_train_batch_size,
        gradient_accumulation_steps=g.gradient_accumulation_steps, num_iterations=g.num_iterations,
        epsilon=g.epsilon, loss_type=g.loss_type, scale_rewards=g.scale_rewards, max_steps=g.max_steps,
        lr_scheduler_type=g.lr_scheduler_type, max_grad_norm=g.max_grad_norm, logging_steps=1, save_strategy="no",
        bf16=mixed_precision(cfg.precision, "cpu") == "bf16", use_cpu=True,
        reward_weights=[1.0, cfg.reward.format_weight], seed=cfg.seed, data_seed=cfg.seed, report_to="none",
        remove_unused_columns=False,
    )
    lora = LoraConfig(r=cfg.lora.rank, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, bias="none",
                      task_type="CAUSAL_LM", target_modules=list(cfg.lora.target_modules))
    data = datasets.Dataset.from_list([{"prompt": e["prompt"], "label": e["label"]} for e in examples])
    trainer = GRPOTrainer(model=model, reward_funcs=[correct, fmt], args=args, train_dataset=data,
                          processing_class=tok, peft_config=lora)
    trainer.train()
    return trainer.state.log_history


def summary(log: list[dict]) -> dict:
    """Median step time after the first step, and the mean completion length (same work check)."""
    steps = [h for h in log if "step_time" in h]
    times = [float(h["step_time"]) for h in steps[1:]]
    return {"steps": len(steps), "median_step_time_s": round(statistics.median(times), 3),
            "step_times_s": [round(float(h["step_time"]), 3) for h in steps],
            "mean_completion_length": round(statistics.mean(float(h["completions/mean_length"]) for h in steps), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "pipelines" / "rank_r1_grpo.yaml"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--output", default=str(ROOT / "eval" / "results" / "bench_grpo"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)

    from rankkit.llm import load_tokenizer
    from rankkit.runcard import machine, versions, write_json
    from rankkit.train.config import load_config
    from rankkit.train.grpo import train_grpo
    from rankkit.train.llm_config import RankR1Config
    from rankkit.train.setwise_common import prepare_examples, resolve_template

    cfg, base = load_config(RankR1Config, args.config)
    cfg.grpo = dataclasses.replace(cfg.grpo, max_steps=args.steps, max_time_s=None, save_steps=10_000)
    cfg.data = dataclasses.replace(cfg.data, num_prompts=2 * args.steps)
    template = resolve_template(cfg.template, cfg.prefix)
    examples = prepare_examples(cfg.data, template, load_tokenizer(cfg.model), base, cfg.seed)
    with tempfile.TemporaryDirectory() as tmp:
        # rankkit rebuilds the same prompts itself (inside its wall time, outside trl's step_time).
        cfg.output = str(Path(tmp) / "rankkit")
        t0 = time.perf_counter()
        result = train_grpo(cfg, base)
        rk_wall = time.perf_counter() - t0
        rk_log = json.loads((result.output / "rankkit_setwise.json").read_text())["log_history"]
        t0 = time.perf_counter()
        bare_log = bare_trl(cfg, examples, template.prefix, str(Path(tmp) / "bare"))
        bare_wall = time.perf_counter() - t0
    rk, bare = summary(rk_log), summary(bare_log)
    ratio = bare["median_step_time_s"] / rk["median_step_time_s"]
    report = {"rankkit": rk | {"wall_s": round(rk_wall, 1)}, "bare_trl": bare | {"wall_s": round(bare_wall, 1)},
              "ratio_bare_over_rankkit": round(ratio, 4),
              "run_card": {"command": "python " + " ".join(sys.argv), "machine": machine(), "versions": versions(),
                           "date": time.strftime("%Y-%m-%d"), "config": args.config, "steps": args.steps}}
    out = Path(args.output)
    write_json(report, out.with_suffix(".json"))
    md = [f"# GRPO step time: rankkit vs bare trl ({report['run_card']['date']})", "",
          f"`{report['run_card']['command']}`, SmolLM2-135M-Instruct, {args.steps} steps each, CPU.", "",
          "| run | median step time (s, steps 2..) | mean completion length | wall s |", "|---|---|---|---|",
          f"| rankkit `train_grpo` | {rk['median_step_time_s']} | {rk['mean_completion_length']} | {rk_wall:.0f} |",
          f"| bare `trl.GRPOTrainer` | {bare['median_step_time_s']} | {bare['mean_completion_length']} | "
          f"{bare_wall:.0f} |", "", f"Ratio bare / rankkit: **{ratio:.3f}** (>= 0.95 required).", ""]
    out.with_suffix(".md").write_text("\n".join(md), encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
