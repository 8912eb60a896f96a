"""Run configuration: nested dataclasses, presets in YAML, and ``section.key=value`` overrides.

Every key has a default here; a preset or a config file only says what differs. Unknown keys and
wrong types are errors that name the key and list the valid ones.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from difusion.errors import ConfigError


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # toy2d, digits, mnist, fashion-mnist, cifar10, folder
    split: str = "train"
    root: str | None = None  # a directory to read from (required for folder)
    image_size: int | None = None  # resize images to this size (None: native)
    channels: int | None = None  # convert images to 1 or 3 channels (None: native)
    distribution: str = "moons"  # toy2d only: swiss_roll, moons, 8gaussians, checkerboard, spiral
    n: int = 8000  # toy2d only: number of points
    hflip: bool = False  # random horizontal flips while training


@dataclass
class ModelConfig:
    kind: str = "unet"  # unet for images, mlp for points
    base_channels: int = 32
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = 2
    attention_levels: list[int] = field(default_factory=lambda: [2])
    num_heads: int = 4
    dropout: float = 0.0
    use_scale_shift_norm: bool = True
    class_conditional: bool = False
    hidden: int = 256  # mlp only
    depth: int = 4  # mlp only


@dataclass
class DiffusionConfig:
    schedule: str = "cosine"  # linear, cosine, sigmoid
    T: int = 1000
    prediction: str = "eps"  # what the network predicts: eps, x0 or v
    variance: str = "beta"  # sampling variance sigma_t^2: beta or beta_tilde
    clip_x0: bool = True  # clamp the x_0 estimate to [-1, 1] when sampling images


@dataclass
class TrainConfig:
    steps: int | None = None  # stop after this many steps (None: use minutes)
    minutes: float | None = None  # or stop after this wall-clock time; the LR schedule ends on time
    batch_size: int = 64
    lr: float = 2e-4
    min_lr_ratio: float = 0.1  # the cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    precision: str = "auto"  # auto (bf16 where the CPU/GPU supports it), bf16 or fp32
    seed: int = 0
    log_every: int = 50  # steps between lines in metrics.jsonl
    sample_every: int = 2000  # steps between preview grids (0: never)
    checkpoint_minutes: float = 2.0  # wall-clock time between checkpoints
    threads: int | None = None  # torch CPU threads (None: all cores, split among processes)
    p_uncond: float = (
        0.1  # class-conditional models: share of labels dropped to the null class (CFG)
    )


@dataclass
class SampleConfig:
    n: int = 64  # images (or points) to draw at the end of training and by `difusion sample`
    seed: int = 0  # image i uses seed + i
    steps: int | None = None  # sampling steps (None: the sampler's default; all T for ddpm)
    batch_size: int = 256
    sampler: str = "ddpm"  # ddpm, ddim, dpmpp-2m, euler or heun
    eta: float = 0.0  # ddim only: 0 deterministic, 1 DDPM-like
    guidance: float = 0.0  # class-conditional only: w in eps = (1 + w) eps_c - w eps_u
    guidance_rescale: float = 0.0  # phi of Lin et al. 2023 (0.7 in the paper); 0 = off


@dataclass
class AutoencoderConfig:
    """``objective: autoencoder`` (src/difusion/autoencoders/): the model family and its loss."""

    kind: str = "ae"  # ae, dae, sae, cae, vae, beta-vae, vqvae
    code_size: int = 32


@dataclass
class SegmentationConfig:
    """``objective: segmentation`` (src/difusion/segmentation/): the Ronneberger U-Net's training."""

    w0: float = 10.0  # border weight of the weight map
    sigma: float = 5.0  # its width in pixels


@dataclass
class Config:
    name: str = "run"
    objective: str = (
        "diffusion"  # what the training loop trains: diffusion, autoencoder, segmentation
    )
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


PRESET_DIR = "presets"


def preset_names() -> list[str]:
    """The presets shipped with the package (``difusion train NAME``)."""
    files = resources.files("difusion").joinpath(PRESET_DIR).iterdir()
    return sorted(f.name[: -len(".yaml")] for f in files if f.name.endswith(".yaml"))


