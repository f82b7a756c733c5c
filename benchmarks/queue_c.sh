#!/usr/bin/env bash
# Background benchmark queue C (one CPU thread): studies 4, 2 and 3 of issue 5, smallest first.
set -u
cd "$(dirname "$0")/.."
export RECSCALE_DATA_MIRROR=${RECSCALE_DATA_MIRROR:-$(realpath ../shared/data)}
R=.venv/bin/recscale
for study in hstu-ablation hstu-ml1m-data backbones-ml1m; do
  $R sweep configs/sweeps/$study.yaml --out runs/$study --set train.num_threads=1
  $R report runs/$study
done
