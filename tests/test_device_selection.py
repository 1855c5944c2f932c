"""Device, dtype and FAISS-GPU selection: without CUDA every `auto` picks the CPU path, and the
GPU-only branches are entered only when CUDA (or a FAISS GPU) is reported present."""

from __future__ import annotations

import pytest
import torch

from rankkit import backends, precision
from rankkit.models import resolve_device


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: pytest.fail("bf16 probed without CUDA"))


def _fake_cuda(monkeypatch: pytest.MonkeyPatch, bf16: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)


def test_auto_picks_the_cpu_without_cuda(no_cuda: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == "cpu"
    assert precision.precision_name("auto", "cpu") == "fp32"
    assert precision.load_dtype("auto", "cpu") == torch.float32
    assert precision.autocast_dtype("auto", "cpu") is None
    assert precision.mixed_precision("auto", "cpu") == "no"
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: False)
    assert backends.resolve("auto", "auto", "cpu") == backends.CPU_DEFAULT
    monkeypatch.setattr(backends, "cpu_has_native_bf16", lambda: True)  # AMX: bf16 autocast, chosen by measurement
    assert backends.resolve("auto", "auto", "cpu") == ("torch", "bf16")


@pytest.mark.parametrize("bf16, half, dtype", [(True, "bf16", torch.bfloat16), (False, "fp16", torch.float16)])
def test_auto_on_cuda_picks_bf16_where_supported(monkeypatch: pytest.MonkeyPatch, bf16: bool, half: str,
                                                 dtype: torch.dtype) -> None:
    _fake_cuda(monkeypatch, bf16)
    assert resolve_device("auto") == "cuda"
    assert precision.precision_name("auto", "cuda") == half
    assert precision.load_dtype("auto", "cuda:0") == dtype
    assert precision.autocast_dtype("auto", "cuda") == dtype
    assert precision.mixed_precision("auto", "cuda") == half
    assert backends.resolve("auto", "auto", "cuda") == ("torch", half)
    assert precision.precision_name("fp32", "cuda") == "fp32"  # an explicit choice is kept


def test_explicit_devices_are_kept(no_cuda: None) -> None:
    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
