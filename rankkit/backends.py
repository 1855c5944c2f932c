"""Fast CPU inference for rankkit's encoder models: ONNX Runtime, in fp32 or int8.

One option pair chooses how a cross-encoder scores or a bi-encoder embeds:

- ``backend``: ``torch`` (eager PyTorch, the reference), ``onnx`` (the model exported to
  ONNX and run by ONNX Runtime's CPU provider, graph optimisations on) or ``auto``;
- ``precision``: ``fp32``, ``bf16`` (torch autocast), ``int8`` (ONNX Runtime's dynamic
  quantisation: int8 weights of every MatMul, activations quantised per batch) or ``auto``.

Supported pairs: torch with fp32/bf16/fp16, onnx with fp32/int8; anything else is a
:class:`~rankkit.errors.ConfigError` naming the option. ``auto`` resolves by the device and
by what was measured on this kind of machine (``eval/bench_backends.py``, results in
``eval/results/backends.md``): on CUDA, torch with bf16; on a CPU, the pair in
:data:`CPU_DEFAULT`.

Exports are made from the model as loaded (a LoRA adapter is merged into a copy first, so
the graph is a plain encoder plus the scoring head), checked against the torch output on
a sample batch, and cached under ``<cache>/onnx/<key>/`` where the key is a SHA-256 of the
merged weights and the export settings, so a changed adapter gets a new export. A build is
written to a temporary folder and renamed into place, so an interrupted export is never
loaded. When an export fails (a model ONNX cannot express), ``backend: onnx`` raises a
:class:`ConfigError` naming the model; ``backend: auto`` logs the reason at WARNING and
falls back to torch, never silently.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rankkit import settings
from rankkit.errors import ConfigError
from rankkit.trec import atomic_write

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
#: (backend, precision) pairs that run; ``auto`` on either side is resolved first.
SUPPORTED = {("torch", "fp32"), ("torch", "bf16"), ("torch", "fp16"), ("onnx", "fp32"), ("onnx", "int8")}
#: What ``auto`` picks on a CPU without native bf16 (by measurement, see the module docstring).
CPU_DEFAULT = ("torch", "fp32")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AMX or AVX512-BF16 in ``/proc/cpuinfo``'s flags)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False


def cpu_default() -> tuple[str, str]:
    """``auto`` on a CPU: torch with bf16 autocast where the CPU has native bf16, else :data:`CPU_DEFAULT`."""
    return ("torch", "bf16") if cpu_has_native_bf16() else CPU_DEFAULT
EXPORT_VERSION = 1  # bump when the export recipe changes: old cache entries are then not reused
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def check_pair(backend: str, precision: str) -> None:
    """``ValueError`` for a pair that runs on no device (e.g. torch with int8); ``auto`` passes."""
    if backend != "auto" and precision != "auto" and (backend, precision) not in SUPPORTED:
        ok = ", ".join(f"{b}/{p}" for b, p in sorted(SUPPORTED))
        raise ValueError(f"backend {backend} does not run precision {precision} (supported pairs: {ok})")


def resolve(backend: str, precision: str, device: Any, where: str = "backend") -> tuple[str, str]:
    """The (backend, precision) pair to run, ``auto`` resolved; unsupported pairs raise :class:`ConfigError`."""
    if backend not in BACKENDS:
        raise ConfigError(f"{where}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cuda = str(getattr(device, "type", device)).startswith("cuda")
    if cuda:
        from rankkit.precision import cuda_half

        default = ("torch", cuda_half())  # bf16 where the GPU supports it, else fp16
    else:
        default = cpu_default()
    if backend == "auto":
        if cuda or precision in ("bf16", "fp16"):
            backend = "torch"
        elif precision == "int8":
            backend = "onnx"
        else:
            backend = default[0]
    if precision == "auto":
        precision = default[1] if backend == default[0] else "fp32"
    if backend == "onnx" and cuda:
        raise ConfigError(f"{where}: backend onnx runs on the CPU only (device is {device}); use backend: torch "
                          "(bf16 on CUDA) or device: cpu")
    if (backend, precision) not in SUPPORTED:
        ok = ", ".join(f"{b}/{p}" for b, p in sorted(SUPPORTED))
        raise ConfigError(f"{where}: backend {backend} does not run precision {precision}; supported pairs: {ok}")
    return backend, precision


class OnnxRunner:
    """An ONNX Runtime session called like the torch model: ``runner(**features) -> torch.Tensor``."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # torch's count honours OMP_NUM_THREADS and the CPU affinity; os.cpu_count() would
        # oversubscribe a container or a taskset limited to fewer cores than the host has
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, **features: Any) -> Any:
        import torch

        feed = {name: np.ascontiguousarray(features[name].cpu().numpy(), dtype=np.int64) for name in self.inputs}
        return torch.from_numpy(self.session.run(None, feed)[0])


