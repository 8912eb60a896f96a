"""DDP under torchrun (2 CPU processes, gloo): the ranks train on disjoint rows of one global batch,
and 2 ranks x batch b make the update of 1 process x batch 2b.

The loop's trace hook (``DIFUSION_TRACE_BATCHES=FOLDER``, training/loop.py) writes the dataset
indices each rank trained on, step by step, to FOLDER/batches-rank{r}.jsonl.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from difusion.checkpoint import load_checkpoint
from difusion.config import load_config
from difusion.training import distributed
from difusion.training.objectives import build_objective

STEPS, B = 6, 16  # steps, and the batch of each of 2 ranks
TOL = 1e-5  # |theta_DDP - theta_single|, largest over all parameters


def train(run, *args, nproc=1, trace=None):
    """`difusion train ... --out run`, under torchrun with ``nproc`` processes when nproc > 1."""
    launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if trace is not None:
        env["DIFUSION_TRACE_BATCHES"] = str(trace)
    proc = subprocess.run(
        [sys.executable, *(launch if nproc > 1 else []), "-m", "difusion.cli", "train", *args]
        + ["--quiet", "--no-samples", "--out", str(run)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def traced(folder, rank):
    lines = (folder / f"batches-rank{rank}.jsonl").read_text().splitlines()
    return [json.loads(line)["indices"] for line in lines]


def params(run):
    groups, info = load_checkpoint(run / "checkpoint.safetensors")
    return groups["model"], info["meta"]["step"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One plain autoencoder on the 8x8 digits trained 6 steps from the same seed twice: by 2 ranks
    x batch 16 and by 1 process x batch 32, each tracing the rows it trained on."""
    root = tmp_path_factory.mktemp("ddp")
    common = [
        "vae-digits",
        "--steps",
        str(STEPS),
        "autoencoder.kind=ae",
        "train.lr=1e-2",
        "train.warmup_steps=0",
        "train.threads=1",
        "train.log_every=1",
    ]
    for name, nproc in (("ddp", 2), ("single", 1)):
        (root / f"{name}-trace").mkdir()
        batch = f"train.batch_size={B * 2 // nproc}"
        train(root / name, *common, batch, nproc=nproc, trace=root / f"{name}-trace")
    return root


def test_two_ranks_train_on_disjoint_rows_of_the_batch_of_one_process(runs):
    """Step by step, rank 0 trained on rows [0, b) and rank 1 on rows [b, 2b) of the draw of 2b
    that one process makes from the same seed: disjoint parts of one draw (with replacement, so an
    example may appear twice, as in one process's batch), not the same examples twice."""
    rank0, rank1 = traced(runs / "ddp-trace", 0), traced(runs / "ddp-trace", 1)
    single = traced(runs / "single-trace", 0)
    assert len(rank0) == len(rank1) == len(single) == STEPS
    for r0, r1, s in zip(rank0, rank1, single, strict=True):
        assert len(r0) == len(r1) == B and len(s) == 2 * B
        assert r0 + r1 == s
        assert r0 != r1


def test_ranks_stay_in_sync(runs):
    """After training the ranks' parameters are identical: DDP kept them in sync."""
    rows = [json.loads(x) for x in (runs / "ddp" / "metrics.jsonl").read_text().splitlines()]
    sync = [r for r in rows if "ddp_max_param_diff" in r]
    assert sync and sync[-1]["ddp_world_size"] == 2
    assert sync[-1]["ddp_max_param_diff"] == 0.0


def test_two_ranks_of_b_make_the_update_of_one_process_of_2b(runs):
    """A plain autoencoder's loss, ||x - g(f(x))||^2, draws no randomness of its own and its
    network has no batch statistics, so 2 ranks x b and 1 process x 2b differ only in the order of
    float additions (DDP averages the ranks' mean gradients). Measured: 3e-7 apart after 6 steps
    that moved the parameters by up to 0.04; with rank 0's rows forced on both ranks, 0.06 apart."""
    (two, s2), (one, s1) = params(runs / "ddp"), params(runs / "single")
    assert s2 == s1 == STEPS and two.keys() == one.keys()
    gap = max(float((two[k] - one[k]).abs().max()) for k in one)
    assert gap < TOL, gap


@pytest.mark.parametrize(
    "preset, overrides",
    [
        ("digits", ["data.hflip=true"]),
        ("fm-toy2d", []),
        ("vae-digits", ["autoencoder.likelihood=bernoulli"]),
        ("realnvp-digits", []),
        ("seg-cells", ["segmentation.n_train=2"]),
    ],
)
def test_every_objective_draws_the_global_batch_by_rows(preset, overrides):
    """What the split needs from an objective: a draw of ``size`` has ``size`` rows in every
    per-example tensor and in ``last_indices``, and the split of the draw of 2b gives each rank b
    rows, rank 0 the first half. One process keeps the whole draw."""
    cfg = load_config(preset, overrides=overrides)
    objective = build_objective(cfg, torch.device("cpu"))
    b = 3
    draw = objective.batch(torch.Generator().manual_seed(7), 2 * b)
    parts = draw if isinstance(draw, tuple) else (draw,)
    assert objective.last_indices is not None and len(objective.last_indices) == 2 * b
    assert all(p is None or len(p) == 2 * b for p in parts)
    r0, r1 = (distributed.local_part(draw, distributed.Dist(r, 2)) for r in (0, 1))
    if not isinstance(draw, tuple):
        r0, r1 = (r0,), (r1,)
    for whole, p0, p1 in zip(parts, r0, r1, strict=True):
        if whole is None:
            assert p0 is None and p1 is None
            continue
        assert len(p0) == len(p1) == b
        np.testing.assert_array_equal(torch.cat([p0, p1]).cpu().numpy(), whole.cpu().numpy())
    assert distributed.local_part(draw, distributed.Dist()) is draw


def test_a_normalizing_flow_trains_under_torchrun(tmp_path):
    """The flow's loss goes through the DDP wrapper's forward (nflows/objective.py, log_prob): the
    ranks stay in sync and the dequantized bits/dim fall from the untrained flow's."""
    run = tmp_path / "flow"
    train(
        run,
        "realnvp-digits",
        "--steps",
        "60",
        "train.warmup_steps=0",
        "train.log_every=20",
        nproc=2,
    )
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    sync = [r for r in rows if "ddp_max_param_diff" in r]
    assert sync and sync[-1]["ddp_world_size"] == 2 and sync[-1]["ddp_max_param_diff"] == 0.0
    assert losses[-1] < losses[0] - 0.3, losses
