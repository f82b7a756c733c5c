"""Training-step and evaluation speed of named run configs, fast paths against their references.

Each named config is a run config (a benchmark YAML, the demo sweep's largest point, or a
synthetic catalogue) and a list of variants: ``--set``-style overrides, the first of which is
the baseline (the reference implementation). Every (config, variant) row runs in its own
process, so its peak RSS is its own, and times ``--steps`` optimizer steps after ``--warmup``
ones (forward, loss, backward, gradient normalisation and clipping, optimizer step, as the
trainer does them), then full-ranking evaluation of ``--eval-users`` users. It reports
target tokens per second, the speed-up over the baseline row of the same run, the achieved
FLOP rate (encoder training FLOPs plus the loss's output FLOPs, 3x forward) as a fraction of
an fp32 matmul peak measured in the same process right after the row
(``bench_models.matmul_peak_tflops``), and peak RSS (GPU: peak allocated memory).

Each row is written to ``benchmarks/results/<name>.json``.

    .venv/bin/python benchmarks/bench_train.py --list
    .venv/bin/python benchmarks/bench_train.py --configs synthetic-18k --threads 1
    .venv/bin/python benchmarks/bench_train.py --quick            # smoke: 1 step, 32 users
    # toggle something in both variants, or in one of them (e.g. HSTU's fused attention):
    .venv/bin/python benchmarks/bench_train.py --configs hstu-ml1m \\
        --set train.precision=bf16 --fast-set model.hstu.attention_impl=fused
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench_models import matmul_peak_tflops  # same directory: `python benchmarks/...`
from recscale.config import apply_overrides
from recscale.data import batching, splits
from recscale.data.synthetic import markov_mixture
from recscale.eval.evaluator import evaluate
from recscale.models import flops_per_token
from recscale.models.attention import batch_attend
from recscale.train.config import RunConfig, load_run_config
from recscale.train.data import build_run_model, prepare_data
from recscale.train.facts import peak_memory_mib
from recscale.train.losses import LossConfig, build_loss
from recscale.train.optim import build_optimizer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class Synthetic:
    """A Markov-mixture catalogue (``recscale.data.synthetic``) shaped like Amazon Sports:
    35.6K users, mean length 8.3."""

    num_items: int
    num_users: int = 35_600
    mean_length: float = 8.3


@dataclass(frozen=True)
class Variant:
    """Overrides for one row, and the row it is a fast path of (None: it is a reference)."""

    overrides: tuple[str, ...]
    reference: str | None = None
    opt_in: bool = False  # only run when named in --variants


@dataclass(frozen=True)
class Bench:
    source: str  # a run-config YAML, "sweep:<yaml>" (its last point), or "synthetic"
    overrides: tuple[str, ...] = ()
    variants: dict[str, Variant] = field(default_factory=dict)
    synthetic: Synthetic | None = None
    max_steps: int | None = None  # cap on --steps for slow configs (d=256: minutes a step)


BUCKETED = "train.bucket_batches=50"
PACKED = "train.pack_batches=true"
REF_FAST = {
    "reference": Variant(("loss.impl=reference",)),
    "fast": Variant(("loss.impl=fast",), reference="reference"),
    # bf16 autocast against the same path in fp32 (opt-in: --variants fast fast-bf16).
    "fast-bf16": Variant(("loss.impl=fast", "train.precision=bf16"), "fast", opt_in=True),
    # Length-bucketed batches against shuffled ones (opt-in: --variants fast fast-bucketed).
    "fast-bucketed": Variant(("loss.impl=fast", BUCKETED), "fast", opt_in=True),
    # Packed batches (several users a row) against padded ones: same users, same math.
    "fast-packed": Variant(("loss.impl=fast", PACKED), "fast", opt_in=True),
}
D256 = ("model.dim=256", "model.layers=4", "model.heads=4")
SYNTHETIC_BASE = (
    "model.backbone=hstu",
    "model.dim=64",
    "model.layers=2",
    "model.heads=2",
    "model.max_len=50",
    "model.scoring=cosine",
    "model.temperature=0.05",
    "optim.lr=0.001",
    "train.batch_size=128",
)
# The Amazon recipe of the HSTU code: uniform negatives per position, cosine / 0.05.
POSITION = ("loss.name=sampled_softmax", "loss.num_negatives=256", "loss.sharing=position")
SAMPLED = "sampled-position-reference"
# Mixed negatives: the batch's distinct targets plus K uniform draws, logQ-corrected.
MIXED = (
    "loss.name=sampled_softmax",
    "loss.sharing=batch",
    "loss.in_batch_negatives=true",
    "loss.logq_correction=true",
)


def catalogue_variants(skip_full_reference: bool) -> dict[str, Variant]:
    variants = {
        # The plain full softmax at 1M items needs [positions x 1M] logits several times
        # over (~15 GiB at 950 positions): opt-in there.
        "full-reference": Variant(
            ("loss.name=full_softmax", "loss.impl=reference"), opt_in=skip_full_reference
        ),
        "full-chunked": Variant(
            ("loss.name=full_softmax", "loss.impl=fast"), reference="full-reference"
        ),
        SAMPLED: Variant((*POSITION, "loss.impl=reference")),
        "sampled-position-fast": Variant((*POSITION, "loss.impl=fast"), reference=SAMPLED),
        "sampled-sequence-256": Variant(
            ("loss.name=sampled_softmax", "loss.num_negatives=256", "loss.sharing=sequence"),
            reference=SAMPLED,
        ),
        "sampled-batch-1024": Variant(
            ("loss.name=sampled_softmax", "loss.num_negatives=1024", "loss.sharing=batch"),
            reference=SAMPLED,
        ),
        "sampled-batch-2048": Variant(
            ("loss.name=sampled_softmax", "loss.num_negatives=2048", "loss.sharing=batch"),
            reference=SAMPLED,
        ),
        "sampled-mixed-512-logq": Variant((*MIXED, "loss.num_negatives=512"), reference=SAMPLED),
        "sampled-mixed-1024-logq": Variant((*MIXED, "loss.num_negatives=1024"), reference=SAMPLED),
    }
    for name in ("full-chunked", "sampled-position-fast", "sampled-batch-1024"):
        base = variants[name].overrides
        for suffix, override in (
            ("bf16", "train.precision=bf16"),
            ("bucketed", BUCKETED),
            ("packed", PACKED),
        ):
            variants[f"{name}-{suffix}"] = Variant((*base, override), reference=name, opt_in=True)
    return variants


# The Amazon baselines (issue 14): their per-position recipe against batch-shared negatives.
SHARED_1024 = ("loss.shared_negatives=null", "loss.sharing=batch", "loss.num_negatives=1024")
BASELINE = {
    "fast": Variant(("loss.impl=fast",)),
    "fast-packed": Variant(("loss.impl=fast", PACKED), reference="fast"),
    "sampled-batch-1024": Variant(SHARED_1024, reference="fast"),
    "sampled-batch-1024-packed": Variant((*SHARED_1024, PACKED), reference="fast"),
}
BASELINE_UNPACKED = {k: v for k, v in BASELINE.items() if not k.endswith("-packed")}


def synthetic(num_items: int) -> Bench:
    variants = catalogue_variants(skip_full_reference=num_items >= 1_000_000)
    return Bench("synthetic", SYNTHETIC_BASE, variants, Synthetic(num_items))


CONFIGS: dict[str, Bench] = {
    "demo-largest": Bench("sweep:configs/sweeps/demo.yaml", (), REF_FAST),
    "hstu-ml1m": Bench("configs/benchmarks/hstu-ml1m.yaml", (), REF_FAST),
    "hstu-beauty": Bench("configs/benchmarks/hstu-beauty.yaml", (), REF_FAST),
    "hstu-large-ml1m": Bench("configs/benchmarks/hstu-large-ml1m.yaml", (), REF_FAST),
    "hstu-d256-ml1m": Bench("configs/benchmarks/hstu-ml1m.yaml", D256, REF_FAST, max_steps=1),
    "sasrec-d256-ml1m": Bench("configs/benchmarks/sasrec-ml1m.yaml", D256, REF_FAST, max_steps=1),
    "sasrec-ss-beauty": Bench("configs/benchmarks/sasrec-ss-beauty.yaml", (), BASELINE),
    "esasrec-beauty": Bench("configs/benchmarks/esasrec-beauty.yaml", (), BASELINE_UNPACKED),
    "synthetic-18k": synthetic(18_400),
    "synthetic-100k": synthetic(100_000),
    "synthetic-1m": synthetic(1_000_000),
}


def run_config(bench: Bench, overrides: list[str]) -> RunConfig:
    if bench.source.startswith("sweep:"):
        from recscale.scaling.sweep import load_spec

        _, runs = load_spec(ROOT / bench.source.removeprefix("sweep:"))
        return load_run_config(base=apply_overrides(runs[-1].config.model_dump(), overrides))
    if bench.source == "synthetic":
        return load_run_config(overrides=overrides)
    return load_run_config(ROOT / bench.source, overrides)


def load_split(bench: Bench, cfg: RunConfig):
    if bench.synthetic is None:
        return prepare_data(cfg.data, cfg.seed)
    s = bench.synthetic
    dataset, _ = markov_mixture(s.num_users, s.num_items, s.mean_length, num_chains=1, seed=0)
    return dataset, splits.leave_one_out(dataset)


def loss_flops_per_token(cfg: LossConfig, dim: int, num_items: int) -> int:
    """Output-layer FLOPs per target position, training (3x the forward dot products);
    nominal for sampled losses: ``K + 1`` classes (in-batch columns are not counted)."""
    classes = {"full_softmax": num_items, "sampled_softmax": cfg.num_negatives + 1, "bce": 2}
    return 3 * 2 * dim * classes.get(cfg.name, 0)


class Trainee:
    """One variant's model, loss and optimizer, stepping as the trainer does."""

    def __init__(self, cfg: RunConfig, dataset, device: torch.device) -> None:
        torch.manual_seed(cfg.seed)
        self.cfg, model = build_run_model(cfg, dataset)
        self.model = model.to(device).train()
        self.loss_fn = build_loss(self.cfg.loss)
        self.optimizer = build_optimizer(self.model, self.cfg.optim)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.sampler = torch.Generator().manual_seed(cfg.seed + 1)
        bf16 = self.cfg.train.precision == "bf16"
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
        self.device, self.seconds, self.tokens = device, 0.0, 0

    def step(self, batch, timed: bool = True) -> None:
        sync(self.device)
        start = time.perf_counter()
        with self.autocast:
            hidden = self.model.encode(
                batch.items, batch.timestamps, batch.lengths, batch.ratings, batch_attend(batch)
            )
            loss_sum, count = self.loss_fn(self.model, hidden, batch.targets, self.sampler)
        loss_sum.backward()
        for p in self.params:
            if p.grad is not None:
                p.grad.div_(max(count, 1))
        if self.cfg.optim.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        sync(self.device)
        if timed:
            self.seconds += time.perf_counter() - start
            self.tokens += count

    def evaluate(self, split, users: int) -> tuple[int, float]:
        users = min(users, len(split.test.targets))
        subset = splits.EvalSet(
            split.test.histories.select_users(np.arange(users)),
            split.test.targets[:users],
            split.test.users[:users],
        )
        start = time.perf_counter()
        evaluate(
            self.model,
            subset,
            self.cfg.eval.protocol,
            max_len=self.cfg.model.max_len,
            device=self.device,
        )
        sync(self.device)
        return users, time.perf_counter() - start

    def metrics(self, dataset, batches, steps: int, peak_flops: float) -> dict[str, Any]:
        cfg = self.cfg
        # Useful FLOPs: attention over each user's own length, whatever the batch layout.
        mean_len = float(np.mean([float(b.lengths.sum()) / users_in(b) for b in batches]))
        flops = flops_per_token(cfg.model, dataset.num_items, max(1, round(mean_len)))
        output = loss_flops_per_token(cfg.loss, cfg.model.dim, dataset.num_items)
        per_token = flops.training + output
        achieved = per_token * self.tokens / self.seconds
        return {
            "tokens_per_s": self.tokens / self.seconds,
            "step_s": self.seconds / steps,
            "tokens_per_step": self.tokens / steps,
            "flops_per_token": per_token,
            "tflops_per_s": achieved / 1e12,
            "matmul_peak_tflops": peak_flops / 1e12,
            "fraction_of_peak": achieved / peak_flops,
            "num_items": dataset.num_items,
            "steps": steps,
        }


