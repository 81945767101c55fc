#!/usr/bin/env bash
# GPU readiness, on a CUDA machine, unchanged: the vLLM environment (the CUDA build of vLLM), then parity and speed
# of the samplers (the project's engine replaying CUDA graphs, the same engine's eager steps, transformers, vLLM with
# its CUDA graphs) in bf16 on a 0.5B-class model built from a config (no download) and in fp32 at the demo's size, at
# batch 64, printed as ratios; then the CUDA-graph decode tests (policy/static_decode.py: graphs captured and replayed,
# equal to the eager steps) and the vLLM backend's tests on the GPU. Not part of `make test`.
#
#     bash benchmarks/gpu.sh            # about 10 minutes with the install
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
make setup-vllm                          # picks `vllm` (CUDA) where nvidia-smi exists
PY=.venv-vllm/bin/python
$PY -c 'import torch; assert torch.cuda.is_available(), "no CUDA device visible to torch"; print(torch.cuda.get_device_name())'
$PY benchmarks/backends.py --device cuda --dtype bfloat16 --size 0.5b --batch 64 --new-tokens 128 --repeats 3
$PY benchmarks/backends.py --device cuda --dtype float32 --size demo --batch 64 --new-tokens 128 --repeats 3
SEARCHLEARN_TEST_DEVICE=cuda $PY -m pytest -q tests/parity/test_static_decode.py tests/vllm_backend
