"""Run configuration: nested dataclasses, presets in YAML, and ``section.key=value`` overrides.

Every key has a default here; a preset or a config file only says what differs. Unknown keys and
wrong types are errors that name the key and list the valid ones, and :func:`validate` refuses
impossible values, each objective's section included (:data:`OBJECTIVE_CHECKS`).

The config sits low in the layers (``[tool.importlinter]`` in pyproject.toml): it may read the
tables of choices of the math, the networks and the samplers, never training or what sits above it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from difusion.errors import ConfigError, DifusionError
from difusion.files import write_text

# Choices of an objective's section whose implementation sits above the config: the config owns the
# names (segmentation/data.py imports its SOURCES from here; training/flow_objective.py's
# sample_times draws the two time samplings).
SEGMENTATION_SOURCES = ("synthetic", "stardist", "dsb2018")  # segmentation.data
TIME_SAMPLINGS = ("uniform", "logit-normal")  # flow.time_sampling
NFLOW_KINDS = ("realnvp", "idf")  # nflow.kind (nflows/realnvp.py, nflows/idf.py)
NFLOW_MASKS = ("checkerboard", "half")  # nflow.mask (nflows/coupling.py's make_mask)
HVAE_KINDS = ("hierarchical", "diffusion")  # hvae.kind (hvae/hierarchical.py, hvae/diffusion.py)
HVAE_INFERENCE = ("top-down", "bottom-up")  # hvae.inference (hvae/hierarchical.py)
HVAE_PRIORS = ("standard", "mog", "vamp")  # hvae.prior (hvae/priors.py)
EBM_KINDS = ("cd", "dsm")  # ebm.kind (ebm/energy.py, ebm/score.py)


def within(default, interval: str):
    """A config field whose values must lie in ``interval``, in interval notation: "[" and "]"
    include the bound, "(" and ")" leave it out. NaN lies in no interval, so it is always refused;
    a list is checked element by element; None, where the type allows it, is always accepted."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"interval": interval})
    return field(default=default, metadata={"interval": interval})


@dataclass
class DataConfig:
    name: str = "fashion-mnist"  # toy2d, digits, mnist, fashion-mnist, cifar10, folder
    split: str = "train"
    root: str | None = None  # a directory to read from (required for folder)
    image_size: int | None = within(None, "[1, inf)")  # resize images to this size (None: native)
    channels: int | None = None  # convert images to 1 or 3 channels (None: native)
    distribution: str = "moons"  # toy2d only: swiss_roll, moons, 8gaussians, checkerboard, spiral
    n: int = within(8000, "[1, inf)")  # toy2d only: number of points
    hflip: bool = False  # random horizontal flips while training


@dataclass
class ModelConfig:
    kind: str = "unet"  # unet for images, mlp for points
    base_channels: int = within(32, "[1, inf)")
    channel_mult: list[int] = within([1, 2, 2], "[1, inf)")
    num_res_blocks: int = within(2, "[1, inf)")
    attention_levels: list[int] = within([2], "[0, inf)")  # indices into channel_mult
    num_heads: int = within(4, "[1, inf)")
    dropout: float = within(0.0, "[0, 1)")
    use_scale_shift_norm: bool = True
    class_conditional: bool = False
    # fold p x p pixel patches into channels at the input (space-to-depth)
    patch_size: int = within(1, "[1, inf)")
    hidden: int = within(256, "[1, inf)")  # mlp only
    depth: int = within(4, "[1, inf)")  # mlp only


