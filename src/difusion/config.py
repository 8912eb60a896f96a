"""Run configuration: nested dataclasses, presets in YAML, and ``section.key=value`` overrides.

Every key has a default here; a preset or a config file only says what differs. Unknown keys and
wrong types are errors that name the key and list the valid ones, and :func:`validate` refuses
impossible values, each objective's section included (:data:`OBJECTIVE_CHECKS`).

The config sits low in the layers (``[tool.importlinter]`` in pyproject.toml): it may read the
tables of choices of the math, the networks and the samplers, never training or what sits above it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from difusion.errors import ConfigError, DifusionError

# Choices of an objective's section whose implementation sits above the config: the config owns the
# names (segmentation/data.py imports its SOURCES from here; training/flow_objective.py's
# sample_times draws the two time samplings).
SEGMENTATION_SOURCES = ("synthetic", "stardist", "dsb2018")  # segmentation.data
TIME_SAMPLINGS = ("uniform", "logit-normal")  # flow.time_sampling


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
    patch_size: int = 1  # fold p x p pixel patches into channels at the input (space-to-depth)
    hidden: int = 256  # mlp only
    depth: int = 4  # mlp only


@dataclass
class DiffusionConfig:
    schedule: str = "cosine"  # linear, cosine, sigmoid
    T: int = 1000
    prediction: str = "eps"  # what the network predicts: eps, x0, v or mu (posterior mean)
    variance: str = "beta"  # sampling variance sigma_t^2: beta, beta_tilde or learned
    clip_x0: bool = True  # clamp the x_0 estimate to [-1, 1] when sampling images
    learn_sigma: bool = (
        False  # the network also outputs v: Sigma = exp(v log beta + (1-v) log beta~)
    )
    loss: str = "simple"  # simple (L_simple), hybrid (L_simple + lambda L_vlb) or vlb (the bound)
    hybrid_lambda: float = 0.001  # lambda of L_hybrid (improved DDPM)
    weighting: str = "uniform"  # L_simple's weight over log-SNR: uniform, min-snr, trunc-snr
    min_snr_gamma: float = 5.0  # gamma of min-SNR-gamma weighting (Hang et al. 2023)
    importance_sampling: bool = (
        False  # loss=vlb: sample t with p_t ~ sqrt(E[L_t^2]) (improved DDPM)
    )
    zero_terminal_snr: bool = False  # rescale the schedule so alpha_bar_T = 0 (Lin et al. 2023)


@dataclass
class TrainConfig:
    steps: int | None = None  # stop after this many steps (None: use minutes)
    minutes: float | None = None  # or stop after this wall-clock time; the LR schedule ends on time
    batch_size: int = 64
    lr: float = 2e-4
    min_lr_ratio: float = 0.1  # the cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = 200
    weight_decay: float = 0.0
    adam_beta2: float = 0.999  # AdamW's second-moment decay (0.99 forgets old gradients faster)
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
    # guide only where the noise fraction sigma / (alpha + sigma) lies in [lo, hi] (Kynkaanniemi
    # et al. 2024); [0, 1] = every step
    guidance_interval: list[float] = field(default_factory=lambda: [0.0, 1.0])


@dataclass
class AutoencoderConfig:
    """``objective: autoencoder`` (src/difusion/autoencoders/): the model family and its loss."""

    kind: str = "ae"  # ae, dae, sae, cae, vae, beta-vae, vqvae
    code_size: int = 32  # flat code dimension (vqvae: number of discrete codes)
    network: str = "conv"  # conv, mlp (tanh hidden layers) or linear (the PCA check)
    spatial: bool = False  # conv only: latent (latent_channels, H/4, W/4), e.g. 4x7x7 for 28x28
    latent_channels: int = 4  # channels of a spatial latent
    channels: list[int] = field(default_factory=lambda: [32, 64])  # conv widths at H/2 and H/4
    hidden: int = 512  # mlp only: width of the hidden layers
    depth: int = 2  # mlp only: hidden layers in the encoder and in the decoder
    likelihood: str = "gaussian"  # decoder p(x|z): gaussian (MSE) or bernoulli (binarized data)
    sigma: float = 0.1  # gaussian decoder std on the [-1, 1] scale (VAE weight 1 / (2 sigma^2))
    beta: float = 1.0  # weight of the KL term (beta-VAE, Higgins et al. 2017; 1 = the VAE)
    noise_std: float = 0.5  # dae: std of the additive Gaussian corruption
    mask_prob: float = 0.0  # dae: share of pixels set to black (masking corruption)
    sparsity: float = 0.01  # sae: weight of ||z||_1 (per example, next to the per-example NLL)
    contraction: float = 0.1  # cae: weight of ||J_f(x)||_F^2
    codebook_size: int = 64  # vqvae: K codes
    code_dim: int = 16  # vqvae: D, the dimension of each code vector
    commitment: float = 0.25  # vqvae: beta of the commitment loss (van den Oord et al. 2017)
    vq_decay: float = 0.99  # vqvae: EMA decay of the codebook statistics
    train_subset: int | None = None  # train on only the first N training images (None: all)
    eval_n: int = 1000  # test images for the measures at the end of training
    iwae_k: int = 16  # importance samples of the IWAE NLL estimate (first 500 test images)
    fid_n: int = 1000  # prior samples for the FID at the end of training (0: skip)


@dataclass
class SegmentationConfig:
    """``objective: segmentation`` (src/difusion/segmentation/): the Ronneberger U-Net's training."""

    w0: float = 10.0  # border weight of the weight map
    sigma: float = 5.0  # its width in pixels
    data: str = "synthetic"  # training images: synthetic, stardist (the real pair) or dsb2018
    n_train: int = 20  # training images (synthetic: generated once; dsb2018: the first N)
    n_test: int = 8  # held-out images scored at the end (synthetic: other seeds)
    image_size: int = 192  # side of the synthetic images
    data_seed: int = 0  # seed of the synthetic training set (the test set uses data_seed + 1)
    base_channels: int = 64  # channels of the first level (64 in the paper)
    depth: int = 4  # max-pools (4 in the paper: 64 ... 1024 channels)
    padding: str = "valid"  # valid (the paper: unpadded 3x3 convolutions) or same
    dropout: float = 0.0  # dropout at the end of the contracting path (Sec. 3.1)
    batch_norm: bool = False  # batch norm after each convolution (not in the paper)
    tile: int = (
        572  # input tile side, training and overlap-tile inference (572 -> 388 in the paper)
    )
    loss: str = "ce"  # ce (weighted softmax cross-entropy, Eq. 1) or dice+ce
    weight_map: bool = True  # use w(x) of Eq. 2; false: unweighted cross-entropy
    elastic: bool = True  # random elastic deformation (3x3 grid, elastic_std px)
    elastic_std: float = 10.0  # std of the coarse displacements in pixels
    elastic_grid: int = 3  # the coarse grid is elastic_grid x elastic_grid
    flips: bool = True  # random flips and 90-degree rotations
    grey: bool = True  # random gamma, contrast and brightness
    instances: str = "components"  # splitting the predicted foreground: components or watershed
    eval_real: bool = True  # at the end of training also score the StarDist pair, if fetched


