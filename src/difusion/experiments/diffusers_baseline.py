"""The baseline of the speedrun: diffusers' own unconditional training example, as its defaults say.

The recipe is ``examples/unconditional_image_generation/train_unconditional.py`` of diffusers
(its argparse defaults): UNet2DModel with ``layers_per_block=2`` and widths (128, 128, 256, 256,
512, 512), attention in the last-but-one level; DDPMScheduler with 1000 linear-beta steps
(1e-4 .. 0.02) and epsilon prediction; AdamW (lr 1e-4, betas (0.95, 0.999), weight decay 1e-6,
eps 1e-8); a cosine learning-rate schedule with 500 warm-up steps planned for 100 epochs; batch
16; gradient clipping at 1.0; EMA with warm-up (inv_gamma 1, power 3/4, max decay 0.9999); fp32
(mixed_precision "no"); random horizontal flips. Scaled to 28x28 grayscale: one input channel and
three levels (28, 14, 7) with the first three widths (128, 128, 256), attention at 14x14.

The example's data pipeline (PIL, torchvision transforms, a DataLoader) is replaced by tensors in
memory and a hand-written flip (torchvision is not available here), which only makes it faster.
Samples come from diffusers' own pipelines: DDPMPipeline (1000 steps), DDIMPipeline (eta 0) and
DPMSolverMultistepScheduler in the DDPM pipeline. diffusers is imported lazily: difusion never needs
it at run time, only this benchmark does.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import torch

from difusion.errors import DifusionError

# train_unconditional.py's argparse defaults (the ones that matter for training).
EXAMPLE_DEFAULTS = {
    "train_batch_size": 16,
    "num_epochs": 100,
    "learning_rate": 1e-4,
    "lr_scheduler": "cosine",
    "lr_warmup_steps": 500,
    "adam_beta1": 0.95,
    "adam_beta2": 0.999,
    "adam_weight_decay": 1e-6,
    "adam_epsilon": 1e-8,
    "use_ema": True,
    "ema_inv_gamma": 1.0,
    "ema_power": 0.75,
    "ema_max_decay": 0.9999,
    "ddpm_num_steps": 1000,
    "ddpm_beta_schedule": "linear",
    "prediction_type": "epsilon",
    "mixed_precision": "no",
    "random_flip": True,
    "max_grad_norm": 1.0,
}
EXAMPLE_WIDTHS = (128, 128, 256)  # the example's first three levels
WEIGHTS, CONFIG, REPORT = "unet_ema.safetensors", "unet_config.json", "train.json"


def _diffusers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network
    try:
        import diffusers
    except ModuleNotFoundError:
        raise DifusionError(
            "the diffusers baseline needs diffusers; install the test extra: "
            "pip install -e '.[test]'"
        ) from None
    return diffusers


def baseline_unet(widths: tuple[int, ...] = EXAMPLE_WIDTHS):
    """The example's UNet2DModel for 28x28 grayscale: a level per width, attention in the
    last-but-one level (as the example's AttnDownBlock2D / AttnUpBlock2D)."""
    d = _diffusers()
    n = len(widths)
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    down[n - 2] = "AttnDownBlock2D"
    up[1] = "AttnUpBlock2D"
    return d.UNet2DModel(
        sample_size=28,
        in_channels=1,
        out_channels=1,
        layers_per_block=2,
        block_out_channels=tuple(widths),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(32, min(widths)),
    )


def noise_scheduler():
    """DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear"), epsilon prediction."""
    d = _diffusers()
    e = EXAMPLE_DEFAULTS
    return d.DDPMScheduler(
        num_train_timesteps=e["ddpm_num_steps"],
        beta_schedule=e["ddpm_beta_schedule"],
        prediction_type=e["prediction_type"],
    )


def finished(run_dir: Path) -> bool:
    return (Path(run_dir) / REPORT).exists() and (Path(run_dir) / WEIGHTS).exists()


def train_baseline(
    run_dir: str | Path,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    widths: tuple[int, ...] = EXAMPLE_WIDTHS,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Train the example's recipe for ``minutes`` of wall-clock time (or ``steps``); write the EMA
    weights (safetensors, atomically), the UNet config and train.json; return train.json's dict.

    The loss is L_simple of Ho et al. 2020 (eq. 14): ||eps - eps_theta(x_t, t)||^2 with
    x_t = scheduler.add_noise(x_0, eps, t), t uniform in 0..999 (diffusers counts from 0)."""
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from difusion.data import load_dataset

    d = _diffusers()
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel

    if minutes is None and steps is None:
        raise DifusionError("train_baseline needs minutes or steps")
    e = EXAMPLE_DEFAULTS
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = load_dataset("fashion-mnist", split="train").data  # (N, 1, 28, 28) in [-1, 1]
    model = baseline_unet(widths)
    sched = noise_scheduler()
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=e["learning_rate"],
        betas=(e["adam_beta1"], e["adam_beta2"]),
        weight_decay=e["adam_weight_decay"],
        eps=e["adam_epsilon"],
    )
    bs = e["train_batch_size"]
    per_epoch = math.ceil(len(data) / bs)
    lr_sched = get_scheduler(
        e["lr_scheduler"],
        optimizer=opt,
        num_warmup_steps=e["lr_warmup_steps"],
        num_training_steps=per_epoch * e["num_epochs"],
    )
    ema = EMAModel(
        model.parameters(),
        decay=e["ema_max_decay"],
        use_ema_warmup=True,
        inv_gamma=e["ema_inv_gamma"],
        power=e["ema_power"],
    )
    gen = torch.Generator().manual_seed(seed)
    budget_s = 60.0 * minutes if minutes is not None else math.inf
    max_steps = steps if steps is not None else math.inf
    bar = tqdm(desc="diffusers baseline", unit="step", disable=not progress, leave=False)
    step, losses, start = 0, [], time.perf_counter()
    model.train()
    while step < max_steps and time.perf_counter() - start < budget_s:
        order = torch.randperm(len(data), generator=gen)  # shuffle=True, one epoch
        for first in range(0, len(data), bs):
            if step >= max_steps or time.perf_counter() - start >= budget_s:
                break
            x0 = data[order[first : first + bs]]
            flip = torch.rand(len(x0), generator=gen) < 0.5  # RandomHorizontalFlip
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
            noise = torch.randn(x0.shape, generator=gen)
            t = torch.randint(0, sched.config.num_train_timesteps, (len(x0),), generator=gen)
            noisy = sched.add_noise(x0, noise, t)
            loss = torch.nn.functional.mse_loss(model(noisy, t).sample, noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), e["max_grad_norm"])
            opt.step()
            lr_sched.step()
            ema.step(model.parameters())
            opt.zero_grad()
            step += 1
            losses.append(loss.item())
            bar.update(1)
    seconds = time.perf_counter() - start
    bar.close()
    ema.copy_to(model.parameters())
    tmp = run_dir / (WEIGHTS + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, run_dir / WEIGHTS)
    (run_dir / CONFIG).write_text(json.dumps(dict(model.config), indent=2, default=list) + "\n")
    report = {
        "recipe": f"diffusers train_unconditional.py defaults, widths {list(widths)}",
        "diffusers": d.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": step,
        "seconds": round(seconds, 1),
        "images_per_s": round(step * bs / max(seconds, 1e-9), 1),
        "last_loss": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "ema_decay": ema.cur_decay_value,
    }
    (run_dir / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report


def load_baseline(run_dir: str | Path):
    """The trained EMA UNet2DModel of ``run_dir``, in eval mode."""
    from safetensors.torch import load_file

    d = _diffusers()
    run_dir = Path(run_dir)
    config = json.loads((run_dir / CONFIG).read_text())
    model = d.UNet2DModel.from_config(config)
    model.load_state_dict(load_file(str(run_dir / WEIGHTS)))
    return model.eval()


PIPELINES = ("ddpm", "ddim", "dpm-solver")


@torch.no_grad()
def sample_pipeline(
    unet, kind: str, *, n: int, steps: int, seed: int = 0, batch_size: int = 250,
    progress: bool = False,
) -> torch.Tensor:  # fmt: skip
    """n images (N, 1, 28, 28) in [-1, 1] from diffusers' own pipelines: ``ddpm`` (DDPMPipeline,
    Ho et al. Algorithm 2), ``ddim`` (DDIMPipeline, eta 0: Song et al. eq. 12) or ``dpm-solver``
    (DPMSolverMultistepScheduler, DPM-Solver++(2M) of Lu et al. 2022, in the DDPM pipeline).
    Image i uses its own generator seeded seed + i."""
    d = _diffusers()
    base = noise_scheduler()
    if kind == "ddpm":
        pipe, kw = d.DDPMPipeline(unet=unet, scheduler=base), {}
    elif kind == "ddim":
        pipe = d.DDIMPipeline(unet=unet, scheduler=d.DDIMScheduler.from_config(base.config))
        kw = {"eta": 0.0}
    elif kind == "dpm-solver":
        sched = d.DPMSolverMultistepScheduler.from_config(base.config)
        pipe, kw = d.DDPMPipeline(unet=unet, scheduler=sched), {}
    else:
        raise DifusionError(f"unknown pipeline {kind!r}; choose one of: {', '.join(PIPELINES)}")
    pipe.set_progress_bar_config(disable=not progress)
    out = []
    for first in range(0, n, batch_size):
        k = min(batch_size, n - first)
        gens = [torch.Generator().manual_seed(seed + first + i) for i in range(k)]
        images = pipe(
            batch_size=k, generator=gens, num_inference_steps=steps, output_type="np", **kw
        ).images  # (k, 28, 28, 1) in [0, 1]
        out.append(torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1)
    return torch.cat(out).float()