@dataclass
class DiffusionConfig:
    # ddpm: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al.); ve: the Step-by-Step
    # tutorial's x_t = x_0 + sigma_max sqrt(t) eps on the grid t = k / T (Nakkiran et al. 2024)
    path: str = "ddpm"
    sigma_max: float = within(10.0, "(0, inf)")  # ve only: the tutorial's sigma_q
    schedule: str = "cosine"  # linear, cosine, sigmoid (ddpm only)
    T: int = within(1000, "[2, inf)")
    # what the network predicts: eps, x0, v, mu (the posterior mean of the step t -> t - 1) or
    # x_prev (the same E[x_(t-1) | x_t], regressed on draws of x_(t-1): Nakkiran et al. Pseudocode 1)
    prediction: str = "eps"
    variance: str = "beta"  # sampling variance sigma_t^2: beta, beta_tilde or learned
    clip_x0: bool = True  # clamp the x_0 estimate to [-1, 1] when sampling images
    # the network also outputs v: Sigma = exp(v log beta + (1-v) log beta~)
    learn_sigma: bool = False
    loss: str = "simple"  # simple (L_simple), hybrid (L_simple + lambda L_vlb) or vlb (the bound)
    hybrid_lambda: float = within(0.001, "[0, inf)")  # lambda of L_hybrid (improved DDPM)
    weighting: str = "uniform"  # L_simple's weight over log-SNR: uniform, min-snr, trunc-snr
    # gamma of min-SNR-gamma weighting (Hang et al. 2023)
    min_snr_gamma: float = within(5.0, "(0, inf)")
    # loss=vlb: sample t with p_t ~ sqrt(E[L_t^2]) (improved DDPM)
    importance_sampling: bool = False
    zero_terminal_snr: bool = False  # rescale the schedule so alpha_bar_T = 0 (Lin et al. 2023)


@dataclass
class TrainConfig:
    steps: int | None = within(None, "[1, inf)")  # stop after this many steps (None: use minutes)
    # or stop after this wall-clock time; the LR schedule ends on time
    minutes: float | None = within(None, "(0, inf)")
    # per process: under torchrun with N processes a step trains on N x batch_size examples
    batch_size: int = within(64, "[1, inf)")
    lr: float = within(2e-4, "(0, inf)")
    min_lr_ratio: float = within(0.1, "[0, 1]")  # the cosine decay ends at lr * min_lr_ratio
    warmup_steps: int = within(200, "[0, inf)")
    weight_decay: float = within(0.0, "[0, inf)")
    # AdamW's second-moment decay (0.99 forgets old gradients faster)
    adam_beta2: float = within(0.999, "(0, 1)")
    grad_clip: float = within(1.0, "(0, inf]")
    ema_decay: float = within(0.999, "[0, 1)")
    precision: str = "auto"  # auto (bf16 where the CPU/GPU supports it), bf16 or fp32
    seed: int = within(0, "[0, inf)")
    log_every: int = within(50, "[1, inf)")  # steps between lines in metrics.jsonl
    sample_every: int = within(2000, "[0, inf)")  # steps between preview grids (0: never)
    checkpoint_minutes: float = within(2.0, "[0, inf)")  # wall-clock time between checkpoints
    # torch CPU threads (None: all cores, split among processes)
    threads: int | None = within(None, "[1, inf)")
    # class-conditional models: share of labels dropped to the null class (CFG)
    p_uncond: float = within(0.1, "[0, 1)")
    # where the metrics go: jsonl (metrics.jsonl) or tensorboard (metrics.jsonl and, beside it,
    # TensorBoard events in RUN/tensorboard/: every metric, the previews and the final samples)
    log: str = "jsonl"


@dataclass
class SampleConfig:
    # images (or points) to draw at the end of training and by `difusion sample`
    n: int = within(64, "[1, 1000000]")  # the top is sampling.pipeline.MAX_SAMPLES
    seed: int = within(0, "[0, inf)")  # image i uses seed + i
    # sampling steps (None: the sampler's default; all T for ddpm)
    steps: int | None = within(None, "[1, inf)")
    batch_size: int = within(256, "[1, inf)")
    sampler: str = "ddpm"  # ddpm, ddim, dpmpp-2m, euler or heun
    eta: float = within(0.0, "[0, 1]")  # ddim only: 0 deterministic, 1 DDPM-like
    # class-conditional only: w in eps = (1 + w) eps_c - w eps_u
    guidance: float = within(0.0, "[0, inf)")
    # phi of Lin et al. 2023 (0.7 in the paper); 0 = off
    guidance_rescale: float = within(0.0, "[0, 1]")
    # guide only where the noise fraction sigma / (alpha + sigma) lies in [lo, hi] (Kynkaanniemi
    # et al. 2024); [0, 1] = every step
    guidance_interval: list[float] = within([0.0, 1.0], "[0, 1]")


