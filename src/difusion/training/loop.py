"""One training loop for every objective: AdamW, warm-up, clipping, EMA, bf16, checkpoints, resume, DDP.

A run is a folder: config.yaml, metrics.jsonl, checkpoint.safetensors, previews/, and at the end
loss.png and the samples (grid or scatter, trajectory.gif, samples.npz). ``train(cfg, run_dir)``
starts a run; ``train(None, run_dir, resume=True)`` continues a killed one from its checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from difusion.checkpoint import (
    CHECKPOINT,
    load_checkpoint,
    load_module,
    restore_optimizer,
    save_checkpoint,
)
from difusion.config import Config, load_run_config, save_config
from difusion.errors import ConfigError, TrainingError
from difusion.nn import num_parameters
from difusion.precision import autocast_dtype
from difusion.sampling.pipeline import bar_interval
from difusion.training import distributed
from difusion.training.ema import EMA
from difusion.training.objectives import build_objective
from difusion.training.schedule import lr_factor
from difusion.viz import plot_loss

__all__ = ["CHECKPOINT", "RunResult", "load_run_config", "train"]


@dataclass
class RunResult:
    run_dir: Path
    step: int
    seconds: float
    images_per_second: float
    final_loss: float | None
    outputs: dict


class _StopSignal:
    """Turns SIGINT/SIGTERM into a flag, so the loop saves a checkpoint and exits cleanly."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(ValueError):  # not in the main thread: no handler
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(
    cfg: Config | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    final_samples: bool = True,
) -> RunResult:
    """Train the diffusion model of ``cfg`` into ``run_dir`` (Ho et al. 2020, Algorithm 1).

    With ``resume=True`` the config and all state come from ``run_dir``'s checkpoint; ``cfg``, if
    given, replaces the stored config (for example to extend ``train.minutes``).
    """
    run_dir = Path(run_dir)
    d = distributed.setup()
    device = distributed.default_device()
    try:
        if resume:
            stored = load_run_config(run_dir)
            cfg = cfg or stored
        if cfg is None:
            raise ConfigError("train() needs a config, or resume=True with a run folder")
        if cfg.train.steps is None and cfg.train.minutes is None:
            raise ConfigError(
                "set train.steps or train.minutes (e.g. --minutes 10) so the run can end"
            )
        threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // max(1, d.world_size))
        if device.type == "cpu":
            torch.set_num_threads(threads)
        return _train(cfg, run_dir, d, device, resume, progress and d.is_main, final_samples)
    finally:
        distributed.teardown(d)


