"""How far diffusers' samples of an export are from the lab's, from the same noise (docs/diffusers.md).

    python scripts/diffusers_agreement.py RUN EXPORT [N]

RUN is a run folder, EXPORT its `difusion export RUN --to diffusers EXPORT`. Prints the largest
absolute difference of the [0, 1] pixels of N images (default 16, seeds 0..N-1) for a DDPM run:
DDPMPipeline (all T ancestral steps) vs `--sampler ddpm`, and DDIMPipeline (50 steps, eta 0) vs
`--sampler ddim --steps 50`; for a flow run: the scheduler's Euler steps on the lab's grid vs
`--sampler fm-euler --steps 50`. Each once with the lab under the run's precision (bf16 autocast
where `train.precision: auto` finds bf16 on the CPU) and once in fp32, as diffusers runs.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import DDIMPipeline, DDIMScheduler, DiffusionPipeline  # noqa: E402

import difusion.hub.model  # noqa: E402, F401  (lets diffusers build the lab's network)
from difusion.runs import load_run  # noqa: E402
from difusion.sampling.pipeline import draw_samples  # noqa: E402

STEPS = 50


def pixels(x: torch.Tensor) -> np.ndarray:
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def main(run_dir: str, export: str, n: int = 16) -> None:
    run, pipe = load_run(run_dir), DiffusionPipeline.from_pretrained(export)
    pipe.set_progress_bar_config(disable=True)

    def generators():  # the lab's per-image noise: image i from seed i
        return [torch.Generator().manual_seed(i) for i in range(n)]

    def lab(**settings) -> np.ndarray:
        s = run.settings(n=n, seed=0, **settings)
        return pixels(draw_samples(run.model, s, progress=False).x)

    def flow_euler() -> np.ndarray:
        pipe.scheduler.set_timesteps(sigmas=[1 - i / STEPS for i in range(STEPS)])
        x = torch.stack([torch.randn(run.shape, generator=g) for g in generators()])
        for t in pipe.scheduler.timesteps:
            x = pipe.scheduler.step(pipe.unet(x, t).sample, t, x).prev_sample
        return pixels(x)

    def ddpm() -> np.ndarray:
        T = run.path.T
        return pipe(
            batch_size=n, generator=generators(), num_inference_steps=T, output_type="np"
        ).images

    def ddim() -> np.ndarray:
        sched = DDIMScheduler.from_config(pipe.scheduler.config, timestep_spacing="trailing")
        ddim = DDIMPipeline(unet=pipe.unet, scheduler=sched)
        ddim.set_progress_bar_config(disable=True)
        return ddim(
            batch_size=n, generator=generators(), num_inference_steps=STEPS, eta=0.0,
            use_clipped_model_output=True, output_type="np",
        ).images  # fmt: skip

    for amp in (run.model.autocast_dtype, None):
        run.model.autocast_dtype = amp
        with torch.no_grad():
            if run.config.objective == "flow":
                rows = {
                    f"fm-euler, {STEPS} steps": (flow_euler(), lab(sampler="fm-euler", steps=STEPS))
                }
            else:
                rows = {
                    f"DDPMPipeline, {run.path.T} steps": (ddpm(), lab(sampler="ddpm")),
                    f"DDIMPipeline, {STEPS} steps": (ddim(), lab(sampler="ddim", steps=STEPS)),
                }
        for name, (theirs, ours) in rows.items():
            diff = np.abs(theirs - ours).max()
            print(f"{name:26s} lab in {str(amp or 'fp32'):15s} max |diff| = {diff:.2e}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:4]))