@dataclass
class AutoencoderConfig:
    """``objective: autoencoder`` (src/difusion/autoencoders/): the model family and its loss."""

    kind: str = "ae"  # ae, dae, sae, cae, vae, beta-vae, vqvae
    code_size: int = within(32, "[1, inf)")  # flat code dimension (vqvae: number of discrete codes)
    network: str = "conv"  # conv, mlp (tanh hidden layers) or linear (the PCA check)
    spatial: bool = False  # conv only: latent (latent_channels, H/4, W/4), e.g. 4x7x7 for 28x28
    latent_channels: int = within(4, "[1, inf)")  # channels of a spatial latent
    channels: list[int] = within([32, 64], "[1, inf)")  # conv widths at H/2 and H/4
    hidden: int = within(512, "[1, inf)")  # mlp only: width of the hidden layers
    depth: int = within(2, "[1, inf)")  # mlp only: hidden layers in the encoder and in the decoder
    likelihood: str = "gaussian"  # decoder p(x|z): gaussian (MSE) or bernoulli (binarized data)
    # gaussian decoder std on the [-1, 1] scale (VAE weight 1 / (2 sigma^2))
    sigma: float = within(0.1, "(0, inf)")
    # weight of the KL term (beta-VAE, Higgins et al. 2017; 1 = the VAE)
    beta: float = within(1.0, "[0, inf)")
    noise_std: float = within(0.5, "[0, inf)")  # dae: std of the additive Gaussian corruption
    # dae: share of pixels set to black (masking corruption)
    mask_prob: float = within(0.0, "[0, 1)")
    # sae: weight of ||z||_1 (per example, next to the per-example NLL)
    sparsity: float = within(0.01, "[0, inf)")
    contraction: float = within(0.1, "[0, inf)")  # cae: weight of ||J_f(x)||_F^2
    codebook_size: int = within(64, "[1, inf)")  # vqvae: K codes
    code_dim: int = within(16, "[1, inf)")  # vqvae: D, the dimension of each code vector
    # vqvae: beta of the commitment loss (van den Oord et al. 2017)
    commitment: float = within(0.25, "[0, inf)")
    vq_decay: float = within(0.99, "(0, 1)")  # vqvae: EMA decay of the codebook statistics
    # train on only the first N training images (None: all)
    train_subset: int | None = within(None, "[1, inf)")
    eval_n: int = within(1000, "[1, inf)")  # test images for the measures at the end of training
    # importance samples of the IWAE NLL estimate (first 500 test images)
    iwae_k: int = within(16, "[0, inf)")
    # prior samples for the FID at the end of training (0: skip)
    fid_n: int = within(1000, "[0, inf)")


@dataclass
class SegmentationConfig:
    """``objective: segmentation`` (src/difusion/segmentation/): the Ronneberger U-Net's training."""

    w0: float = within(10.0, "[0, inf)")  # border weight of the weight map
    sigma: float = within(5.0, "(0, inf)")  # its width in pixels
    data: str = "synthetic"  # training images: synthetic, stardist (the real pair) or dsb2018
    # training images (synthetic: generated once; dsb2018: the first N)
    n_train: int = within(20, "[1, inf)")
    # held-out images scored at the end (synthetic: other seeds)
    n_test: int = within(8, "[1, inf)")
    image_size: int = within(192, "[1, inf)")  # side of the synthetic images
    data_seed: int = 0  # seed of the synthetic training set (the test set uses data_seed + 1)
    base_channels: int = within(64, "[1, inf)")  # channels of the first level (64 in the paper)
    depth: int = within(4, "[1, inf)")  # max-pools (4 in the paper: 64 ... 1024 channels)
    padding: str = "valid"  # valid (the paper: unpadded 3x3 convolutions) or same
    dropout: float = within(0.0, "[0, 1)")  # dropout at the end of the contracting path (Sec. 3.1)
    batch_norm: bool = False  # batch norm after each convolution (not in the paper)
    # input tile side, training and overlap-tile inference (572 -> 388 in the paper)
    tile: int = 572
    loss: str = "ce"  # ce (weighted softmax cross-entropy, Eq. 1) or dice+ce
    weight_map: bool = True  # use w(x) of Eq. 2; false: unweighted cross-entropy
    elastic: bool = True  # random elastic deformation (3x3 grid, elastic_std px)
    elastic_std: float = within(10.0, "[0, inf)")  # std of the coarse displacements in pixels
    elastic_grid: int = within(3, "[2, inf)")  # the coarse grid is elastic_grid x elastic_grid
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
    # ot only: the noise s left at the data end (Lipman et al.)
    sigma_min: float = within(1.0e-4, "[0, 1)")
    ot_coupling: bool = False  # pair x_0 and eps within a batch by optimal transport
    # how training draws t: uniform on [0, 1], or logit-normal (Esser et al. 2024, eq. 19):
    # t = sigmoid(logit_mean + logit_std n), n ~ N(0, 1), which spends more steps near t = 1/2
    time_sampling: str = "uniform"
    logit_mean: float = within(0.0, "(-inf, inf)")
    logit_std: float = within(1.0, "(0, inf)")
    reflow: str | None = None  # a finished flow run: train on its own noise -> data pairs
    reflow_pairs: int = within(4000, "[1, inf)")  # how many pairs to draw from that run
    # ODE steps (fm-rk4 is 4 calls each) used to draw them
    reflow_steps: int = within(50, "[1, inf)")
    reflow_solver: str = "rk4"  # euler, heun or rk4


