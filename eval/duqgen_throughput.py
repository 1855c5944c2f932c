"""Query-generation throughput: rankkit's generation path vs a bare ``transformers`` generate loop.

    RANKKIT_DATA_DIR=../shared/data python eval/duqgen_throughput.py [--docs 32] [--batch-size 8] [--rounds 2]

Both sides get the same prompts (DUQGen's few-shot chat prompt for the first ``--docs``
SciFact documents of at least 300 characters), the same model object
(SmolLM2-135M-Instruct, fp32 on the CPU), batch size, greedy decoding, ``max_new_tokens``
48 and the stop string ``"\\n"``. rankkit's side is :func:`rankkit.synth.querygen.generate_queries`
(prompt rendering, batching, generation, cleaning); the bare side tokenizes each batch
with left padding and calls ``model.generate`` itself. Rounds alternate the two sides so
machine noise hits both; generated tokens are counted the same way (up to EOS or the stop
string). Writes ``eval/results/duqgen_throughput.{json,md}``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "eval" / "results" / "duqgen_throughput"


def bare_loop(model: Any, tok: Any, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[int, float]:
    """A plain transformers loop: (generated tokens, seconds)."""
    import torch

    from rankkit.llm.generate import generated_lengths

    eos = {tok.eos_token_id}
    tokens, t0 = 0, time.perf_counter()
    for i in range(0, len(prompts), batch_size):
        tok.padding_side = "left"
        enc = tok(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, stop_strings=["\n"], tokenizer=tok, pad_token_id=tok.pad_token_id)
        tokens += sum(generated_lengths(out[:, enc["input_ids"].shape[1]:], eos, tok.pad_token_id))
        tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return tokens, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--docs", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=48)
    args = p.parse_args()

    import torch
    from tabulate import tabulate

    from rankkit.data.beir import iter_beir_corpus
    from rankkit.llm import load_causal_lm, render_chat
    from rankkit.runcard import run_card, write_json
    from rankkit.settings import data_dir
    from rankkit.synth.querygen import generate_queries, load_query_template, read_fewshot, truncate_words
    from rankkit.trec import atomic_write

    root = data_dir()
    if root is None:
        raise SystemExit("set RANKKIT_DATA_DIR to the shared data folder")
    docs = [d for d in iter_beir_corpus(root / "beir" / "scifact" / "corpus.jsonl") if len(d.contents) >= 300]
    docs = docs[:args.docs]
    model, tok = load_causal_lm("smollm2", device="cpu", precision="fp32")
    template = load_query_template()
    shots = read_fewshot(ROOT / "pipelines" / "fewshot" / "scifact.jsonl", 200)
    prompts = [render_chat(tok, template.messages(truncate_words(d.contents, 200), shots)) for d in docs]
    bare_loop(model, tok, prompts[:args.batch_size], args.batch_size, 4)  # warm-up
    results: dict[str, list[tuple[int, float]]] = {"rankkit (generate_queries)": [], "bare transformers loop": []}
    for _ in range(args.rounds):
        g = generate_queries(docs, model, tok, template, shots, doc_words=200, max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, show_progress=False)
        results["rankkit (generate_queries)"].append((g.generated_tokens, g.generation_s))
        results["bare transformers loop"].append(bare_loop(model, tok, prompts, args.batch_size, args.max_new_tokens))
    rows = []
    for name, runs in results.items():
        tokens = sum(t for t, _ in runs)
        secs = sum(s for _, s in runs)
        rows.append({"path": name, "generated_tokens": tokens, "seconds": round(secs, 2),
                     "tokens_per_s": round(tokens / secs, 2)})
    ratio = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    md = tabulate([[r["path"], r["generated_tokens"], r["seconds"], r["tokens_per_s"]] for r in rows],
                  headers=["path", "generated tokens", "seconds", "tokens/s"], tablefmt="github")
    print(md, f"\nrankkit / bare: {ratio:.3f}")
    card = run_card(vars(args), None, None)
    write_json({"rows": rows, "ratio": ratio, "torch_threads": torch.get_num_threads(), "run_card": card},
               OUT.with_suffix(".json"))
    with atomic_write(OUT.with_suffix(".md")) as fh:
        fh.write(f"# Query generation throughput: rankkit vs a bare transformers loop\n\n{md}\n\n"
                 f"rankkit / bare tokens/s: **{ratio:.3f}**. {args.docs} SciFact documents, DUQGen's 3-shot chat "
                 f"prompt (documents cut to 200 words), SmolLM2-135M-Instruct fp32, batch {args.batch_size}, "
                 f"greedy, max {args.max_new_tokens} new tokens, stop at a newline; {args.rounds} alternating "
                 f"rounds per side, the same model object; torch threads {torch.get_num_threads()}.\n\n"
                 f"Machine: {card['machine'].get('cpu_model')} ({card['machine'].get('cpus')} CPUs); "
                 f"{card['date']}; command: `{card['command']}`.\n")


if __name__ == "__main__":
    main()
