"""The functions behind the explorer's tabs, without a browser: closed forms of the forward process
on a DDPM schedule and on a flow run's own path, sampling checked against `difusion sample`'s one
pipeline (`draw_samples`) for DDPM, learned-variance, flow, guided and latent runs, bounds, and which
runs may be opened."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from difusion.app import explorer as ex
from difusion.config import load_config
from difusion.diffusion import DDPMPath
from difusion.diffusion.flow import FlowPath
from difusion.errors import DifusionError
from difusion.sampling.pipeline import draw_samples
from difusion.training.loop import train

TINY_UNET = ["model.base_channels=8", "model.channel_mult=[1,2]", "model.attention_levels=[]"]
QUICK = ["train.sample_every=0", "train.minutes=null"]


def _train(tmp_path_factory, preset: str, overrides: list[str], name: str):
    cfg = load_config(preset, [*TINY_UNET, *QUICK, *overrides])
    out = tmp_path_factory.mktemp(name) / "run"
    return train(cfg, out, progress=False, final_samples=False).run_dir


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A 2-D MLP denoiser trained for 200 steps by the explorer's trainer: enough to sample from."""
    folder, seconds = ex.train_toy_model(tmp_path_factory.mktemp("toy") / "run", steps=200)
    return folder


@pytest.fixture(scope="module")
def digits_cond_run(tmp_path_factory):
    """A tiny class-conditional DDPM U-Net on the 8x8 digits, 30 steps: enough to sample from
    (after 10 its clipped samples are all -1 or 1, and any two samplers agree)."""
    return _train(
        tmp_path_factory, "digits", ["model.class_conditional=true", "train.steps=30"], "digits"
    )


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    """The fashion-mnist preset as it is (flow matching on the rectified flow, class-conditional,
    fm-euler x 14 guided by w = 2 on noise fractions [0.3, 0.8]) on the 8x8 digits for 10 steps."""
    return _train(
        tmp_path_factory,
        "fashion-mnist",
        ["data.name=digits", "data.hflip=false", "train.steps=10"],
        "flow",
    )


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    """A DDPM that learns its variance (improved DDPM: L_hybrid), 10 steps."""
    overrides = ["diffusion.learn_sigma=true", "diffusion.variance=learned"]
    overrides += ["diffusion.loss=hybrid", "train.steps=10"]
    return _train(tmp_path_factory, "digits", overrides, "learned")


@pytest.fixture(scope="module")
def registry(toy_run, digits_cond_run, flow_run, learned_run):
    return ex.RunRegistry([toy_run, digits_cond_run, flow_run, learned_run])