@dataclass
class NFlowConfig:
    """``objective: nflow`` (src/difusion/nflows/): normalizing flows with an exact likelihood.

    Points (toy2d) are modelled as they are; images are discrete, on ``levels`` grey levels: RealNVP
    sees them uniformly dequantized, IDF as the integers themselves."""

    kind: str = "realnvp"  # realnvp (Dinh et al. 2017) or idf (Hoogeboom et al. 2019)
    layers: int = within(8, "[1, inf)")  # coupling layers; the mask alternates between them
    hidden: int = within(256, "[1, inf)")  # width of each coupling's conditioner MLP
    depth: int = within(2, "[1, inf)")  # hidden layers of each conditioner MLP
    # which half each coupling keeps: checkerboard (pixel parity i + j; for points: every other
    # coordinate) or half (the first or the second half of the flattened vector)
    mask: str = "checkerboard"
    levels: int = within(17, "[2, inf)")  # grey levels of image data (scikit-learn's digits: 17)
    components: int = within(4, "[1, inf)")  # idf: logistics in each dimension's prior mixture
    # realnvp on images: dequantization draws u per test image, averaged in the bound
    dequant_samples: int = within(4, "[1, inf)")
    eval_n: int | None = within(None, "[1, inf)")  # test examples scored at the end (None: all)


@dataclass
class HVAEConfig:
    """``objective: hvae`` (src/difusion/hvae/): latent-variable models with more than one stochastic
    layer, on images of ``levels`` grey levels with a categorical decoder p(x | z1) over the levels.

    hierarchical: z2 -> z1 -> x, inferred top-down (Sonderby et al. 2016) or bottom-up; diffusion:
    x = z0 -> z1 -> ... -> zT with a fixed Gaussian forward chain and a learned reverse chain."""

    kind: str = "hierarchical"  # hierarchical (two stochastic layers) or diffusion (T of them)
    inference: str = "top-down"  # hierarchical: top-down (ladder VAE) or bottom-up q(z1|x) q(z2|z1)
    prior: str = "standard"  # hierarchical: p(z2) standard (N(0, I)), mog or vamp (VampPrior)
    components: int = within(32, "[1, inf)")  # mog: Gaussians; vamp: pseudo-inputs
    z1: int = within(32, "[1, inf)")  # hierarchical: size of the lower latent z1
    z2: int = within(16, "[1, inf)")  # hierarchical: size of the top latent z2
    hidden: int = within(256, "[1, inf)")  # width of every MLP
    depth: int = within(2, "[1, inf)")  # hidden layers of every MLP
    T: int = within(5, "[1, inf)")  # diffusion: steps of the forward chain
    beta: float = within(0.5, "(0, 1)")  # diffusion: the constant variance of each forward step
    # training steps over which the KL terms' weight rises from 0 to 1 (warm-up: Sonderby et al.
    # 2016, Sec. 2.3); 0: the ELBO from the start. The measures are always the full ELBO.
    kl_warmup: int = within(0, "[0, inf)")
    levels: int = within(17, "[2, inf)")  # grey levels of the data (scikit-learn's digits: 17)
    # draws per test image for the measures: the ELBO averages them, the IWAE bound log-means them
    iwae_k: int = within(128, "[1, inf)")
    eval_n: int | None = within(None, "[1, inf)")  # test images scored at the end (None: all)


