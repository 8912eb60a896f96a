"""Sampler overhead: each sampler's time per network evaluation against the bare forward pass.

A sampler should cost its network calls and nothing more. For each sampler this draws one batch
with a fixed number of steps (the preset's U-Net, random weights, bf16 autocast where the CPU has
it) and divides the wall time by the number of network evaluations; the bare forward pass of the
same batch is timed in between, so machine noise hits both alike. Guidance doubles the batch of
each call, so it is compared with a forward pass of twice the batch.

The difference of two noisy timings cannot resolve a 2% overhead on a busy 2-core machine, so the
sampler's own cost is also measured directly: the same sampler driven by a *null network* (it
returns zeros at once) spends all its time in the update arithmetic, the denoiser's conversions and
the per-image noise. That time per call, divided by the bare forward pass, is the overhead.

    python benchmarks/sampler_overhead.py                       # ddpm-fmnist, batch 64, 20 steps
    python benchmarks/sampler_overhead.py --batch 32 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from difusion.build import build_network, build_path
from difusion.config import load_config
from difusion.precision import autocast_dtype
from difusion.sampling import GuidedDenoiser, ModelDenoiser, PerImageNoise
from difusion.sampling.samplers import SAMPLERS, network_evaluations, run_sampler, timesteps_for


def measure(
    preset: str = "ddpm-fmnist",
    batch: int = 64,
    steps: int = 20,
    repeats: int = 3,
    overrides: tuple[str, ...] = (),
    verbose: bool = True,
) -> list[dict]:
    """One row per sampler: ms per network call, the bare forward pass, and the overhead (percent
    of a forward pass spent by the sampler driven by the null network)."""
    cfg = load_config(preset, [*overrides, "model.class_conditional=true"])
    shape = (1, 28, 28) if cfg.data.name != "digits" else (1, 8, 8)
    torch.manual_seed(0)
    net = build_network(cfg, shape, 10).eval()
    path = build_path(cfg)
    amp = autocast_dtype("auto", torch.device("cpu"))
    base = ModelDenoiser(net, path, "eps", clip_x0=True, autocast_dtype=amp)
    y = torch.arange(batch) % 10
    cases = [(name, base, 1) for name in SAMPLERS] + [
        ("dpmpp-2m + guidance", GuidedDenoiser(base, path, 2.0, 10, clip_x0=True), 2)
    ]

    def forward(batch: int) -> float:
        x = torch.randn(batch, *shape)
        t = torch.full((batch,), 500, dtype=torch.long)
        start = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", amp, enabled=amp is not None):
            net(x, t.float(), torch.arange(batch) % 10)
        return time.perf_counter() - start

    class NullNet(torch.nn.Module):
        """Costs nothing: what remains of a sampler's time is the sampler's own."""

        def forward(self, x, t, y=None):
            return torch.zeros_like(x)

    null = ModelDenoiser(NullNet(), path, "eps", clip_x0=True, autocast_dtype=amp)
    null_cases = {name: null for name, _, _ in cases}
    null_cases["dpmpp-2m + guidance"] = GuidedDenoiser(null, path, 2.0, 10, clip_x0=True)
    alone = {name: [] for name, _, _ in cases}

    for _ in range(3):  # warm-up
        forward(batch)
    per_call = {name: [] for name, _, _ in cases}
    bare = {1: [], 2: []}
    for _ in range(repeats):
        for name, den, _mult in cases:
            sampler = name.split(" ")[0]
            ts = timesteps_for(sampler, path, steps)
            noise = PerImageNoise(range(batch))
            x_T = noise.randn((batch, *shape))
            start = time.perf_counter()
            run_sampler(sampler, den, path, x_T, ts, eta=1.0, y=y, noise=noise.randn)
            per_call[name].append((time.perf_counter() - start) / network_evaluations(sampler, ts))
            x_T = noise.randn((batch, *shape))
            start = time.perf_counter()
            run_sampler(sampler, null_cases[name], path, x_T, ts, eta=1.0, y=y, noise=noise.randn)
            alone[name].append((time.perf_counter() - start) / network_evaluations(sampler, ts))
            for m in (1, 2):
                bare[m].append(statistics.median(forward(m * batch) for _ in range(3)))
    fwd = {m: statistics.median(v) for m, v in bare.items()}
    rows = []
    if verbose:
        print(f"{preset} U-Net ({sum(p.numel() for p in net.parameters()):,} parameters), "
              f"batch {batch}, {steps} steps, {'bf16' if amp else 'fp32'}, "
              f"median of {repeats}")  # fmt: skip
        print(f"{'sampler':<22} {'ms per call':>12} {'forward ms':>11} {'difference':>11} "
              f"{'sampler alone ms':>17} {'overhead':>9}")  # fmt: skip
    for name, _, mult in cases:
        t = statistics.median(per_call[name])
        diff = 100 * (t / fwd[mult] - 1)
        own = statistics.median(alone[name])
        over = 100 * own / fwd[mult]
        rows.append({"sampler": name, "ms_per_call": 1e3 * t, "forward_ms": 1e3 * fwd[mult],
                     "difference_percent": diff, "sampler_alone_ms": 1e3 * own,
                     "overhead_percent": over})  # fmt: skip
        if verbose:
            print(f"{name:<22} {1e3 * t:>12.1f} {1e3 * fwd[mult]:>11.1f} {diff:>10.1f}% "
                  f"{1e3 * own:>17.2f} {over:>8.2f}%")  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="ddpm-fmnist")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None, help="Also write the rows here.")
    args = ap.parse_args()
    rows = measure(args.preset, args.batch, args.steps, args.repeats)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
