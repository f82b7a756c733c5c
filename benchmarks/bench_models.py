"""Training throughput of each backbone on ML-1M-shaped batches.

Forward + backward + AdamW step on random full-length sequences (batch 128 x length 200,
3,416 items as in the SASRec ML-1M file), with a full-softmax or a sampled-softmax loss
(128 uniform negatives shared by the batch, cosine / 0.05 as in the HSTU protocol).
Prints, per backbone and size, training tokens (target positions) per second and the ratio
to the first row, evaluation users per second (full ranking over all items, history
excluded), peak memory, and the achieved encoder FLOP rate as a fraction of this machine's
fp32 matmul peak, which the same run measures first. Each row runs in its own process so
its peak memory is its own.

    nice .venv/bin/python benchmarks/bench_models.py                  # all backbones, two sizes
    nice .venv/bin/python benchmarks/bench_models.py --loss sampled --steps 5 --json out.jsonl
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from recscale.data.dataset import SequenceDataset
from recscale.data.splits import EvalSet
from recscale.eval.evaluator import evaluate
from recscale.models import ModelConfig, build_model, count_parameters, flops_per_token
from recscale.train.facts import peak_memory_mib

SIZES = {
    "small": {"dim": 50, "layers": 2, "heads": 1},
    "medium": {"dim": 256, "layers": 4, "heads": 4},
}
BACKBONES = ["sasrec", "hstu", "llama", "gpt"]


def loss_fn(model, hidden: torch.Tensor, targets: torch.Tensor, kind: str, negatives: int):
    """Mean next-item loss over all positions. hidden: [B, N, D]; targets: [B, N]."""
    if kind == "full":
        logits = model.logits(hidden)  # [B, N, I + 1]
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    query = model.query_vectors(hidden)
    neg_ids = torch.randint(1, model.num_items + 1, (negatives,), device=hidden.device)
    pos = (query * model.item_vectors(targets)).sum(-1, keepdim=True)  # [B, N, 1]
    neg = query @ model.item_vectors(neg_ids).T  # [B, N, K]
    logits = torch.cat([pos, neg], dim=-1) / model.temperature
    return F.cross_entropy(logits.flatten(0, 1), torch.zeros_like(targets).flatten())


def bench(backbone: str, size: str, args: argparse.Namespace, device: torch.device) -> dict:
    scoring = {"scoring": "cosine", "temperature": 0.05} if args.loss == "sampled" else {}
    cfg = ModelConfig(backbone=backbone, max_len=args.length, **SIZES[size], **scoring)
    torch.manual_seed(0)
    model = build_model(cfg, args.items).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    shape = (args.batch, args.length + 1)
    seqs = torch.randint(1, args.items + 1, shape, device=device)
    items, targets = seqs[:, :-1], seqs[:, 1:]
    ts = torch.cumsum(torch.randint(0, 86_400, shape, device=device), 1)[:, :-1]
    lengths = torch.full((args.batch,), args.length, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def step() -> None:
        with autocast:
            hidden = model.encode(items, ts, lengths)
            loss = loss_fn(model, hidden, targets, args.loss, args.negatives)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    params = count_parameters(model)
    flops = flops_per_token(cfg, args.items, args.length)
    eval_set = random_eval_set(args.eval_users, args.length, args.items)
    start = time.perf_counter()
    evaluate(model, eval_set, "full", max_len=args.length, batch_size=256, device=device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    eval_s = time.perf_counter() - start
    # Encoder plus, for the full softmax, the output layer (forward + backward = 3x forward).
    per_token = flops.training + (3 * flops.output_forward if args.loss == "full" else 0)
    achieved = per_token * args.batch * args.length / seconds
    return {
        "backbone": backbone,
        "size": size,
        **SIZES[size],
        "loss": args.loss,
        "precision": args.precision,
        "non_embedding_params": params.non_embedding,
        "embedding_params": params.embedding,
        "step_s": seconds,
        "tokens_per_s": args.batch * args.length / seconds,
        "tflops_per_s": achieved / 1e12,
        "eval_users_per_s": args.eval_users / eval_s,
        "peak_memory_mib": peak_memory_mib(device),
        # Measured in this process just after the row, under the same load as the row.
        "matmul_peak_tflops": matmul_peak_tflops(device),
    }


def random_eval_set(users: int, length: int, items: int) -> EvalSet:
    """``users`` histories of ``length`` random items, each with a random target."""
    g = torch.Generator().manual_seed(1)
    flat = torch.randint(1, items + 1, (users * length,), generator=g).numpy()
    ds = SequenceDataset(
        name="bench",
        offsets=(torch.arange(users + 1) * length).numpy(),
        items=flat,
        num_items=items,
        user_ids=torch.arange(users).numpy().astype(str),
        item_ids=torch.arange(items + 1).numpy().astype(str),
    )
    targets = torch.randint(1, items + 1, (users,), generator=g).numpy()
    return EvalSet(ds, targets, torch.arange(users).numpy())


def matmul_peak_tflops(
    device: torch.device, n: int = 2048, reps: int = 10, clock=time.perf_counter
) -> float:
    """Best fp32 matmul rate of ``reps`` ``n x n`` products: the machine's practical peak.

    ``clock``: ``time.process_time`` measures CPU time, which a shared CPU's other jobs do
    not inflate (use the same clock for the rate it is compared with).
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = clock()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, clock() - start)
    return 2 * n**3 / best / 1e12


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=BACKBONES)
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--loss", choices=["full", "sampled"], default="full")
    parser.add_argument("--negatives", type=int, default=128)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--items", type=int, default=3416)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="append one JSON line per row to this file")
    parser.add_argument("--eval-users", type=int, default=1024)
    parser.add_argument("--single", nargs=2, metavar=("BACKBONE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.single:
        print(json.dumps(bench(*args.single, args, device)))
        return
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"# {where or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, batch {args.batch} x {args.length}, "
        f"{args.items} items, {args.loss} softmax, {args.precision}; "
        "'of peak': achieved FLOP rate / fp32 matmul peak measured in the row's process"
    )
    print(
        f"{'backbone':8} {'size':7} {'non-emb':>10} {'step s':>8} {'tok/s':>9} {'ratio':>6} "
        f"{'GFLOP/s':>8} {'of peak':>7} {'eval u/s':>9} {'peak MiB':>9}"
    )
    baseline = None
    child_args = sys.argv[1:]
    if args.json:  # rows are appended here, not by the children
        i = child_args.index("--json")
        child_args = child_args[:i] + child_args[i + 2 :]
    for size in args.sizes:
        for backbone in args.backbones:
            out = subprocess.run(
                [sys.executable, __file__, *child_args, "--single", backbone, size],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            baseline = baseline or row["tokens_per_s"]
            print(
                f"{backbone:8} {size:7} {row['non_embedding_params']:>10,d} {row['step_s']:8.3f} "
                f"{row['tokens_per_s']:9.0f} {row['tokens_per_s'] / baseline:6.2f} "
                f"{row['tflops_per_s'] * 1e3:8.1f} "
                f"{row['tflops_per_s'] / row['matmul_peak_tflops']:7.1%} "
                f"{row['eval_users_per_s']:9.0f} "
                f"{row['peak_memory_mib']:9.0f}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
