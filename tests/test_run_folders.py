"""Run folders are never silently destroyed (issue 24): a resume without a checkpoint and a new run
over an old one refuse and change nothing; config.yaml is checked on read; a torn metrics line, a
stale temporary file, a full disk and a stale samples cache are all survived; a run stopped by
SIGTERM exits 75 and resumes."""

import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from difusion import files
from difusion.checkpoint import load_checkpoint
from difusion.config import load_config, load_run_config
from difusion.errors import EXIT_STOPPED, CheckpointError, ConfigError, DifusionError
from difusion.files import FileWriteError
from difusion.training.loop import train

TINY = ["train.steps=5", "train.sample_every=0", "train.log_every=1", "train.threads=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny_run(run: Path, *extra: str) -> Path:
    train(load_config("toy2d", [*TINY, *extra]), run, progress=False, final_samples=False)
    return run


def hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) and the SHA-256 of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def step_of(run: Path) -> int:
    return load_checkpoint(run / "checkpoint.safetensors", prefixes=())[1]["meta"]["step"]


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp-*")]


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``difusion ARGS`` in this process (no second start-up of torch): exit code, stdout, stderr."""
    from difusion.cli import main

    monkeypatch.setattr(sys, "argv", ["difusion", *map(str, args)])
    with pytest.raises(SystemExit) as e:
        main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


def assert_one_line(code: int, err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("difusion: error:"), err
    for w in words:
        assert w in lines[0], lines[0]


def logged(run: Path) -> bool:
    return (run / "metrics.jsonl").is_file() and bool((run / "metrics.jsonl").read_text().strip())


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- refusals that change nothing --------------------------------------------------------------


def test_resume_without_checkpoint_refuses_and_changes_nothing(tmp_path, monkeypatch, capsys):
    run = tiny_run(tmp_path / "run")
    (run / "checkpoint.safetensors").unlink()  # killed before its first checkpoint
    before = hashes(run)
    with pytest.raises(CheckpointError, match="no checkpoint yet"):
        train(None, run, resume=True, progress=False)
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run), "--quiet")
    assert_one_line(code, err, "no checkpoint yet", f"--out {run} --overwrite")
    assert hashes(run) == before  # metrics.jsonl, loss.png, report.md, config.yaml untouched
    # the command it suggests starts the run over
    code, _, err = cli(
        monkeypatch, capsys, "train", str(run / "config.yaml"), "--out", str(run), "--overwrite",
        "--quiet", "--no-samples",
    )  # fmt: skip
    assert code == 0, err
    assert step_of(run) == 5 and load_run_config(run).name == "toy2d"


def test_new_run_refuses_a_folder_that_holds_a_run(tmp_path, monkeypatch, capsys):
    run = tiny_run(tmp_path / "run")
    before = hashes(run)
    with pytest.raises(DifusionError, match="already holds a run"):
        tiny_run(run)
    args = [
        "train",
        "toy2d",
        "--out",
        str(run),
        "--steps",
        "3",
        "--quiet",
        "--no-samples",
        *TINY[1:],
    ]
    code, _, err = cli(monkeypatch, capsys, *args)
    assert_one_line(code, err, "already holds a run", "--resume", "--overwrite")
    assert hashes(run) == before
    # a folder with only metrics.jsonl (or only config.yaml) holds a run too
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    with pytest.raises(DifusionError, match="already holds a run"):
        tiny_run(partial)
    # --overwrite replaces it: the old checkpoint, metrics and report go, the new run is fresh
    code, _, err = cli(monkeypatch, capsys, *args, "--overwrite")
    assert code == 0, err
    assert step_of(run) == 3
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    # an empty folder that exists is fine; --overwrite does not combine with --resume
    (tmp_path / "empty").mkdir()
    assert step_of(tiny_run(tmp_path / "empty")) == 5
    with pytest.raises(ConfigError, match="--overwrite"):
        train(None, run, resume=True, overwrite=True, progress=False)


def test_a_truncated_config_is_refused(tmp_path, monkeypatch, capsys):
    run = tiny_run(tmp_path / "run")
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text[: text.index("\nautoencoder:") + 1])  # cut short
    before = hashes(run)
    with pytest.raises(ConfigError, match="lacks autoencoder, segmentation, flow"):
        load_run_config(run)
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", str(run), "train.steps=8")
    assert_one_line(code, err, "config.yaml lacks autoencoder, segmentation, flow")
    assert hashes(run) == before
    (run / "config.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError, match="lacks objective, data, model"):
        load_run_config(run)


# -- files that are appended, cached, or left behind -------------------------------------------


def test_a_torn_metrics_line_is_dropped_on_resume(tmp_path):
    run = tiny_run(tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:  # logged after the checkpoint, then a torn line
        f.write('{"step": 6, "loss": 0.5}\n{"step": 7, "lo')
    config_before = (run / "config.yaml").read_bytes()
    train(None, run, resume=True, progress=False, final_samples=False)  # nothing left to train
    assert (run / "config.yaml").read_bytes() == config_before  # unchanged config: not rewritten
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5]
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 5.5, "lo')
    train(load_config(str(run / "config.yaml"), ["train.steps=8"]), run, resume=True,
          progress=False, final_samples=False)  # fmt: skip
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert load_run_config(run).train.steps == 8  # the changed config is saved


def test_stale_temporary_files_are_removed_at_the_next_start(tmp_path):
    run = tiny_run(tmp_path / "run")
    pid = dead_pid()
    stale = [run / f".checkpoint.safetensors.tmp-{pid}", run / "previews" / f".x.png.tmp-{pid}"]
    mine = run / f".notes.txt.tmp-{os.getppid()}"  # a write of a live process: kept
    for p in [*stale, mine]:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"half a file")
    train(None, run, resume=True, progress=False, final_samples=False)
    assert not any(p.exists() for p in stale) and mine.exists()
    mine.unlink()
    (run / f".metrics.jsonl.tmp-{pid}").write_text("{")
    train(load_config("toy2d", TINY), run, overwrite=True, progress=False, final_samples=False)
    assert temp_files(run) == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    files.write_text(target, "old\n")

    def full_disk(self, data):
        Path.write_bytes(self, data[:3] if isinstance(data, bytes) else data[:3].encode())
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(FileWriteError) as e:
        files.write_text(target, "new and longer\n")
    assert str(target) in str(e.value) and "free some disk space" in str(e.value)
    assert "\n" not in str(e.value)
    monkeypatch.undo()
    assert target.read_text() == "old\n" and temp_files(tmp_path) == []

    # an append that fails part-way is cut back to the last complete line
    log = tmp_path / "m.jsonl"
    files.append_line(log, '{"step": 1}')
    real_write = os.write

    def half_then_full(fd, data):
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(FileWriteError, match="No space left"):
        files.append_line(log, '{"step": 2}')
    monkeypatch.undo()
    assert log.read_text() == '{"step": 1}\n'


def test_a_full_disk_during_training_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    run = tiny_run(tmp_path / "run")
    before = hashes(run)
    real_write_bytes = Path.write_bytes

    def full_disk(self, data):  # half of the new checkpoint reaches the disk, then it is full
        if ".checkpoint.safetensors.tmp-" not in self.name:
            return real_write_bytes(self, data)
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full_disk)
    with pytest.raises(FileWriteError) as e:
        train(None, run, resume=True, progress=False)
    message = str(e.value)
    assert "checkpoint.safetensors" in message and "No space left" in message
    assert "checkpoint of step 5 is intact" in message and "\n" not in message
    assert hashes(run) == before and temp_files(run) == []


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="no file-size limit here")
def test_a_file_size_limit_is_one_line_and_tears_nothing(tmp_path):
    """A real OS error (EFBIG under RLIMIT_FSIZE) in a `difusion train` process: one line, the last
    checkpoint byte-identical, no temporary file; a run that never checkpointed says so."""
    run = tiny_run(tmp_path / "run")
    limit = (run / "checkpoint.safetensors").stat().st_size // 2

    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    def difusion(*args):
        return subprocess.run(
            [sys.executable, "-m", "difusion", "train", *args, "--quiet", "--no-samples"],
            capture_output=True, text=True, env=ENV, timeout=300, preexec_fn=limited,
        )  # fmt: skip

    before = hashes(run)
    proc = difusion("--resume", str(run), "--steps", "8")
    assert_one_line(proc.returncode, proc.stderr, "checkpoint.safetensors", "too large")
    assert "checkpoint of step 5 is intact" in proc.stderr
    assert hashes(run)["checkpoint.safetensors"] == before["checkpoint.safetensors"]
    assert hashes(run)["config.yaml"] != before["config.yaml"]  # steps=8, saved after the load
    assert temp_files(run) == [] and step_of(run) == 5

    fresh = tmp_path / "fresh"
    proc = difusion("toy2d", "--out", str(fresh), "--steps", "3", *TINY[1:])
    assert_one_line(proc.returncode, proc.stderr, "too large", "no checkpoint was written yet")
    assert temp_files(fresh) == [] and not (fresh / "checkpoint.safetensors").exists()


def test_a_stale_or_torn_samples_cache_is_drawn_again(tmp_path):
    from difusion.runs import cached_samples_fit

    ckpt = tmp_path / "checkpoint.safetensors"
    ckpt.write_bytes(b"x")
    npz = tmp_path / "samples.npz"
    images = np.zeros((4, 1, 8, 8), np.float32)
    np.savez(npz, images=images)
    assert cached_samples_fit(npz, 4, (1, 8, 8), ckpt)
    assert not cached_samples_fit(npz, 5, (1, 8, 8), ckpt)  # another count
    assert not cached_samples_fit(npz, 4, (1, 28, 28), ckpt)  # another shape
    npz.write_bytes(npz.read_bytes()[:100])  # torn
    assert not cached_samples_fit(npz, 4, (1, 8, 8), ckpt)
    np.savez(npz, images=images + np.nan)
    assert not cached_samples_fit(npz, 4, (1, 8, 8), ckpt)
    np.savez(npz, points=images)
    assert not cached_samples_fit(npz, 4, (1, 8, 8), ckpt)
    np.savez(npz, images=images)
    os.utime(ckpt, (time.time() + 10, time.time() + 10))  # trained on after the samples
    assert not cached_samples_fit(npz, 4, (1, 8, 8), ckpt)
    assert not cached_samples_fit(tmp_path / "none.npz", 4, (1, 8, 8), ckpt)


def test_pictures_and_samples_are_written_whole(tmp_path):
    """The savers write through a temporary file in the target's format (its name ends .tmp-PID)."""
    import torch

    from difusion.sampling.pipeline import Samples, write_samples

    x = torch.rand(4, 1, 8, 8) * 2 - 1
    frames = [np.zeros((8, 8, 3), np.uint8)] * 2
    written = write_samples(Samples(x=x, labels=None, frames=frames, seeds=[0, 1, 2, 3]), tmp_path)
    assert {p.name for p in written.values()} == {"samples.png", "trajectory.gif", "samples.npz"}
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "trajectory.gif").read_bytes()[:3] == b"GIF"
    assert np.load(tmp_path / "samples.npz")["images"].shape == (4, 1, 8, 8)
    assert temp_files(tmp_path) == []