def _graph(fn: Callable[..., Any]) -> Any:
    """A module whose ``forward`` calls the bound method ``fn`` with the tokenizer's tensors as keywords."""
    from torch import nn

    class Graph(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.owner = fn.__self__  # registers the model, so its weights are the graph's parameters

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            return fn(input_ids=input_ids, attention_mask=attention_mask, **extra)

    return Graph()


def merged_copy(model: Any) -> Any:
    """A copy of an encoder model in fp32 on the CPU, with a LoRA adapter merged into its weights."""
    import torch

    clone = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    if hasattr(clone.encoder, "merge_and_unload"):
        clone.encoder = clone.encoder.merge_and_unload()
    return clone


def weights_key(model: Any, method: str, names: tuple[str, ...]) -> str:
    """SHA-256 over the model's weights (name, dtype, shape, bytes) and the export settings."""
    import torch

    h = hashlib.sha256(json.dumps({"v": EXPORT_VERSION, "method": method, "inputs": names, "class":
                                   type(model).__name__, "torch": torch.__version__}).encode())
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def _export(fn: Callable[..., Any], sample: dict[str, Any], path: Path) -> None:
    """``torch.onnx.export`` (the ``torch.export`` based exporter, opset 18) of ``fn`` with dynamic batch and
    sequence axes.

    The TorchScript exporter is not used: it fails on transformers 5 models called with a
    tuple of arguments ("got multiple values for argument 'use_cache'") and, through a
    small wrapper, traces the attention-mask padding of the sample batch as a constant
    (wrong scores, 0.07 off, for any other shape).
    """
    import warnings

    import torch

    batch, seq = torch.export.Dim("batch", min=1, max=65536), torch.export.Dim("sequence", min=2, max=65536)
    quiet = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in quiet]
    try:
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(_graph(fn), (), str(path), kwargs=dict(sample), input_names=list(sample),
                              output_names=["output"], dynamic_shapes={n: {0: batch, 1: seq} for n in sample},
                              dynamo=True, opset_version=18, optimize=True, verbose=False, external_data=False)
    finally:
        for lg, level in zip(quiet, levels, strict=True):
            lg.setLevel(level)


