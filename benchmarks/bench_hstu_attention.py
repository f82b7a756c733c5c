"""HSTU's SiLU attention: the fused path against the reference, and HSTU against Llama-style.

Three rows per batch size, each timed with the implementations interleaved step by step in
one process (so a shared machine's load falls on both alike):

* ``op``: eq. (2) alone, forward + backward, ``silu_attention`` vs ``silu_attention_reference``
  (and, with ``--compile``, the reference under ``torch.compile``, timed after its compile);
* ``layer``: one HSTU layer (d=256, 4 heads, N=200), forward + backward;
* ``model``: a training step of the 4-block model (encode, loss, backward, AdamW) with each
  attention implementation, and a Llama-style step of the same width (``bench_models``' loss).

FLOPs follow ``models/size.py`` (attention counted over the dense N x N matrix, the same for
both implementations). ``fraction_of_peak`` divides the achieved rate by the fp32 matmul peak
that ``bench_models.matmul_peak_tflops`` measures in the same process right after the row,
both in CPU time of this process (``time.process_time``; wall time on CUDA), so other jobs on
a shared CPU do not inflate either; ``*_wall`` fields repeat it in wall time.
``saved_mib``: tensors autograd keeps from forward for backward. One JSON per row goes to
``benchmarks/results/<name>.json``.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_hstu_attention.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_hstu_attention.py --batches 32 --rows op layer
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench_models import loss_fn, matmul_peak_tflops
from recscale.models import ModelConfig, build_model, flops_per_token
from recscale.models.hstu_attention import silu_attention, silu_attention_reference

RESULTS = Path(__file__).parent / "results"
IMPLS = ("reference", "fused")


def hstu_config(args: argparse.Namespace, impl: str, layers: int) -> ModelConfig:
    return ModelConfig(
        backbone="hstu",
        dim=args.dim,
        layers=layers,
        heads=args.heads,
        max_len=args.length,
        hstu={"attention_impl": impl},
    )


def op_case(impl: str, batch: int, args: argparse.Namespace, device: torch.device):
    """Eq. (2) alone on random q, k, v and a per-sequence bias (the position_time rab)."""
    g = torch.Generator(device=device).manual_seed(0)
    h, n, dh = args.heads, args.length, args.dim // args.heads
    q, k, v = (
        torch.randn(batch, h, n, dh, device=device, generator=g).requires_grad_() for _ in range(3)
    )
    bias = (0.02 * torch.randn(batch, n, n, device=device, generator=g)).requires_grad_()
    grad = torch.randn(batch, h, n, dh, device=device, generator=g)
    weight = torch.ones(n, n, device=device).tril() / n

    compiled = torch.compile(silu_attention_reference) if impl == "compiled" else None

    def forward() -> torch.Tensor:
        if impl == "fused":
            out = silu_attention(q, k, v, bias, 1.0 / n)
        else:
            out = (compiled or silu_attention_reference)(q, k, v, bias, weight)
        return (out.float() * grad).sum()

    flops = 3 * 2 * batch * h * n * n * 2 * dh  # QK^T and AV, forward + 2x backward
    return forward, lambda loss: loss.backward(), flops


def layer_case(impl: str, batch: int, args: argparse.Namespace, device: torch.device):
    """One HSTU layer (with its positions and rab) on random inputs, forward + backward."""
    cfg = hstu_config(args, impl, layers=1)
    torch.manual_seed(0)
    encoder = build_model(cfg, args.items).encoder.to(device).train()
    x = torch.randn(batch, args.length, args.dim, device=device, requires_grad=True)
    ts, lengths = _times(batch, args.length, device)
    grad = torch.randn_like(x)

    def forward() -> torch.Tensor:
        return (encoder(x, ts, lengths).float() * grad).sum()

    flops = flops_per_token(cfg, args.items, args.length).training * batch * args.length
    return forward, lambda loss: loss.backward(), flops


def model_case(backbone: str, impl: str, batch: int, args: argparse.Namespace, device):
    """A training step as ``bench_models`` times it."""
    if backbone == "hstu":
        cfg = hstu_config(args, impl, layers=args.layers)
    else:
        cfg = ModelConfig(
            backbone=backbone,
            dim=args.dim,
            layers=args.layers,
            heads=args.heads,
            max_len=args.length,
        )
    torch.manual_seed(0)
    model = build_model(cfg, args.items).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    seqs = torch.randint(1, args.items + 1, (batch, args.length + 1), device=device)
    items, targets = seqs[:, :-1], seqs[:, 1:]
    ts, lengths = _times(batch, args.length, device)

    def forward() -> torch.Tensor:
        hidden = model.encode(items, ts, lengths)
        return loss_fn(model, hidden, targets, args.loss, args.negatives)

    def backward(loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    flops = flops_per_token(cfg, args.items, args.length)
    per_token = flops.training + (3 * flops.output_forward if args.loss == "full" else 0)
    return forward, backward, per_token * batch * args.length


def _times(batch: int, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ts = torch.cumsum(torch.randint(0, 86_400, (batch, n), device=device), 1)
    return ts, torch.full((batch,), n, device=device)


def saved_mib(forward: Callable[[], torch.Tensor]) -> float:
    """MiB of distinct tensors autograd saves for backward during ``forward()``."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    del loss
    return sum(storages.values()) / 2**20