# -- a run stopped early -----------------------------------------------------------------------


def test_sigterm_exits_75_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    args = ["--quiet", "--no-samples", "train.threads=1", "train.log_every=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "difusion", "train", "toy2d", "--out", str(run), "--minutes", "10",
         "train.sample_every=0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not logged(run):  # the loop runs: its handler is set
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err
    stopped = step_of(run)
    assert err.strip().splitlines() == [
        f"difusion: stopped at step {stopped}; resume with `difusion train --resume {run}`"
    ]
    assert "done:" not in out and "stopped early" in (run / "report.md").read_text()
    resumed = subprocess.run(
        [sys.executable, "-m", "difusion", "train", "--resume", str(run), "--steps",
         str(stopped + 3), *args],
        capture_output=True, text=True, env=ENV, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert step_of(run) == stopped + 3
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == stopped + 3


def test_a_resume_logs_the_same_loss_averages_as_an_uninterrupted_run(tmp_path, monkeypatch):
    """metrics.jsonl averages the loss over log_every steps; a run stopped mid-window carries the
    window's sum and count in its checkpoint, so the next line equals the uninterrupted run's."""
    import difusion.training.loop as loop

    def cfg():
        overrides = ["train.steps=12", "train.checkpoint_minutes=0", "train.log_every=4"]
        return load_config("toy2d", [*overrides, "model.hidden=32", "model.depth=2"])

    loop.train(cfg(), tmp_path / "whole", progress=False, final_samples=False)
    real, calls = loop.save_checkpoint, []

    class Killed(BaseException):
        pass

    def dies_after_step_6(*args, **kwargs):
        calls.append(1)
        if len(calls) == 7:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "save_checkpoint", dies_after_step_6)
    with pytest.raises(Killed):
        loop.train(cfg(), tmp_path / "cut", progress=False, final_samples=False)
    monkeypatch.setattr(loop, "save_checkpoint", real)
    loop.train(None, tmp_path / "cut", resume=True, progress=False, final_samples=False)

    def losses(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [(r["step"], r["loss"]) for r in map(json.loads, lines) if "loss" in r]

    assert [s for s, _ in losses(tmp_path / "whole")] == [1, 4, 8, 12]
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")


def assert_family_cli(monkeypatch, capsys, run, out):
    """`difusion sample` and `difusion eval` of a one-pass family's run (nflow, hvae) reach its own
    sampler and measures, and a diffusion-only flag is refused in one line."""
    code, text, _ = cli(monkeypatch, capsys, "sample", run, "--n", "4", "--out", out)
    assert code == 0 and (out / "samples.npz").is_file(), text
    code, text, _ = cli(monkeypatch, capsys, "eval", run, "--n", "20")
    assert code == 0 and "bits/dim" in text, text
    assert_one_line(*cli(monkeypatch, capsys, "sample", run, "--steps", "3")[::2], "--steps")
