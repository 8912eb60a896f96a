"""ebm run folders read back: the EMA network, its Langevin samples and their measures (what
`difusion sample` and `difusion eval` of an ebm run call)."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.build import load_ema_module
from difusion.ebm.models import build_ebm


def load_ebm(run_dir: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained network of ``run_dir`` (EMA weights, eval mode, fp32), with ``.config``,
    ``.step`` and ``.shape``: an energy ``E(x)`` (cd) or a score ``s(x, sigma)`` (dsm)."""
    return load_ema_module(run_dir, "ebm", build_ebm, device)


def sample_ebm_run(
    run_dir: str | Path, n: int, seed: int = 0, out: Path | None = None
) -> dict[str, Path]:
    """``n`` Langevin samples of the run into ``out`` (samples.png or samples_scatter.png,
    samples.npz)."""
    from difusion.ebm.scoring import draw, test_data, write_pictures

    model = load_ebm(run_dir)
    samples, _ = draw(model, model.config, n, seed)
    out = out or Path(run_dir) / f"samples-seed{seed}-n{n}"
    return write_pictures(samples, test_data(model.config), out, seed)


def eval_ebm_run(
    run_dir: str | Path, n: int | None = None, out: Path | None = None, seed: int = 0
) -> tuple[dict, Path]:
    """The measures of :func:`difusion.ebm.scoring.measure`: ``n`` Langevin samples (the run's
    ``sample.n`` for None; seed ``seed``) against as many random test examples, written as JSON to
    ``out``."""
    from difusion.ebm.scoring import draw, measure, test_data, write_measures

    model = load_ebm(run_dir)
    cfg = model.config
    n = n or cfg.sample.n
    samples, info = draw(model, cfg, n, seed)
    m = measure(samples, cfg, test_data(cfg))
    m.update(info, samples=n, seed=seed, run_step=model.step)
    return m, write_measures(m, out or Path(run_dir) / f"eval-ebm-n{n or 'all'}.json")


def eval_ebm_lines(run_dir: Path, opts, device) -> list[str]:
    """`difusion eval RUN` for an ebm run (``run_eval.EVALUATORS``): the printed lines."""
    import time

    from difusion.ebm.scoring import measure_lines

    t0 = time.perf_counter()
    m, path = eval_ebm_run(run_dir, opts.n, out=opts.out)
    return [*measure_lines(m), f"({time.perf_counter() - t0:.0f} s) written: {path}"]