# -- forward process ---------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["linear", "cosine", "sigmoid"])
def test_noise_level_is_the_closed_form(schedule):
    path = ex.schedule_path(schedule, 1000)
    betas = {
        "linear": np.linspace(1e-4, 0.02, 1000),
        "sigmoid": 1e-4 + (0.02 - 1e-4) / (1 + np.exp(-np.linspace(-6, 6, 1000))),
    }
    for t in (1, 10, 500, 999, 1000):
        level = ex.noise_level(path, t)
        if schedule == "cosine":  # Nichol & Dhariwal eq. 17, away from the clipped end
            f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
            expected = f(t / 1000) / f(0)
            if t < 1000:
                assert level["alpha_bar"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
        else:
            expected = float(np.prod(1 - betas[schedule][:t]))
            assert level["alpha_bar"] == pytest.approx(expected, rel=1e-9)
        a = level["alpha_bar"]
        assert level["snr"] == pytest.approx(a / (1 - a), rel=1e-9)
        assert level["sigma"] == pytest.approx(math.sqrt(1 - a), rel=1e-9)
        assert level["alpha"] == pytest.approx(math.sqrt(a), rel=1e-9)
        assert level["tau"] == pytest.approx(level["sigma"] / (level["alpha"] + level["sigma"]))
    level = ex.noise_level(path, 0)
    assert (level["alpha_bar"], level["snr"], level["sigma"], level["tau"]) == (1, math.inf, 0, 0)


def test_forward_sample_is_eq_4_with_one_noise_per_seed():
    path = DDPMPath.from_schedule("cosine", 1000)
    x0 = torch.rand(1, 28, 28) * 2 - 1
    assert torch.equal(ex.forward_sample(path, x0, 0, seed=3), x0)
    eps = torch.randn((1, 1, 28, 28), generator=torch.Generator().manual_seed(3))[0]
    for t in (100, 600):
        a = float(path.alpha_bar[t])
        expected = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
        torch.testing.assert_close(ex.forward_sample(path, x0, t, seed=3), expected)
    x_T = ex.forward_sample(path, x0, 1000, seed=4)  # alpha_bar_T ~ 0: nearly pure N(0, I)
    assert abs(float(x_T.mean())) < 0.12 and abs(float(x_T.std()) - 1) < 0.1
    assert not torch.equal(
        ex.forward_sample(path, x0, 600, seed=4), ex.forward_sample(path, x0, 600, seed=3)
    )


def _forward(x0, schedule, T, t, seed=0, data=None):
    """The forward tab with no run: the path of a schedule, as the page's schedule menu picks it."""
    path, label = ex.forward_path(None, ex.SCHEDULE_CHOICE, schedule, T)
    return ex.forward_view(x0, path, t, seed, data, label=label)


def test_forward_view_shapes_and_bounds():
    x0 = ex.dataset_example("digits", 5)
    assert x0.shape == (1, 8, 8)
    view = _forward(x0, "linear", 1000, 300, seed=0)
    assert view.x_t.dtype == np.uint8 and view.x_t.shape == (192, 192, 3)
    assert view.strip.shape == (2 + 96 + 2, 2 + 8 * 98, 3)  # 8 times, digits shown 12x
    assert view.times == [0, 143, 286, 429, 571, 714, 857, 1000]
    assert view.curves.ndim == 3 and view.curves.shape[2] == 3
    assert view.level["t"] == 300
    far = _forward(x0, "linear", 1000, 1000, seed=0).x_t.astype(float)
    near = _forward(x0, "linear", 1000, 0, seed=0).x_t.astype(float)
    assert np.abs(far - near).mean() > 20  # the picture changes with t
    for bad in ({"t": 1001}, {"t": -1}, {"t": 2.5}, {"T": 10**6}, {"seed": "x"}):
        kw = {"T": 1000, "t": 10, "seed": 0, **bad}
        with pytest.raises(DifusionError):
            _forward(x0, "linear", kw["T"], kw["t"], kw["seed"])
    with pytest.raises(DifusionError, match="schedule"):
        _forward(x0, "quadratic", 1000, 10)
    with pytest.raises(DifusionError, match="T=10"):  # linear is undefined at tiny T: a message
        _forward(x0, "linear", 10, 5)


def test_forward_view_of_2d_points():
    cloud = ex.dataset_example("toy2d", 0)
    assert cloud.shape == (2000, 2)
    view = _forward(cloud, "cosine", 200, 100, seed=0, data=cloud)
    assert view.x_t.shape[2] == 3 and view.strip.shape[1] == 8 * view.x_t.shape[1]


def test_forward_tab_of_a_flow_run_is_the_rectified_flow(registry, flow_run):
    """A flow run's forward tab draws its own path, x_t = (1 - t) x_0 + t eps on t in [0, 1]."""
    path, label = ex.forward_path(registry, str(flow_run))
    assert isinstance(path, FlowPath) and path.t_max == 1.0 and str(flow_run) in label
    x0 = ex.dataset_example("digits", 7)
    eps = torch.randn((1, 1, 8, 8), generator=torch.Generator().manual_seed(3))[0]
    for t in (0.3, 0.75):
        x_t = ex.forward_sample(path, x0, t, seed=3)
        torch.testing.assert_close(x_t, (1 - t) * x0 + t * eps)
        # one pixel written out: x_t = (1 - t) x_0 + t eps
        assert float(x_t[0, 3, 4]) == pytest.approx((1 - t) * float(x0[0, 3, 4]) + t * float(
            eps[0, 3, 4]), abs=1e-6)  # fmt: skip
    assert torch.equal(ex.forward_sample(path, x0, 0, seed=3), x0)
    torch.testing.assert_close(ex.forward_sample(path, x0, 1, seed=3), eps)  # pure noise at t = 1
    level = ex.noise_level(path, 0.25)
    assert level["alpha"] == pytest.approx(0.75) and level["sigma"] == pytest.approx(0.25)
    assert level["snr"] == pytest.approx(9.0) and level["tau"] == pytest.approx(0.25)
    assert ex.noise_level(path, 1.0)["snr"] == 0.0
    view = ex.forward_view(x0, path, 0.5, seed=3, label=label)
    assert view.times == pytest.approx(np.linspace(0, 1, 8).tolist())  # not 0..T
    assert view.level["t"] == 0.5 and view.x_t.shape == (192, 192, 3)
    for bad in (1.5, -0.1, "x"):
        with pytest.raises(DifusionError, match="t must be"):
            ex.forward_view(x0, path, bad)
    with pytest.raises(ex.RunRefused):
        ex.forward_path(registry, "/etc")


def test_forward_tab_of_a_ddpm_run_is_its_schedule(registry, digits_cond_run):
    path, _ = ex.forward_path(registry, str(digits_cond_run), "linear", 50)  # the run wins
    assert isinstance(path, DDPMPath) and path.T == 1000  # the digits preset: cosine, T = 1000
    torch.testing.assert_close(path.alpha_bar, ex.schedule_path("cosine", 1000).alpha_bar)
    assert ex.forward_path(registry, ex.SCHEDULE_CHOICE, "linear", 50)[0].T == 50


def test_image_from_upload_crops_shrinks_and_bounds():
    rgb = np.zeros((300, 200, 3), np.uint8)
    rgb[:, :, 0] = 255
    x = ex.image_from_upload(rgb)
    assert x.shape == (3, 128, 128)
    torch.testing.assert_close(x[0], torch.ones(128, 128))
    torch.testing.assert_close(x[1], -torch.ones(128, 128))
    gray = np.full((40, 60, 4), 127, np.uint8)  # RGBA with equal channels: one channel, 40x40
    assert ex.image_from_upload(gray).shape == (1, 40, 40)
    with pytest.raises(DifusionError, match="at most 4096"):
        ex.image_from_upload(np.zeros((5000, 10), np.uint8))
    with pytest.raises(DifusionError, match="not an image"):
        ex.image_from_upload(np.zeros(10, np.uint8))


# -- which runs may be opened ------------------------------------------------------------------------


def test_only_allowed_runs_open(registry, toy_run, tmp_path):
    assert registry.resolve(str(toy_run)) == toy_run.resolve()
    for name in ("/etc", "/etc/passwd", str(toy_run.parent), str(toy_run) + "/../run", "", None):
        with pytest.raises(DifusionError):
            registry.resolve(name)
    with pytest.raises(ex.RunRefused, match="refused"):
        registry.load("/etc")


def test_root_allows_folders_under_it_and_nothing_outside(tmp_path):
    root = tmp_path / "runs"
    (root / "a").mkdir(parents=True)
    (root / "a" / "config.yaml").write_text("name: a\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.yaml").write_text("name: b\n")
    (root / "link").symlink_to(outside)  # a symlink out of the root is outside it
    reg = ex.RunRegistry([], root)
    assert reg.names() == ["a"]
    assert reg.resolve("a") == (root / "a").resolve()
    for name in ("../outside", "link", str(outside), "a/../../outside"):
        with pytest.raises(ex.RunRefused):
            reg.resolve(name)


def test_missing_and_broken_runs_are_messages(tmp_path, digits_cond_run):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.yaml").write_text((digits_cond_run / "config.yaml").read_text())
    (broken / "checkpoint.safetensors").write_bytes(b"\x00garbage" * 100)
    reg = ex.RunRegistry([tmp_path / "nowhere", broken, tmp_path])
    with pytest.raises(DifusionError, match="no readable config.yaml"):
        reg.load(str(tmp_path / "nowhere"))
    with pytest.raises(DifusionError, match="broken"):
        reg.load(str(broken))
    (broken / "checkpoint.safetensors").unlink()
    with pytest.raises(DifusionError, match="no checkpoint"):
        reg.load(str(broken))


def test_latent_tab_detects_autoencoder_runs(tmp_path, registry):
    assert ex.latent_status(registry) == ex.NO_AUTOENCODER
    ae = tmp_path / "ae"
    ae.mkdir()
    (ae / "config.yaml").write_text("objective: autoencoder\nname: ae\n")
    reg = ex.RunRegistry([ae])
    assert reg.names("autoencoder") == [str(ae)] and reg.names(ex.GENERATIVE) == []
    assert str(ae) in ex.latent_status(reg)
    with pytest.raises(DifusionError, match="Latent space"):
        reg.load(str(ae))
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "config.yaml").write_text("objective: segmentation\nname: seg\n")
    with pytest.raises(DifusionError, match="not a generative model"):
        ex.RunRegistry([seg]).load(str(seg))