def _quantize(src: Path, dst: Path) -> None:
    """ONNX Runtime dynamic quantisation: int8 weights (per channel) of every MatMul/Gemm."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()  # the quantiser logs a line per tensor on the root logger
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        root.setLevel(level)


def onnx_runner(model: Any, method: str, sample: dict[str, Any], precision: str,
                cache_dir: str | os.PathLike[str] | None = None) -> OnnxRunner:
    """An :class:`OnnxRunner` for ``getattr(model, method)`` (e.g. ``forward`` of a cross-encoder,
    ``embed`` of a bi-encoder), exported once per weights and cached (see the module docstring).

    ``sample`` is a tokenised batch (torch tensors) that fixes the input names and checks the
    export: the fp32 graph must match torch within 1e-3 (absolute) on it and on its first
    item alone, else :class:`ConfigError`.
    """
    import torch

    names = tuple(n for n in INPUTS if n in sample)
    merged = merged_copy(model)
    key = weights_key(merged, method, names)
    root = Path(cache_dir) if cache_dir is not None else settings.cache_dir() / "onnx"
    folder = root / f"{type(model).__name__.lower()}-{method}-{key}"
    target = folder / ("model.int8.onnx" if precision == "int8" else "model.onnx")
    if not target.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{os.getpid()}-", dir=root))
        try:
            if (folder / "model.onnx").is_file():
                shutil.copy2(folder / "model.onnx", tmp / "model.onnx")
            else:
                fn = getattr(merged, method)
                try:
                    _export(fn, sample, tmp / "model.onnx")
                except Exception as exc:  # the exporter raises many kinds; the user needs the option named
                    raise ConfigError(f"backend onnx: exporting {type(model).__name__} ({model.base}) failed: "
                                      f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}; use backend: torch"
                                      ) from exc
                runner = OnnxRunner(tmp / "model.onnx")
                err = 0.0
                # the sample, and its first item alone (another batch size and length): the graph must generalise
                n = int(sample["attention_mask"][0].sum())
                cut = slice(-n, None) if getattr(model.tokenizer, "padding_side", "right") == "left" else slice(0, n)
                first = {k: v[:1, cut] for k, v in sample.items()}
                for batch in (sample, first):
                    with torch.no_grad():
                        expected = fn(**batch).float().numpy()
                    err = max(err, float(np.max(np.abs(runner(**batch).numpy() - expected))))
                del runner
                if not err <= 1e-3:
                    raise ConfigError(f"backend onnx: the export of {type(model).__name__} ({model.base}) differs "
                                      f"from torch by {err:.2e} on a sample batch; use backend: torch")
            if precision == "int8":
                _quantize(tmp / "model.onnx", tmp / "model.int8.onnx")
            with atomic_write(tmp / "manifest.json") as fh:
                json.dump({"class": type(model).__name__, "base": getattr(model, "base", None), "method": method,
                           "inputs": list(names), "key": key, "export_version": EXPORT_VERSION}, fh, indent=2)
            if folder.exists():  # the fp32 graph was there; add the int8 one
                os.replace(tmp / target.name, target)
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("exported %s.%s to %s", type(model).__name__, method, target)
    return OnnxRunner(target)


_RUNNERS: dict[tuple[str, str], OnnxRunner] = {}


def inference_fn(model: Any, method: str, enc: dict[str, Any], backend: str, precision: str,
                 device: Any) -> tuple[Callable[..., Any], str]:
    """What :func:`rankkit.hf_encoder.sorted_inference` should call for ``getattr(model, method)``, and the
    torch precision to run it under.

    ``backend``/``precision`` are resolved by :func:`resolve`; for ``onnx`` the runner of the
    model's current weights is exported or taken from the cache (one session per weights and
    precision is kept in memory). With ``backend: auto`` a failed export is logged at WARNING
    and torch fp32 is used instead.
    """
    requested = backend
    backend, precision = resolve(backend, precision, device)
    if backend == "torch":
        return getattr(model, method), precision
    # A fixed two-text sample (batch 2, about 15 tokens): no size 1 or equal sizes for torch.export to specialise on.
    texts = ["a sample text for the export", "a second and somewhat longer sample text, for checking the graph"]
    sample = model.tokenizer(texts, padding=True, return_tensors="pt")
    sample = {k: v for k, v in sample.items() if k in INPUTS and k in enc}
    try:
        merged_key = weights_key(model, method, tuple(sample))
        runner = _RUNNERS.get((merged_key, precision))
        if runner is None:
            runner = onnx_runner(model, method, sample, precision)
            _RUNNERS.clear()  # one model's sessions at a time: they hold the weights in memory
            _RUNNERS[(merged_key, precision)] = runner
    except ConfigError as exc:
        if requested != "auto":
            raise
        log.warning("%s; backend auto falls back to torch fp32", exc)
        return getattr(model, method), "fp32"
    return runner, "fp32"
