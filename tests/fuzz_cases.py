"""A seeded generator of malformed inputs for every rankkit reader and config (used by test_fuzz.py).

Each :class:`Case` is one file of one kind (TREC run, TREC qrels, BEIR qrels TSV, corpus or
queries JSONL, queries TSV, pipeline YAML, training YAML, LLM training YAML, experiment YAML)
derived from a valid sample by one or two mutations: byte flips, truncation, invalid UTF-8,
a byte-order mark, CRLF line ends, a dropped or added column, a wrong-typed value, deep
nesting, a YAML alias bomb, a huge number, a lone surrogate, a long id, a control character,
a duplicated line, an empty file, and, for YAML and JSON, mutations of the parsed structure
(a value of the wrong type or shape, a removed or unknown key). The generator is pure
(``random.Random(seed)``), so a failing case is reproduced by its index.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

# --- valid samples ------------------------------------------------------------------------

RUN = "".join(f"q{q} Q0 d{d} {r} {10 - r * 0.5:.3f} bm25\n"
              for q in range(1, 4) for r, d in enumerate((3, 1, 4, 5, 9), start=1))
QRELS_TREC = "q1 0 d3 1\nq1 0 d4 2\nq2 0 d1 1\nq3 0 d9 0\nq3 0 d5 1\n"
QRELS_TSV = "query-id\tcorpus-id\tscore\nq1\td3\t1\nq1\td4\t2\nq2\td1\t1\nq3\td5\t1\n"
CORPUS = "".join(json.dumps({"_id": f"d{i}", "title": f"title {i}", "text": f"text of document {i} about cells"}) + "\n"
                 for i in range(1, 10))
QUERIES_JSONL = "".join(json.dumps({"_id": f"q{i}", "text": f"query {i} about cells"}) + "\n" for i in range(1, 4))
QUERIES_TSV = "".join(f"q{i}\tquery {i} about cells\n" for i in range(1, 4))

TEXT_KINDS = ("run", "qrels_trec", "qrels_tsv", "corpus", "queries_jsonl", "queries_tsv", "fewshot")
PIPELINES = ("bm25.yaml", "bm25_multifield.yaml", "dense.yaml", "bm25_dense.yaml", "bm25_dense_rrf.yaml",
             "bm25_dense_wsum.yaml", "bm25_ce.yaml", "bm25_ce_only.yaml", "bm25_setwise_r1.yaml", "bm25_tsprank.yaml")
TRAIN = ("train_ce_scifact.yaml", "train_bi_scifact.yaml", "pgrank_bi_scifact.yaml", "tsprank_scifact.yaml")
LLM_TRAIN = ("rank_r1_grpo.yaml", "setwise_sft.yaml")
YAML_KINDS = ("pipeline", "train", "llm_train", "experiment", "synth")


def valid_samples() -> dict[str, list[tuple[str, bytes]]]:
    """kind -> [(file name, valid content)] of every sample the mutations start from."""
    samples: dict[str, list[tuple[str, bytes]]] = {
        "run": [("run.trec", RUN.encode())],
        "qrels_trec": [("qrels.txt", QRELS_TREC.encode())],
        "qrels_tsv": [("test.tsv", QRELS_TSV.encode())],
        "corpus": [("corpus.jsonl", CORPUS.encode())],
        "queries_jsonl": [("queries.jsonl", QUERIES_JSONL.encode())],
        "queries_tsv": [("queries.tsv", QUERIES_TSV.encode())],
        "pipeline": [(n, (ROOT / "pipelines" / n).read_bytes()) for n in PIPELINES],
        "train": [(n, (ROOT / "pipelines" / n).read_bytes()) for n in TRAIN],
        "llm_train": [(n, (ROOT / "pipelines" / n).read_bytes()) for n in LLM_TRAIN],
        "experiment": [("experiment.yaml", (ROOT / "eval" / "demo.yaml").read_bytes())],
        "fewshot": [("fewshot.jsonl", (ROOT / "pipelines" / "fewshot" / "scifact.jsonl").read_bytes())],
        # the few-shot file named by absolute path, so a valid sample loads wherever the case is placed
        "synth": [("duqgen_scifact.yaml", (ROOT / "pipelines" / "duqgen_scifact.yaml").read_bytes().replace(
            b"fewshot/scifact.jsonl", str(ROOT / "pipelines" / "fewshot" / "scifact.jsonl").encode()))],
    }
    return samples


@dataclass(frozen=True)
class Case:
    """One malformed input: its index, kind, file name, content and the mutations applied."""

    index: int
    kind: str
    name: str
    content: bytes
    mutations: tuple[str, ...]


# --- mutations ----------------------------------------------------------------------------

WEIRD_SCALARS: list[object] = [
    "fast", "1_000", "+5", "\u0663", "nan", "inf", "-inf", "1e999", -1, -1.0, 0, 2.5, 1.5, "yes", "no", True,
    False, None, [], {}, [1, 2], {"a": 1}, "", " ", "x" * 5000, 10 ** 30, -(10 ** 30), 1e308, float("nan"),
    "\ud800", "a\x00b", "a b", "a\tb", "../..", ".", "/", "cuda:99", "tpu9", "\u202e", "\U0001F600",
]
TOKENS = [b"fast", b"1_000", b"+5", "\u0663".encode(), b"nan", b"inf", b"1e999", b"-1", b"2.5",
          b"9" * 400, b"\xed\xa0\x80", b"\xff", b"\x00", b"x" * 100_000, b"", b"\x0b", b"#", b"'", b'"',
          b"{", b"[", b"*a", b"&a", b"!!python/object:os.system", b"\\u0000"]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def byte_flip(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Flip 1-3 random bits."""
    if not data:
        return data
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def truncate(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Cut the file at a random byte."""
    return data[: rng.randrange(len(data) + 1)]


def invalid_utf8(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Insert an invalid UTF-8 sequence at a random place."""
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice([b"\xff", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xc0\xaf"]) + data[i:]


def bom(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Prefix a UTF-8 byte-order mark."""
    return b"\xef\xbb\xbf" + data


def crlf(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Windows line ends."""
    return data.replace(b"\n", b"\r\n")


def _tokens(line: bytes) -> list[bytes]:
    return line.split(b"\t") if b"\t" in line else line.split(b" ")


def _join(line: bytes, toks: list[bytes]) -> bytes:
    return (b"\t" if b"\t" in line else b" ").join(toks)


def _edit_random_line(rng: random.Random, data: bytes, edit: Callable[[list[bytes]], None]) -> bytes:
    """Apply ``edit`` to the fields of one random line (split on tabs if it has any, else spaces)."""
    lines = _lines(data)
    i = rng.randrange(len(lines))
    toks = _tokens(lines[i])
    edit(toks)
    lines[i] = _join(lines[i], toks)
    return b"\n".join(lines)


def drop_column(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Remove one whitespace-separated field of a random line."""
    return _edit_random_line(rng, data, lambda toks: toks.pop(rng.randrange(len(toks))) if toks else None)


def add_column(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Add a field to a random line."""
    return _edit_random_line(rng, data, lambda toks: toks.insert(rng.randrange(len(toks) + 1),
                                                                 rng.choice([b"x", b"1", b"0.5", b"Q0"])))


def replace_token(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Replace one field of a random line with a weird token (wrong type, huge, surrogate, long, control)."""
    def edit(toks: list[bytes]) -> None:
        if toks:
            toks[rng.randrange(len(toks))] = rng.choice(TOKENS)

    return _edit_random_line(rng, data, edit)


def duplicate_line(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Repeat a random line (duplicate ids and judgements), possibly with a changed last field."""
    lines = _lines(data)
    i = rng.randrange(len(lines))
    extra = lines[i]
    if rng.random() < 0.5 and extra:
        toks = _tokens(extra)
        toks[-1] = b"7"
        extra = _join(extra, toks)
    lines.insert(rng.randrange(len(lines) + 1), extra)
    return b"\n".join(lines)


def empty(rng: random.Random, data: bytes, kind: str) -> bytes:
    """An empty file, or one of blank lines."""
    return rng.choice([b"", b"\n\n", b"   \n", b"\xef\xbb\xbf"])


def deep_nesting(rng: random.Random, data: bytes, kind: str) -> bytes:
    """A deeply nested JSON/YAML value in place of a line (or appended)."""
    depth = rng.choice([200, 5_000, 100_000])
    nested = b"[" * depth + b"]" * depth
    lines = _lines(data)
    i = rng.randrange(len(lines))
    if kind in YAML_KINDS:
        lines.insert(i, b"name: " + nested)
    elif kind in ("corpus", "queries_jsonl"):
        lines[i] = b'{"_id": "d1", "text": ' + nested + b"}"
    else:
        lines[i] = nested
    return b"\n".join(lines)


def alias_bomb(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Nested YAML anchors (the 'billion laughs'), in ``name:`` or as a new key."""
    levels = rng.choice([6, 9, 12])
    bomb = [b'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = b",".join([b"*a%d" % (level - 1)] * 9)
        bomb.append(b"a%d: &a%d [%s]" % (level, level, refs))
    key = rng.choice([b"name", b"description", b"model", b"lora", b"stages"])
    bomb.append(key + b": *a%d" % (levels - 1))
    if kind in YAML_KINDS:
        body = [line for line in _lines(data) if not line.startswith(key + b":")]
        return b"\n".join(bomb + body)
    return b"\n".join(bomb) + b"\n" + data


def surrogate(rng: random.Random, data: bytes, kind: str) -> bytes:
    """A lone surrogate: escaped in JSON/YAML (valid syntax, invalid text), raw bytes elsewhere."""
    if kind in ("corpus", "queries_jsonl"):
        return data.replace(b'"_id": "', b'"_id": "\\ud800', 1)
    if kind in YAML_KINDS:
        return b'name: "\\ud800x"\n' + b"\n".join(line for line in _lines(data) if not line.startswith(b"name:"))
    return b"\xed\xa0\x80" + data


def long_id(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Rename one id to a 100,000-character id (consistently everywhere it occurs)."""
    target = rng.choice([b"d3", b"d1", b"q1", b"q2"])
    return data.replace(target, b"L" * 100_000)


def yaml_structure(rng: random.Random, data: bytes, kind: str) -> bytes:
    """Parse the YAML/JSON, change one node (wrong type or shape, removed or unknown key), dump it back."""
    if kind in ("corpus", "queries_jsonl"):
        lines = [line for line in _lines(data) if line.strip()]
        if not lines:
            return data
        i = rng.randrange(len(lines))
        try:
            obj = json.loads(lines[i])
        except (ValueError, RecursionError):
            return data
        _mutate_tree(rng, obj)
        lines[i] = json.dumps(obj, ensure_ascii=rng.random() < 0.5, default=str).encode("utf-8", "surrogatepass")
        return b"\n".join(lines) + b"\n"
    if kind not in YAML_KINDS:
        return replace_token(rng, data, kind)
    try:
        obj = yaml.safe_load(data.decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError):
        return data
    obj = _mutate_tree(rng, obj)
    try:
        text = yaml.safe_dump(obj, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError):
        return data
    return text.encode("utf-8", "surrogatepass")


def _mutate_tree(rng: random.Random, obj: object) -> object:
    """Mutate one random node of a JSON-like tree in place (returns the possibly replaced root)."""
    if not isinstance(obj, (dict, list)) or not obj or rng.random() < 0.1:
        return rng.choice(WEIRD_SCALARS)
    path: list[tuple[object, object]] = []
    node = obj
    while isinstance(node, (dict, list)) and node:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        child = node[key]  # type: ignore[index]
        if not isinstance(child, (dict, list)) or not child or rng.random() < 0.3:
            break
        node = child
    parent, key = path[-1]
    action = rng.random()
    if action < 0.6:
        parent[key] = rng.choice(WEIRD_SCALARS)  # type: ignore[index]
    elif action < 0.75 and isinstance(parent, dict):
        del parent[key]
    elif action < 0.9 and isinstance(parent, dict):
        parent[rng.choice(["lr ", "rnak", "bogus", "k_1", "", "1", "\ud800"])] = rng.choice(WEIRD_SCALARS)
    else:
        parent[key] = [parent[key]] if rng.random() < 0.5 else {"x": parent[key]}  # type: ignore[index]
    return obj


MUTATIONS: dict[str, Callable[[random.Random, bytes, str], bytes]] = {
    f.__name__: f for f in (byte_flip, truncate, invalid_utf8, bom, crlf, drop_column, add_column, replace_token,
                            duplicate_line, empty, deep_nesting, alias_bomb, surrogate, long_id, yaml_structure)
}


def generate(n: int, seed: int = 0) -> list[Case]:
    """``n`` malformed cases, kinds in turn, each with one mutation (a third get a second one)."""
    rng = random.Random(seed)
    samples = valid_samples()
    kinds = list(samples)
    names = list(MUTATIONS)
    cases = []
    for index in range(n):
        kind = kinds[index % len(kinds)]
        name, data = rng.choice(samples[kind])
        applied = [rng.choice(names)]
        if rng.random() < 0.33:
            applied.append(rng.choice(names))
        for mutation in applied:
            data = MUTATIONS[mutation](rng, data, kind)
        cases.append(Case(index, kind, name, data, tuple(applied)))
    return cases
