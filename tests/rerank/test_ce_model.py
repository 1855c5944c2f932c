"""Cross-encoder model: exact save/load round trip, merge, batching equivalence, base-model checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rankkit.errors import ConfigError
from rankkit.rerank.ce_model import CrossEncoderModel

Q = ["what causes tides", "role of p53 in cancer", "x"]
D = ["the moon's gravity " * 30, "p53 is a tumour suppressor gene", "short"]


def _with_trained_adapter(model: CrossEncoderModel) -> CrossEncoderModel:
    model.add_lora(rank=4, alpha=8, dropout=0.0, target_modules=["query", "value", "dense"])
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model


@pytest.mark.parametrize("head", ["mean", "cls", "hf"])
def test_adapter_and_head_round_trip_is_exact(tiny_bert: Path, tmp_path: Path, head: str) -> None:
    model = _with_trained_adapter(CrossEncoderModel.new(str(tiny_bert), head=head, max_length=64, seed=3))
    before = model.score(Q * 3, D * 3, batch_size=4, device="cpu")
    out = model.save(tmp_path / "ce")
    assert (out / "adapter" / "adapter_config.json").is_file() and (out / "rankkit_ce.json").is_file()
    assert (out / "head.safetensors").is_file() == (head != "hf")
    again = CrossEncoderModel.load(str(out)).score(Q * 3, D * 3, batch_size=4, device="cpu")
    assert np.array_equal(before, again)


def test_merge_writes_a_plain_hf_model_with_the_same_scores(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = _with_trained_adapter(CrossEncoderModel.new(str(tiny_bert), head="hf", max_length=64, seed=3))
    merged = model.merge(tmp_path / "merged")
    assert not (merged / "adapter").exists()
    plain = AutoModelForSequenceClassification.from_pretrained(merged)  # loads without rankkit or peft
    assert plain.config.num_labels == 1
    np.testing.assert_allclose(CrossEncoderModel.load(str(merged)).score(Q, D, device="cpu", precision="fp32"),
                               model.score(Q, D, device="cpu", precision="fp32"), atol=1e-5)
    assert model.is_peft  # merging wrote a copy; the adapter model is unchanged


def test_sorted_dynamic_batches_equal_one_pair_at_a_time(tiny_bert: Path) -> None:
    model = CrossEncoderModel.new(str(tiny_bert), head="mean", max_length=32, seed=0)
    batched = model.score(Q * 4, D * 4, batch_size=5, device="cpu")
    single = np.array([model.score([q], [d], device="cpu")[0] for q, d in zip(Q * 4, D * 4)])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_adapter_from_a_different_base_model_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    from transformers import BertModel

    out = _with_trained_adapter(CrossEncoderModel.new(str(tiny_bert), head="mean", seed=0)).save(tmp_path / "ce")
    other = tmp_path / "other-base"
    shutil.copytree(tiny_bert, other)
    torch.manual_seed(99)
    BertModel(BertModel.from_pretrained(tiny_bert).config).save_pretrained(other)  # same shapes, other weights
    with pytest.raises(ConfigError, match="trained on base model"):
        CrossEncoderModel.load(str(out), base=str(other))


def test_encoder_without_scoring_head_is_refused(tiny_bert: Path) -> None:
    with pytest.raises(ConfigError, match="not a cross-encoder"):
        CrossEncoderModel.load(str(tiny_bert))
    with pytest.raises(ConfigError, match="unknown head"):
        CrossEncoderModel.new(str(tiny_bert), head="max")


def test_scores_equal_sentence_transformers_cross_encoder(tmp_path: Path) -> None:
    """Real MiniLM with a (seeded) classification head: rankkit == CrossEncoder.predict to 1e-5."""
    from sentence_transformers import CrossEncoder

    from rankkit.models import resolve_model

    folder = CrossEncoderModel.new(resolve_model("minilm"), head="hf", max_length=128, seed=0).save(tmp_path / "m")
    ours = CrossEncoderModel.load(str(folder)).score(Q, D, max_length=128, device="cpu", precision="fp32")
    st = CrossEncoder(str(folder), max_length=128, device="cpu")
    theirs = st.predict(list(zip(Q, D)), activation_fn=torch.nn.Identity(), show_progress_bar=False)
    np.testing.assert_allclose(ours, np.asarray(theirs, dtype=np.float32), atol=1e-5)