def test_a_flow_run_opens(registry, flow_run, digits_cond_run):
    """Flow runs used to be refused ("not a diffusion model"): now every generative run opens."""
    assert {str(flow_run), str(digits_cond_run)} <= set(registry.names(ex.GENERATIVE))
    run = registry.load(str(flow_run))
    assert run.model.prediction == "velocity" and isinstance(run.path, FlowPath)
    summary = ex.run_summary(run)
    assert (
        "rectified flow" in summary
        and "predicts velocity" in summary
        and "flow, step 10" in summary
    )
    assert "guidance w = 2 at noise fractions [0.3, 0.8]" in summary
    assert ex.run_defaults(run) == {"sampler": "fm-euler", "steps": 14, "guidance": 2.0}
    ddpm = ex.run_summary(registry.load(str(digits_cond_run)))
    assert "cosine schedule, DDPM, T = 1000" in ddpm and "predicts eps" in ddpm


# -- reverse process and compare ---------------------------------------------------------------------


def _reference(run, **changes):
    """What `difusion sample` draws (the one pipeline) with these settings."""
    return draw_samples(run.model, run.settings(**changes), progress=False)


CASES = [  # (run, sampler, steps, class, guidance): every kind of generative run the lab makes
    ("digits_cond_run", "ddim", 10, 3, 0.0),
    ("digits_cond_run", "ddpm", 10, 3, 0.0),
    ("digits_cond_run", "heun", 4, 3, 0.0),
    ("learned_run", "ddpm", 10, None, 0.0),  # the learned variance Sigma_theta
    ("flow_run", "fm-euler", 14, 3, 2.0),  # the preset's own: guided on [0.3, 0.8]
    ("flow_run", "fm-rk4", 3, None, 0.0),
    ("flow_run", "dpmpp-2m", 8, 5, 1.5),  # a DDPM sampler on the flow's path
    ("flow_run", "ddpm", 10, 5, 0.0),
]


@pytest.mark.parametrize(("which", "sampler", "steps", "class_id", "w"), CASES)
def test_reverse_process_matches_difusion_sample(registry, request, which, sampler, steps,
                                                 class_id, w):  # fmt: skip
    run = registry.load(str(request.getfixturevalue(which)))
    traj = ex.reverse_process(
        run, sampler=sampler, steps=steps, seed=5, n=6, class_id=class_id, guidance=w
    )
    reference = _reference(
        run, n=6, seed=5, steps=steps, sampler=sampler, class_id=class_id, guidance=w
    )
    assert torch.equal(traj.samples, reference.x)  # exactly: the same pipeline, the same seeds
    assert traj.settings.guidance_interval == tuple(run.config.sample.guidance_interval)
    calls = {"heun": 2 * steps - 1, "fm-rk4": 4 * steps}
    assert traj.nfe == calls.get(sampler, steps)
    assert len(traj.times) == steps and traj.times[-1] == 0
    assert all(a > b for a, b in zip(traj.times, traj.times[1:], strict=False))  # t_max -> 0
    assert max(traj.times) < run.path.t_max  # flow times lie in [0, 1], DDPM's in 0..T
    torch.testing.assert_close(traj.x_t[-1], traj.samples)  # the last frame is the sample
    # sample i depends on seed + i only, not on how many are drawn with it
    two = ex.reverse_process(
        run, sampler=sampler, steps=steps, seed=5, n=2, class_id=class_id, guidance=w
    )
    torch.testing.assert_close(two.samples, traj.samples[:2])
    if w:  # and guidance changes them (it is not silently dropped)
        plain = ex.reverse_process(run, sampler=sampler, steps=steps, seed=5, n=6,
                                   class_id=class_id)  # fmt: skip
        assert not torch.equal(plain.samples, traj.samples)


def test_flow_run_times_are_fractions_not_steps(registry, flow_run):
    run = registry.load(str(flow_run))
    traj = ex.reverse_process(run, sampler="fm-euler", steps=5, n=2, class_id=0)
    assert traj.times == pytest.approx([0.8, 0.6, 0.4, 0.2, 0.0])  # evenly spaced on [0, 1]
    strip = ex.trajectory_strip(traj, columns=5)
    assert strip.shape == (2 + 2 * 98, 2 + 5 * 98, 3)