@dataclass
class EBMConfig:
    """``objective: ebm`` (src/difusion/ebm/): energy-based models and score matching.

    cd: an energy E(x), p(x) ~ exp(-E(x)), trained by contrastive divergence with short-run SGLD
    negatives from a replay buffer (Du & Mordatch 2019); dsm: a noise-conditional score s(x, sigma)
    trained by denoising score matching and sampled by annealed Langevin (Song & Ermon 2019)."""

    kind: str = "cd"  # cd (an energy, contrastive divergence) or dsm (a score, denoising)
    hidden: int = within(128, "[1, inf)")  # width of the MLP
    depth: int = within(3, "[1, inf)")  # hidden layers of the MLP
    # cd: SGLD x <- x - (eps/2) dE/dx + sqrt(eps) z; its step eps and the steps per training batch
    step_size: float = within(0.01, "(0, inf)")
    sgld_steps: int = within(20, "[1, inf)")
    buffer: int = within(10000, "[1, inf)")  # cd: replay buffer size
    reinit: float = within(0.05, "[0, 1]")  # cd: share of each batch's chains restarted from noise
    l2: float = within(0.1, "[0, inf)")  # cd: weight of f(x)^2 + f(x')^2 (the network's energies)
    noise_range: float = within(3.0, "(0, inf)")  # cd: fresh chains start uniform on [-r, r]
    # cd: s0 of a Gaussian reference, E(x) = f(x) + |x|^2 / (2 s0^2) (Xie et al. 2016); 0: none
    base_std: float = within(0.0, "[0, inf)")
    # dsm: the geometric ladder sigma_1 > ... > sigma_L of Song & Ermon (Sec. 4.2)
    sigma_max: float = within(1.0, "(0, inf)")
    sigma_min: float = within(0.01, "(0, inf)")
    levels: int = within(10, "[1, inf)")  # dsm: L, the number of noise levels
    # sampling: cd runs sample_steps of SGLD from fresh noise; dsm anneals with sample_steps per
    # level at step alpha_i = sample_eps sigma_i^2 / sigma_L^2 (Song & Ermon, Algorithm 1)
    sample_steps: int = within(100, "[1, inf)")
    sample_eps: float = within(2.0e-5, "(0, inf)")


@dataclass
class Config:
    name: str = "run"
    # what the training loop trains: diffusion, flow, autoencoder, segmentation, nflow, hvae, ebm
    objective: str = "diffusion"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    nflow: NFlowConfig = field(default_factory=NFlowConfig)
    hvae: HVAEConfig = field(default_factory=HVAEConfig)
    ebm: EBMConfig = field(default_factory=EBMConfig)

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
    if tp is float and not isinstance(value, bool):
        try:  # YAML 1.1 reads 3e-4 (no dot) as a string
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and not math.isnan(number):
            return number
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    what = "a number" if tp is float else getattr(tp, "__name__", tp)
    raise ConfigError(f"{key} must be {what}, got {value!r}")


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
    """The mapping in the YAML file ``path``; a file that is not UTF-8 text, not YAML or not a
    mapping is a one-line ConfigError naming it."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path} is not a YAML text file (byte {e.start} is not UTF-8); give a config file"
        ) from None
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        what = problem or str(e).splitlines()[0]
        raise ConfigError(f"{path} is not valid YAML{line}: {what}") from None
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


# Sections added after run folders existed, each with the objective that reads it: a folder of
# another objective written before the section existed loads with its defaults (it never reads them).
LATER_SECTIONS = {"nflow": "nflow", "hvae": "hvae", "ebm": "ebm"}


def load_run_config(run_dir: Path) -> Config:
    """The config of a run folder (its ``config.yaml``), checked."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a run folder (no config.yaml); give a folder made by "
            "`difusion train`"
        )
    values = load_yaml(path)
    objective = values.get("objective")
    # a later section of another objective is never read by this run: drop it, so a key added to or
    # removed from that section since the run was written cannot stop the run from loading
    for name, owner in LATER_SECTIONS.items():
        if owner != objective and isinstance(values, dict):
            values.pop(name, None)
    # difusion writes every section; one missing means a file cut short (or edited by hand), whose
    # lost values would silently become defaults
    missing = [
        f.name
        for f in dataclasses.fields(Config)
        if f.name not in values and LATER_SECTIONS.get(f.name, objective) == objective
    ]
    if missing:
        default = getattr(Config(), missing[0])
        example = f"{missing[0]}: " + ("{}" if dataclasses.is_dataclass(default) else default)
        raise ConfigError(
            f"{path} lacks {', '.join(missing)} (a file cut short, or edited by hand); restore "
            f"it from a copy, or add them back to take the defaults (e.g. `{example}`)"
        )
    return config_from_dict(values)


