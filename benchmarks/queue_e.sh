#!/usr/bin/env bash
# Background queue E (one CPU thread): the complex-behaviour studies of issue 6 (transfer-amazon
# after multi-domain; its fine-tune runs read its own pretrain runs, so keep the order).
set -u
cd "$(dirname "$0")/.."
export RECSCALE_DATA_MIRROR=${RECSCALE_DATA_MIRROR:-$(realpath ../shared/data)}
R=.venv/bin/recscale
for study in ${STUDIES:-complex-behaviour-ml1m multi-domain-amazon transfer-amazon}; do
  $R sweep configs/sweeps/$study.yaml --out runs/$study --set train.num_threads=1
  $R report runs/$study
done