def test_classes_are_laid_out_as_difusion_sample_does(registry, flow_run):
    """class -1: one class per row when n is a multiple of the classes (as `difusion sample`)."""
    run = registry.load(str(flow_run))
    traj = ex.reverse_process(run, sampler="fm-euler", steps=2, n=20, seed=1, guidance=2.0)
    assert traj.labels.tolist() == [i // 2 for i in range(20)] and traj.nrow == 2
    assert torch.equal(traj.samples, _reference(run, n=20, seed=1, steps=2, guidance=2.0).x)
    assert ex.samples_picture(traj.samples, nrow=traj.nrow).shape == (2 + 10 * 98, 2 + 2 * 98, 3)


def test_latent_runs_are_decoded(registry, digits_cond_run):
    """A model of latents (data.name latents) shows decoded images: the model's own decoder."""
    run = registry.load(str(digits_cond_run))
    decode = lambda z: torch.tanh(torch.nn.functional.interpolate(z, scale_factor=2))  # noqa: E731
    latent = dataclasses.replace(run, model=dataclasses.replace(run.model, decode=decode))
    traj = ex.reverse_process(latent, sampler="ddim", steps=4, seed=2, n=3, class_id=1)
    assert traj.samples.shape == (3, 1, 16, 16)
    assert torch.equal(
        traj.samples, _reference(latent, n=3, seed=2, steps=4, sampler="ddim", class_id=1).x
    )
    plain = ex.reverse_process(run, sampler="ddim", steps=4, seed=2, n=3, class_id=1)
    torch.testing.assert_close(traj.samples, decode(plain.samples))
    assert traj.x_t[0].shape == traj.x0[0].shape == (3, 1, 16, 16)  # the frames are decoded too


def test_reverse_pictures_are_shaped_right(registry, digits_cond_run, toy_run):
    run = registry.load(str(digits_cond_run))
    traj = ex.reverse_process(run, sampler="dpmpp-2m", steps=20, seed=0, n=16, frames=40)
    assert len(traj.times) == 20  # no more frames than steps
    assert traj.labels.tolist() == [i % 10 for i in range(16)]  # class -1: each in turn
    strip = ex.trajectory_strip(traj, columns=10)
    assert strip.shape == (2 + 2 * 98, 2 + 10 * 98, 3)  # x_t over x_0, 10 steps, digits 12x
    frames = ex.trajectory_frames(traj)
    assert len(frames) == 20 and frames[0].shape == (2 + 2 * 98, 2 + 8 * 98, 3)
    grid = ex.samples_picture(traj.samples)
    assert grid.shape == (2 + 4 * 98, 2 + 4 * 98, 3)
    gif = ex.save_animation(frames)
    assert gif.read_bytes()[:6] == b"GIF89a"
    toy = registry.load(str(toy_run))
    cloud = ex.reverse_process(toy, sampler="ddim", steps=10, n=500, frames=5)
    assert cloud.samples.shape == (500, 2) and len(cloud.x_t) == 5
    data = ex.run_data(toy)
    assert (
        ex.trajectory_strip(cloud, data=data).shape[1]
        == 5 * ex.samples_picture(cloud.samples, data).shape[1]
    )


@pytest.mark.slow
def test_toy_model_trained_on_the_fly_learns(tmp_path):
    folder, _ = ex.train_toy_model(tmp_path / "toy", steps=1500)  # the page's default
    run = ex.RunRegistry([folder]).load(str(folder))
    data = ex.run_data(run)
    samples = ex.reverse_process(run, sampler="ddpm", steps=200, n=1000).samples
    noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
    on_data = lambda x: (torch.cdist(x, data).min(dim=1).values < 0.1).float().mean()  # noqa: E731
    # measured: 47% of the samples lie within 0.1 of a data point, 19% of N(0, I) draws do
    assert on_data(samples) > 2 * on_data(noise)


def test_reverse_process_bounds(registry, digits_cond_run, toy_run):
    run = registry.load(str(digits_cond_run))
    toy = registry.load(str(toy_run))
    for kwargs, match in [
        ({"steps": 0}, "steps"),
        ({"steps": 1001}, "steps"),
        ({"n": 65}, "samples"),
        ({"sampler": "magic"}, "sampler"),
        ({"guidance": 25}, "guidance"),
        ({"guidance": float("nan")}, "guidance"),
        ({"class_id": 10}, "class"),
        ({"eta": 2}, "eta"),
    ]:
        with pytest.raises(DifusionError, match=match):
            ex.reverse_process(run, **{"steps": 5, **kwargs})
    with pytest.raises(DifusionError, match="not class-conditional"):
        ex.reverse_process(toy, steps=5, guidance=1.0)
    with pytest.raises(DifusionError, match="not class-conditional"):
        ex.reverse_process(toy, steps=5, class_id=0)


def test_guidance_matches_the_guided_sampler_and_sweep(registry, digits_cond_run, toy_run):
    run = registry.load(str(digits_cond_run))
    traj = ex.reverse_process(run, sampler="ddim", steps=8, seed=1, n=4, class_id=2, guidance=3.0)
    common = dict(n=4, seed=1, steps=8, sampler="ddim", class_id=2, guidance=3.0)
    assert torch.equal(traj.samples, _reference(run, **common).x)
    # guidance on an interval of noise fractions, as `difusion sample` draws it: the explorer takes
    # the run's sample.guidance_interval unless told otherwise
    kw = dict(sampler="ddim", steps=8, seed=1, n=4, class_id=2, guidance=3.0)
    on_interval = ex.reverse_process(run, **kw, interval=(0.3, 0.8))
    reference = _reference(run, **common, guidance_interval=(0.3, 0.8))
    assert torch.equal(on_interval.samples, reference.x)
    assert not torch.allclose(on_interval.samples, traj.samples)
    run.config.sample.guidance_interval = [0.3, 0.8]
    try:
        assert torch.equal(ex.reverse_process(run, **kw).samples, on_interval.samples)
    finally:
        run.config.sample.guidance_interval = [0.0, 1.0]
    grid, rows = ex.guidance_sweep(
        run, [0.0, 3.0], class_id=2, n_per_scale=4, seed=1, steps=8, sampler="ddim"
    )
    torch.testing.assert_close(rows[1].samples, traj.samples)
    assert grid.shape == (2 + 2 * 98, 2 + 4 * 98, 3)
    assert not torch.equal(rows[0].samples, rows[1].samples)
    with pytest.raises(DifusionError, match="more than 64"):
        ex.guidance_sweep(run, [0, 1, 2, 3, 4], n_per_scale=16)
    with pytest.raises(DifusionError, match="not class-conditional"):
        ex.guidance_sweep(registry.load(str(toy_run)), [0, 1])
    assert ex.parse_scales("0, 1;2 4") == [0, 1, 2, 4]
    for bad in ("", "1,2,3,4,5,6,7,8,9", "1, x", "-1"):
        with pytest.raises(DifusionError):
            ex.parse_scales(bad)


def test_compare_same_seed_two_settings(registry, digits_cond_run):
    run = registry.load(str(digits_cond_run))
    same = ex.compare_samplers(run, ("ddim", 10), ("ddim", 10), seed=2, n=4)
    assert same.mean_abs_difference == 0.0
    other = ex.compare_samplers(run, ("ddim", 5), ("dpmpp-2m", 5), seed=2, n=4)
    assert other.mean_abs_difference > 0.0
    assert other.left.samples.shape == other.right.samples.shape == (4, 1, 8, 8)


def test_explore_command_refuses_a_missing_root(tmp_path):
    from typer.testing import CliRunner

    from difusion.cli import app

    result = CliRunner().invoke(app, ["explore", "--root", str(tmp_path / "nope")])
    assert result.exit_code != 0 and "is not a folder" in str(result.exception)


def test_ui_builds_with_no_runs():
    pytest.importorskip("gradio")
    from difusion.app.ui import build_app

    demo = build_app(ex.RunRegistry([]))
    labels = {getattr(b, "label", None) for b in demo.blocks.values()}
    assert {"x_t", "samples", "t", "p(cell | x), overlap-tile", "instances"} <= labels


def test_latent_space_of_a_tiny_autoencoder(tmp_path, digits_cond_run):
    pytest.importorskip("difusion.autoencoders")
    cfg = load_config(
        "vae-digits", ["train.steps=20", "autoencoder.fid_n=0", "autoencoder.eval_n=20"]
    )
    run_dir = train(cfg, tmp_path / "ae", progress=False, final_samples=False).run_dir
    reg = ex.RunRegistry([run_dir, digits_cond_run])
    assert str(run_dir) in ex.latent_status(reg)
    grid, line, summary = ex.latent_space(reg, str(run_dir), index_a=3, index_b=5, steps=6)
    assert "vae on digits" in summary
    assert grid.shape == (2 + 2 * 98, 2 + 8 * 98, 3)  # 8 inputs over their reconstructions
    assert line.shape == (2 + 98, 2 + 8 * 98, 3)  # a, 6 decoded codes, b
    # s = 0 and s = 1 decode the codes of a and b themselves: their reconstructions
    ends = ex.latent_space(reg, str(run_dir), index_a=0, index_b=1, steps=6)[1]
    block = lambda img, r, c: img[2 + r * 98 : r * 98 + 98, 2 + c * 98 : c * 98 + 98]  # noqa: E731
    np.testing.assert_allclose(block(ends, 0, 1), block(grid, 1, 0), atol=1)
    np.testing.assert_allclose(block(ends, 0, 6), block(grid, 1, 1), atol=1)
    with pytest.raises(DifusionError, match="not an autoencoder run"):
        ex.latent_space(reg, str(digits_cond_run))
    with pytest.raises(DifusionError, match="image a"):
        ex.latent_space(reg, str(run_dir), index_a=999)
    with pytest.raises(ex.RunRefused):
        ex.latent_space(reg, "/etc")


# -- segmentation (the U-Net chapter) ----------------------------------------------------------------

SEG_TINY = [
    "segmentation.base_channels=4",
    "segmentation.depth=2",
    "segmentation.tile=92",  # 92 -> 52: a 100x100 image takes 2 x 2 tiles
    "segmentation.n_train=2",
    "segmentation.n_test=1",
    "segmentation.image_size=64",
    "segmentation.eval_real=false",
    "train.batch_size=2",
    "train.warmup_steps=5",
]


@pytest.fixture(scope="module")
def seg_run(tmp_path_factory):
    """The seg-cells preset with a 4-channel, depth-2 U-Net trained for 15 steps on 2 images."""
    cfg = load_config("seg-cells", [*SEG_TINY, "train.steps=15", "train.minutes=null"])
    out = tmp_path_factory.mktemp("seg") / "run"
    return train(cfg, out, progress=False, final_samples=False).run_dir


def test_segmentation_tab_shows_the_runs_maps(seg_run, digits_cond_run):
    from difusion.data.cells import synthetic_cells
    from difusion.metrics.segmentation import instances_from_foreground
    from difusion.segmentation.inference import foreground_probability
    from difusion.segmentation.objective import load_segmentation_run
    from difusion.segmentation.weight_map import weight_map

    reg = ex.RunRegistry([seg_run, digits_cond_run])
    assert reg.names("segmentation") == [str(seg_run)]
    assert str(seg_run) in ex.segmentation_status(reg)
    assert ex.segmentation_status(ex.RunRegistry([digits_cond_run])) == ex.NO_SEGMENTATION
    image, truth = ex.segmentation_image("synthetic cells", seed=3, size=100)
    ref_image, ref_truth = synthetic_cells(100, np.random.default_rng(3))
    np.testing.assert_array_equal(image, ref_image)
    np.testing.assert_array_equal(truth, ref_truth)
    view = ex.segmentation_view(reg, str(seg_run), image, truth)
    for pic in (view.input, view.probability_map, view.weight_map, view.instances_map):
        assert pic.shape == (100, 100, 3) and pic.dtype == np.uint8
    margin = (92 - 52) // 2  # the tiles picture shows the mirrored border the input tiles read
    assert view.tiles_map.shape == (100 + 2 * margin, 100 + 2 * margin, 3)
    assert view.probability.shape == (100, 100)
    assert view.probability.min() >= 0.0 and view.probability.max() <= 1.0
    cfg, network, _ = load_segmentation_run(seg_run)
    s = cfg.segmentation
    np.testing.assert_array_equal(view.probability, foreground_probability(network, image, 92))
    np.testing.assert_array_equal(view.weights, weight_map(truth, s.w0, s.sigma))
    expected = instances_from_foreground(view.probability > 0.5, s.instances)
    np.testing.assert_array_equal(view.instances, expected)
    assert f"{int(view.instances.max())} cells found ({s.instances})" in view.summary
    assert "4 tiles 92 -> 52" in view.summary
    # an upload has no ground truth: no weight map
    upload = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    up_image, up_truth = ex.segmentation_image("uploaded image", upload=upload)
    assert up_truth is None and up_image.shape == (100, 100)
    assert ex.segmentation_view(reg, str(seg_run), up_image).weight_map is None


def test_segmentation_tab_follows_the_runs_instance_method(seg_run, tmp_path):
    """segmentation.instances: watershed in the run's config is what the tab splits with."""
    import shutil

    from difusion.metrics.segmentation import instances_from_foreground

    copy = tmp_path / "watershed"
    shutil.copytree(seg_run, copy)
    text = (copy / "config.yaml").read_text()
    assert "instances: components" in text
    (copy / "config.yaml").write_text(text.replace("instances: components", "instances: watershed"))
    image, truth = ex.segmentation_image("synthetic cells", seed=1, size=80)
    view = ex.segmentation_view(ex.RunRegistry([copy]), str(copy), image, truth)
    expected = instances_from_foreground(view.probability > 0.5, "watershed")
    np.testing.assert_array_equal(view.instances, expected)
    assert "(watershed)" in view.summary


@pytest.mark.parametrize("shape", [(100, 100), (57, 83), (30, 20), (52, 130)])
def test_tile_layout_is_how_predict_tiled_lays_the_tiles(shape):
    """Each pixel is written by the tile the layout says (the last one over it, in order); the
    output tiles cover the image exactly and each input tile is its output tile plus the margin."""
    from difusion.segmentation.tiling import predict_tiled

    tiles = ex.tile_layout(shape, 92, 52)
    calls = []

    def network(x):  # every tile's output filled with its number, in the order tiles are run
        first = len(calls)
        calls.extend(range(first, first + x.shape[0]))
        ids = torch.arange(first, first + x.shape[0], dtype=torch.float32)
        return ids[:, None, None, None].expand(-1, 1, 52, 52)

    written = predict_tiled(network, np.zeros(shape, np.float32), 92, 52)[0]
    painted = np.full(shape, -1.0, np.float32)
    for i, t in enumerate(tiles):
        top, left, bottom, right = t.output
        painted[top:bottom, left:right] = i
        assert (t.input[0], t.input[1]) == (top - 20, left - 20)
        assert (t.input[2] - t.input[0], t.input[3] - t.input[1]) == (92, 92)
        assert 0 <= top < bottom <= shape[0] and 0 <= left < right <= shape[1]
    assert len(calls) == len(tiles)
    np.testing.assert_array_equal(painted, written)  # covered exactly: no pixel left at -1
    picture = ex.tiles_picture(np.zeros(shape, np.float32), tiles)
    margin = max(20, 72 - min(shape))  # what the input tiles read beyond the image
    assert picture.shape == (shape[0] + 2 * margin, shape[1] + 2 * margin, 3)


def test_segmentation_counts_the_cells_difusion_segment_counts(seg_run, tmp_path):
    """The same image through `difusion segment` (a PNG file) and through the tab (an upload)."""
    import re

    from PIL import Image
    from typer.testing import CliRunner

    from difusion.cli import app

    image, _ = ex.segmentation_image("synthetic cells", seed=0, size=100)
    upload = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(upload).save(tmp_path / "cells.png")
    result = CliRunner().invoke(
        app,
        ["segment", str(seg_run), str(tmp_path / "cells.png"), "--out", str(tmp_path / "m.png")],
    )
    assert result.exit_code == 0, result.output
    cells = int(re.search(r"(\d+) cells found", result.output).group(1))
    uploaded, _ = ex.segmentation_image("uploaded image", upload=upload)
    view = ex.segmentation_view(ex.RunRegistry([seg_run]), str(seg_run), uploaded)
    assert int(view.instances.max()) == cells
    assert view.summary.startswith(f"{cells} cells found")


def test_segmentation_tab_bounds_and_refusals(seg_run, digits_cond_run):
    reg = ex.RunRegistry([seg_run, digits_cond_run])
    image, truth = ex.segmentation_image("synthetic cells", seed=0, size=32)
    with pytest.raises(DifusionError, match="not a segmentation run"):
        ex.segmentation_view(reg, str(digits_cond_run), image, truth)
    with pytest.raises(ex.RunRefused):
        ex.segmentation_view(reg, "/etc", image, truth)
    with pytest.raises(DifusionError, match="not a generative model"):
        reg.load(str(seg_run))
    with pytest.raises(DifusionError, match="image side"):
        ex.segmentation_image("synthetic cells", size=ex.LIMITS.max_cells_side + 1)
    with pytest.raises(DifusionError, match="seed"):
        ex.segmentation_image("synthetic cells", seed=-1)
    with pytest.raises(DifusionError, match="upload an image first"):
        ex.segmentation_image("uploaded image", upload=None)
    with pytest.raises(DifusionError, match="at most 4096"):
        ex.segmentation_image("uploaded image", upload=np.zeros((5000, 10), np.uint8))
    with pytest.raises(DifusionError, match="unknown image source"):
        ex.segmentation_image("stardist")
    big = np.random.default_rng(0).integers(0, 255, (700, 600, 3), dtype=np.uint8)
    grey, none = ex.segmentation_image("uploaded image", upload=big)
    side = ex.LIMITS.max_cells_side
    assert grey.shape == (side, side) and grey.dtype == np.float32 and none is None


# -- the other families on 2-D points: a normalizing flow, an energy, a score ------------------------

FAMILY = ["train.threads=1", "train.sample_every=0", "train.minutes=null"]


def _family_run(tmp_path_factory, preset: str, overrides: list[str], name: str):
    cfg = load_config(preset, [*FAMILY, *overrides])
    out = tmp_path_factory.mktemp(name) / "run"
    return train(cfg, out, progress=False, final_samples=False).run_dir


@pytest.fixture(scope="module")
def nflow_run(tmp_path_factory):
    """The realnvp-toy2d preset (8 affine couplings on two moons) trained for 150 steps."""
    return _family_run(tmp_path_factory, "realnvp-toy2d", ["train.steps=150"], "nflow")


@pytest.fixture(scope="module")
def ebm_run(tmp_path_factory):
    """The ebm-toy2d preset (an energy by contrastive divergence) trained for 200 steps."""
    return _family_run(tmp_path_factory, "ebm-toy2d", ["train.steps=200"], "ebm")


@pytest.fixture(scope="module")
def dsm_run(tmp_path_factory):
    """The dsm-toy2d preset (a noise-conditional score, 15 levels) trained for 800 steps."""
    return _family_run(tmp_path_factory, "dsm-toy2d", ["train.steps=800"], "dsm")


@pytest.fixture(scope="module")
def diffusion_folder(tmp_path_factory):
    """A folder whose config.yaml says `objective: diffusion`: the family tabs refuse it before
    loading anything (no training: the toy run's trainer would leave torch on every core)."""
    folder = tmp_path_factory.mktemp("diffusion")
    (folder / "config.yaml").write_text("objective: diffusion\nname: ddpm\n")
    return folder


@pytest.fixture(scope="module")
def family_registry(nflow_run, ebm_run, dsm_run, diffusion_folder):
    return ex.RunRegistry([nflow_run, ebm_run, dsm_run, diffusion_folder])


def test_flow_tab_is_the_change_of_variables(family_registry, nflow_run):
    """z of a point is the flow's forward; log p = log N(z) + the couplings' log |det|; the density
    of every plane integrates to about 1 over its picture; the planes are the flow's layers."""
    from difusion.app import families as fam
    from difusion.diffusion.likelihood_ode import standard_normal_log_prob
    from difusion.nflows.run import load_nflow

    reg, name = family_registry, str(nflow_run)
    assert str(nflow_run) in fam.nflow_status(reg)
    assert fam.nflow_status(ex.RunRegistry([])) == fam.NO_NFLOW
    flow = load_nflow(nflow_run)
    view = fam.flow_view(reg, name, k=3, point="0.5, 0.25", n=300, seed=2)
    assert view.layers == len(flow.couplings) == 8
    with torch.no_grad():
        x = torch.tensor([[0.5, 0.25]])
        z, log_det = flow(x)
        log_p = flow.log_prob(x)
    p = view.point
    assert p["z"] == pytest.approx(z[0].tolist(), abs=1e-6)
    assert p["log_det"] == pytest.approx(float(log_det[0]), abs=1e-5)
    assert sum(p["log_det_layers"]) == pytest.approx(p["log_det"], abs=1e-9)
    assert len(p["log_det_layers"]) == 8
    norm = -0.5 * (z[0] ** 2).sum().item() - math.log(2 * math.pi)  # log N(z; 0, I) in 2-D
    assert p["log_normal"] == pytest.approx(norm, abs=1e-5)
    assert p["log_p"] == pytest.approx(float(log_p[0]), abs=1e-5)
    assert f"= **{p['log_p']:.3f}** nats" in view.summary

    x_plane, k_plane, z_plane = view.planes
    assert (x_plane.k, k_plane.k, z_plane.k) == (0, 3, 8)
    _, grid = fam._square(x_plane.lim, fam.HEAT)
    with torch.no_grad():
        torch.testing.assert_close(x_plane.log_density.reshape(-1), flow.log_prob(grid))
        torch.testing.assert_close(z_plane.data, flow(x_plane.data)[0])  # z = f(x) of the data
        torch.testing.assert_close(flow.inverse(z_plane.data), x_plane.data, atol=1e-4, rtol=0)
    _, zgrid = fam._square(z_plane.lim, fam.HEAT)
    torch.testing.assert_close(z_plane.log_density.reshape(-1), standard_normal_log_prob(zgrid))
    # the change of variables at the middle plane: log p(h_3(x)) + log |det dh_3/dx| = log p(x)
    h, ld = fam.through_couplings(flow, x_plane.data, 3)
    torch.testing.assert_close(k_plane.data, h)
    with torch.no_grad():
        torch.testing.assert_close(
            fam.log_density_after(flow, h, 3) + ld, flow.log_prob(x_plane.data), atol=1e-4, rtol=0
        )
    # the density is a density: about 1 over each picture (N(0, I) over [-lim, lim]^2: erf^2)
    assert 0.95 < x_plane.mass < 1.01
    assert z_plane.mass == pytest.approx(math.erf(z_plane.lim / math.sqrt(2)) ** 2, abs=2e-3)
    assert 0.9 < k_plane.mass < 1.01
    # the first coupling keeps x and moves y: vertical grid lines stay where they were
    first = fam.flow_plane(flow, 1, x_plane.lines, x_plane.data, x_plane.lim)
    torch.testing.assert_close(first.lines[..., 0], x_plane.lines[..., 0])
    assert (first.lines[..., 1] - x_plane.lines[..., 1]).abs().max() > 1e-3
    torch.testing.assert_close(view.samples, flow.sample(300, seed=2))
    for picture in (view.change, view.density):
        assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    # a click on the density picture: its heat map's centre is the origin, its corner (-lim, lim)
    left, top, right, bottom = view.density_box
    assert 0 <= left < right <= view.density.shape[1] and 0 <= top < bottom <= view.density.shape[0]
    mid = fam.pixel_to_point(view.density_box, x_plane.lim, (left + right) / 2, (top + bottom) / 2)
    assert mid == pytest.approx((0.0, 0.0), abs=1e-3)
    corner = fam.pixel_to_point(view.density_box, x_plane.lim, left, top)
    assert corner == pytest.approx((-x_plane.lim, x_plane.lim), abs=1e-3)
    assert fam.pixel_to_point(view.density_box, x_plane.lim, right + 1, top) is None


def test_flow_tab_bounds_and_refusals(family_registry, nflow_run, ebm_run, diffusion_folder):
    from difusion.app import families as fam

    reg, name = family_registry, str(nflow_run)
    for kwargs, match in [
        ({"k": 9}, "couplings"),
        ({"k": -1}, "couplings"),
        ({"n": 0}, "samples"),
        ({"n": fam.MAX_CHAINS + 1}, "samples"),
        ({"point": "1, 2, 3"}, "two numbers"),
        ({"point": "a, b"}, "point x"),
    ]:
        with pytest.raises(DifusionError, match=match):
            fam.flow_view(reg, name, **kwargs)
    assert fam.flow_view(reg, name, k=0, point="", n=10).point is None
    with pytest.raises(DifusionError, match="not an nflow run"):
        fam.flow_view(reg, str(diffusion_folder))
    with pytest.raises(DifusionError, match="not an nflow run"):
        fam.flow_view(reg, str(ebm_run))
    with pytest.raises(ex.RunRefused):
        fam.flow_view(reg, "/etc")
    with pytest.raises(DifusionError, match="see the Normalizing flow tab"):
        reg.load(name)


def test_langevin_tab_of_an_energy_is_sgld(family_registry, ebm_run):
    """The chains after k steps are `sgld` from `difusion sample`'s start with the same seed (and
    after the run's own steps, `draw` itself); they move toward the data; the arrows are -grad E
    of the energy drawn beside them (checked by finite differences of the picture's E)."""
    from difusion.app import families as fam
    from difusion.ebm.energy import energy_score
    from difusion.ebm.langevin import sgld
    from difusion.ebm.run import load_ebm
    from difusion.ebm.scoring import draw, start_noise

    reg, name = family_registry, str(ebm_run)
    assert name in fam.ebm_status(reg)
    assert fam.ebm_status(ex.RunRegistry([])) == fam.NO_EBM
    model = load_ebm(ebm_run)
    cfg = model.config
    assert fam.langevin_range(reg, name) == ("SGLD steps", fam.MAX_LANGEVIN_STEPS, 500)
    view = fam.langevin_view(reg, name, k=60, n=300, seed=4, frames=6)
    g = torch.Generator().manual_seed(4)
    expected = sgld(energy_score(model), start_noise(cfg, 300, 2, g), cfg.ebm.step_size, 60, g)
    assert torch.equal(view.x, expected)
    assert view.positions == [0, 10, 20, 30, 40, 50, 60] and len(view.frames) == 7
    start = start_noise(cfg, 300, 2, torch.Generator().manual_seed(4))
    assert torch.equal(view.trace[0], start)  # uniform noise on [-3, 3]^2, as `draw` starts
    own = fam.langevin_view(reg, name, n=300, seed=4)  # k None: the run's own 500 steps
    assert own.positions[-1] == 500
    assert torch.equal(own.x, draw(model, cfg, 300, 4)[0])
    data = fam._data(cfg)
    assert own.mean_distance[0] == pytest.approx(fam.mean_distance(own.trace[0], data))
    assert own.mean_distance[-1] < 0.5 * own.mean_distance[0]  # the chains reach the data
    # the field: E on the grid is the network's; the arrows are minus its gradient
    _, grid = fam._square(float(view.axis[-1]), fam.HEAT)
    with torch.no_grad():
        torch.testing.assert_close(view.energy.reshape(-1), model(grid))
    h = float(view.axis[1] - view.axis[0])
    step = (fam.HEAT - 1) / (fam.ARROWS - 1)
    checked = 0
    for a in range(1, fam.ARROWS - 1):
        for b in range(1, fam.ARROWS - 1):
            i, j = round(a * step), round(b * step)  # row i (y), column j (x) of the energy map
            dx = (view.energy[i, j + 1] - view.energy[i, j - 1]) / (2 * h)
            dy = (view.energy[i + 1, j] - view.energy[i - 1, j]) / (2 * h)
            arrow = view.score[a * fam.ARROWS + b]
            torch.testing.assert_close(view.arrow_points[a * fam.ARROWS + b],
                                       torch.stack([view.axis[j], view.axis[i]]))  # fmt: skip
            torch.testing.assert_close(arrow, -torch.stack([dx, dy]), atol=0.02, rtol=0.02)
            checked += 1
    assert checked == (fam.ARROWS - 2) ** 2
    assert view.field_picture.dtype == np.uint8
    assert view.strip.shape[1] == 7 * view.frames[0].shape[1]  # 7 moments: 0, 10, ..., 60 steps


def test_langevin_tab_of_a_score_is_annealed_langevin(family_registry, dsm_run):
    """The chains after k levels are annealed Langevin's (Song & Ermon Algorithm 1) at the end of
    level k, and the Tweedie step after the last level is `difusion sample`'s `draw`, the same
    seed; the arrows are s(x, sigma) at the level the chains follow; the chains reach the data."""
    from difusion.app import families as fam
    from difusion.ebm.models import sigmas_of
    from difusion.ebm.run import load_ebm
    from difusion.ebm.scoring import draw

    reg, name = family_registry, str(dsm_run)
    model = load_ebm(dsm_run)
    cfg = model.config
    sigmas = sigmas_of(cfg)
    assert fam.langevin_range(reg, name) == ("noise levels done", 15, 15)
    view = fam.langevin_view(reg, name, k=5, n=300, seed=1)
    assert view.kind == "dsm" and view.positions == list(range(16)) and len(view.trace) == 16
    assert torch.equal(view.x, view.trace[5])
    assert torch.equal(view.denoised, draw(model, cfg, 300, 1)[0])
    assert len(view.frames) == 17  # the start, every level's end, the Tweedie step
    assert view.sigma == pytest.approx(float(sigmas[5]))
    with torch.no_grad():
        expected = model(view.arrow_points, torch.full((len(view.arrow_points),), view.sigma))
    torch.testing.assert_close(view.score, expected)
    d = view.mean_distance
    assert d[-1] < 0.5 * d[0] and d[5] < d[0]  # from N(0, 3^2 I) onto the moons
    assert view.energy is None and view.chains_picture.dtype == np.uint8
    assert f"{d[0]:.3f} at the start, {d[5]:.3f} after 5 of 15 levels" in view.summary
    first = fam.langevin_view(reg, name, k=0, n=300, seed=1)
    assert torch.equal(first.x, view.trace[0]) and first.sigma == pytest.approx(float(sigmas[0]))
    assert torch.equal(first.denoised, view.denoised)  # the same chains, another level shown


def test_langevin_tab_bounds_and_refusals(family_registry, ebm_run, dsm_run, nflow_run,
                                          diffusion_folder):  # fmt: skip
    from difusion.app import families as fam

    reg = family_registry
    for name, kwargs, match in [
        (dsm_run, {"k": 16}, "noise levels done"),
        (ebm_run, {"k": fam.MAX_LANGEVIN_STEPS + 1}, "SGLD steps"),
        (ebm_run, {"k": -1}, "SGLD steps"),
        (ebm_run, {"n": 0}, "chains"),
        (ebm_run, {"seed": -3}, "seed"),
    ]:
        with pytest.raises(DifusionError, match=match):
            fam.langevin_view(reg, str(name), **kwargs)
    for other in (nflow_run, diffusion_folder):
        with pytest.raises(DifusionError, match="not an ebm run"):
            fam.langevin_view(reg, str(other))
    with pytest.raises(ex.RunRefused):
        fam.langevin_view(reg, "/etc")
    with pytest.raises(DifusionError, match="see the Langevin"):
        reg.load(str(ebm_run))
