"""Training the runs an experiment needs: one rule for "finished", one function that trains a run
unless it is finished (every experiment calls :func:`train_run`), and training side by side.

A run is finished when training ran to its end: report.md is there and so is the last thing the
objective writes once it has (:data:`FINAL_OUTPUT`: the samples of a diffusion or flow run, the
measures of an autoencoder, the scores of a segmentation U-Net). A run stopped by Ctrl-C, SIGTERM
or a kill has a config and a checkpoint (and after Ctrl-C a report), never that last output: it is
resumed from its checkpoint. A folder with no checkpoint is trained from the start."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from difusion.errors import DifusionError

# what an objective writes last, after its final step (others: samples.npz)
FINAL_OUTPUT = {"autoencoder": "measures.json", "segmentation": "scores.json"}


def finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run that trained to its end (the one rule; see the module)."""
    from difusion.config import load_run_config

    run_dir = Path(run_dir)
    if not (run_dir / "report.md").is_file() or not (run_dir / "config.yaml").is_file():
        return False
    objective = load_run_config(run_dir).objective
    return (run_dir / FINAL_OUTPUT.get(objective, "samples.npz")).is_file()


@contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on ``run_dir`` while training it, so two experiments that share a run
    (started side by side) train it once: the second waits, then finds it finished."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; run experiments one at a time there
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_run(preset: str, overrides: list[str], run_dir: str | Path, progress: bool = True) -> str:
    """Reuse ``run_dir`` if finished, resume it from its checkpoint, or train it from ``preset`` and
    ``overrides``; returns "reused", "resumed" or "trained". Raises DifusionError when the training
    stopped before its end (the checkpoint is saved: running the experiment again resumes it)."""
    from difusion.checkpoint import CHECKPOINT
    from difusion.config import load_config
    from difusion.training.loop import train

    run_dir = Path(run_dir)
    with run_lock(run_dir):
        if finished(run_dir):
            return "reused"
        if (run_dir / CHECKPOINT).exists():
            train(None, run_dir, resume=True, progress=progress)
            state = "resumed"
        else:  # the experiment's own folder: a run killed before its first checkpoint starts over
            train(load_config(preset, overrides), run_dir, progress=progress, overwrite=True)
            state = "trained"
        if not finished(run_dir):
            raise DifusionError(
                f"training of {run_dir} was stopped before its end (checkpoint saved); run the "
                "experiment again to resume it"
            )
    return state


def train_timed(preset: str, overrides: list[str], run_dir: Path, progress: bool = True) -> float:
    """:func:`train_run`, and the seconds the run's training took, kept beside it in
    train_seconds.txt so that a rerun that reuses the run still reports them (nan for a run
    trained by hand)."""
    import time

    stamp = Path(run_dir) / "train_seconds.txt"
    started = time.perf_counter()
    if train_run(preset, overrides, run_dir, progress) != "reused":
        stamp.write_text(f"{time.perf_counter() - started:.1f}\n")
    return float(stamp.read_text()) if stamp.exists() else float("nan")


def train_side_by_side(runs: dict[Path, tuple[str, list[str]]], jobs: int) -> None:
    """Train the unfinished ``runs`` (folder -> (preset, overrides)) in up to ``jobs`` processes at
    once (a GPU or a many-core machine has room for several small runs)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    todo = {str(d): spec for d, spec in runs.items() if jobs > 1 and not finished(d)}
    if len(todo) < 2:
        return
    # spawn, not fork: a forked child cannot use a CUDA context its parent already opened
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        futures = [pool.submit(train_run, p, o, d, False) for d, (p, o) in todo.items()]
        for f in futures:
            f.result()
