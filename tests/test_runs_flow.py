"""A flow run is sampled as a flow everywhere a run is sampled (difusion eval, experiments), not
only by `difusion sample`: the velocity must never be read as an eps prediction."""

import numpy as np
import torch

from difusion.config import load_config
from difusion.runs import samples_for_eval
from difusion.sampling.flow_sample import sample_flow_run
from difusion.training.loop import train


def test_eval_samples_a_flow_run_with_its_flow_sampler(tmp_path):
    tiny = ["train.steps=5", "train.minutes=null", "model.base_channels=8",
            "model.num_res_blocks=1", "model.attention_levels=[]", "train.sample_every=0",
            "sample.n=4", "sample.steps=3"]  # fmt: skip
    train(load_config("fm-fmnist", tiny), tmp_path / "fm", progress=False, final_samples=False)
    npz, run = samples_for_eval(tmp_path / "fm", n=4, steps=3, sampler="fm-euler",
                                progress=False)  # fmt: skip
    direct = sample_flow_run(run.config, run.network, run.shape, tmp_path / "direct", None,
                             "cpu", n=4, seed=0, steps=3, sampler="fm-euler",
                             progress=False)  # fmt: skip
    a = np.load(npz)["images"]
    b = np.load(direct["npz"])["images"]
    assert a.shape == (4, 1, 28, 28)
    assert np.allclose(a, b, atol=2e-2)  # the same seeds through the same solver (bf16 aside)
    assert torch.isfinite(torch.from_numpy(a)).all()
