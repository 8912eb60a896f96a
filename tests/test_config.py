"""Config loading: presets, overrides, and one-line errors that name the bad key."""

import pytest

from difusion.config import load_config, parse_override, preset_names
from difusion.errors import ConfigError


def test_every_preset_loads():
    assert {"toy2d", "digits", "fashion-mnist", "mnist"} <= set(preset_names())
    for name in preset_names():
        cfg = load_config(name)
        assert cfg.name == name
        assert cfg.train.steps or cfg.train.minutes


def test_overrides_are_typed():
    cfg = load_config(
        "digits",
        [
            "train.lr=3e-4",
            "model.channel_mult=[1,2]",
            "train.steps=7",
            "data.hflip=true",
            "train.minutes=null",
        ],
    )
    assert cfg.train.lr == 3e-4 and cfg.model.channel_mult == [1, 2]
    assert cfg.train.steps == 7 and cfg.data.hflip is True and cfg.train.minutes is None


def test_unknown_key_names_it_and_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        load_config("digits", ["train.stepz=5"])
    msg = str(e.value)
    assert "train.stepz" in msg and "steps" in msg and "batch_size" in msg
    assert "\n" not in msg


def test_unknown_section_and_wrong_type():
    with pytest.raises(ConfigError, match="valid keys at the top level"):
        load_config("digits", ["trian.steps=5"])
    with pytest.raises(ConfigError, match="train.batch_size must be int"):
        load_config("digits", ["train.batch_size=big"])
    with pytest.raises(ConfigError, match="must look like"):
        parse_override("train.steps")


def test_impossible_values_are_rejected():
    with pytest.raises(ConfigError, match="prediction"):
        load_config("digits", ["diffusion.prediction=mu_tilde"])
    with pytest.raises(ConfigError, match="attention_levels"):
        load_config("digits", ["model.attention_levels=[5]"])
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("imagenet")


def test_yaml_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("data: {name: digits}\ntrain: {steps: 11}\n")
    cfg = load_config(str(f))
    assert cfg.name == "mine" and cfg.train.steps == 11
    f.write_text("train: {stepss: 11}\n")
    with pytest.raises(ConfigError, match="stepss"):
        load_config(str(f))


def test_patch_size_must_divide_the_images():
    import torch

    from difusion.build import build_network

    cfg = load_config("fashion-mnist", ["model.patch_size=3"])
    with pytest.raises(ConfigError, match="model.patch_size=3 does not split"):
        build_network(cfg, (1, 28, 28), 10)
    cfg = load_config("fashion-mnist", ["model.patch_size=2"])
    x = build_network(cfg, (1, 28, 28), 10)(torch.zeros(2, 1, 28, 28), torch.full((2,), 0.5))
    assert x.shape == (2, 1, 28, 28)


def test_adam_beta2_reaches_the_optimizer_and_is_checked(tmp_path):
    from difusion.checkpoint import load_checkpoint
    from difusion.training.loop import train

    with pytest.raises(ConfigError, match="train.adam_beta2 must be in"):
        load_config("digits", ["train.adam_beta2=1.0"])
    cfg = load_config("toy2d", ["train.steps=1", "train.adam_beta2=0.95", "train.sample_every=0"])
    train(cfg, tmp_path / "run", progress=False, final_samples=False)
    _, info = load_checkpoint(tmp_path / "run" / "checkpoint.safetensors", prefixes=())
    assert info["optimizer"]["param_groups"][0]["betas"] == [0.9, 0.95]


@pytest.mark.parametrize(
    "override",
    [
        "train.grad_clip=-1",
        "train.sample_every=-1",
        "model.depth=-1",
        "train.warmup_steps=-5",
        "train.lr=nan",
        "train.minutes=nan",
        "train.log_every=0",
        "model.num_heads=0",
        "train.threads=-1",
        "model.dropout=2",
        "model.channel_mult=[]",
        "model.channel_mult=[1, 0]",
        "sample.guidance=nan",
        "sample.guidance=inf",
        "sample.n=99999999999999999999",
        "sample.steps=0",
        "data.channels=2",
        "objective=gan",
    ],
)
def test_out_of_range_values_name_the_key_in_one_line(override):
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        load_config("digits", [override])
    assert key in str(e.value) and "\n" not in str(e.value)


def test_every_number_has_a_range():
    """A new numeric key must say which values it takes (``within``), or be listed here."""
    import dataclasses
    import typing

    from difusion.config import Config, choices

    free = {"segmentation.data_seed", "segmentation.tile"}  # any seed; tile: checked by shape
    cfg = Config()
    for section in dataclasses.fields(cfg):
        part = getattr(cfg, section.name)
        if not dataclasses.is_dataclass(part):
            continue
        hints = typing.get_type_hints(type(part))
        for f in dataclasses.fields(part):
            key = f"{section.name}.{f.name}"
            numeric = {int, float} & set(typing.get_args(hints[f.name]) or [hints[f.name]])
            if numeric and key not in free and key not in choices():
                assert "interval" in f.metadata, f"{key} has no range: declare it with within()"


def test_intervals_include_and_exclude_their_bounds():
    from difusion.config import _in_interval

    assert _in_interval(0.0, "[0, 1)") and not _in_interval(1.0, "[0, 1)")
    assert not _in_interval(0.0, "(0, inf]") and _in_interval(float("inf"), "(0, inf]")
    assert not _in_interval(float("nan"), "(-inf, inf)")


def test_attention_heads_must_divide_the_channels():
    from difusion.build import build_network

    for override in ("model.num_heads=3", "model.base_channels=7"):
        cfg = load_config("digits", [override])
        with pytest.raises(ConfigError, match="model.num_heads"):
            build_network(cfg, (1, 8, 8), 10)
    cfg = load_config("digits", ["model.num_heads=2"])
    assert build_network(cfg, (1, 8, 8), 10) is not None


def test_the_config_bounds_samples_as_the_sampler_does():
    import dataclasses

    from difusion.config import SampleConfig
    from difusion.sampling.pipeline import MAX_SAMPLES

    field = {f.name: f for f in dataclasses.fields(SampleConfig)}["n"]
    assert field.metadata["interval"] == f"[1, {MAX_SAMPLES}]"
