"""The benchmark harness (benchmarks/): every column on a tiny budget, and an overhead measurement
that sees a slowdown injected into the training loop, so its numbers can fail."""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import run as bench  # noqa: E402
import throughput  # noqa: E402

from difusion.sampling.samplers import SAMPLERS  # noqa: E402
from difusion.training.diffusion_objective import DiffusionObjective  # noqa: E402


def test_tiny_budget_produces_every_column(tmp_path):
    out_path = tmp_path / "bench.json"
    out = bench.main(
        ["--tiny", "8", "--variants", "fp32", "bf16-cl", "--batch-sizes", "16", "32",
         "--json", str(out_path)]
    )  # fmt: skip
    assert json.loads(out_path.read_text()) == json.loads(json.dumps(out))
    rows = out["throughput"]
    assert {(r["variant"], r["batch"]) for r in rows} == {
        (v, b) for v in ("fp32", "bf16-cl") for b in (16, 32)
    }
    for r in rows:
        for key in ("bare_images_per_s", "loop_images_per_s", "checkpoint_s"):
            assert r[key] > 0 and math.isfinite(r[key]), (key, r)
        # images/s and ms/step are two views of one measurement
        assert r["loop_images_per_s"] == pytest.approx(1e3 * r["batch"] / r["loop_ms_per_step"])
        assert r["extra_ms_per_step"] == pytest.approx(
            r["loop_ms_per_step"] - r["bare_ms_per_step"]
        )
        assert r["overhead_with_ckpt_percent"] > r["overhead_percent"]
    samplers = out["samplers"]
    assert [r["sampler"] for r in samplers] == [*SAMPLERS, "dpmpp-2m + guidance"]
    for r in samplers:
        assert r["sampler_alone_ms"] > 0 and r["forward_ms"] > 0
        assert r["overhead_percent"] == pytest.approx(100 * r["sampler_alone_ms"] / r["forward_ms"])
    jobs = {r["job"]: r for r in out["memory"]}
    assert set(jobs) == {"train", "sample dpmpp-2m"}
    for r in jobs.values():
        # importing torch alone takes well over 50 MiB; a peak below setup is impossible
        assert 50 < r["setup_mb"] <= r["peak_mb"] < 8000
    assert out["machine"]["torch"] and out["machine"]["cores"] >= 1


def test_a_child_peak_is_its_own_not_its_parents():
    """The memory section's peak belongs to the child alone: with 2 GiB held by this (parent)
    process, a tiny sampling job must still report far less. getrusage's ru_maxrss fails this on
    Linux (it carries the parent's peak across fork + exec)."""
    import memory
    import torch

    held = torch.ones(2**29)  # 2 GiB, touched
    job = memory.peak_rss(
        "sample", "digits", ["model.base_channels=8", "model.channel_mult=[1]", "model.attention_levels=[]"],
        n=4, steps=2, sampler="ddim",
    )  # fmt: skip
    assert held.sum() > 0
    assert job["peak_mb"] < 1500, job


@pytest.mark.slow  # timing: reliable only on a quiet machine (flaky under load, so not in CI)
def test_overhead_detects_an_injected_slowdown(monkeypatch):
    """A sleep of a known length inside each training step (in the objective's batch drawing,
    which the bare step does not repeat) must show up as that much extra time per step.

    Clean and slowed measurements alternate, three pairs, and the medians are compared, so a
    burst of load from other processes cannot fake (or hide) the difference. On a saturated
    machine (more runnable processes than cores) step times jump by hundreds of milliseconds and
    no timing can resolve 30 ms: run it under the CPU lock (see the helper rules)."""
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        pytest.skip(f"machine saturated (load {os.getloadavg()[0]:.1f}); timings meaningless")
    args = ("digits", bench.TINY, ["fp32"], [32], 12, 1)
    injected_s = 0.03
    original = DiffusionObjective.batch

    def slow_batch(self, generator):
        time.sleep(injected_s)
        return original(self, generator)

    added_ms, added_percent = [], []
    for _ in range(3):
        monkeypatch.setattr(DiffusionObjective, "batch", original)
        clean = throughput.measure_throughput(*args)[0]
        monkeypatch.setattr(DiffusionObjective, "batch", slow_batch)
        slow = throughput.measure_throughput(*args)[0]
        added_ms.append(slow["extra_ms_per_step"] - clean["extra_ms_per_step"])
        # in percent: the injected time over the bare step's time
        expected = 100 * 1e3 * injected_s / slow["bare_ms_per_step"]
        added_percent.append((slow["overhead_percent"] - clean["overhead_percent"]) / expected)
    assert 0.7 * 1e3 * injected_s < statistics.median(added_ms) < 1.6 * 1e3 * injected_s + 5, (
        added_ms
    )
    assert statistics.median(added_percent) == pytest.approx(1.0, abs=0.5), added_percent


