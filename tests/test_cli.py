"""The command line end to end on tiny settings: train, kill, resume, sample, and one-line errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

TINY = [
    "model.base_channels=8",
    "model.channel_mult=[1,2]",
    "model.attention_levels=[1]",
    "model.num_res_blocks=1",
    "model.num_heads=2",
    "diffusion.T=40",
    "sample.n=8",
    "train.sample_every=0",
    "train.precision=fp32",
    "train.log_every=5",
    "train.threads=1",
]


def difusion(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "difusion.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
        **kw,
    )


def checkpoint_step(run):
    from difusion.checkpoint import load_checkpoint

    return load_checkpoint(run / "checkpoint.safetensors", prefixes=())[1]["meta"]["step"]


def assert_one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("difusion: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0]


def test_help_explains_itself():
    out = difusion("--help").stdout
    assert "train" in out and "sample" in out and "t = T is noise" in out
    out = difusion("train", "--help").stdout
    assert "--minutes" in out and "--resume" in out and "section.key=value" in out


def test_unknown_config_key_is_one_line(tmp_path):
    proc = difusion("train", "digits", "train.stepz=3", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "train.stepz", "batch_size")


def test_missing_dataset_is_one_line(tmp_path):
    env = {"DIFUSION_DATA": str(tmp_path / "none"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = difusion("train", "mnist", "--steps", "2", "--out", str(tmp_path / "r"), env=env)
    assert_one_line_error(proc, "mnist", "difusion datasets download mnist")


def test_corrupt_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    proc = difusion(
        "train", "digits", "--steps", "3", "--no-samples", "--quiet", "--out", str(run), *TINY
    )
    assert proc.returncode == 0, proc.stderr
    ckpt = run / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    assert_one_line_error(difusion("sample", str(run)), "corrupt or truncated")
    assert_one_line_error(difusion("train", "--resume", str(run)), "corrupt or truncated")
    assert_one_line_error(difusion("sample", str(tmp_path)), "not a run folder")


def test_train_kill_resume_sample(tmp_path):
    run = tmp_path / "run"
    # 1. A long run that checkpoints every ~0.1 s; SIGKILL it once a checkpoint exists.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "difusion.cli",
            "train",
            "digits",
            "--steps",
            "100000",
            "--quiet",
            "--out",
            str(run),
            "train.checkpoint_minutes=0.002",
            *TINY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (
        (run / "checkpoint.safetensors").exists() and checkpoint_step(run) >= 5
    ):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint_step(run)
    assert killed_at >= 5

    # 2. Resume with a step target a little further on: it continues from the checkpoint.
    target = killed_at + 12
    proc2 = difusion("train", "--resume", str(run), f"train.steps={target}", "--quiet")
    assert proc2.returncode == 0, proc2.stderr
    assert checkpoint_step(run) == target
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps.count(1) == 1  # the step counter did not restart at 1
    assert killed_at < max(steps) <= target  # logging went on after the resume
    assert (run / "samples.png").exists() and (run / "loss.png").exists()

    # 3. Ctrl-C (SIGINT) saves a checkpoint and exits with 75 (resumable), saying how to resume.
    proc3 = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "difusion.cli",
            "train",
            "--resume",
            str(run),
            "--quiet",
            "train.steps=100000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120  # interrupt once training runs (not during the imports)
    while time.time() < deadline and checkpoint_step(run) <= target:
        time.sleep(0.2)
    proc3.send_signal(signal.SIGINT)
    out, err = proc3.communicate(timeout=120)
    assert proc3.returncode == 75, err
    assert "--resume" in err
    assert checkpoint_step(run) > target

    # 4. Sampling needs no training flag; a sample depends on its seed, not on the batch.
    a = difusion(
        "sample", str(run), "--n", "4", "--seed", "3", "--quiet", "--out", str(tmp_path / "a")
    )
    b = difusion(
        "sample", str(run), "--n", "2", "--seed", "4", "--quiet", "--out", str(tmp_path / "b")
    )
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    xa = np.load(tmp_path / "a" / "samples.npz")
    xb = np.load(tmp_path / "b" / "samples.npz")
    assert xa["images"].shape == (4, 1, 8, 8) and xa["images"].dtype == np.float32
    assert xa["images"].min() >= -1 and xa["images"].max() <= 1
    assert list(xa["seeds"]) == [3, 4, 5, 6]
    np.testing.assert_allclose(xa["images"][1:3], xb["images"], atol=1e-5)
    assert not np.allclose(xa["images"][0], xa["images"][1])
    assert (tmp_path / "a" / "trajectory.gif").exists() and (
        tmp_path / "a" / "samples.png"
    ).exists()

    # 5. DDIM with eta = 0 is deterministic given x_T, and differs from ancestral sampling.
    ddim = [
        difusion(
            "sample",
            str(run),
            "--n",
            "2",
            "--seed",
            "3",
            "--sampler",
            "ddim",
            "--steps",
            "10",
            "--quiet",
            "--out",
            str(tmp_path / f"d{i}"),
        )
        for i in (1, 2)
    ]
    assert all(p.returncode == 0 for p in ddim), ddim[0].stderr
    d1, d2 = (np.load(tmp_path / f"d{i}" / "samples.npz")["images"] for i in (1, 2))
    np.testing.assert_array_equal(d1, d2)
    assert not np.allclose(d1, xa["images"][:2], atol=1e-3)
    assert_one_line_error(difusion("sample", str(run), "--sampler", "dpm"), "unknown sampler")


def test_nan_loss_is_one_line(tmp_path):
    proc = difusion(
        "train",
        "digits",
        "--steps",
        "30",
        "--quiet",
        "--out",
        str(tmp_path / "r"),
        "train.lr=1e9",
        *TINY,
    )
    assert_one_line_error(proc, "the loss became nan", "lower train.lr", "no checkpoint")
