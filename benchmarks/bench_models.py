"""Training throughput of each backbone on ML-1M-shaped batches.

Forward + backward + AdamW step on random full-length sequences (batch 128 x length 200,
3,416 items as in the SASRec ML-1M file), with a full-softmax or a sampled-softmax loss
(128 uniform negatives shared by the batch, cosine / 0.05 as in the HSTU protocol).
Prints training tokens (target positions) per second and the ratio to the first row,
measured in the same run.

    nice .venv/bin/python benchmarks/bench_models.py                  # all backbones, two sizes
    nice .venv/bin/python benchmarks/bench_models.py --loss sampled --steps 5 --json out.jsonl
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
import torch.nn.functional as F

from recscale.models import ModelConfig, build_model, count_parameters, flops_per_token

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
        "encoder_tflops_per_s": flops.training * args.batch * args.length / seconds / 1e12,
    }


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
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"# {where or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, batch {args.batch} x {args.length}, "
        f"{args.items} items, {args.loss} softmax, {args.precision}"
    )
    print(f"{'backbone':8} {'size':7} {'non-emb':>10} {'step s':>8} {'tok/s':>9} {'ratio':>6}")
    baseline = None
    for size in args.sizes:
        for backbone in args.backbones:
            row = bench(backbone, size, args, device)
            baseline = baseline or row["tokens_per_s"]
            print(
                f"{backbone:8} {size:7} {row['non_embedding_params']:>10,d} {row['step_s']:8.3f} "
                f"{row['tokens_per_s']:9.0f} {row['tokens_per_s'] / baseline:6.2f}",
                flush=True,
            )
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