@pytest.mark.slow
def test_small_speedrun_scores_every_row_and_real_data_beats_seconds_of_training(tmp_path):
    """The speedrun at its small budget: every group at every budget, and the floor (real images)
    scores a lower FID than any model trained for seconds -- if not, the measurement is broken."""
    pytest.importorskip("diffusers")
    from difusion.experiments.speedrun import BUDGETS, speedrun

    page = speedrun("small", tmp_path / "runs", tmp_path / "results", progress=False)
    rows = json.loads((page.parent / "results.json").read_text())
    b = BUDGETS["small"]
    groups = {(r["group"], r["x"]) for r in rows}
    for m in b.minutes:
        assert ("ours (dpmpp-2m)", m) in groups and ("real data (floor)", m) in groups
        assert ("baseline, diffusers DDPM 100", m) in groups
        assert ("baseline, diffusers DPM-Solver 20", m) in groups
    floor = [r["fid_domain"] for r in rows if r["group"] == "real data (floor)"][0]
    models = [r for r in rows if r["group"] != "real data (floor)"]
    assert all(r["fid_domain"] > floor for r in models), (floor, models)
    assert all(r["sampling_s"] > 0 for r in models)
    assert "x the floor" in page.read_text()


@pytest.mark.slow
def test_speedrun_grid_only_baseline_stays_out_of_the_tables_but_in_its_column(
    tmp_path, monkeypatch
):
    """A budget whose baseline is drawn for the grid only (``baseline_fid_minutes``): no baseline
    row at that budget in results.json, and each grid cell sits under its own group's header."""
    pytest.importorskip("diffusers")
    import dataclasses

    from difusion.experiments import speedrun as sr

    small = dataclasses.replace(
        sr.BUDGETS["small"],
        recipes=("default",),  # trained before the baseline, its column comes after it
        baseline_kinds=("dpm-solver",),
        baseline_fid_minutes=(0.1,),
    )
    monkeypatch.setitem(sr.BUDGETS, "small", small)
    page = sr.speedrun("small", tmp_path / "runs", tmp_path / "results", progress=False)
    rows = json.loads((page.parent / "results.json").read_text())
    baseline = [r for r in rows if r["group"].startswith("baseline")]
    assert [r["x"] for r in baseline] == [0.1]  # scored at 0.1 only
    grid = [line for line in page.read_text().splitlines() if line.startswith("| minutes")]
    header = [c.strip() for c in grid[0].strip("|").split("|")]
    text = page.read_text().splitlines()
    start = text.index(grid[0])
    for line in text[start + 2 : start + 2 + len(small.minutes)]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == len(header)
        for name, cell in zip(header[1:], cells[1:], strict=True):
            assert ("diffusers" in cell) == name.startswith("diffusers"), (name, cell)
    assert "grid only, not scored" in text[start + 2]  # the 0.05-minute baseline


def test_speedrun_counts_the_defaults_guided_calls():
    """The default preset samples 14 Euler steps guided on tau in [0.3, 0.8]: the steps start at
    tau = k/14 for k = 14..1, of which k = 5..11 (7 steps) are guided and cost two calls: 21."""
    from difusion.config import load_config
    from difusion.experiments.speedrun import _sampler_label

    sc = load_config("fashion-mnist").sample
    label = _sampler_label("fm-euler", None, sc)
    assert label == "ours fm-euler 14, w 2 on tau in [0.3, 0.8], 21 calls"
    sc.guidance = 0.0
    assert _sampler_label("fm-euler", 20, sc) == "ours fm-euler 20"
