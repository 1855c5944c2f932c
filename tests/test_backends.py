"""Inference back-ends: option checks, ONNX export equal to torch, the export cache, logged fallback."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from rankkit import backends
from rankkit.errors import ConfigError

Q = ["what causes tides", "p53 and cancer", "a query"]
D = ["the moon's gravity pulls the oceans", "tumour suppressor genes such as p53 " * 5, "short"]


@pytest.mark.parametrize(("backend", "precision", "expected"), [
    ("torch", "fp32", ("torch", "fp32")),
    ("onnx", "int8", ("onnx", "int8")),
    ("onnx", "auto", ("onnx", "fp32")),
    ("auto", "int8", ("onnx", "int8")),
    ("auto", "bf16", ("torch", "bf16")),
    ("auto", "auto", backends.cpu_default()),
])
def test_resolve_on_cpu(backend: str, precision: str, expected: tuple[str, str]) -> None:
    assert backends.resolve(backend, precision, "cpu") == expected


def test_resolve_on_cuda_is_bf16_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU with bf16 (fp16 otherwise:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # test_device_selection.py)
    assert backends.resolve("auto", "auto", "cuda:0") == ("torch", "bf16")
    with pytest.raises(ConfigError, match="backend onnx runs on the CPU only"):
        backends.resolve("onnx", "fp32", "cuda")


@pytest.mark.parametrize(("backend", "precision", "message"), [
    ("torch", "int8", "backend torch does not run precision int8"),
    ("onnx", "bf16", "backend onnx does not run precision bf16"),
    ("tensorrt", "fp32", "backend must be one of auto, torch, onnx"),
    ("onnx", "int4", "precision must be one of"),
])
def test_unsupported_pairs_name_the_option(backend: str, precision: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        backends.resolve(backend, precision, "cpu", where="cross_encoder")


@pytest.fixture(scope="module")
def tiny_ce(tiny_bert: Path):
    from rankkit.rerank.ce_model import CrossEncoderModel

    model = CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=64, seed=1)
    model.add_lora(rank=4)
    for p in model.encoder.parameters():  # a non-zero adapter, so merging matters
        if p.requires_grad:
            p.data.normal_(0, 0.05)
    return model


def test_onnx_cross_encoder_equals_torch_and_is_cached(tiny_ce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RANKKIT_CACHE_DIR", str(tmp_path))
    torch_scores = tiny_ce.score(Q, D, batch_size=2, device="cpu", backend="torch", precision="fp32")
    with caplog.at_level(logging.INFO, logger="rankkit.backends"):
        onnx_scores = tiny_ce.score(Q, D, batch_size=2, device="cpu", backend="onnx", precision="fp32")
    np.testing.assert_allclose(onnx_scores, torch_scores, atol=1e-5)  # LoRA merged into the exported weights
    assert "exported CrossEncoderModel.forward" in caplog.text
    folders = list((tmp_path / "onnx").glob("crossencodermodel-forward-*"))
    assert len(folders) == 1 and (folders[0] / "model.onnx").is_file()
    assert json.loads((folders[0] / "manifest.json").read_text())["inputs"] == [
        "input_ids", "attention_mask", "token_type_ids"]
    assert not list((tmp_path / "onnx").glob(".build-*"))  # nothing half-written left
    int8 = tiny_ce.score(Q, D, batch_size=2, device="cpu", backend="onnx", precision="int8")
    assert (folders[0] / "model.int8.onnx").is_file() and int8.shape == torch_scores.shape
    assert np.isfinite(int8).all()
    # a new process (empty in-memory table) reuses the files: no second export
    backends._RUNNERS.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rankkit.backends"):
        again = tiny_ce.score(Q, D, batch_size=3, device="cpu", backend="onnx", precision="fp32")
    assert "exported" not in caplog.text
    np.testing.assert_allclose(again, onnx_scores, atol=1e-6)


def test_onnx_bi_encoder_equals_torch(tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rankkit.retrieve.bi_encoder import BiEncoderModel

    monkeypatch.setenv("RANKKIT_CACHE_DIR", str(tmp_path))
    model = BiEncoderModel.new(str(tiny_bert), max_length=64)
    ref = model.encode(D, batch_size=2, device="cpu", precision="fp32")
    got = model.encode(D, batch_size=2, device="cpu", backend="onnx")
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_failed_export_is_an_error_or_a_logged_fallback(tiny_ce, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RANKKIT_CACHE_DIR", str(tmp_path))
    backends._RUNNERS.clear()

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(backends, "_export", broken)
    with pytest.raises(ConfigError, match=r"backend onnx: exporting CrossEncoderModel .*aten::frobnicate.*backend: torch"):
        tiny_ce.score(Q, D, device="cpu", backend="onnx")
    with caplog.at_level(logging.WARNING, logger="rankkit.backends"):
        scores = tiny_ce.score(Q, D, device="cpu", backend="auto", precision="int8")
    assert "backend auto falls back to torch fp32" in caplog.text
    np.testing.assert_allclose(scores, tiny_ce.score(Q, D, device="cpu", backend="torch", precision="fp32"), atol=1e-6)
    assert not list((tmp_path / "onnx").glob("*/model.onnx")) and not list((tmp_path / "onnx").glob(".build-*"))


def test_sentence_transformers_shapes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from rankkit.retrieve.bi_encoder import st_as_bi_encoder

    folder = tmp_path / "st"
    folder.mkdir()
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"modules Transformer -> Pooling -> Dense .*use backend: torch"):
        st_as_bi_encoder(str(folder), 64)
    with caplog.at_level(logging.WARNING):
        assert st_as_bi_encoder(str(folder), 64, fallback=True) is None
    assert "encoding with sentence-transformers (torch) instead" in caplog.text
    (folder / "modules.json").write_text(json.dumps(modules[:2]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    with pytest.raises(ConfigError, match="pooling max"):
        st_as_bi_encoder(str(folder), 64)