def users_in(batch) -> int:
    if batch.segments is None:
        return max(len(batch.lengths), 1)
    return max(int(batch.segments.amax(1).sum()), 1)


def training_batches(cfg: RunConfig, split, count: int, device: torch.device) -> list:
    batches = batching.train_batches(
        split.train,
        cfg.model.max_len,
        cfg.train.batch_size,
        cfg.seed,
        epoch=0,
        bucket_batches=cfg.train.bucket_batches,
        pack=cfg.train.pack_batches,
    )
    return [batching.to_device(b, device) for b in itertools.islice(batches, count)]


def measure(cfg: RunConfig, bench: Bench, args: argparse.Namespace) -> dict[str, Any]:
    """One row in its own process: time ``args.steps`` optimizer steps, then evaluation."""
    device = torch.device(args.device)
    dataset, split = load_split(bench, cfg)
    trainee = Trainee(cfg, dataset, device)
    batches = training_batches(trainee.cfg, split, args.warmup + args.steps, device)
    for i, batch in enumerate(batches):
        trainee.step(batch, timed=i >= args.warmup)
    train_peak = peak_memory_mib(device)
    users, eval_s = trainee.evaluate(split, args.eval_users)
    peak = matmul_peak_tflops(device) * 1e12  # measured now, under the row's own load
    return {
        **trainee.metrics(dataset, batches[args.warmup :], args.steps, peak),
        "eval_users_per_s": users / eval_s,
        "eval_s": eval_s,
        "eval_users": users,
        "peak_rss_train_mib": train_peak,
        "peak_rss_mib": peak_memory_mib(device),
        "warmup": args.warmup,
        "rss_scope": "row",
    }


