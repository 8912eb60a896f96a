"""The same code on a GPU: train on CUDA, load anywhere, and the same seed gives the same picture.

Skipped where no CUDA device is present (CI and the 2-core development machine); run it on a GPU
machine with ``pytest tests/test_cuda.py``.
"""

import numpy as np
import pytest
import torch
from test_cli import TINY as CLI_TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

TINY = [*CLI_TINY, "train.steps=40"]  # the CLI tests' tiny digits network, T = 40


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    from difusion.config import load_config
    from difusion.training.loop import train

    run = tmp_path_factory.mktemp("cuda") / "run"
    train(load_config("digits", TINY), run, progress=False)
    return run


def test_training_on_cuda_lowers_the_loss(cuda_run):
    import json

    lines = [json.loads(s) for s in (cuda_run / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in lines if "loss" in r]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < losses[0]  # 40 steps on digits: the loss falls from ~1


def test_a_cuda_checkpoint_gives_the_same_network_on_cpu(cuda_run):
    from difusion.runs import load_run

    cpu, gpu = load_run(cuda_run, "cpu"), load_run(cuda_run, "cuda")
    x = torch.randn(4, *cpu.shape)
    t = torch.tensor([1, 10, 20, 40])
    with torch.no_grad():
        a = cpu.network(x, t)
        b = gpu.network(x.cuda(), t.cuda()).cpu()
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()


def test_same_seed_same_samples_on_cpu_and_cuda(cuda_run, tmp_path):
    """Sampling noise comes from per-sample CPU generators, so a seed names one picture on any device
    (DDIM with eta = 0 is deterministic given x_T; fp32 on both)."""
    from difusion.runs import load_run
    from difusion.sampling.pipeline import sample_to_folder

    out = {}
    for device in ("cpu", "cuda"):
        run = load_run(cuda_run, device)
        settings = run.settings(n=4, seed=3, steps=10, sampler="ddim", eta=0.0)
        paths = sample_to_folder(
            run.model, tmp_path / device, settings, device=device, progress=False
        )
        out[device] = np.load(paths["npz"])["images"]
    assert np.abs(out["cpu"] - out["cuda"]).max() < 2e-3
