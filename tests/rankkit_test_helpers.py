"""Helpers shared by test modules (importable: pytest puts tests/ on sys.path for its conftest)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def slice_beir(src: Path, out: Path, split: str, num_queries: int, extra_docs: int) -> Path:
    """Copy a small BEIR folder: the first ``num_queries`` judged queries of ``split``, their judged
    documents and the first ``extra_docs`` documents of the corpus as distractors."""
    import json

    (out / "qrels").mkdir(parents=True)
    lines = (src / "qrels" / f"{split}.tsv").read_text().splitlines()
    qids: list[str] = []
    kept = [lines[0]]
    for line in lines[1:]:
        qid = line.split("\t")[0]
        if qid not in qids:
            if len(qids) == num_queries:
                continue
            qids.append(qid)
        kept.append(line)
    (out / "qrels" / f"{split}.tsv").write_text("\n".join(kept) + "\n")
    judged = {line.split("\t")[1] for line in kept[1:]}
    with open(src / "corpus.jsonl") as fh:
        docs = [line for i, line in enumerate(fh) if i < extra_docs or json.loads(line)["_id"] in judged]
    (out / "corpus.jsonl").write_text("".join(docs))
    with open(src / "queries.jsonl") as fh:
        (out / "queries.jsonl").write_text("".join(l for l in fh if json.loads(l)["_id"] in qids))
    return out


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_llm(path: Path, chat_template: str | None = CHATML) -> Path:
    """Save a randomly initialised 2-layer Llama (hidden 32) with a byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = ["<think> reasoning </think> <answer>[1]</answer> [2] [3] [4] [5]", "Query: which document is relevant?",
              "the cell protein gene expression of tumour patients in a randomised trial"] * 20
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|endoftext|>")
    if chat_template:
        tok.chat_template = chat_template
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
                                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run_cli(*args: str, check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rankkit.cli ARGS`` in the repository root (or ``cwd``); ``check`` raises with its output."""
    import os
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "rankkit.cli", *args], capture_output=True, text=True,
                          cwd=cwd or root, env=os.environ.copy(), check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"rankkit {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc
