#!/usr/bin/env bash
# Train the cross-encoder matrix (eval/ce_matrix.py) on a GPU machine that has torch,
# transformers, peft and accelerate but no network: the bundle (.devbundle, made by
# `python eval/ce_matrix.py bundle`) carries the data, BM25 runs and MiniLM weights.
# Writes $OUT/runs.tar.gz (CE runs on dev and test, per-job wall times) and $OUT/matrix.log.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=2
OUT=${OUT:-/tmp/ce-matrix-out}
mkdir -p "$OUT"
nvidia-smi -L
python3 -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"
python3 eval/ce_matrix.py train --bundle .devbundle --out /tmp/ce-runs --workers "${WORKERS:-6}" --budget "${BUDGET:-330}" 2>&1 \
  | grep -v -E "Warning|warn\(|LOAD REPORT|pooler|^-+\+|^Key|UNEXPECTED|^Notes|^$|Loading weights|Writing model" \
  | tee "$OUT/matrix.log"
tar czf "$OUT/runs.tar.gz" -C /tmp ce-runs
ls /tmp/ce-runs | wc -l
