"""One training loop for every objective: AdamW, warm-up, clipping, EMA, bf16, checkpoints, resume, DDP.

A run is a folder: config.yaml, metrics.jsonl, checkpoint.safetensors, previews/, and at the end
loss.png and the samples (grid or scatter, trajectory.gif, samples.npz); with
``train.log=tensorboard`` also tensorboard/, the same metrics and pictures as TensorBoard events
(training/tensorboard_log.py). ``train(cfg, run_dir)`` starts a run; ``train(None, run_dir,
resume=True)`` continues a killed one from its checkpoint.

A run folder is never silently destroyed: a new run refuses a folder that holds another one unless
``overwrite=True`` (``--overwrite``), and a resume refuses a folder without a checkpoint. Every file
is written atomically (``files.atomic_path``) or, for metrics.jsonl, appended a line at a time; a
resume drops a torn last line and the lines of steps after the checkpoint (trained again), and
rewrites config.yaml only once the checkpoint has loaded. Temporary files of killed writes are
removed at the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
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
from difusion.errors import CheckpointError, ConfigError, DifusionError, TrainingError
from difusion.files import FileWriteError, append_line, complete_lines, remove_stale, write_text
from difusion.nn import num_parameters
from difusion.precision import autocast_dtype
from difusion.sampling.pipeline import bar_interval
from difusion.training import distributed
from difusion.training.ema import EMA
from difusion.training.objectives import build_objective
from difusion.training.schedule import lr_factor
from difusion.training.tensorboard_log import TENSORBOARD_DIR, TensorBoardLog, require_tensorboard
from difusion.viz import plot_loss

__all__ = ["CHECKPOINT", "RunResult", "load_run_config", "train"]

# For tests and debugging: with DIFUSION_TRACE_BATCHES=FOLDER every rank appends, each step, the
# dataset indices of the examples it trained on to FOLDER/batches-rank{rank}.jsonl.
TRACE_ENV = "DIFUSION_TRACE_BATCHES"


@dataclass
class RunResult:
    run_dir: Path
    step: int
    seconds: float
    images_per_second: float
    final_loss: float | None
    outputs: dict
    stopped: bool = False  # stopped early (Ctrl-C, SIGTERM) with a checkpoint saved: resumable


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


# Any of these in a folder: it holds a run (a new run refuses it unless asked to overwrite).
RUN_MARKERS = ("config.yaml", CHECKPOINT, "metrics.jsonl")
# What --overwrite deletes before the new run starts: the files that say what the old run was
# (besides config.yaml, rewritten) and its previews/. Other files stay; cached samples in eval-*/
# older than the new checkpoint are drawn again (runs.samples_for_eval).
OLD_RUN_FILES = (
    CHECKPOINT,
    "metrics.jsonl",
    "report.md",
    "loss.png",
    "samples.npz",
    "samples.png",
    "samples_scatter.png",
    "trajectory.gif",
    "measures.json",
    "scores.json",
)


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def check_run_folder(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, a resume without a checkpoint and a new run into a
    folder that holds another run (unless ``overwrite``)."""
    if resume:
        if not (run_dir / CHECKPOINT).is_file():
            raise CheckpointError(
                f"{run_dir} has no checkpoint yet (the run stopped before its first one); start "
                f"it again with `difusion train {_q(run_dir / 'config.yaml')} --out {_q(run_dir)} "
                "--overwrite`"
            )
        return
    held = [name for name in RUN_MARKERS if (run_dir / name).exists()]
    if held and not overwrite:
        again = (
            f"resume it with `difusion train --resume {_q(run_dir)}`, "
            if CHECKPOINT in held
            else ""
        )
        raise DifusionError(
            f"{run_dir} already holds a run ({', '.join(held)}); {again}choose another --out, or "
            "add --overwrite to replace it"
        )


def _clear_old_run(run_dir: Path) -> None:
    """--overwrite: delete the old run's files (:data:`OLD_RUN_FILES`), previews and TensorBoard
    events."""
    for name in OLD_RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for folder, pattern in (("previews", "step_*.png"), (TENSORBOARD_DIR, "events.out.tfevents.*")):
        if (run_dir / folder).is_dir():
            for p in (run_dir / folder).glob(pattern):
                p.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # not empty: someone else's files, kept
                (run_dir / folder).rmdir()


def _trim_metrics(path: Path, step: int) -> None:
    """On resume: keep the complete records up to the checkpoint's ``step``. A torn last line (a
    kill in mid-write) and the records of later steps, which the resumed run logs again, go."""
    lines = complete_lines(path)
    kept = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            record = json.loads(line)
            at = record.get("step", 0) if isinstance(record, dict) else None
            if isinstance(at, int | float) and at <= step:
                kept.append(line)
    text = "".join(line + "\n" for line in kept)
    if not path.is_file() or path.read_bytes() != text.encode():
        write_text(path, text)


