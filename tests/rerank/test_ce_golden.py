"""The cross-encoder scores exactly as it did before the issue-9 refactor (reranker base, shared encoder code).

``tests/data/golden/ce_scores.json`` holds float32 scores written by the code at 2b978ad for the
model and pairs of ``tests/ce_golden_spec.py`` (a saved and reloaded LoRA cross-encoder on the
offline MiniLM; 4 SciFact test queries x 12 documents). The new code must give the same bits
through both the model and the ``CrossEncoder`` stage. Bits depend on the CPU's float kernels,
so on a machine of another kind than the one that wrote the file (named in it) the check falls
back to a 1e-5 relative tolerance.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ce_golden_spec import build_candidates, build_model, build_pairs

GOLDEN = Path(__file__).parents[1] / "data" / "golden" / "ce_scores.json"


def _same_machine_kind(recorded: str) -> bool:
    from rankkit.runcard import machine

    return recorded.split(",")[0] in machine().get("cpu_model", "")


def test_saved_cross_encoder_scores_as_before_the_refactor(scifact_dir: Path, tmp_path: Path) -> None:
    import rankkit
    from rankkit.rerank.ce_model import CrossEncoderModel
    from rankkit.rerank.cross_encoder import CrossEncoder

    golden = json.loads(GOLDEN.read_text())
    expected = np.asarray(golden["scores"], dtype=np.float32)
    build_model().save(tmp_path / "ce")
    model = CrossEncoderModel.load(str(tmp_path / "ce"))
    direct = model.score(*build_pairs(scifact_dir), batch_size=8, device="cpu", precision="fp32")
    texts, candidates, _ = build_candidates(scifact_dir)
    stage = CrossEncoder(rankkit.load_dataset(str(scifact_dir), "test"), scorer=model, batch_size=8, device="cpu", precision="fp32",
                         show_progress=False)
    staged = stage.score(texts, candidates)
    via_stage = np.asarray([staged[q][d] for q, ds in candidates.items() for d in ds], dtype=np.float32)
    if _same_machine_kind(golden["machine"]):
        assert np.array_equal(direct, expected) and np.array_equal(via_stage, expected)
    else:
        np.testing.assert_allclose(direct, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(via_stage, expected, rtol=1e-5, atol=1e-7)
