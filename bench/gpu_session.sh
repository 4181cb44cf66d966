#!/usr/bin/env bash
# One prepared call on a lent GPU machine (its own torch; our other dependencies carried as wheels).
# Here first:   make gpu-bundle GPU_DATASETS="busi_ultrasound skin_lesion_isic ..."   (<= 64 MiB with the wheels)
# Then, through the device tool, carrying .gpu:
#   bash bench/gpu_session.sh [check] [sweep MINUTES] [reference]
# Everything it measures lands under $OUT as it goes: gpu_check.md/.json, kb/records.jsonl (gpu sweep plan),
# lodo_runs.jsonl (the LODO reference protocol at 128 px). Bring them back with `metallmix kb import` and by
# appending lodo_runs.jsonl to bench/results/lodo_runs.jsonl.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/metallmix-gpu-out}"
mkdir -p "$OUT" .gpu/site
python -m pip install -q --no-index --no-deps --target .gpu/site .gpu/wheels/*.whl 2>&1 | tail -2
export PYTHONPATH="$PWD:$PWD/.gpu/site" METALLMIX_CACHE=/tmp/metallmix-cache METALLMIX_DATA="$PWD/.gpu/data" HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
datasets=$(ls .gpu/data/*.npz | xargs -n1 basename | sed 's/\.npz$//' | tr '\n' ' ')
while [ $# -gt 0 ]; do
  case "$1" in
    check)
      first=$(ls -S .gpu/data/*.npz | head -1)
      timeout 240 python bench/gpu_check.py --dataset "$first" --json "$OUT/gpu_check.json" | tee "$OUT/gpu_check.md"
      shift ;;
    sweep)
      minutes="${2:-5}"
      timeout $(( ${minutes%.*} * 60 + 90 )) python -m tools.sweep --plan gpu --data-dir .gpu/data --kb-dir "$OUT/kb" \
        --workers "${GPU_WORKERS:-6}" --max-minutes "$minutes" | tee "$OUT/sweep.json"
      shift 2 ;;
    reference)
      timeout 300 python -m bench.reference --datasets "$(echo $datasets | tr ' ' ',')" --threads 4 \
        --cache "$OUT/lodo_runs.jsonl" | tail -20 | tee "$OUT/reference.txt"
      shift ;;
    *) echo "unknown step $1 (check | sweep MINUTES | reference)"; exit 2 ;;
  esac
done
