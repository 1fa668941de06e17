#!/usr/bin/env bash
# The rerank benchmark on CUDA in fp16 (run it on a machine with a GPU): throughput against
# sentence-transformers with 16 candidate sets in flight, then the p50 latency of reranking one set of
# 100 candidates at a time. Writes bench/rerank-cuda.json and bench/rerank-cuda-latency.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=contracts:sdk:services:runtime:infra:evaluation:.  # the cascade namespace, from the checkout
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name(0))"
python -m scripts.bench_rerank --device cuda --queries 50 --out rerank-cuda
python -m scripts.bench_rerank --device cuda --queries 50 --in-flight 1 --out rerank-cuda-latency