@dataclass
class FlowConfig:
    """``objective: flow`` (training/flow_objective.py): flow matching, t = 0 data, t = 1 noise.

    Sampling uses ``sample.sampler`` (fm-euler, fm-heun, fm-rk4, or any DDPM sampler on the flow
    path, over the grid of ``diffusion.schedule`` carried over by log-SNR) and ``sample.steps``."""

    path: str = "rectified"  # rectified: (1 - t) x_0 + t eps; ot: (1 - t) x_0 + (s + (1 - s) t) eps
    sigma_min: float = 1.0e-4  # ot only: the noise s left at the data end (Lipman et al.)
    ot_coupling: bool = False  # pair x_0 and eps within a batch by optimal transport
    # how training draws t: uniform on [0, 1], or logit-normal (Esser et al. 2024, eq. 19):
    # t = sigmoid(logit_mean + logit_std n), n ~ N(0, 1), which spends more steps near t = 1/2
    time_sampling: str = "uniform"
    logit_mean: float = 0.0
    logit_std: float = 1.0
    reflow: str | None = None  # a finished flow run: train on its own noise -> data pairs
    reflow_pairs: int = 4000  # how many pairs to draw from that run
    reflow_steps: int = 50  # ODE steps (fm-rk4 is 4 calls each) used to draw them
    reflow_solver: str = "rk4"  # euler, heun or rk4


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
    flow: FlowConfig = field(default_factory=FlowConfig)

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


