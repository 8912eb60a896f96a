"""Class conditioning end to end: label dropout, `difusion sample --class --guidance`, and errors."""

import numpy as np
import torch

from difusion.diffusion.losses import drop_labels
from tests.test_cli import TINY, assert_one_line_error, difusion


def test_label_dropout_rate_and_null_label():
    y = torch.arange(20000) % 10
    out = drop_labels(y, 0.1, 10, torch.Generator().manual_seed(0))
    dropped = out == 10
    assert abs(dropped.float().mean().item() - 0.1) < 0.01
    assert torch.equal(out[~dropped], y[~dropped])  # the others keep their label
    assert torch.equal(drop_labels(y, 0.0, 10), y)


def test_sample_a_class_with_guidance(tmp_path):
    run = tmp_path / "cond"
    cond = [*TINY, "model.class_conditional=true", "train.steps=4"]
    assert difusion("train", "digits", "--out", str(run), "--quiet", *cond).returncode == 0
    out = tmp_path / "s"
    proc = difusion(
        "sample", str(run), "--n", "5", "--class", "3", "--guidance", "2", "--rescale", "0.7",
        "--sampler", "dpmpp-2m", "--steps", "4", "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with np.load(out / "samples.npz") as f:
        assert f["labels"].tolist() == [3] * 5 and f["images"].shape == (5, 1, 8, 8)
        assert np.isfinite(f["images"]).all()
    # Without --class, one class per grid row: 20 images, 2 per class, in order.
    proc = difusion("sample", str(run), "--n", "20", "--steps", "3", "--sampler", "ddim",
                    "--out", str(tmp_path / "g"), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "g" / "samples.npz") as f:
        assert f["labels"].tolist() == [k for k in range(10) for _ in range(2)]
    # Guidance on an interval of noise fractions: recorded in the folder name, checked on input.
    proc = difusion("sample", str(run), "--n", "4", "--steps", "3", "--guidance", "1",
                    "--guidance-interval", "0.3,0.8", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (run / "samples-seed0-n4-steps3-w1-i0.3-0.8" / "samples.npz").exists()
    assert_one_line_error(
        difusion("sample", str(run), "--guidance", "1", "--guidance-interval", "0.8,0.3"), "lo < hi"
    )
    assert_one_line_error(difusion("sample", str(run), "--class", "12", "--quiet"), "0..9")
    assert_one_line_error(difusion("sample", str(run), "--sampler", "plms"), "dpmpp-2m")


def test_guidance_needs_a_conditional_model(tmp_path):
    run = tmp_path / "uncond"
    assert (
        difusion("train", "digits", "--out", str(run), "--quiet", *TINY, "train.steps=2").returncode
        == 0
    )
    assert_one_line_error(difusion("sample", str(run), "--class", "1"), "class-conditional")
    assert_one_line_error(difusion("sample", str(run), "--guidance", "2"), "class-conditional")
