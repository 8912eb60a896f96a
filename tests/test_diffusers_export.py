"""Handing runs to diffusers and back (docs/diffusers.md): an export loads offline with
``DiffusionPipeline.from_pretrained`` and draws, from the same noise, the samples our samplers draw
(ancestral DDPM, DDIM, flow Euler, class labels included); a diffusers UNet2DModel folder imports
as a run that `difusion sample` opens; what has no diffusers counterpart is one line."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

diffusers = pytest.importorskip("diffusers")

from test_run_folders import assert_one_line, cli  # noqa: E402

import difusion.hub.model  # noqa: E402, F401  (lets diffusers load the lab's network)
from difusion.checkpoint import load_checkpoint  # noqa: E402
from difusion.config import load_config, load_run_config, save_config  # noqa: E402
from difusion.diffusion import DDPMPath  # noqa: E402
from difusion.diffusion.variance import learned_log_variance  # noqa: E402
from difusion.runs import load_run  # noqa: E402
from difusion.sampling.diffusers_bridge import DiffusersNetwork  # noqa: E402
from difusion.sampling.pipeline import draw_samples  # noqa: E402
from difusion.training.loop import train  # noqa: E402

TINY = [
    "model.base_channels=8",
    "model.channel_mult=[1,2]",
    "model.attention_levels=[1]",
    "model.num_res_blocks=1",
    "model.num_heads=2",
    "diffusion.T=40",
    "train.steps=3",
    "train.sample_every=0",
    "train.precision=fp32",
    "train.threads=1",
]
N = 4


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs on 8x8 digits: DDPM (eps, clipped), and class-conditional rectified flow."""
    root = tmp_path_factory.mktemp("runs")
    train(load_config("digits", TINY), root / "ddpm", progress=False, final_samples=False)
    flow = load_config("digits", [*TINY, "objective=flow", "model.class_conditional=true"])
    train(flow, root / "flow", progress=False, final_samples=False)
    return root


def noise() -> list[torch.Generator]:
    """One generator per image, seeded 0..N-1: the lab's per-image noise (sampling/noise.py)."""
    return [torch.Generator().manual_seed(i) for i in range(N)]


def ours(run, **settings) -> np.ndarray:
    """The lab's samples as DDPMPipeline returns them: (N, H, W, C) in [0, 1]."""
    x = draw_samples(run.model, run.settings(n=N, seed=0, **settings), progress=False).x
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def test_a_ddpm_export_loads_offline_and_samples_as_the_lab_does(runs, monkeypatch, capsys):
    out = runs / "ddpm-diffusers"
    code, text, err = cli(monkeypatch, capsys, "export", runs / "ddpm", "--to", "diffusers", out)
    assert code == 0, err
    assert "import difusion.hub.model" in text
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".ckpt")) for f in files)
    assert not list(runs.glob(".ddpm-diffusers.*"))  # the temporary folder is gone

    pipe = diffusers.DiffusionPipeline.from_pretrained(out)
    run = load_run(runs / "ddpm")
    assert isinstance(pipe, diffusers.DDPMPipeline)
    sc = pipe.scheduler.config
    assert (sc.prediction_type, sc.clip_sample, sc.variance_type) == (
        "epsilon",
        True,
        "fixed_large",
    )
    assert torch.allclose(
        pipe.scheduler.alphas_cumprod.double(), run.path.alpha_bar[1:], rtol=1e-5, atol=1e-7
    )
    # ancestral sampling, noise for noise: x_T and every z come from image i's own generator
    theirs = pipe(batch_size=N, generator=noise(), num_inference_steps=40, output_type="np")
    assert np.abs(theirs.images - ours(run, sampler="ddpm")).max() < 1e-5
    # DDIM (eta = 0) on the lab's trailing grid, the clipped x_0 giving eps as the lab's denoiser does
    ddim = diffusers.DDIMScheduler.from_config(sc, timestep_spacing="trailing")
    theirs = diffusers.DDIMPipeline(unet=pipe.unet, scheduler=ddim)(
        batch_size=N, generator=noise(), num_inference_steps=10, eta=0.0,
        use_clipped_model_output=True, output_type="np",
    )  # fmt: skip
    assert np.abs(theirs.images - ours(run, sampler="ddim", steps=10)).max() < 1e-5

    # and back: `difusion import` of the export is the run as trained
    code, text, err = cli(monkeypatch, capsys, "import", out, runs / "ddpm-back")
    assert code == 0, err
    assert load_run_config(runs / "ddpm-back") == run.config
    back = load_checkpoint(runs / "ddpm-back" / "checkpoint.safetensors", ("ema",))[0]["ema"]
    assert all(torch.equal(back[k], v) for k, v in run.network.state_dict().items())