def measure_interleaved(
    cfgs: dict[str, RunConfig], bench: Bench, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """All variants in one process, taking turns step by step, so that a changing machine
    load hits every variant alike (peak RSS is the process's). Variants that batch alike
    step on the same batches; one that batches differently (length buckets, packing) on its own
    (packed batches hold the same users as the padded ones)."""
    device = torch.device(args.device)
    dataset, split = load_split(bench, next(iter(cfgs.values())))
    trainees = {name: Trainee(cfg, dataset, device) for name, cfg in cfgs.items()}
    made: dict[tuple, list] = {}
    batches = {}
    for name, trainee in trainees.items():
        t = trainee.cfg.train
        key = (t.batch_size, t.bucket_batches, t.pack_batches)
        if key not in made:
            made[key] = training_batches(trainee.cfg, split, args.warmup + args.steps, device)
        batches[name] = made[key]
    for i in range(args.warmup + args.steps):
        for name, trainee in trainees.items():
            trainee.step(batches[name][i], timed=i >= args.warmup)
    out = {}
    for name, trainee in trainees.items():
        users, eval_s = trainee.evaluate(split, args.eval_users)
        peak = matmul_peak_tflops(device) * 1e12
        out[name] = {
            **trainee.metrics(dataset, batches[name][args.warmup :], args.steps, peak),
            "eval_users_per_s": users / eval_s,
            "eval_s": eval_s,
            "eval_users": users,
            "peak_rss_mib": peak_memory_mib(device),
            "warmup": args.warmup,
            "rss_scope": "process (interleaved variants)",
        }
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Environment that changes what a row measures, recorded in front of its command.
ENV_KEYS = ("PYTHONPATH", "RECSCALE_DATA_MIRROR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def commit() -> str | None:
    proc = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return proc.stdout.strip() or None


def machine(device: str) -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def row_overrides(args: argparse.Namespace, variant: str, bench: Bench) -> list[str]:
    """The variant's overrides, then --set, then --ref-set (references) or --fast-set."""
    spec = bench.variants[variant]
    own = args.ref_set if spec.reference is None else args.fast_set
    return [*bench.overrides, *spec.overrides, *args.set, *own]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), metavar="NAME")
    parser.add_argument("--variants", nargs="+", help="only these variants (default: all)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant"
    )
    parser.add_argument(
        "--ref-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for the baseline variant only",
    )
    parser.add_argument(
        "--fast-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override for the non-baseline variants only",
    )
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--eval-users", type=int, default=512)
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1 step, no warm-up, 32 users, batch 16"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--list", action="store_true", help="list configs and variants")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="run a config's variants in one process, taking turns step by step (robust"
        " ratios on a loaded machine; peak RSS is then the process's, rows end in"
        " -interleaved)",
    )
    parser.add_argument(
        "--tag", help="suffix of this run's row names (keeps other runs' rows of a variant)"
    )
    parser.add_argument("--single", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--single-config", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.eval_users = 1, 0, 32
        args.set = ["train.batch_size=16", *args.set]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.list:
        for name, bench in CONFIGS.items():
            print(f"{name}: {bench.source} {' '.join(bench.overrides)}")
            for variant, spec in bench.variants.items():
                against = f" (fast path of {spec.reference})" if spec.reference else ""
                opt = " [opt-in]" if spec.opt_in else ""
                print(f"    {variant}: {' '.join(spec.overrides)}{against}{opt}")
        return
    if args.single:
        name, variant = args.single
        bench = CONFIGS[name]
        args.steps = min(args.steps, bench.max_steps or args.steps)
        cfg = run_config(bench, row_overrides(args, variant, bench))
        print(json.dumps(measure(cfg, bench, args)))
        return
    if args.single_config:
        name, *variants = args.single_config
        bench = CONFIGS[name]
        args.steps = min(args.steps, bench.max_steps or args.steps)
        cfgs = {v: run_config(bench, row_overrides(args, v, bench)) for v in variants}
        print(json.dumps(measure_interleaved(cfgs, bench, args)))
        return
    unknown = [c for c in args.configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; known: {', '.join(CONFIGS)}")

    env = [f"{k}={os.environ[k]}" for k in ENV_KEYS if k in os.environ]
    command = shlex.join([*env, Path(sys.executable).name, *sys.argv])
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"# {command}\n# {json.dumps(machine(args.device))}")
    print(
        f"{'row':58} {'tok/s':>9} {'speedup':>8} {'step s':>8} {'of peak':>8} "
        f"{'eval u/s':>9} {'peak MiB':>9}"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.configs:
        bench = CONFIGS[name]
        variants = [
            v
            for v, spec in bench.variants.items()
            if (v in args.variants if args.variants else not spec.opt_in)
        ]
        tag = f"-{args.tag}" if args.tag else ""
        if args.interleave:
            results = child(["--single-config", name, *variants])
            rows = {v: (f"train-{name}-{v}{tag}-interleaved", results) for v in variants}
        else:
            rows = {v: (f"train-{name}-{v}{tag}", None) for v in variants}
        rate: dict[str, float] = {}
        for variant, (row_name, results) in rows.items():
            if results is None:
                results = child(["--single", name, variant])
            if isinstance(results, str):
                print(f"{row_name:58} failed: {results}", flush=True)
                continue
            metrics = results[variant] if args.interleave else results
            rate[variant] = metrics["tokens_per_s"]
            reference = bench.variants[variant].reference or variant
            speedup = rate[variant] / rate[reference] if reference in rate else None
            first = next(iter(rate))  # the config's first row, e.g. the plain full softmax
            record = {
                "name": row_name,
                "config": name,
                "variant": variant,
                "reference": reference,
                "overrides": row_overrides(args, variant, bench),
                "metrics": metrics,
                "speedup": speedup,
                "speedup_vs": {"row": first, "value": rate[variant] / rate[first]},
                "fraction_of_peak": metrics["fraction_of_peak"],
                "command": command,
                "commit": commit(),
                "machine": machine(args.device),
                "date": date,
            }
            (args.out / f"{row_name}.json").write_text(json.dumps(record, indent=1) + "\n")
            shown = f"{speedup:8.2f}" if speedup is not None else f"{'-':>8}"
            print(
                f"{row_name:58} {metrics['tokens_per_s']:9.0f} {shown} "
                f"{metrics['step_s']:8.3f} {metrics['fraction_of_peak']:8.1%} "
                f"{metrics['eval_users_per_s']:9.0f} {metrics['peak_rss_mib']:9.0f}",
                flush=True,
            )


def child(extra: list[str]) -> Any:
    """Run this script again with ``extra``: its last stdout line (JSON), or the error."""
    proc = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], *extra], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
