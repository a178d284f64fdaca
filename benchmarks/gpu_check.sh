#!/usr/bin/env bash
# One prepared GPU check: the train-throughput benchmark and the reference preset on a UTKFace subset.
#
#   bash benchmarks/gpu_check.sh DATA_TAR OUT_DIR [EPOCHS] [TRAIN_SECONDS]
#
# DATA_TAR holds a folder `utk/` of UTKFace-named images (any subset; never commit it). Wheels in .whl/
# (for packages the GPU image lacks, e.g. pydantic, plotly) are installed to /tmp/site first.
# Each step's output is tee'd to OUT_DIR, and the training history is copied there even when the
# training step runs out of its time limit.
set -uo pipefail
DATA_TAR=$1; OUT=$2; EPOCHS=${3:-30}; TRAIN_SECONDS=${4:-240}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, torch.cuda.get_device_name())"
mkdir -p /tmp/gpu_check && tar -xf "$DATA_TAR" -C /tmp/gpu_check || exit 1

echo "== throughput, each preset's batch size"
python3 benchmarks/train_throughput.py --device cuda --steps 30 --models resnet50@128,cpu 2>&1 | tee "$OUT/throughput.txt"
echo "== throughput, batch 256"
python3 benchmarks/train_throughput.py --device cuda --steps 20 --models resnet50@128 --batch 256 2>&1 | tee -a "$OUT/throughput.txt"

echo "== reference preset (ResNet-50@128, SGD lr 0.003, batch 32, patience 5), baseline variant, at most $EPOCHS epochs"
printf 'train:\n  num_workers: 8\n' > /tmp/gpu_check/loader.yaml
time timeout "$TRAIN_SECONDS" env AGEFAIR_WORK=/tmp/gpu_check/work python3 -m agefair.train --variant baseline \
  --preset reference --config /tmp/gpu_check/loader.yaml --data /tmp/gpu_check/utk --epochs "$EPOCHS" \
  --device cuda --out /tmp/gpu_check/runs --quiet 2>&1 | tee "$OUT/train_reference.txt"
cp /tmp/gpu_check/runs/baseline/history.csv "$OUT/history_reference.csv" 2>/dev/null
cp /tmp/gpu_check/runs/baseline/summary.json "$OUT/summary_reference.json" 2>/dev/null

echo "== throughput under torch.compile"
timeout 150 python3 benchmarks/train_throughput.py --device cuda --steps 30 --models resnet50@128 --compile 2>&1 | tail -1 | tee -a "$OUT/throughput.txt"
