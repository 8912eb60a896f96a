"""hvae run folders read back: the EMA model, its samples and its measures (what `difusion sample`
and `difusion eval` of an hvae run call)."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.build import load_ema_module
from difusion.hvae.models import build_hvae


def load_hvae(run_dir: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained model of ``run_dir`` (EMA weights, eval mode, fp32), with ``.config`` and
    ``.step``: ``.elbo_terms(k, generator)``, ``.log_weight(k, generator)``, ``.sample(n, seed)``."""
    return load_ema_module(run_dir, "hvae", build_hvae, device)


def sample_hvae_run(
    run_dir: str | Path, n: int, seed: int = 0, out: Path | None = None
) -> dict[str, Path]:
    """``n`` samples of the run into ``out`` (samples.png, samples_mean.png, samples.npz)."""
    from difusion.hvae.scoring import draw_images, write_pictures

    model = load_hvae(run_dir)
    images, _ = draw_images(model, model.config, n, seed)
    return write_pictures(images, out or Path(run_dir) / f"samples-seed{seed}-n{n}", seed)


def eval_hvae_run(
    run_dir: str | Path, n: int | None = None, out: Path | None = None
) -> tuple[dict, Path]:
    """The measures of :func:`difusion.hvae.scoring.measure` on the first ``n`` test images (all
    for None), written as JSON to ``out``."""
    from difusion.hvae.scoring import measure, test_data, write_measures

    model = load_hvae(run_dir)
    m = measure(model, model.config, test_data(model.config, n))
    m["run_step"] = model.step
    return m, write_measures(m, out or Path(run_dir) / f"eval-hvae-n{n or 'all'}.json")


def eval_hvae_lines(run_dir: Path, opts, device) -> list[str]:
    """`difusion eval RUN` for an hvae run (``run_eval.EVALUATORS``): the printed lines."""
    import time

    from difusion.hvae.scoring import measure_lines

    t0 = time.perf_counter()
    m, path = eval_hvae_run(run_dir, opts.n, out=opts.out)
    return [*measure_lines(m), f"({time.perf_counter() - t0:.0f} s) written: {path}"]