def choices() -> dict[str, tuple]:
    """The allowed values of every key that names a choice; the tables live beside the code that
    implements each choice (imported here, not at import time, so that the CLI starts fast)."""
    from difusion.diffusion.flow import FLOW_PATHS
    from difusion.diffusion.parameterization import PREDICTIONS
    from difusion.diffusion.schedules import SCHEDULES
    from difusion.diffusion.weighting import WEIGHTINGS
    from difusion.nn.autoencoders import KINDS, NETWORKS
    from difusion.nn.unet_seg import PADDINGS
    from difusion.sampling.ddpm import VARIANCES
    from difusion.sampling.ode import ODE_SOLVERS
    from difusion.sampling.samplers import SAMPLERS

    return {
        "objective": tuple(OBJECTIVE_CHECKS),
        "data.channels": (1, 3),
        "model.kind": ("unet", "mlp"),
        "diffusion.schedule": tuple(SCHEDULES),
        "diffusion.path": ("ddpm", "ve"),
        "diffusion.prediction": PREDICTIONS[:5],  # velocity belongs to objective: flow
        "diffusion.variance": VARIANCES,
        "diffusion.loss": ("simple", "hybrid", "vlb"),
        "diffusion.weighting": WEIGHTINGS,
        "train.precision": ("auto", "bf16", "fp32"),
        "train.log": ("jsonl", "tensorboard"),
        "sample.sampler": SAMPLERS,
        "autoencoder.kind": KINDS,
        "autoencoder.network": NETWORKS,
        "autoencoder.likelihood": ("gaussian", "bernoulli"),
        "segmentation.data": SEGMENTATION_SOURCES,
        "segmentation.padding": PADDINGS,
        "segmentation.loss": ("ce", "dice+ce"),
        "segmentation.instances": ("components", "watershed"),
        "flow.path": FLOW_PATHS,
        "flow.time_sampling": TIME_SAMPLINGS,
        "flow.reflow_solver": ODE_SOLVERS,
        "nflow.kind": NFLOW_KINDS,
        "nflow.mask": NFLOW_MASKS,
        "hvae.kind": HVAE_KINDS,
        "hvae.inference": HVAE_INFERENCE,
        "hvae.prior": HVAE_PRIORS,
        "ebm.kind": EBM_KINDS,
    }


def _in_interval(value: float, interval: str) -> bool:
    low, high = (float(b) for b in interval[1:-1].split(","))
    above = low <= value if interval[0] == "[" else low < value
    below = value <= high if interval[-1] == "]" else value < high
    return above and below  # False for NaN


def _check_values(cfg: Config) -> None:
    """Every key against the interval of its field (:func:`within`) and :func:`choices`."""
    allowed = choices()
    fields = [("objective", cfg.objective, None)]
    for section in dataclasses.fields(cfg):
        if dataclasses.is_dataclass(part := getattr(cfg, section.name)):
            for f in dataclasses.fields(part):
                key, interval = f"{section.name}.{f.name}", f.metadata.get("interval")
                fields.append((key, getattr(part, f.name), interval))
    for key, value, interval in fields:
        if value is None:
            continue
        if key in allowed and value not in allowed[key]:
            options = ", ".join(str(c) for c in allowed[key])
            raise ConfigError(f"{key} must be one of: {options}; got {value!r}")
        for item in value if isinstance(value, list) else [value]:
            if interval and not _in_interval(item, interval):
                raise ConfigError(f"{key} must be in {interval}, got {item}")


def validate(cfg: Config) -> None:
    """Values that are impossible whatever their type: each key's range or choices, then the
    rules that tie keys together, then the objective's own section (:data:`OBJECTIVE_CHECKS`)."""
    from difusion.sampling.guidance import check_interval

    _check_values(cfg)
    OBJECTIVE_CHECKS[cfg.objective](cfg)
    _validate_losses(cfg.diffusion)
    check_interval(cfg.sample.guidance_interval)
    if cfg.data.name == "latents" and cfg.diffusion.clip_x0:
        raise ConfigError(
            "latents are not bounded to [-1, 1]: set diffusion.clip_x0=false for latent diffusion"
        )
    if not cfg.model.channel_mult:
        raise ConfigError("model.channel_mult must list at least one level, e.g. [1, 2, 2]")
    if any(a < 0 or a >= len(cfg.model.channel_mult) for a in cfg.model.attention_levels):
        raise ConfigError(
            f"model.attention_levels {cfg.model.attention_levels} must index model.channel_mult "
            f"(0..{len(cfg.model.channel_mult) - 1})"
        )


