#!/usr/bin/env bash
# Second prepared GPU check: the cpu preset (ResNet-18@48) on the FULL UTKFace split, fast on a GPU:
# regression vs expectation head at the preset's 7 epochs, the expectation head with a longer
# one-cycle schedule (how many epochs the <= 5.5 MAE target needs), and a torchrun/NCCL smoke run.
#
#   bash benchmarks/gpu_heads.sh DATA_TGZ OUT_DIR [LONG_EPOCHS]
#
# DATA_TGZ holds `utk48/`: every UTKFace image resized to 48x48 (the cpu preset's input size) so that
# the whole set fits the device tool's transfer limit. Never commit it.
set -uo pipefail
DATA=$1; OUT=$2; LONG=${3:-20}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 AGEFAIR_WORK=/tmp/gh/work
mkdir -p /tmp/gh && tar -xzf "$DATA" -C /tmp/gh || exit 1
printf 'train:\n  num_workers: 4\n' > /tmp/gh/loader.yaml
T="python3 -m agefair.train --variant baseline --preset cpu --config /tmp/gh/loader.yaml --data /tmp/gh/utk48 --device cuda --quiet"

echo "== torchrun, 1 process, NCCL (2 epochs on 2000 images)"
timeout 120 python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m agefair.train --variant oversample \
  --preset cpu --config /tmp/gh/loader.yaml --data /tmp/gh/utk48 --device cuda --quiet --limit 2000 --epochs 2 \
  --out /tmp/gh/ddp 2>&1 | tee "$OUT/torchrun.txt"
for head in expectation regression; do
  echo "== cpu preset, $head head, 7 epochs"
  timeout 150 $T --head $head --out /tmp/gh/$head 2>&1 | tee "$OUT/$head.txt"
done
echo "== cpu preset, expectation head, $LONG epochs (one-cycle over $LONG)"
timeout 150 $T --epochs "$LONG" --out /tmp/gh/long 2>&1 | tee "$OUT/long.txt"
