"""Training throughput of a preset's network: images/s, fp32 against bf16 autocast, in one run.

Two measurements per precision, interleaved so machine noise hits both alike:
- bare:  forward + backward + AdamW step of the network alone, on random data;
- loop:  the real training loop (`difusion.training.loop.train`: data, EMA, logging, clipping).

    python benchmarks/train_throughput.py                    # ddpm-fmnist preset, batch 64
    python benchmarks/train_throughput.py --preset digits --steps 40 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from difusion.build import build_network, build_path
from difusion.config import load_config
from difusion.diffusion.losses import simple_loss
from difusion.nn import num_parameters
from difusion.training.loop import train


def bare_step_rate(cfg, shape, amp, steps: int) -> float:
    torch.manual_seed(0)
    net = build_network(cfg, shape, None)
    path = build_path(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.rand(cfg.train.batch_size, *shape) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    for i in range(steps + 5):  # 5 warm-up steps
        if i == 5:
            start = time.perf_counter()
        loss = simple_loss(net, path, x0, generator=gen, autocast_dtype=amp)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * cfg.train.batch_size / (time.perf_counter() - start)


def loop_rate(cfg, steps: int) -> float:
    cfg.train.steps, cfg.train.minutes = steps + 10, None
    cfg.train.log_every, cfg.train.sample_every = 5, 0
    with tempfile.TemporaryDirectory() as d:
        train(cfg, d, progress=False, final_samples=False)
        with open(f"{d}/metrics.jsonl") as f:
            rows = [json.loads(line) for line in f]
    # Skip the first 10 steps (warm-up); the rate of each later window of 5 steps.
    rates = [r["images_per_s"] for r in rows if r["step"] > 10]
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ddpm-fmnist")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    results: dict[str, list[float]] = {}
    shape = None
    for _ in range(args.repeats):
        for precision in ("fp32", "bf16"):
            cfg = load_config(
                args.preset, [f"train.precision={precision}", f"train.batch_size={args.batch_size}"]
            )
            if shape is None:
                from difusion.build import build_dataset

                shape = build_dataset(cfg).shape
            amp = torch.bfloat16 if precision == "bf16" else None
            results.setdefault(f"bare {precision}", []).append(
                bare_step_rate(cfg, shape, amp, args.steps)
            )
            results.setdefault(f"loop {precision}", []).append(loop_rate(cfg, args.steps))
    cfg = load_config(args.preset)
    n = num_parameters(build_network(cfg, shape, None))
    print(
        f"\npreset {args.preset}: data {shape}, {n / 1e6:.2f}M parameters, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"{'measurement':<12} {'images/s (median)':>18} {'all runs':>24}")
    for key, values in results.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"{key:<12} {statistics.median(values):>18.0f} {runs:>24}")
    fp32 = statistics.median(results["loop fp32"])
    bf16 = statistics.median(results["loop bf16"])
    print(
        f"bf16 / fp32 (loop): {bf16 / fp32:.2f}x; loop / bare (bf16): "
        f"{bf16 / statistics.median(results['bare bf16']):.2f}"
    )


if __name__ == "__main__":
    main()
