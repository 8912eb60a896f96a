"""Training throughput: the full training loop against the bare network step, per variant and batch.

- bare: forward + backward + AdamW step of the objective's network on one fixed batch (the loss of
  Ho et al. 2020, Algorithm 1: draw t and eps, regress eps), nothing else;
- loop: ``difusion.training.loop.train`` itself (drawing batches, the learning-rate schedule, grad
  clipping, EMA, loss.item(), logging to metrics.jsonl every ``log_every`` steps, the progress bar).

The loop's rate comes from its own metrics.jsonl: (steps between the first and the last logged
record after warm-up) x batch / (the difference of their ``elapsed_s``), so everything the loop
does between those records is counted. Checkpoints are written every ``train.checkpoint_minutes``
(2 min), which no short measurement reaches: one save is timed separately and its share of that
interval is added (``overhead_with_ckpt_percent``).

Bare and loop alternate within each repeat, so machine noise hits both alike. Variants: fp32, bf16
(autocast), fp32-cl and bf16-cl (the network and its inputs in channels-last memory format).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from difusion.checkpoint import save_checkpoint
from difusion.config import Config, load_config
from difusion.precision import autocast_dtype
from difusion.training import loop as loop_module
from difusion.training.ema import EMA
from difusion.training.objectives import build_objective

VARIANTS = ("fp32", "bf16", "fp32-cl", "bf16-cl")


def variant_config(preset: str, overrides: list[str], variant: str, batch: int) -> Config:
    """The preset's config with the variant's precision and batch size."""
    if variant not in VARIANTS:
        raise SystemExit(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    precision = variant.split("-")[0]
    return load_config(
        preset, [*overrides, f"train.precision={precision}", f"train.batch_size={batch}"]
    )


def _channels_last(objective) -> None:
    objective.network.to(memory_format=torch.channels_last)


@contextlib.contextmanager
def channels_last_loop(enabled: bool) -> Iterator[None]:
    """Make the training loop build its network in channels-last format (a benchmark-only patch)."""
    if not enabled:
        yield
        return
    original = loop_module.build_objective

    def build(cfg, device):
        objective = original(cfg, device)
        _channels_last(objective)
        return objective

    loop_module.build_objective = build
    try:
        yield
    finally:
        loop_module.build_objective = original


def bare_seconds_per_step(cfg: Config, variant: str, steps: int, warmup: int = 3) -> float:
    """Seconds per forward + backward + AdamW step of the objective's network on a fixed batch."""
    torch.manual_seed(cfg.train.seed)
    objective = build_objective(cfg, torch.device("cpu"))
    if variant.endswith("-cl"):
        _channels_last(objective)
    network = objective.network.train()
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-5)
    amp = autocast_dtype(cfg.train.precision, torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    batch = objective.batch(gen, cfg.train.batch_size)
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        loss, _ = objective.loss(network, batch, gen, amp)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def loop_seconds_per_step(
    cfg: Config, variant: str, steps: int, warmup: int = 3, log_every: int = 2
) -> float:
    """Seconds per step of the full training loop, from its metrics.jsonl (see the module doc)."""
    cfg.train.steps, cfg.train.minutes = warmup + steps, None
    cfg.train.log_every, cfg.train.sample_every = log_every, 0
    with tempfile.TemporaryDirectory() as d, channels_last_loop(variant.endswith("-cl")):
        loop_module.train(cfg, d, progress=False, final_samples=False)
        rows = [json.loads(line) for line in Path(d, "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["step"] >= warmup and "elapsed_s" in r]
    first, last = rows[0], rows[-1]
    return (last["elapsed_s"] - first["elapsed_s"]) / (last["step"] - first["step"])


def checkpoint_seconds(cfg: Config) -> float:
    """Wall time of one checkpoint save (model, EMA, AdamW state), as the loop writes it."""
    objective = build_objective(cfg, torch.device("cpu"))
    network = objective.network
    optimizer = torch.optim.AdamW(network.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    objective.loss(network, objective.batch(gen, cfg.train.batch_size), gen, None)[0].backward()
    optimizer.step()  # creates the moment buffers the loop's checkpoints carry
    ema = EMA(network, cfg.train.ema_decay)
    with tempfile.TemporaryDirectory() as d:
        start = time.perf_counter()
        save_checkpoint(
            Path(d) / "c.safetensors", model=network, ema=ema.model, optimizer=optimizer
        )
        return time.perf_counter() - start


def measure_throughput(
    preset: str,
    overrides: list[str],
    variants: list[str],
    batch_sizes: list[int],
    steps: int,
    repeats: int,
) -> list[dict]:
    """One row per (variant, batch): images/s of bare and loop, and the loop's overhead.

    Overhead (percent) = 100 (t_loop / t_bare - 1) per repeat, median over repeats; extra_ms is
    t_loop - t_bare per step (what the loop adds, in time)."""
    torch.set_num_threads(os.cpu_count() or 1)  # what the loop sets (train.threads unset)
    # one untimed pass first: one-off costs (allocator, kernel selection) hit no measured cell
    bare_seconds_per_step(
        variant_config(preset, overrides, variants[0], batch_sizes[0]), variants[0], 2
    )
    per: dict[tuple[str, int], dict[str, list[float]]] = {}
    for _ in range(repeats):
        for variant in variants:
            for batch in batch_sizes:
                acc = per.setdefault((variant, batch), {"bare": [], "loop": []})
                cfg = variant_config(preset, overrides, variant, batch)
                acc["bare"].append(bare_seconds_per_step(cfg, variant, steps))
                acc["loop"].append(loop_seconds_per_step(cfg, variant, steps))
    ckpt = checkpoint_seconds(variant_config(preset, overrides, "fp32", batch_sizes[0]))
    interval = 60.0 * load_config(preset, overrides).train.checkpoint_minutes
    rows = []
    for (variant, batch), acc in per.items():
        bare, loop = statistics.median(acc["bare"]), statistics.median(acc["loop"])
        overhead = statistics.median(
            100 * (tl / tb - 1) for tb, tl in zip(acc["bare"], acc["loop"], strict=True)
        )
        rows.append(
            {
                "variant": variant,
                "batch": batch,
                "bare_images_per_s": batch / bare,
                "loop_images_per_s": batch / loop,
                "bare_ms_per_step": 1e3 * bare,
                "loop_ms_per_step": 1e3 * loop,
                "extra_ms_per_step": 1e3 * (loop - bare),
                "overhead_percent": overhead,
                "checkpoint_s": ckpt,
                "overhead_with_ckpt_percent": overhead + 100 * ckpt / interval,
                "repeats": repeats,
                "steps": steps,
            }
        )
    return rows
