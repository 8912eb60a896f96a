"""Latent diffusion: an autoencoder's latents as data (unit variance), a diffusion model over them,
and samples decoded back to images; every sampler works unchanged in latent space."""

import numpy as np
import pytest
import torch

from difusion.build import load_first_stage
from difusion.config import load_config
from difusion.data import load_dataset
from difusion.data.latents import image_dataset_of
from difusion.errors import DifusionError
from difusion.training.loop import train

TINY_AE = ["train.steps=60", "train.minutes=null", "autoencoder.eval_n=100", "autoencoder.iwae_k=2",
           "autoencoder.channels=[8,16]"]  # fmt: skip
TINY_LDM = ["train.steps=20", "train.minutes=null", "model.base_channels=16",
            "model.attention_levels=[]", "train.sample_every=0", "sample.n=10",
            "sample.steps=5"]  # fmt: skip


@pytest.fixture(scope="module")
def first_stage(tmp_path_factory):
    root = tmp_path_factory.mktemp("ldm") / "first-stage"
    train(load_config("vae-fmnist-spatial", TINY_AE), root, progress=False, final_samples=False)
    return root


def test_latents_have_unit_variance_and_decode_to_images(first_stage):
    codec = load_first_stage(first_stage)
    latents = load_dataset("latents", first_stage=codec)
    assert latents.shape == (4, 7, 7)
    assert latents.data.std().item() == pytest.approx(1.0, rel=1e-3)
    assert latents.num_classes == 10 and len(latents) == 60000
    images = load_dataset("fashion-mnist", split="test").data[:32]
    z = codec.encode(images)
    x = codec.decode(z)
    assert x.shape == images.shape and x.min() >= -1 and x.max() <= 1
    # The cached training latents are the encoder's: encoding again gives the same numbers.
    train_images = load_dataset("fashion-mnist").data[:16]
    assert torch.allclose(codec.encode(train_images), latents.data[:16], atol=1e-5)


def test_latent_diffusion_trains_and_samples_images_with_any_sampler(first_stage, tmp_path):
    cfg = load_config("ldm-fmnist", [*TINY_LDM, f"data.root={first_stage}"])
    assert image_dataset_of(cfg) == "fashion-mnist"
    train(cfg, tmp_path / "ldm", progress=False)
    images = np.load(tmp_path / "ldm" / "samples.npz")["images"]
    assert images.shape == (10, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    from difusion.runs import load_run
    from difusion.sampling.pipeline import sample_to_folder

    run = load_run(tmp_path / "ldm")
    for sampler in ("ddim", "dpmpp-2m", "heun"):
        settings = run.settings(n=4, steps=4, sampler=sampler)
        out = sample_to_folder(run.model, settings, tmp_path / sampler, progress=False)
        assert np.load(out["npz"])["images"].shape == (4, 1, 28, 28)


def test_guidance_works_unchanged_in_latent_space(first_stage, tmp_path):
    cfg = load_config(
        "ldm-fmnist", [*TINY_LDM, f"data.root={first_stage}", "model.class_conditional=true"]
    )
    train(cfg, tmp_path / "cond", progress=False, final_samples=False)
    from difusion.runs import load_run
    from difusion.sampling.pipeline import sample_to_folder

    run = load_run(tmp_path / "cond")
    settings = run.settings(n=4, steps=4, sampler="dpmpp-2m", guidance=2.0, class_id=3)
    out = sample_to_folder(run.model, settings, tmp_path / "g", progress=False)
    npz = np.load(out["npz"])
    assert npz["images"].shape == (4, 1, 28, 28) and (npz["labels"] == 3).all()


def test_latent_runs_refuse_clipping_and_a_missing_first_stage(tmp_path):
    with pytest.raises(DifusionError, match="clip_x0=false"):
        load_config("ldm-fmnist", ["diffusion.clip_x0=true"])
    with pytest.raises(DifusionError, match="vae-fmnist-spatial"):
        load_first_stage(tmp_path / "nothing")
    with pytest.raises(DifusionError, match="first_stage"):
        load_dataset("latents")
