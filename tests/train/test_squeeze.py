"""Tests for LoRA-Squeeze: exact truncated SVD of LoRA factors and adapter rewriting."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rankkit.train.squeeze import squeeze_adapter, squeeze_pair

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")


def _truncate(delta: torch.Tensor, k: int) -> torch.Tensor:
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    return (u[:, :k] * s[:k]) @ vh[:k]


# --------------------------------------------------------------------- squeeze_pair


def test_eckart_young_error_and_spectrum() -> None:
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(32, 64, generator=gen, dtype=torch.float64)
    B = torch.randn(48, 32, generator=gen, dtype=torch.float64)
    s = 0.5
    res = squeeze_pair(A, B, s, rank=8)
    assert res.rank == 8 and res.A.shape == (8, 64) and res.B.shape == (48, 8)
    assert res.scale == s and res.A.dtype == torch.float64
    dense = s * B @ A
    approx = res.scale * res.B @ res.A
    err_sq = float(torch.linalg.matrix_norm(dense - approx) ** 2)
    assert err_sq == pytest.approx(res.discarded_sq, rel=1e-6)
    ref = torch.linalg.svdvals(dense)
    assert res.singular_values.dtype == torch.float64 and res.singular_values.shape == (32,)
    torch.testing.assert_close(res.singular_values, ref[:32], rtol=1e-8, atol=1e-8 * float(ref[0]))
    assert float(ref[32:].abs().max()) < 1e-8 * float(ref[0])
    torch.testing.assert_close(approx, _truncate(dense, 8), rtol=0, atol=1e-9)
    assert res.discarded_sq == pytest.approx(float(ref[8:32].square().sum()), rel=1e-10)


def test_dtype_is_preserved() -> None:
    gen = torch.Generator().manual_seed(1)
    A, B = torch.randn(6, 10, generator=gen), torch.randn(7, 6, generator=gen)
    res = squeeze_pair(A, B, 2.0, rank=3)
    assert res.A.dtype == torch.float32 and res.B.dtype == torch.float32
    assert res.singular_values.dtype == torch.float64


def test_rank_at_least_r_is_exact() -> None:
    gen = torch.Generator().manual_seed(2)
    A = torch.randn(8, 20, generator=gen, dtype=torch.float64)
    B = torch.randn(12, 8, generator=gen, dtype=torch.float64)
    for rank in (8, 50):
        res = squeeze_pair(A, B, 2.0, rank=rank)
        assert res.rank == 8
        torch.testing.assert_close(2.0 * res.B @ res.A, 2.0 * B @ A, rtol=0, atol=1e-10)
        assert res.discarded_sq == 0.0


def test_energy_one_keeps_all_nonzero() -> None:
    gen = torch.Generator().manual_seed(3)
    # rank-3 update stored in rank-8 factors
    A = torch.randn(8, 20, generator=gen, dtype=torch.float64)
    B = torch.randn(12, 3, generator=gen, dtype=torch.float64) @ torch.randn(3, 8, generator=gen, dtype=torch.float64)
    res = squeeze_pair(A, B, 1.0, energy=1.0)
    assert res.rank == 3
    torch.testing.assert_close(res.B @ res.A, B @ A, rtol=0, atol=1e-9)


def test_energy_picks_k_on_constructed_spectrum() -> None:
    # orthonormal factors with prescribed singular values 4, 3, 2, 1 (squares 16, 9, 4, 1; total 30)
    gen = torch.Generator().manual_seed(4)
    u, _ = torch.linalg.qr(torch.randn(10, 4, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(9, 4, generator=gen, dtype=torch.float64))
    sig = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64)
    B, A = u * sig, v.T
    cases = {0.5: 1, 16 / 30: 1, 0.54: 2, 25 / 30: 2, 0.9: 3, 29 / 30: 3, 0.99: 4, 1.0: 4}
    for energy, k in cases.items():
        res = squeeze_pair(A, B, 1.0, energy=energy)
        assert res.rank == k, energy
        assert res.discarded_sq == pytest.approx(float(sig[k:].square().sum()), abs=1e-10)
    torch.testing.assert_close(squeeze_pair(A, B, 3.0, energy=1.0).singular_values, 3.0 * sig)


def test_zero_update_keeps_rank_one() -> None:
    res = squeeze_pair(torch.randn(4, 5), torch.zeros(6, 4), 2.0, energy=0.9)
    assert res.rank == 1 and res.discarded_sq == 0.0
    assert torch.count_nonzero(res.B @ res.A) == 0


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"rank": 2, "energy": 0.5}, {"rank": 0}, {"rank": 2.5}, {"rank": True}, {"energy": 0.0}, {"energy": 1.5}],
)
def test_pair_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="rank|energy"):
        squeeze_pair(torch.randn(4, 5), torch.randn(6, 4), 1.0, **kwargs)


def test_pair_bad_shapes_and_scale() -> None:
    with pytest.raises(ValueError, match="do not pair"):
        squeeze_pair(torch.randn(4, 5), torch.randn(6, 3), 1.0, rank=2)
    with pytest.raises(ValueError, match="scale"):
        squeeze_pair(torch.randn(4, 5), torch.randn(6, 4), 0.0, rank=2)


# ------------------------------------------------------------------ peft end to end


def _base() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=100
    )
    return transformers.BertModel(cfg).eval()


def _save_adapter(path: Path, **lora_kwargs) -> dict[str, torch.Tensor]:
    """Save a trained-looking adapter; return the dense update of every adapted module."""
    config = peft.LoraConfig(target_modules=["query", "value", "dense"], **lora_kwargs)
    model = peft.get_peft_model(_base(), config)
    gen = torch.Generator().manual_seed(1)
    deltas = {}
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, peft.tuners.lora.LoraLayer):
            with torch.no_grad():
                b = module.lora_B["default"].weight
                b.copy_(torch.randn(b.shape, generator=gen))
            a = module.lora_A["default"].weight
            deltas[name] = module.scaling["default"] * (b @ a).detach().double()
    model.save_pretrained(path)
    return deltas


def _loaded(path: Path) -> dict[str, tuple[int, torch.Tensor]]:
    model = peft.PeftModel.from_pretrained(_base(), path)
    found = {}
    for name, module in model.base_model.model.named_modules():
        if isinstance(module, peft.tuners.lora.LoraLayer):
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            found[name] = (a.shape[0], module.scaling["default"] * (b @ a).detach().double())
    return found


def test_fixed_rank_roundtrip_through_peft(tmp_path: Path) -> None:
    deltas = _save_adapter(tmp_path / "src", r=8, lora_alpha=16)
    assert len(deltas) == 11  # 2 layers x 5 modules + pooler.dense
    report = squeeze_adapter(tmp_path / "src", tmp_path / "out", rank=2)
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert (cfg["r"], cfg["lora_alpha"], cfg["rank_pattern"], cfg["alpha_pattern"]) == (2, 4, {}, {})
    loaded = _loaded(tmp_path / "out")
    assert loaded.keys() == deltas.keys()
    for name, (rank, delta) in loaded.items():
        assert rank == 2
        torch.testing.assert_close(delta, _truncate(deltas[name], 2), rtol=0, atol=1e-5)
        entry = report["modules"][name]
        assert (entry["rank_before"], entry["rank_after"]) == (8, 2)
        err = float(torch.linalg.matrix_norm(deltas[name] - _truncate(deltas[name], 2)))
        assert entry["frobenius_error"] == pytest.approx(err, rel=1e-4)
        assert 0 < entry["energy_kept"] < 1
    assert report["params_after"] * 4 == report["params_before"]
    assert (tmp_path / "out" / "README.md").is_file()


def test_energy_mode_per_layer_ranks(tmp_path: Path) -> None:
    deltas = _save_adapter(tmp_path / "src", r=8, lora_alpha=16)
    # skew layer 0's query to be nearly rank 1 so ranks differ between modules
    weights = load_file(tmp_path / "src" / "adapter_model.safetensors")
    key = "base_model.model.encoder.layer.0.attention.self.query.lora_B.weight"
    b = weights[key]
    weights[key] = b[:, :1] @ torch.ones(1, b.shape[1]) + 1e-3 * b
    save_file(weights, tmp_path / "src" / "adapter_model.safetensors", metadata={"format": "pt"})
    a = weights[key.replace("lora_B", "lora_A")]
    deltas["encoder.layer.0.attention.self.query"] = 2.0 * (weights[key] @ a).double()

    report = squeeze_adapter(tmp_path / "src", tmp_path / "out", energy=0.8)
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    expected = {name: m["rank_after"] for name, m in report["modules"].items()}
    assert expected["encoder.layer.0.attention.self.query"] == 1
    assert len(set(expected.values())) > 1
    assert cfg["rank_pattern"] == {"^" + re.escape(n): k for n, k in expected.items()}
    assert cfg["alpha_pattern"] == {"^" + re.escape(n): 2 * k for n, k in expected.items()}
    loaded = _loaded(tmp_path / "out")
    for name, (rank, delta) in loaded.items():
        assert rank == expected[name], name
        torch.testing.assert_close(delta, _truncate(deltas[name], rank), rtol=0, atol=1e-5)
        assert report["modules"][name]["energy_kept"] >= 0.8 - 1e-9


def test_existing_patterns_and_rslora_are_honoured(tmp_path: Path) -> None:
    deltas = _save_adapter(
        tmp_path / "src",
        r=8,
        lora_alpha=16,
        use_rslora=True,
        rank_pattern={"query": 6},
        alpha_pattern={"value": 4},
    )
    squeeze_adapter(tmp_path / "src", tmp_path / "out", rank=3)
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert cfg["r"] == 3 and cfg["rank_pattern"] == {}
    for name, (rank, delta) in _loaded(tmp_path / "out").items():
        assert rank == 3
        torch.testing.assert_close(delta, _truncate(deltas[name], 3), rtol=0, atol=1e-5)


def test_rankkit_folder_copies_extras(tmp_path: Path) -> None:
    src = tmp_path / "model"
    deltas = _save_adapter(src / "adapter", r=8, lora_alpha=16)
    save_file({"w": torch.arange(6.0).reshape(2, 3)}, src / "head.safetensors")
    (src / "rankkit_ce.json").write_text('{"base": "tiny-bert", "max_length": 64}\n')
    (src / "tokenizer").mkdir()
    (src / "tokenizer" / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    squeeze_adapter(src, tmp_path / "small", rank=2)
    out = tmp_path / "small"
    for rel in ("head.safetensors", "rankkit_ce.json", "tokenizer/vocab.txt", "adapter/README.md"):
        assert (out / rel).read_bytes() == (src / rel).read_bytes(), rel
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())
    for name, (rank, delta) in _loaded(out / "adapter").items():
        assert rank == 2
        torch.testing.assert_close(delta, _truncate(deltas[name], 2), rtol=0, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers


def test_other_keys_copied_unchanged(tmp_path: Path) -> None:
    _save_adapter(tmp_path / "src", r=4, lora_alpha=8)
    path = tmp_path / "src" / "adapter_model.safetensors"
    weights = load_file(path)
    extra = "base_model.model.pooler.dense.modules_to_save.weight"
    weights[extra] = torch.randn(3, 3)
    save_file(weights, path, metadata={"format": "pt"})
    squeeze_adapter(tmp_path / "src", tmp_path / "out", rank=1)
    new = load_file(tmp_path / "out" / "adapter_model.safetensors")
    assert new.keys() == weights.keys()
    torch.testing.assert_close(new[extra], weights[extra], rtol=0, atol=0)


# --------------------------------------------------------------------------- errors


def test_no_lora_keys(tmp_path: Path) -> None:
    src = tmp_path / "merged"
    src.mkdir()
    (src / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 8, "lora_alpha": 16}))
    save_file({"classifier.weight": torch.zeros(2, 2)}, src / "adapter_model.safetensors")
    with pytest.raises(ValueError, match=re.escape(str(src / "adapter_model.safetensors"))):
        squeeze_adapter(src, tmp_path / "out", rank=2)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs", [{}, {"rank": 2, "energy": 0.9}, {"energy": 2.0}])
def test_adapter_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError, match="rank|energy"):
        squeeze_adapter(tmp_path / "src", tmp_path / "out", **kwargs)


def test_not_an_adapter_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="neither a peft adapter"):
        squeeze_adapter(tmp_path, tmp_path.parent / f"{tmp_path.name}-out", rank=2)


def test_out_exists(tmp_path: Path) -> None:
    _save_adapter(tmp_path / "src", r=4, lora_alpha=8)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite"):
        squeeze_adapter(tmp_path / "src", out, rank=2)
    assert (out / "keep.txt").read_text() == "x"
    squeeze_adapter(tmp_path / "src", out, rank=2, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert json.loads((out / "adapter_config.json").read_text())["r"] == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert math.isfinite(sum(t.abs().sum().item() for t in load_file(out / "adapter_model.safetensors").values()))
