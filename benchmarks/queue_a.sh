#!/usr/bin/env bash
# Background benchmark queue A (one CPU thread): HSTU-large on ML-1M (issue 4 reproduction).
set -u
cd "$(dirname "$0")/.."
export RECSCALE_DATA_MIRROR=${RECSCALE_DATA_MIRROR:-$(realpath ../shared/data)}
R=.venv/bin/recscale
$R train configs/benchmarks/hstu-large-ml1m.yaml --out runs/bench/hstu-large-ml1m \
  --set train.epochs=${EPOCHS_LARGE:-30} --set train.num_threads=1 --set train.progress=false
