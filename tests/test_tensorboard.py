"""``train.log=tensorboard`` (issue 27): the metrics records, previews and final samples as
TensorBoard events in RUN/tensorboard/, beside metrics.jsonl; read back here with TensorBoard's own
reader. A resumed run continues the steps without duplicates; the default writes no events; a
missing package is one ConfigError before training."""

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difusion.config import load_config
from difusion.errors import ConfigError
from difusion.training.loop import train

TOY = ["train.steps=6", "train.log_every=2", "train.sample_every=0", "train.threads=1"]
TB = "train.log=tensorboard"


def toy_run(run: Path, *extra: str, **kw):
    kw = {"progress": False, "final_samples": False, **kw}
    return train(load_config("toy2d", [*TOY, *extra]), run, **kw)


def records(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r]


def events(run: Path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def assert_loss_matches_jsonl(run: Path) -> list[int]:
    """The scalar 'loss' has the steps of metrics.jsonl and its values (stored as float32)."""
    acc = events(run)
    logged = records(run)
    scalars = acc.Scalars("loss")
    assert [e.step for e in scalars] == [r["step"] for r in logged]
    assert [e.value for e in scalars] == [float(np.float32(r["loss"])) for r in logged]
    for key in ("lr", "grad_norm", "images_per_s", "elapsed_s"):
        assert [e.step for e in acc.Scalars(key)] == [r["step"] for r in logged]
    return [e.step for e in scalars]


def test_scalars_equal_the_metrics_records(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    toy_run(run, TB, "sample.n=200", final_samples=True)
    assert assert_loss_matches_jsonl(run) == [1, 2, 4, 6]
    assert (run / "metrics.jsonl").is_file()  # beside the JSON lines, not instead
    acc = events(run)
    assert "step" not in acc.Tags()["scalars"]
    scatter = acc.Images("samples_scatter")  # the final picture of a points run, at the last step
    assert [e.step for e in scatter] == [6]
    with Image.open(run / "samples_scatter.png") as im:
        assert (scatter[0].width, scatter[0].height) == im.size


def test_previews_and_samples_are_images(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "digits"
    tiny = ["model.base_channels=8", "model.channel_mult=[1]", "model.attention_levels=[]"]
    cfg = load_config(
        "digits",
        [
            *tiny,
            "train.steps=6",
            "train.log_every=2",
            "train.sample_every=3",
            "train.batch_size=16",
            "train.threads=1",
            "sample.n=8",
            "sample.steps=10",
            TB,
        ],
    )
    train(cfg, run, progress=False)
    assert_loss_matches_jsonl(run)
    acc = events(run)
    previews = acc.Images("preview")
    assert [e.step for e in previews] == [3, 6]
    with Image.open(run / "previews" / "step_0000003.png") as im:
        assert (previews[0].width, previews[0].height) == im.size
    samples = acc.Images("samples")
    assert [e.step for e in samples] == [6]
    with Image.open(run / "samples.png") as im:
        assert (samples[0].width, samples[0].height) == im.size
    assert "loss_plot" not in acc.Tags()["images"]  # the loss curve is the scalar 'loss'


def test_resume_continues_the_steps_without_duplicates(tmp_path):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    toy_run(run, TB)
    (first,) = (run / "tensorboard").glob("events.out.tfevents.*")
    # A killed continuation that logged step 8 after the checkpoint of step 6: the resumed run
    # logs step 8 again, and TensorBoard must show only the new one.
    killed = SummaryWriter(str(tmp_path / "killed"))
    killed.add_scalar("loss", 999.0, 8)
    killed.close()
    (orphan,) = (tmp_path / "killed").glob("events.out.tfevents.*")
    orphan.rename(first.with_name(first.name + ".killed"))  # read after the first file
    time.sleep(1.1)  # event files are read in name order, which starts with the second
    train(load_config("toy2d", [*TOY, TB, "train.steps=10"]), run, resume=True, progress=False)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 3
    assert assert_loss_matches_jsonl(run) == [1, 2, 4, 6, 8, 10]


def test_overwrite_deletes_the_old_events(tmp_path):
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    toy_run(run, TB)
    toy_run(run, TB, overwrite=True)
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert assert_loss_matches_jsonl(run) == [1, 2, 4, 6]


def test_the_default_writes_no_events(tmp_path):
    run = tmp_path / "run"
    toy_run(run)
    assert load_config("toy2d").train.log == "jsonl"
    assert (run / "metrics.jsonl").is_file() and not (run / "tensorboard").exists()


def test_a_missing_package_fails_before_training(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` raises
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    run = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        toy_run(run, TB)
    assert "pip install 'difusion[tensorboard]'" in str(e.value)
    assert "\n" not in str(e.value)
    assert not run.exists()  # nothing was written


def test_an_unknown_log_is_refused():
    with pytest.raises(ConfigError, match="train.log must be one of: jsonl, tensorboard"):
        load_config("toy2d", ["train.log=csv"])
