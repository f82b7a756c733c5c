#!/usr/bin/env bash
# The CUDA check of the speed issue, sized to finish in under 8 minutes on one GPU:
#   1. the fast paths held equal to their references on the GPU (values and gradients);
#   2. bench_train.py's ML-1M rows (reference vs fast, bf16 and fp32) on the GPU;
#   3. the HSTU attention benchmark on the GPU.
# Figures go to benchmarks/results/ (one JSON per row), as on the CPU.
# Run from the repository root on a machine with CUDA and a CUDA build of torch 2.13.0:
#   bash benchmarks/device_check.sh
# It refuses to run without a CUDA device (a CPU run would only repeat `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export RECSCALE_DATA_MIRROR=${RECSCALE_DATA_MIRROR:-$(cd ../shared/data 2>/dev/null && pwd || echo "")}
"$PY" - <<'PYEOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("device_check: no CUDA device visible to torch " + torch.__version__)
print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
PYEOF
start=$(date +%s)
# 1. The fast paths against their references on the GPU (the test suite checks them on CPU).
timeout 120 "$PY" - <<'PYEOF'
import torch
from recscale.models.hstu_attention import silu_attention, silu_attention_reference
from recscale.train.chunked_ce import chunked_cross_entropy, cross_entropy_reference

dev = torch.device("cuda")
g = torch.Generator(device=dev).manual_seed(0)
def leaf(*shape):
    return torch.randn(*shape, device=dev, generator=g, dtype=torch.float64).requires_grad_()
B, H, N, D = 4, 2, 200, 32
q, k, v, bias = leaf(B, H, N, D), leaf(B, H, N, D), leaf(B, H, N, D), leaf(B, N, N)
weight = torch.ones(N, N, device=dev, dtype=torch.float64).tril() / N
out = silu_attention(q, k, v, bias, 1.0 / N)
ref = silu_attention_reference(q, k, v, bias, weight)
grads = torch.autograd.grad(out.square().sum(), (q, k, v, bias))
grads_ref = torch.autograd.grad(ref.square().sum(), (q, k, v, bias))
torch.testing.assert_close(out, ref)
for a, b in zip(grads, grads_ref):
    torch.testing.assert_close(a, b)
query, items = leaf(512, 64), leaf(20_000, 64)
targets = torch.randint(0, 20_000, (512,), device=dev, generator=g)
fast, slow = chunked_cross_entropy(query, items, targets, 0.05), cross_entropy_reference(query, items, targets, 0.05)
torch.testing.assert_close(fast, slow)
for a, b in zip(torch.autograd.grad(fast, (query, items)), torch.autograd.grad(slow, (query, items))):
    torch.testing.assert_close(a, b)
print("device_check: fused HSTU attention and chunked cross-entropy equal their references on CUDA")
PYEOF
# 2. Training throughput: the ML-1M configs, reference and fast paths, fp32 and bf16.
for precision in fp32 bf16; do
  timeout 120 "$PY" benchmarks/bench_train.py --device cuda \
    --configs hstu-ml1m hstu-large-ml1m hstu-d256-ml1m sasrec-d256-ml1m \
    --set train.precision=$precision --steps 5
done
# 3. HSTU attention, fused vs reference, on the GPU.
timeout 60 "$PY" benchmarks/bench_hstu_attention.py --batches 128 || true
echo "device_check: done in $(( $(date +%s) - start )) s; rows in benchmarks/results/"
