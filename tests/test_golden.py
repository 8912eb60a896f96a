"""Golden samples: the checkpoints in tests/golden/ sampled by every sampler give the samples that the
sampling code had before the one-path refactor (tests/golden/make_golden.py made them with it).

Two rules changed on purpose, and the goldens were drawn with the old code's pieces set to the new
rule (make_golden.py says how):
- guidance combines the raw predictions of the two branches and clips once (Ho & Salimans); the old
  code clipped each branch's x_0 first. ``test_guidance_rule_changed`` shows the old samples differ.
- a flow run's x_0 estimate is never clipped, under any sampler (its ODE solvers never clipped it).

Tolerance: 1e-5 everywhere except the DDPM samplers (ddpm, ddim, dpmpp-2m, euler, heun) on the flow
runs, 2e-3. The old code ran those through an adapter that rescaled x_t by (1 - tau) / alpha with
tau in float32; at the first step tau = 1 - 3e-5 (cosine schedule, t = T), so 1 - tau carried a
relative error of about 2e-3. Today the same scale, sqrt(alpha^2 + sigma^2) of the flow path at that
time, is computed in float64. The fm-* solvers on the flow runs, the main job's sampler, stay within
1e-5.
"""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from difusion.runs import load_run
from difusion.sampling.pipeline import draw_samples

HERE = Path(__file__).parent / "golden"
GOLDEN = load_file(str(HERE / "golden.safetensors"))
N, SEED = 6, 3


def _parse(key: str):
    run, rest = key.split("/")
    rest = rest.split("@")[0]
    parts = rest.split("-")
    extra = {}
    while parts[-1].startswith(("eta", "variance")):
        p = parts.pop()
        if p.startswith("eta"):
            extra["eta"] = float(p[3:])
        else:
            extra["variance"] = p[8:]
    steps = int(parts.pop())
    return run, "-".join(parts), steps, extra


_RUNS: dict = {}


def _draw(key: str) -> torch.Tensor:
    run_name, sampler, steps, extra = _parse(key)
    if run_name not in _RUNS:
        _RUNS[run_name] = load_run(HERE / "checkpoints" / run_name)
    run = _RUNS[run_name]
    settings = run.settings(n=N, seed=SEED, sampler=sampler, steps=steps, **extra)
    return draw_samples(run.model, settings, progress=False).x


@pytest.mark.parametrize("key", sorted(k for k in GOLDEN if "@" not in k))
def test_golden_samples(key):
    torch.set_num_threads(1)  # the goldens were drawn on one thread
    x = _draw(key)
    err = (x - GOLDEN[key]).abs().max().item()
    run, sampler, _, _ = _parse(key)
    tol = 2e-3 if "flow" in run and not sampler.startswith("fm-") else 1e-5
    assert err <= tol, f"{key}: max |difference| {err:.2e}"


def test_guidance_rule_changed():
    """The old rule (clip each branch's x_0, combine, clip) gave other samples where a branch left
    [-1, 1]; the new one (combine raw, clip once) is the golden."""
    key = "cond-ddpm/ddim-10"
    assert (GOLDEN[key + "@old-guidance"] - GOLDEN[key]).abs().max() > 0.1
