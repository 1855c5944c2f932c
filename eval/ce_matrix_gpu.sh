#!/usr/bin/env bash
# Train the cross-encoder matrix (eval/ce_matrix.py) on a GPU machine that has torch,
# transformers, peft and accelerate but no network: the bundle (.devbundle, made by
# `python eval/ce_matrix.py bundle`) carries the data, BM25 runs and MiniLM weights, and
# .whl (optional) the Python 3.12 wheels that machine lacks (pydantic and its needs, peft).
# Extra arguments go to `ce_matrix.py train` (e.g. `--only ce`). Writes $OUT/runs.tar.gz (CE runs
# on dev and test, per-job wall times), $OUT/models.tar.gz (the seed-42 `ce` and `ce-bce` models
# where trained, for eval/ce_identity.py) and $OUT/matrix.log.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=2
OUT=${OUT:-/tmp/ce-matrix-out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
nvidia-smi -L
lscpu | grep -E "Model name|^CPU\(s\)" | tee "$OUT/host.txt"
python3 -c "import torch, transformers, peft, accelerate, pydantic; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'pydantic', pydantic.__version__)" | tee -a "$OUT/host.txt"
python3 eval/ce_matrix.py train --bundle .devbundle --out /tmp/ce-runs --workers "${WORKERS:-6}" --budget "${BUDGET:-330}" "$@" 2>&1 \
  | grep -v -E "Warning|warn\(|LOAD REPORT|pooler|^-+\+|^Key|UNEXPECTED|^Notes|^$|Loading weights|Writing model|have no query text" \
  | tee "$OUT/matrix.log"
tar czf "$OUT/runs.tar.gz" -C /tmp ce-runs
tar czf "$OUT/models.tar.gz" -C /tmp/rankkit-matrix $(cd /tmp/rankkit-matrix && ls -d ce-s42 ce-bce-s42 2>/dev/null)
ls /tmp/ce-runs | wc -l
