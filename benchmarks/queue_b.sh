#!/usr/bin/env bash
# Background benchmark queue B (one CPU thread): SASRec and HSTU on ML-1M, SASRec-BCE under
# sampled-100 (issue 4), then model-scaling study 1 (issue 5).
set -u
cd "$(dirname "$0")/.."
export RECSCALE_DATA_MIRROR=${RECSCALE_DATA_MIRROR:-$(realpath ../shared/data)}
R=.venv/bin/recscale
common=(--set train.num_threads=1 --set train.progress=false)
$R train configs/benchmarks/sasrec-ml1m.yaml --out runs/bench/sasrec-ml1m \
  --set train.epochs=${EPOCHS:-30} "${common[@]}"
$R train configs/benchmarks/hstu-ml1m.yaml --out runs/bench/hstu-ml1m \
  --set train.epochs=${EPOCHS:-30} "${common[@]}"
$R train configs/benchmarks/sasrec-bce-ml1m.yaml --out runs/bench/sasrec-bce-ml1m \
  --set train.epochs=${EPOCHS_BCE:-60} "${common[@]}"
$R sweep configs/sweeps/hstu-ml1m-scaling.yaml --out runs/hstu-ml1m-scaling --set train.num_threads=1
$R report runs/hstu-ml1m-scaling