def _checkpoint_note(run_dir: Path) -> str:
    """What survives a failed run: the step of the intact checkpoint, or that there is none."""
    try:
        _, info = load_checkpoint(run_dir / CHECKPOINT, prefixes=())
    except CheckpointError:
        return "no checkpoint was written yet"
    return (
        f"the checkpoint of step {info['meta'].get('step')} is intact: "
        f"`difusion train --resume {_q(run_dir)}` goes on from it"
    )


def train(
    cfg: Config | None,
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    final_samples: bool = True,
) -> RunResult:
    """Train the diffusion model of ``cfg`` into ``run_dir`` (Ho et al. 2020, Algorithm 1).

    With ``resume=True`` the config and all state come from ``run_dir``'s checkpoint; ``cfg``, if
    given, replaces the stored config (for example to extend ``train.minutes``). A new run refuses
    a folder that holds another run unless ``overwrite=True``, which deletes the old run's
    checkpoint, metrics, report, pictures and samples first. A run stopped by Ctrl-C or SIGTERM
    saves a checkpoint and returns with ``stopped=True``.
    """
    run_dir = Path(run_dir)
    stored = None
    if resume and overwrite:
        raise ConfigError("--overwrite starts a new run; it cannot be combined with --resume")
    if resume:
        stored = load_run_config(run_dir)
        cfg = cfg or stored
    if cfg is None:
        raise ConfigError("train() needs a config, or resume=True with a run folder")
    if cfg.train.steps is None and cfg.train.minutes is None:
        raise ConfigError("set train.steps or train.minutes (e.g. --minutes 10) so the run can end")
    if cfg.train.log == "tensorboard":
        require_tensorboard()
    check_run_folder(run_dir, resume=resume, overwrite=overwrite)
    d = distributed.setup()
    device = distributed.default_device()
    try:
        threads = cfg.train.threads or max(1, (os.cpu_count() or 1) // max(1, d.world_size))
        if device.type == "cpu":
            torch.set_num_threads(threads)
        with contextlib.ExitStack() as closing:  # the TensorBoard writer, however the run ends
            return _train(
                cfg,
                stored,
                run_dir,
                d,
                device,
                overwrite,
                progress and d.is_main,
                final_samples,
                closing,
            )
    except FileWriteError as e:  # no space, read-only, permission: say what is left
        raise FileWriteError(f"{e}; {_checkpoint_note(run_dir)}") from None
    finally:
        distributed.teardown(d)


def _train(
    cfg: Config,
    stored: Config | None,
    run_dir: Path,
    d,
    device,
    overwrite: bool,
    progress: bool,
    final_samples: bool,
    closing: contextlib.ExitStack,
) -> RunResult:
    resume = stored is not None
    tc = cfg.train
    torch.manual_seed(tc.seed)
    objective = build_objective(cfg, device)
    network = objective.network
    ema = EMA(network, tc.ema_decay)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=tc.lr, betas=(0.9, tc.adam_beta2), weight_decay=tc.weight_decay
    )
    amp = autocast_dtype(tc.precision, device)
    # Separate random streams: which examples are drawn, and the t / eps of the loss. The data
    # stream is one for all ranks: each draws the global batch and keeps its rows (distributed.py).
    data_gen = torch.Generator().manual_seed(tc.seed * 1000)
    loss_gen = torch.Generator().manual_seed(tc.seed * 1000 + 500 + d.rank)
    global_batch = distributed.global_batch_size(tc.batch_size, d)
    trace = os.environ.get(TRACE_ENV)  # a folder: each rank logs the examples it trained on
    step, elapsed = 0, 0.0
    window_loss, window_n = 0.0, 0  # the loss summed since the last metrics line
    ckpt_path = run_dir / CHECKPOINT
    metrics_path = run_dir / "metrics.jsonl"

    if resume:
        groups, info = load_checkpoint(ckpt_path)
        load_module(network, groups["model"], ckpt_path)
        load_module(ema.model, groups["ema"], ckpt_path)
        restore_optimizer(optimizer, groups.get("optim", {}), info)
        objective.load_state(groups.get("objective", {}))
        meta = info["meta"]
        step, elapsed = int(meta["step"]), float(meta["elapsed"])
        # a resumed run logs the same averages as one never stopped
        window_loss, window_n = float(meta.get("window_loss", 0.0)), int(meta.get("window_n", 0))
        rng = groups.get("rng", {})
        if "data" in rng:  # the shared data stream goes on where rank 0 saved it, on every rank
            data_gen.set_state(rng["data"])
        else:
            data_gen.manual_seed(tc.seed * 1000 + 7919 * step)
        if d.rank == 0 and "loss" in rng:  # other ranks re-derive their loss stream from the step
            loss_gen.set_state(rng["loss"])
        else:
            loss_gen.manual_seed(tc.seed * 1000 + 500 + d.rank + 7919 * step)
        if d.is_main:  # the checkpoint loaded: now the folder may change
            remove_stale(run_dir)
            _trim_metrics(metrics_path, step)
            if cfg.to_dict() != stored.to_dict():
                save_config(cfg, run_dir / "config.yaml")
    elif d.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale(run_dir)
        if overwrite:
            _clear_old_run(run_dir)
        save_config(cfg, run_dir / "config.yaml")
        write_text(metrics_path, "")
    board: TensorBoardLog | None = None  # rank 0 of a train.log=tensorboard run
    if d.is_main and tc.log == "tensorboard":
        board = TensorBoardLog(run_dir, resume_step=step if resume else None)
        closing.callback(board.close)

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

    saved_step: int | None = step if resume else None

    def checkpoint() -> None:
        nonlocal saved_step
        if not d.is_main:
            return
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
                "window_loss": window_loss,
                "window_n": window_n,
                "params": num_parameters(network),
                "objective": cfg.objective,
                **objective.meta(),
            },
        )
        saved_step = step
        if board is not None:
            board.flush()

    def log(record: dict) -> None:
        if d.is_main:
            append_line(metrics_path, json.dumps(record))
            if board is not None:
                board.scalars(record)

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
    window_t = time.perf_counter()
    last_loss: float | None = None
    last_ckpt = time.perf_counter()
    images_seen = 0
    train_start = time.perf_counter()
    start_elapsed = elapsed
    network.train()
    stopped = False
    with _StopSignal() as stop:
        while True:
            now = time.perf_counter()
            elapsed = start_elapsed + (now - train_start)
            p, stop_flag = distributed.broadcast_floats(
                [progress_of(step, elapsed), float(stop.requested)], d, device
            )
            if p >= 1.0 or stop_flag > 0:
                stopped = p < 1.0  # Ctrl-C or SIGTERM before the budget was spent
                break
            for group in optimizer.param_groups:
                group["lr"] = tc.lr * lr_factor(step, p, tc.warmup_steps, tc.min_lr_ratio)

            batch = distributed.local_part(objective.batch(data_gen, global_batch), d)
            if trace:
                rows = distributed.local_part(objective.last_indices, d)
                append_line(
                    Path(trace) / f"batches-rank{d.rank}.jsonl",
                    json.dumps({"step": step + 1, "indices": rows.tolist()}),
                )
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
                preview = run_dir / "previews" / f"step_{step:07d}.png"
                objective.preview(ema.model, preview, amp)
                if board is not None:
                    board.image("preview", preview, step)
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
        if final_samples and not stopped:
            outputs.update(objective.finish(ema.model, run_dir, amp, progress))
        if board is not None:  # the final pictures; the loss curve is the scalar 'loss'
            for key, path in outputs.items():
                if key != "loss_plot" and isinstance(path, str | Path):
                    board.image(Path(path).stem, path, step)  # samples, samples_scatter, ...
            board.flush()
        _write_report(
            cfg, objective, run_dir, step, elapsed, rate, last_loss, n_params, amp, outputs, d,
            stopped=stopped,
        )  # fmt: skip
    return RunResult(run_dir, step, elapsed, rate, last_loss, outputs, stopped)


def _write_report(
    cfg, objective, run_dir: Path, step, elapsed, rate, last_loss, n_params, amp, outputs, d, *,
    stopped: bool,
):  # fmt: skip
    again = (
        f"stopped early (Ctrl-C or SIGTERM); resume with `difusion train --resume {_q(run_dir)}`"
    )
    lines = [
        f"# Run {run_dir.name}",
        "",
        f"- preset/config: {cfg.name}; objective: {cfg.objective}; data: {cfg.data.name}; "
        f"{n_params / 1e6:.2f}M parameters",
        f"- steps: {step}; wall time: {elapsed / 60:.1f} min; {rate:.0f} images/s; "
        f"precision: {'bf16 autocast' if amp else 'fp32'}; processes: {d.world_size}",
        f"- last logged loss: {last_loss:.4f}" if last_loss is not None else "- no loss logged",
        *([f"- {again}"] if stopped else []),
        *objective.report_lines(),
        "",
    ]
    for key, p in outputs.items():
        if Path(p).suffix in (".png", ".gif"):
            lines.append(f"![{key}]({Path(p).name})")
    write_text(run_dir / "report.md", "\n".join(lines) + "\n")