def time_interleaved(cases: dict, args: argparse.Namespace, device: torch.device) -> dict:
    """Best CPU and wall seconds per step of each case, the cases run in turn each rep."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16")
    cpu = {name: float("inf") for name in cases}
    wall = dict(cpu)
    clock = time.process_time if device.type == "cpu" else time.perf_counter
    for rep in range(args.warmup + args.steps):
        for name, (forward, backward, _) in cases.items():
            _sync(device)
            c, w = clock(), time.perf_counter()
            with autocast:
                loss = forward()
            backward(loss)
            _sync(device)
            if rep >= args.warmup:
                cpu[name] = min(cpu[name], clock() - c)
                wall[name] = min(wall[name], time.perf_counter() - w)
    with autocast:
        memory = {name: saved_mib(forward) for name, (forward, _, _) in cases.items()}
    peak = matmul_peak_tflops(device, clock=clock) * 1e12
    peak_wall = matmul_peak_tflops(device) * 1e12
    out = {}
    for name, (_, _, flops) in cases.items():
        out[name] = {
            "step_s": cpu[name],
            "wall_step_s": wall[name],
            "fraction_of_peak": flops / cpu[name] / peak,
            "fraction_of_peak_wall": flops / wall[name] / peak_wall,
            "saved_mib": memory[name],
        }
    out["matmul_peak_gflops"] = peak / 1e9
    out["matmul_peak_gflops_wall"] = peak_wall / 1e9
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_row(kind: str, batch: int, args: argparse.Namespace, device: torch.device) -> dict:
    if kind == "model":
        cases = {impl: model_case("hstu", impl, batch, args, device) for impl in IMPLS}
        cases["llama"] = model_case("llama", "", batch, args, device)
    else:
        make = op_case if kind == "op" else layer_case
        cases = {impl: make(impl, batch, args, device) for impl in IMPLS}
        if kind == "op" and args.compile:
            cases["compiled"] = op_case("compiled", batch, args, device)
    timed = time_interleaved(cases, args, device)
    tokens = batch * args.length
    metrics: dict[str, float] = {}
    for name in cases:
        prefix = "" if name == "fused" else f"{name}_"
        for key, value in timed[name].items():
            metrics[prefix + key] = value
        metrics[prefix + "tokens_per_s"] = tokens / timed[name]["step_s"]
    metrics["matmul_peak_gflops"] = timed["matmul_peak_gflops"]
    metrics["matmul_peak_gflops_wall"] = timed["matmul_peak_gflops_wall"]
    if kind == "model":
        metrics["hstu_over_llama_step"] = timed["fused"]["step_s"] / timed["llama"]["step_s"]
        metrics["reference_over_llama_step"] = (
            timed["reference"]["step_s"] / timed["llama"]["step_s"]
        )
    where = "CUDA " + torch.cuda.get_device_name(device) if device.type == "cuda" else "2-core CPU"
    return {
        "name": f"hstu_attention_{kind}_{args.precision}_b{batch}",
        "metrics": metrics,
        # reference / fused step time (CPU time on a CPU)
        "speedup": timed["reference"]["step_s"] / timed["fused"]["step_s"],
        "config": {
            "dim": args.dim,
            "layers": 1 if kind != "model" else args.layers,
            "heads": args.heads,
            "length": args.length,
            "batch": batch,
            "items": args.items,
            "loss": args.loss if kind == "model" else None,
            "precision": args.precision,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "command": " ".join(shlex.quote(a) for a in ["python", *sys.argv]),
        "machine": where,
        "date": datetime.date.today().isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["op", "layer", "model"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 128])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--items", type=int, default=3416)
    parser.add_argument("--loss", choices=["full", "sampled"], default="full")
    parser.add_argument("--negatives", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--compile", action="store_true", help="op rows also time torch.compile(reference)"
    )
    parser.add_argument("--no-write", action="store_true", help="print rows, write no JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"# {args.precision}, {torch.get_num_threads()} thread(s), d={args.dim}, "
        f"{args.heads} heads, N={args.length}; times are best-of-{args.steps} CPU seconds"
    )
    for batch in args.batches:
        for kind in args.rows:
            row = run_row(kind, batch, args, device)
            m = row["metrics"]
            line = (
                f"{row['name']:32} ref {m['reference_step_s']:7.3f}s "
                f"({m['reference_fraction_of_peak']:5.1%} of peak, "
                f"{m['reference_saved_mib']:6.0f} MiB saved)  fused {m['step_s']:7.3f}s "
                f"({m['fraction_of_peak']:5.1%}, {m['saved_mib']:6.0f} MiB)  "
                f"speedup {row['speedup']:.2f}x  wall {m['reference_wall_step_s']:.2f}s -> "
                f"{m['wall_step_s']:.2f}s"
            )
            if "compiled_step_s" in m:
                line += f"  compiled reference {m['compiled_step_s']:.3f}s"
            if kind == "model":
                line += (
                    f"  llama {m['llama_step_s']:.3f}s ({m['llama_fraction_of_peak']:.1%}), "
                    f"hstu/llama {m['hstu_over_llama_step']:.2f}"
                )
            print(line, flush=True)
            if not args.no_write:
                RESULTS.mkdir(exist_ok=True)
                (RESULTS / f"{row['name']}.json").write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
