"""Flow run folders read back: the EMA flow, its samples and its measures (the API a `difusion
sample` / `difusion eval` of an nflow run calls)."""

from __future__ import annotations

from pathlib import Path

import torch

from difusion.build import load_ema_module
from difusion.nflows.models import build_nflow


def load_nflow(run_dir: str | Path, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The trained flow of ``run_dir`` (EMA weights, eval mode, fp32), with ``.config`` and
    ``.step``: ``.log_prob(x)``, ``.sample(n, seed)``, ``forward`` and ``inverse``."""
    return load_ema_module(run_dir, "nflow", build_nflow, device)


def sample_nflow_run(
    run_dir: str | Path, n: int, seed: int = 0, out: Path | None = None
) -> dict[str, Path]:
    """``n`` samples of the run into ``out`` (samples.png or samples_scatter.png, samples.npz)."""
    from difusion.nflows.pictures import write_pictures
    from difusion.nflows.scoring import draw, test_data

    model = load_nflow(run_dir)
    samples, _ = draw(model, model.config, n, seed)
    out = out or Path(run_dir) / f"samples-seed{seed}-n{n}"
    return write_pictures(samples, test_data(model.config), model, out, seed)


def eval_nflow_run(
    run_dir: str | Path, n: int | None = None, out: Path | None = None
) -> tuple[dict, Path]:
    """The measures of :func:`difusion.nflows.scoring.measure` on the first ``n`` test examples
    (all for None), written as JSON to ``out``."""
    from difusion.nflows.scoring import measure, test_data, write_measures

    model = load_nflow(run_dir)
    m = measure(model, model.config, test_data(model.config, n))
    m["run_step"] = model.step
    name = f"eval-nflow-n{n or 'all'}.json"
    return m, write_measures(m, out or Path(run_dir) / name)


def eval_nflow_lines(run_dir: Path, opts, device) -> list[str]:
    """`difusion eval RUN` for an nflow run (``run_eval.EVALUATORS``): the printed lines."""
    import time

    from difusion.nflows.scoring import measure_lines

    t0 = time.perf_counter()
    m, path = eval_nflow_run(run_dir, opts.n, out=opts.out)
    return [*measure_lines(m), f"({time.perf_counter() - t0:.0f} s) written: {path}"]
