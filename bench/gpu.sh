#!/usr/bin/env bash
# The GPU check, prepared here and run on a lent GPU machine (the `device` tool), under 8 minutes.
#
#   bench/gpu.sh prepare      # here: wheels and the tokenizer into .gpu/ (ignored by git)
#   bench/gpu.sh run          # there: python3 with CUDA PyTorch; writes $OUT/gpu.json and scaling.json
#
# With the device tool: run(command="bash bench/gpu.sh run", carry=[".gpu"], timeout_s=480).
# That machine has torch, transformers, safetensors, tokenizers, numpy and pyyaml; it lacks
# pytorch-metric-learning, which travels as a wheel. It cannot download anything.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  prepare)
    rm -rf .gpu && mkdir -p .gpu/wheels .gpu/tokenizer
    python3 -m pip download -q --no-deps --only-binary=:all: -d .gpu/wheels "pytorch-metric-learning==2.9.0"
    model_dir=$(.venv/bin/python -c "from tunerflow.modeling.sources import bundled_model_path as p; print(p())")
    cp "$model_dir"/{vocab.txt,tokenizer.json,tokenizer_config.json,special_tokens_map.json} .gpu/tokenizer/
    du -sh .gpu
    ;;
  run)
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/wheels/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src" TUNERFLOW_CONFIG="$PWD/config.yml" HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
    timeout 270 python3 bench/gpu.py --tokenizer .gpu/tokenizer | tee "${OUT:-.}/gpu.json"
    # 1 process in the tuner vs every visible GPU through torchrun (auto; on a 1-GPU machine: the launched path)
    timeout 180 python3 bench/scaling.py --tokenizer .gpu/tokenizer --device cuda --devices 1 auto --steps 60 \
      | tee "${OUT:-.}/scaling.json" || echo '{"scaling": "failed or timed out"}' >"${OUT:-.}/scaling.json"
    ;;
  *)
    echo "usage: bench/gpu.sh prepare|run" >&2
    exit 2
    ;;
esac