def _train(
    cfg: Config, run_dir: Path, d, device, resume: bool, progress: bool, final_samples: bool
) -> RunResult:
    tc = cfg.train
    torch.manual_seed(tc.seed)
    objective = build_objective(cfg, device)
    network = objective.network
    ema = EMA(network, tc.ema_decay)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=tc.lr, betas=(0.9, tc.adam_beta2), weight_decay=tc.weight_decay
    )
    amp = autocast_dtype(tc.precision, device)
    # Separate random streams: which examples are drawn, and the t / eps of the loss.
    data_gen = torch.Generator().manual_seed(tc.seed * 1000 + d.rank)
    loss_gen = torch.Generator().manual_seed(tc.seed * 1000 + 500 + d.rank)
    step, elapsed = 0, 0.0
    ckpt_path = run_dir / CHECKPOINT
    metrics_path = run_dir / "metrics.jsonl"

    if resume and ckpt_path.exists():
        groups, info = load_checkpoint(ckpt_path)
        load_module(network, groups["model"], ckpt_path)
        load_module(ema.model, groups["ema"], ckpt_path)
        restore_optimizer(optimizer, groups.get("optim", {}), info)
        objective.load_state(groups.get("objective", {}))
        meta = info["meta"]
        step, elapsed = int(meta["step"]), float(meta["elapsed"])
        rng = groups.get("rng", {})
        if d.rank == 0 and "data" in rng:  # other ranks re-derive theirs from the step
            data_gen.set_state(rng["data"])
            loss_gen.set_state(rng["loss"])
        else:
            data_gen.manual_seed(tc.seed * 1000 + d.rank + 7919 * step)
            loss_gen.manual_seed(tc.seed * 1000 + 500 + d.rank + 7919 * step)
    elif d.is_main:
        if ckpt_path.exists():
            raise ConfigError(
                f"{run_dir} already holds a run; resume it with --resume or pick --out"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text("")
    if d.is_main:
        save_config(cfg, run_dir / "config.yaml")

    model = network
    if d.enabled:
        model = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )

    def progress_of(step: int, elapsed: float) -> float:
        p = 0.0
        if tc.steps is not None:
            p = max(p, step / tc.steps)
        if tc.minutes is not None:
            p = max(p, elapsed / (60.0 * tc.minutes))
        return p

    saved_step: int | None = step if resume and ckpt_path.exists() else None

    def checkpoint() -> None:
        nonlocal saved_step
        if not d.is_main:
            return
        saved_step = step
        save_checkpoint(
            ckpt_path,
            model=network,
            ema=ema.model,
            optimizer=optimizer,
            rng={"data": data_gen.get_state(), "loss": loss_gen.get_state()},
            extra={"objective": objective.state()},
            meta={
                "step": step,
                "elapsed": elapsed,
                "params": num_parameters(network),
                "objective": cfg.objective,
                **objective.meta(),
            },
        )

    def log(record: dict) -> None:
        if d.is_main:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    n_params = num_parameters(network)
    if d.is_main and progress:
        budget = (f"{tc.steps} steps" if tc.steps else "") + (
            f"{' or ' if tc.steps else ''}{tc.minutes:g} min" if tc.minutes else ""
        )
        tqdm.write(
            f"difusion: {cfg.name}: {objective.describe()}, "
            f"{n_params / 1e6:.2f}M params, {'bf16' if amp else 'fp32'}, "
            f"{d.world_size} process(es), budget {budget}; run folder {run_dir}"
        )
    time_bar = tc.steps is None  # a time budget: the bar counts seconds of the budget
    bar = tqdm(
        total=int(60 * tc.minutes) if time_bar else tc.steps,
        initial=int(elapsed) if time_bar else step,
        desc="training",
        unit="s" if time_bar else "step",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=bar_interval(),
        bar_format="{l_bar}{bar}| {n}/{total} s of budget{postfix}" if time_bar else None,
    )
    window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
    last_loss: float | None = None
    last_ckpt = time.perf_counter()
    images_seen = 0
    train_start = time.perf_counter()
    start_elapsed = elapsed
    network.train()
    with _StopSignal() as stop:
        while True:
            now = time.perf_counter()
            elapsed = start_elapsed + (now - train_start)
            p, stop_flag = distributed.broadcast_floats(
                [progress_of(step, elapsed), float(stop.requested)], d, device
            )
            if p >= 1.0 or stop_flag > 0:
                break
            for group in optimizer.param_groups:
                group["lr"] = tc.lr * lr_factor(step, p, tc.warmup_steps, tc.min_lr_ratio)

            batch = objective.batch(data_gen)
            loss, extras = objective.loss(model, batch, loss_gen, amp)
            if not torch.isfinite(loss):
                hint = f"lower train.lr (now {tc.lr:g})"
                if amp is not None:
                    hint += " or set train.precision=fp32"
                saved = (
                    f"the last checkpoint (step {saved_step}) is in {run_dir}"
                    if saved_step is not None
                    else "no checkpoint was written yet"
                )
                raise TrainingError(
                    f"the loss became {loss.item()} at step {step}; {hint}; {saved}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), tc.grad_clip)
            optimizer.step()
            step += 1
            ema.update(network, step)
            images_seen += tc.batch_size * d.world_size

            window_loss += loss.item()
            window_n += 1
            if step % tc.log_every == 0 or step == 1:
                dt = time.perf_counter() - window_t
                last_loss = window_loss / window_n
                rate = window_n * tc.batch_size * d.world_size / max(dt, 1e-9)
                log(
                    {
                        "step": step,
                        "loss": last_loss,
                        "lr": optimizer.param_groups[0]["lr"],
                        "grad_norm": float(grad_norm),
                        "images_per_s": rate,
                        **extras,
                        "elapsed_s": round(start_elapsed + time.perf_counter() - train_start, 2),
                    }
                )
                bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{rate:.0f}", step=step)
                window_loss, window_n, window_t = 0.0, 0, time.perf_counter()
            if time_bar:
                bar.n = min(bar.total, int(start_elapsed + time.perf_counter() - train_start))
                bar.refresh() if step % 10 == 0 else None
            else:
                bar.update(1)
            if tc.sample_every and step % tc.sample_every == 0 and d.is_main:
                objective.preview(ema.model, run_dir / "previews" / f"step_{step:07d}.png", amp)
                network.train()
            if time.perf_counter() - last_ckpt > 60.0 * tc.checkpoint_minutes:
                elapsed = start_elapsed + (time.perf_counter() - train_start)
                checkpoint()
                last_ckpt = time.perf_counter()
        bar.close()
        elapsed = start_elapsed + (time.perf_counter() - train_start)
        if d.enabled:
            log(
                {
                    "step": step,
                    "ddp_world_size": d.world_size,
                    "ddp_max_param_diff": distributed.max_param_difference(network, d),
                }
            )
        checkpoint()
        interrupted = stop.requested

    seconds = time.perf_counter() - train_start
    rate = images_seen / max(seconds, 1e-9)
    outputs: dict = {}
    if d.is_main:
        if metrics_path.exists():
            outputs["loss_plot"] = plot_loss(
                metrics_path,
                run_dir / "loss.png",
                title=f"{cfg.name}: {objective.loss_label}",
            )
        if interrupted:
            tqdm.write(
                f"difusion: stopped at step {step}; checkpoint saved. Resume with: "
                f"difusion train --resume {run_dir}"
            )
        elif final_samples:
            outputs.update(objective.finish(ema.model, run_dir, amp, progress))
        _write_report(
            cfg, objective, run_dir, step, elapsed, rate, last_loss, n_params, amp, outputs, d
        )
    return RunResult(run_dir, step, elapsed, rate, last_loss, outputs)


def _write_report(
    cfg, objective, run_dir: Path, step, elapsed, rate, last_loss, n_params, amp, outputs, d
):
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- preset/config: {cfg.name}; objective: {cfg.objective}; data: {cfg.data.name}; "
        f"{n_params / 1e6:.2f}M parameters",
        f"- steps: {step}; wall time: {elapsed / 60:.1f} min; {rate:.0f} images/s; "
        f"precision: {'bf16 autocast' if amp else 'fp32'}; processes: {d.world_size}",
        f"- last logged loss: {last_loss:.4f}" if last_loss is not None else "- no loss logged",
        *objective.report_lines(),
        "",
    ]
    for key, p in outputs.items():
        if Path(p).suffix in (".png", ".gif"):
            lines.append(f"![{key}]({Path(p).name})")
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