def load_run_config(run_dir: Path) -> Config:
    """The config of a run folder (its ``config.yaml``), checked."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.yaml); give a folder made by "
            "`difusion train`"
        )
    return config_from_dict(load_yaml(path))


def validate(cfg: Config) -> None:
    """Values that are impossible whatever their type."""
    from difusion.diffusion.parameterization import check_prediction
    from difusion.diffusion.schedules import SCHEDULES
    from difusion.sampling.ddpm import VARIANCES

    if cfg.objective not in OBJECTIVE_CHECKS:
        raise ConfigError(
            f"unknown objective {cfg.objective!r}; choose one of: "
            f"{', '.join(sorted(OBJECTIVE_CHECKS))}"
        )
    OBJECTIVE_CHECKS[cfg.objective](cfg)
    check_prediction(cfg.diffusion.prediction)
    if cfg.diffusion.schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown diffusion.schedule {cfg.diffusion.schedule!r}; choose one of: "
            f"{', '.join(SCHEDULES)}"
        )
    if cfg.diffusion.variance not in VARIANCES:
        raise ConfigError(f"diffusion.variance must be one of: {', '.join(VARIANCES)}")
    _validate_losses(cfg)
    if cfg.data.name == "latents" and cfg.diffusion.clip_x0:
        raise ConfigError(
            "latents are not bounded to [-1, 1]: set diffusion.clip_x0=false for latent diffusion"
        )
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
    from difusion.sampling.guidance import check_interval

    check_interval(cfg.sample.guidance_interval)
    if not 0.0 <= cfg.sample.eta <= 1.0:
        raise ConfigError(f"sample.eta must be in [0, 1], got {cfg.sample.eta}")
    if not 0.0 < cfg.train.adam_beta2 < 1.0:
        raise ConfigError(f"train.adam_beta2 must be in (0, 1), got {cfg.train.adam_beta2}")
    if not 0.0 <= cfg.train.ema_decay < 1.0:
        raise ConfigError("train.ema_decay must be in [0, 1)")
    if any(a < 0 or a >= len(cfg.model.channel_mult) for a in cfg.model.attention_levels):
        raise ConfigError(
            f"model.attention_levels {cfg.model.attention_levels} must index model.channel_mult "
            f"(0..{len(cfg.model.channel_mult) - 1})"
        )


def _validate_losses(cfg: Config) -> None:
    from difusion.diffusion.weighting import WEIGHTINGS

    d = cfg.diffusion
    if d.loss not in ("simple", "hybrid", "vlb"):
        raise ConfigError(f"diffusion.loss must be simple, hybrid or vlb, got {d.loss!r}")
    if d.weighting not in WEIGHTINGS:
        raise ConfigError(
            f"diffusion.weighting must be one of: {', '.join(WEIGHTINGS)}, got {d.weighting!r}"
        )
    if d.variance == "learned" and not d.learn_sigma:
        raise ConfigError("diffusion.variance=learned needs diffusion.learn_sigma=true")
    if d.loss == "hybrid" and not d.learn_sigma:
        raise ConfigError(
            "diffusion.loss=hybrid trains the variance through L_vlb; set diffusion.learn_sigma=true"
        )
    if d.learn_sigma and d.loss == "simple":
        raise ConfigError(
            "diffusion.learn_sigma=true needs a loss that trains the variance: "
            "diffusion.loss=hybrid or vlb"
        )
    if d.importance_sampling and d.loss != "vlb":
        raise ConfigError("diffusion.importance_sampling applies to diffusion.loss=vlb only")
    if d.prediction == "mu" and d.weighting != "uniform":
        raise ConfigError("loss weightings are defined for eps, x0 and v prediction, not mu")
    if d.zero_terminal_snr and d.prediction == "eps":
        raise ConfigError(
            "with diffusion.zero_terminal_snr the eps prediction cannot give x_0 at t = T; "
            "use diffusion.prediction=v (Lin et al. 2023)"
        )
    if d.min_snr_gamma <= 0 or d.hybrid_lambda < 0:
        raise ConfigError("diffusion.min_snr_gamma must be > 0 and diffusion.hybrid_lambda >= 0")


def _check_autoencoder(cfg: Config) -> None:
    from difusion.nn.autoencoders import KINDS, NETWORKS

    a = cfg.autoencoder
    if a.kind not in KINDS:
        raise ConfigError(f"autoencoder.kind must be one of: {', '.join(KINDS)}, got {a.kind!r}")
    if a.network not in NETWORKS:
        raise ConfigError(f"autoencoder.network must be one of: {', '.join(NETWORKS)}")
    if a.likelihood not in ("gaussian", "bernoulli"):
        raise ConfigError("autoencoder.likelihood must be gaussian or bernoulli")
    if a.spatial and a.network != "conv":
        raise ConfigError("autoencoder.spatial=true needs autoencoder.network=conv")
    if len(a.channels) != 2:
        raise ConfigError(
            f"autoencoder.channels must hold 2 widths, e.g. [32, 64], got {a.channels}"
        )
    positive = {
        "autoencoder.code_size": a.code_size,
        "autoencoder.latent_channels": a.latent_channels,
        "autoencoder.sigma": a.sigma,
        "autoencoder.codebook_size": a.codebook_size,
        "autoencoder.code_dim": a.code_dim,
        "autoencoder.eval_n": a.eval_n,
    }
    for key, value in positive.items():
        if value <= 0:
            raise ConfigError(f"{key} must be positive, got {value}")
    if a.beta < 0 or a.iwae_k < 0 or a.fid_n < 0:
        raise ConfigError("autoencoder.beta, iwae_k and fid_n must be >= 0")
    if not 0.0 <= a.mask_prob < 1.0 or not 0.0 < a.vq_decay < 1.0:
        raise ConfigError("autoencoder.mask_prob must be in [0, 1) and vq_decay in (0, 1)")


def _check_segmentation(cfg: Config) -> None:
    from difusion.nn.unet_seg import PADDINGS, output_size

    s = cfg.segmentation
    if s.data not in SEGMENTATION_SOURCES:
        raise ConfigError(f"segmentation.data must be one of: {', '.join(SEGMENTATION_SOURCES)}")
    if s.padding not in PADDINGS:
        raise ConfigError(f"segmentation.padding must be valid or same, got {s.padding!r}")
    if s.loss not in ("ce", "dice+ce"):
        raise ConfigError(f"segmentation.loss must be ce or dice+ce, got {s.loss!r}")
    if s.instances not in ("components", "watershed"):
        raise ConfigError("segmentation.instances must be components or watershed")
    if s.n_train < 1 or s.n_test < 1 or s.base_channels < 1 or s.depth < 1:
        raise ConfigError(
            "segmentation.n_train, n_test, base_channels and depth must be at least 1"
        )
    if s.sigma <= 0 or s.w0 < 0 or s.elastic_std < 0 or s.elastic_grid < 2:
        raise ConfigError(
            "segmentation.sigma must be > 0, w0 and elastic_std >= 0, elastic_grid >= 2"
        )
    try:
        output_size(s.tile, s.depth, s.padding)
    except DifusionError as e:
        raise ConfigError(f"segmentation.tile: {e}") from None


def _check_flow(cfg: Config) -> None:
    from difusion.diffusion.flow import FLOW_PATHS
    from difusion.sampling.ode import ODE_SOLVERS

    f = cfg.flow
    if f.path not in FLOW_PATHS:
        raise ConfigError(f"flow.path must be one of {', '.join(FLOW_PATHS)}, got {f.path!r}")
    if f.time_sampling not in TIME_SAMPLINGS:
        raise ConfigError(
            f"flow.time_sampling must be one of {', '.join(TIME_SAMPLINGS)}, "
            f"got {f.time_sampling!r}"
        )
    if f.logit_std <= 0:
        raise ConfigError(f"flow.logit_std must be positive, got {f.logit_std}")
    if not 0.0 <= f.sigma_min < 1.0:
        raise ConfigError(f"flow.sigma_min must be in [0, 1), got {f.sigma_min}")
    if f.reflow_solver not in ODE_SOLVERS:
        raise ConfigError(f"flow.reflow_solver must be one of {', '.join(ODE_SOLVERS)}")
    if f.reflow_pairs <= 0 or f.reflow_steps <= 0:
        raise ConfigError("flow.reflow_pairs and flow.reflow_steps must be positive")
    if f.reflow and f.ot_coupling:
        raise ConfigError(
            "flow.reflow trains on the teacher's own pairs; set flow.ot_coupling=false"
        )
    if f.reflow and cfg.model.class_conditional:
        raise ConfigError("flow.reflow supports unconditional runs only; unset class_conditional")
    if f.reflow and not (Path(f.reflow) / "report.md").exists():
        raise ConfigError(f"flow.reflow={f.reflow} is not a finished run folder; train it first")


def _check_nothing(cfg: Config) -> None:
    """The diffusion objective's sections are checked by :func:`validate` for every run."""


# The objectives the training loop knows (training/objectives.py registers one class under each
# name) and the check of each one's own config section. The checks live here, below training, so
# that loading a config refuses a bad section without importing the objective that trains it.
OBJECTIVE_CHECKS = {
    "diffusion": _check_nothing,
    "flow": _check_flow,
    "autoencoder": _check_autoencoder,
    "segmentation": _check_segmentation,
}


def save_config(cfg: Config, path: Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