def _coerce(value, tp, key: str):
    """Check ``value`` against the annotated type ``tp`` (int may stand for float)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} must be a list like [1, 2, 2], got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 3e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key} must be {getattr(tp, '__name__', tp)}, got {value!r}")


def _apply(obj, values: dict, prefix: str = "") -> None:
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in values.items():
        full = f"{prefix}{key}"
        if key not in names:
            where = f"in {prefix[:-1]}" if prefix else "at the top level"
            raise ConfigError(
                f"unknown config key {full!r}; valid keys {where}: {', '.join(names)}"
            )
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} is a section; set its keys, e.g. {full}.{names[0]}=...")
            _apply(current, value, f"{full}.")
        else:
            setattr(obj, key, _coerce(value, hints[key], full))


def parse_override(text: str) -> dict:
    """``train.lr=1e-3`` -> {"train": {"lr": 0.001}}; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(
            f"override {text!r} must look like section.key=value, e.g. train.steps=500"
        )
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    out: dict = {}
    node = out
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def load_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config sections")
    return data


def load_config(preset_or_file: str | None = None, overrides: list[str] | tuple = ()) -> Config:
    """Defaults, then a preset name or a YAML file, then ``key=value`` overrides, checked."""
    cfg = Config()
    if preset_or_file:
        path = Path(preset_or_file)
        if path.suffix in (".yaml", ".yml") or path.exists():
            if not path.exists():
                raise ConfigError(f"config file {path} does not exist")
            values = load_yaml(path)
            cfg.name = path.stem
        elif preset_or_file in preset_names():
            text = resources.files("difusion").joinpath(PRESET_DIR, f"{preset_or_file}.yaml")
            values = yaml.safe_load(text.read_text()) or {}
            cfg.name = preset_or_file
        else:
            raise ConfigError(
                f"unknown preset {preset_or_file!r}; presets: {', '.join(preset_names())} "
                "(or give a .yaml config file)"
            )
        _apply(cfg, values)
    for text in overrides:
        _apply(cfg, parse_override(text))
    validate(cfg)
    return cfg


def config_from_dict(values: dict) -> Config:
    cfg = Config()
    _apply(cfg, values)
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    """Values that are impossible whatever their type."""
    from difusion.diffusion.parameterization import check_prediction
    from difusion.diffusion.schedules import SCHEDULES
    from difusion.sampling.ddpm import VARIANCES
    from difusion.training.objectives import objective_class

    objective_class(cfg.objective).validate(cfg)  # an unknown objective lists the known ones
    check_prediction(cfg.diffusion.prediction)
    if cfg.diffusion.schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown diffusion.schedule {cfg.diffusion.schedule!r}; choose one of: "
            f"{', '.join(SCHEDULES)}"
        )
    if cfg.diffusion.variance not in VARIANCES:
        raise ConfigError(f"diffusion.variance must be one of: {', '.join(VARIANCES)}")
    if cfg.model.kind not in ("unet", "mlp"):
        raise ConfigError(f"model.kind must be unet or mlp, got {cfg.model.kind!r}")
    if cfg.train.precision not in ("auto", "bf16", "fp32"):
        raise ConfigError(
            f"train.precision must be auto, bf16 or fp32, got {cfg.train.precision!r}"
        )
    positive = {
        "diffusion.T": cfg.diffusion.T,
        "train.batch_size": cfg.train.batch_size,
        "train.lr": cfg.train.lr,
        "sample.n": cfg.sample.n,
        "model.base_channels": cfg.model.base_channels,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if cfg.diffusion.T < 2:
        raise ConfigError("diffusion.T must be at least 2")
    if cfg.train.steps is not None and cfg.train.steps <= 0:
        raise ConfigError("train.steps must be positive (or null to train for train.minutes)")
    if cfg.train.minutes is not None and cfg.train.minutes <= 0:
        raise ConfigError("train.minutes must be positive")
    if not 0.0 <= cfg.train.p_uncond < 1.0:
        raise ConfigError("train.p_uncond must be in [0, 1)")
    from difusion.sampling.samplers import SAMPLERS

    if cfg.sample.sampler not in SAMPLERS:
        raise ConfigError(
            f"unknown sampler {cfg.sample.sampler!r} (--sampler or sample.sampler); choose one "
            f"of: {', '.join(SAMPLERS)}"
        )
    if cfg.sample.guidance < 0 or not 0.0 <= cfg.sample.guidance_rescale <= 1.0:
        raise ConfigError("sample.guidance must be >= 0 and sample.guidance_rescale in [0, 1]")
    if not 0.0 <= cfg.sample.eta <= 1.0:
        raise ConfigError(f"sample.eta must be in [0, 1], got {cfg.sample.eta}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError("train.ema_decay must be in [0, 1)")
    if any(a < 0 or a >= len(cfg.model.channel_mult) for a in cfg.model.attention_levels):
        raise ConfigError(
            f"model.attention_levels {cfg.model.attention_levels} must index model.channel_mult "
            f"(0..{len(cfg.model.channel_mult) - 1})"
        )


def save_config(cfg: Config, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
