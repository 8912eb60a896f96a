"""A flow run is sampled as a flow everywhere a run is sampled (difusion eval, experiments), not
only by `difusion sample`: the velocity must never be read as an eps prediction."""

import numpy as np
import torch

from difusion.config import load_config
from difusion.runs import samples_for_eval
from difusion.sampling.noise import PerImageNoise
from difusion.training.loop import train


def test_eval_samples_a_flow_run_with_its_flow_sampler(tmp_path):
    tiny = ["train.steps=5", "train.minutes=null", "model.base_channels=8",
            "model.num_res_blocks=1", "model.attention_levels=[]", "train.sample_every=0",
            "sample.n=4", "sample.steps=3"]  # fmt: skip
    train(load_config("fm-fmnist", tiny), tmp_path / "fm", progress=False, final_samples=False)
    npz, run = samples_for_eval(tmp_path / "fm", n=4, steps=3, sampler="fm-euler",
                                progress=False)  # fmt: skip
    # an independent Euler solve of dx/dt = v_theta(x, 1000 t) from t = 1 to 0 on the same seeds
    x = PerImageNoise(range(4)).randn((4, 1, 28, 28))
    with torch.no_grad():
        for t, s in ((1.0, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 0.0)):
            x = x + (s - t) * run.network(x, torch.full((4,), 1000.0 * t), None).float()
    a = np.load(npz)["images"]
    assert a.shape == (4, 1, 28, 28)
    b = x.clamp(-1, 1).numpy()
    assert np.allclose(a, b, atol=2e-2)  # the same seeds through the same solver (bf16 aside)
    assert torch.isfinite(torch.from_numpy(a)).all()