def test_a_class_conditional_flow_export_steps_as_fm_euler(runs, monkeypatch, capsys):
    out = runs / "flow-diffusers"
    code, text, err = cli(monkeypatch, capsys, "export", runs / "flow", out)
    assert code == 0, err
    assert "null class" in text and "sigmas" in text
    pipe = diffusers.DiffusionPipeline.from_pretrained(out)
    assert isinstance(pipe.scheduler, diffusers.FlowMatchEulerDiscreteScheduler)
    run = load_run(runs / "flow")
    labels = run.model.labels(N)
    steps = 5  # the lab's fm-euler grid: sigma = 1, 4/5, ..., 1/5, then 0
    pipe.scheduler.set_timesteps(sigmas=[1 - i / steps for i in range(steps)])
    x = torch.stack([torch.randn(run.shape, generator=g) for g in noise()])
    with torch.no_grad():
        for t in pipe.scheduler.timesteps:
            v = pipe.unet(x, t, class_labels=labels).sample
            x = pipe.scheduler.step(v, t, x).prev_sample
    theirs = (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    assert np.abs(theirs - ours(run, sampler="fm-euler", steps=steps)).max() < 1e-5
    # the pipeline itself passes no labels: the null class (the unconditional model)
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1) and np.isfinite(images).all()


def test_a_diffusers_unet_imports_as_a_run_the_samplers_open(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 16), norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    )  # fmt: skip
    sched = diffusers.DDPMScheduler(
        beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction"
    )
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "hf")
    code, text, err = cli(monkeypatch, capsys, "import", tmp_path / "hf", tmp_path / "run")
    assert code == 0, err
    assert "cosine schedule" in text and "v prediction" in text
    run = load_run(tmp_path / "run")
    assert isinstance(run.network, DiffusersNetwork) and run.model.prediction == "v"

    code, text, err = cli(
        monkeypatch, capsys, "sample", tmp_path / "run", "--sampler", "ddim", "--steps", "10",
        "--n", N, "--out", tmp_path / "samples", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    with np.load(tmp_path / "samples" / "samples.npz") as f:
        lab = (f["images"] / 2 + 0.5).clip(0, 1).transpose(0, 2, 3, 1)
    ddim = diffusers.DDIMScheduler.from_config(sched.config, timestep_spacing="trailing")
    theirs = diffusers.DDIMPipeline(unet=unet, scheduler=ddim)(
        batch_size=N, generator=noise(), num_inference_steps=10,
        use_clipped_model_output=True, output_type="np",
    ).images  # fmt: skip
    assert np.abs(theirs - lab).max() < 1e-5

    # an imported run exports as the plain UNet2DModel it was
    code, text, err = cli(monkeypatch, capsys, "export", tmp_path / "run", tmp_path / "again")
    assert code == 0, err
    assert '"UNet2DModel"' in (tmp_path / "again" / "model_index.json").read_text()

    # betas that are none of the lab's schedules are refused
    sched = diffusers.DDPMScheduler(num_train_timesteps=10, trained_betas=np.linspace(0.1, 0.2, 10))
    sched.save_pretrained(tmp_path / "hf" / "scheduler")
    code, _, err = cli(monkeypatch, capsys, "import", tmp_path / "hf", tmp_path / "run2")
    assert_one_line(code, err, "none of the lab's schedules")
    assert not (tmp_path / "run2").exists()


def test_what_diffusers_cannot_sample_is_one_line(runs, tmp_path, monkeypatch, capsys):
    for name, overrides, word in [
        ("mu", ["diffusion.prediction=mu"], "predicts mu"),
        ("points", [], "2-D points"),
    ]:
        cfg = load_config("digits" if name == "mu" else "toy2d", overrides)
        (tmp_path / name).mkdir()
        save_config(cfg, tmp_path / name / "config.yaml")
        code, _, err = cli(monkeypatch, capsys, "export", tmp_path / name, tmp_path / "out")
        assert_one_line(code, err, word)
    # OUT is never a folder of other files, nor a previous export without --overwrite
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    code, _, err = cli(monkeypatch, capsys, "export", runs / "ddpm", tmp_path / "busy")
    assert_one_line(code, err, "other files")
    assert cli(monkeypatch, capsys, "export", runs / "ddpm", tmp_path / "e")[0] == 0
    code, _, err = cli(monkeypatch, capsys, "export", runs / "ddpm", tmp_path / "e")
    assert_one_line(code, err, "--overwrite")
    assert cli(monkeypatch, capsys, "export", runs / "ddpm", tmp_path / "e", "--overwrite")[0] == 0
    # without diffusers: how to get it
    monkeypatch.setitem(sys.modules, "diffusers", None)
    code, _, err = cli(monkeypatch, capsys, "export", runs / "ddpm", tmp_path / "f")
    assert_one_line(code, err, "pip install diffusers")


def test_learned_range_of_2v_minus_1_is_improved_ddpm_eq_15():
    """The export passes v as 2 v - 1, as diffusers' learned_range reads frac = (out + 1) / 2:
    its log variance is then v log beta_t + (1 - v) log beta_tilde_t (Nichol & Dhariwal eq. 15)."""
    path = DDPMPath.from_schedule("cosine", 40)
    sched = diffusers.DDPMScheduler(
        num_train_timesteps=40, trained_betas=path.beta[1:].tolist(), variance_type="learned_range"
    )
    v = torch.rand(3, 1, 2, 2, dtype=torch.float64)
    for t in (40, 20, 2):
        theirs = sched._get_variance(t - 1, (2 * v - 1).float())  # diffusers' k = t - 1
        lab = learned_log_variance(path, t, t - 1, v)
        assert torch.allclose(theirs.double(), lab, rtol=1e-4, atol=1e-6), t