def _validate_losses(d: DiffusionConfig) -> None:
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
    if d.prediction in ("mu", "x_prev") and d.weighting != "uniform":
        raise ConfigError(
            f"loss weightings are defined for eps, x0 and v prediction, not {d.prediction}"
        )
    if d.prediction == "x_prev" and d.loss != "simple":
        raise ConfigError("diffusion.prediction=x_prev trains with diffusion.loss=simple only")
    if d.path == "ve":
        ddpm_only = {
            "diffusion.loss": d.loss != "simple",
            "diffusion.learn_sigma": d.learn_sigma,
            "diffusion.weighting": d.weighting != "uniform",
            "diffusion.zero_terminal_snr": d.zero_terminal_snr,
        }
        if any(ddpm_only.values()):
            used = ", ".join(k for k, on in ddpm_only.items() if on)
            raise ConfigError(
                f"{used}: defined on the DDPM path only; with diffusion.path=ve keep the defaults"
            )
    if d.zero_terminal_snr and d.prediction == "eps":
        raise ConfigError(
            "with diffusion.zero_terminal_snr the eps prediction cannot give x_0 at t = T; "
            "use diffusion.prediction=v (Lin et al. 2023)"
        )


def _check_autoencoder(cfg: Config) -> None:
    a = cfg.autoencoder
    if a.spatial and a.network != "conv":
        raise ConfigError("autoencoder.spatial=true needs autoencoder.network=conv")
    if len(a.channels) != 2:
        raise ConfigError(
            f"autoencoder.channels must hold 2 widths, e.g. [32, 64], got {a.channels}"
        )


def _check_segmentation(cfg: Config) -> None:
    from difusion.nn.unet_seg import output_size

    s = cfg.segmentation
    try:
        output_size(s.tile, s.depth, s.padding)
    except DifusionError as e:
        raise ConfigError(f"segmentation.tile: {e}") from None


def _check_flow(cfg: Config) -> None:
    f = cfg.flow
    if f.reflow and f.ot_coupling:
        raise ConfigError(
            "flow.reflow trains on the teacher's own pairs; set flow.ot_coupling=false"
        )
    if f.reflow and cfg.model.class_conditional:
        raise ConfigError("flow.reflow supports unconditional runs only; unset class_conditional")
    if f.reflow and not (Path(f.reflow) / "report.md").exists():
        raise ConfigError(f"flow.reflow={f.reflow} is not a finished run folder; train it first")


def _check_nflow(cfg: Config) -> None:
    n = cfg.nflow
    if n.kind == "idf" and cfg.data.name == "toy2d":
        raise ConfigError(
            "nflow.kind=idf models integers: train it on image data (e.g. data.name=digits), or "
            "use nflow.kind=realnvp for toy2d points"
        )


def _check_hvae(cfg: Config) -> None:
    h = cfg.hvae
    if cfg.data.name == "toy2d":
        raise ConfigError(
            "objective hvae models images on grey levels (a categorical p(x | z1)); train it on "
            "image data, e.g. data.name=digits"
        )
    if h.kind == "diffusion" and (h.prior != "standard" or h.inference != "top-down"):
        raise ConfigError(
            "hvae.prior and hvae.inference belong to hvae.kind=hierarchical; the diffusion kind's "
            "chain is fixed, with p(zT) = N(0, I): leave them at their defaults"
        )


def _check_ebm(cfg: Config) -> None:
    e = cfg.ebm
    if e.sigma_min >= e.sigma_max:
        raise ConfigError(
            f"ebm.sigma_min={e.sigma_min:g} must be below ebm.sigma_max={e.sigma_max:g} (the "
            "noise ladder runs from sigma_max down to sigma_min)"
        )
    if cfg.data.name not in ("toy2d", "digits"):
        raise ConfigError(
            f"objective ebm trains small MLPs on flat vectors: use data.name=toy2d or digits, "
            f"not {cfg.data.name}"
        )


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
    "nflow": _check_nflow,
    "hvae": _check_hvae,
    "ebm": _check_ebm,
}


def save_config(cfg: Config, path: Path) -> None:
    """Write every section and key of ``cfg`` to ``path``, atomically (``files.write_text``)."""
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
