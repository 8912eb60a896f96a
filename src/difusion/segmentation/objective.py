"""Segmentation as an objective of the one training loop: the U-Net of Ronneberger et al. 2015
trained with the weighted pixel-wise softmax cross-entropy (Eq. 1) and the weight map (Eq. 2),
on tiles augmented by elastic deformation (Sec. 3.1)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from difusion.config import Config
from difusion.errors import CheckpointError
from difusion.files import write_text
from difusion.nn.unet_seg import UNetSeg, output_size
from difusion.segmentation.data import load_images
from difusion.segmentation.elastic import elastic_deform, flip_rotate, grey_values
from difusion.segmentation.tiling import mirror_pad
from difusion.segmentation.weight_map import class_weights, separation_target, weight_map
from difusion.training.objectives import Objective, register


def build_seg_network(cfg: Config) -> UNetSeg:
    """The U-Net of ``cfg.segmentation``: one grey channel in, two classes (background, cell) out."""
    s = cfg.segmentation
    return UNetSeg(1, 2, s.base_channels, s.depth, s.padding, s.dropout, s.batch_norm)


def weighted_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Eq. 1: ``E = -sum_x w(x) log p_l(x)(x)`` with the pixel-wise softmax ``p_k``, averaged
    over the pixels: ``(N, K, H, W)`` scores, ``(N, H, W)`` labels and weights."""
    ce = F.cross_entropy(logits.float(), target, reduction="none")
    return (weight * ce).mean()


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """``1 - 2 sum p t / (sum p + sum t)`` of the cell probability (Milletari et al. 2016)."""
    p = torch.softmax(logits.float(), dim=1)[:, 1]
    t = target.float()
    return 1.0 - (2.0 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)


def training_pairs(
    images: list[np.ndarray], instances: list[np.ndarray], w0: float, sigma: float, use_map: bool
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(image, target, weights) per training image: the target with separating borders, and
    ``w(x)`` of Eq. 2 (or the class-balancing ``w_c`` alone without the weight map)."""
    out = []
    for img, lab in zip(images, instances, strict=True):
        target = separation_target(lab)
        w = weight_map(lab, w0, sigma, target) if use_map else class_weights(target)[target]
        out.append((img.astype(np.float32), target.astype(np.int64), w.astype(np.float32)))
    return out


def sample_tile(
    pair: tuple[np.ndarray, np.ndarray, np.ndarray],
    tile_in: int,
    tile_out: int,
    rng: np.random.Generator,
    cfg_seg,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented training tile: a random window of the mirror-padded image (tile_in), the
    label and weights of its valid centre (tile_out); flips/rotations, elastic deformation (one
    field for all three; nearest for labels) and grey-value changes as configured."""
    img, target, w = pair
    m = (tile_in - tile_out) // 2
    h, wd = img.shape
    extra = (max(tile_out - h, 0), max(tile_out - wd, 0))
    arrays = [
        mirror_pad(img, (m, m), (m + extra[0], m + extra[1])),
        mirror_pad(target, (m, m), (m + extra[0], m + extra[1])),
        mirror_pad(w, (m, m), (m + extra[0], m + extra[1])),
    ]
    r = int(rng.integers(0, max(h, tile_out) - tile_out + 1))
    c = int(rng.integers(0, max(wd, tile_out) - tile_out + 1))
    arrays = [a[r : r + tile_in, c : c + tile_in] for a in arrays]
    if cfg_seg.flips:
        arrays = flip_rotate(arrays, rng)
    if cfg_seg.elastic:
        arrays = elastic_deform(arrays, [3, 0, 1], rng, cfg_seg.elastic_grid, cfg_seg.elastic_std)
    x, t, wt = arrays
    if cfg_seg.grey:
        x = grey_values(x, rng)
    sl = slice(m, m + tile_out)
    return x.astype(np.float32), t[sl, sl].astype(np.int64), wt[sl, sl].astype(np.float32)


class SegmentationObjective(Objective):
    """Tiles of the training images in, the weighted cross-entropy (or Dice + CE) out."""

    loss_label = "weighted cross-entropy"

    def __init__(self, cfg: Config, device: torch.device):
        super().__init__(cfg, device)
        s = cfg.segmentation
        self.network = build_seg_network(cfg).to(device)
        self.tile_in = s.tile
        self.tile_out = output_size(s.tile, s.depth, s.padding)
        images, instances = load_images(s.data, "train", s.n_train, s.image_size, s.data_seed)
        self.pairs = training_pairs(images, instances, s.w0, s.sigma, s.weight_map)
        self.n_instances = sum(int(len(np.unique(y)) - 1) for y in instances)
        if s.loss == "dice+ce":
            self.loss_label = "Dice + weighted cross-entropy"

    def describe(self) -> str:
        s = self.cfg.segmentation
        return (
            f"{s.data} cells: {len(self.pairs)} images, {self.n_instances} instances; "
            f"tiles {self.tile_in} -> {self.tile_out} ({s.padding})"
        )

    def meta(self) -> dict:
        return {"tile_in": self.tile_in, "tile_out": self.tile_out}

    def batch(self, generator: torch.Generator, size: int):
        """``size`` random tiles (image, target, weight map) of training images drawn with
        replacement."""
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)
        xs, ts, ws, picked = [], [], [], []
        for _ in range(size):
            picked.append(int(rng.integers(len(self.pairs))))
            pair = self.pairs[picked[-1]]
            x, t, w = sample_tile(pair, self.tile_in, self.tile_out, rng, self.cfg.segmentation)
            xs.append(x)
            ts.append(t)
            ws.append(w)
        self.last_indices = torch.tensor(picked)
        to = lambda a, dt: torch.as_tensor(np.stack(a), dtype=dt, device=self.device)  # noqa: E731
        return to(xs, torch.float32)[:, None], to(ts, torch.int64), to(ws, torch.float32)

    def loss(self, model, batch, generator, autocast_dtype):
        x, target, weight = batch
        dev = x.device.type
        with torch.autocast(dev, autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(x)
        ce = weighted_cross_entropy(logits, target, weight)
        if self.cfg.segmentation.loss == "dice+ce":
            dice = soft_dice_loss(logits, target)
            return ce + dice, {"ce": float(ce), "dice_loss": float(dice)}
        return ce, {}

    def finish(self, model, run_dir: Path, autocast_dtype, progress: bool) -> dict[str, Path]:
        """Score the held-out images (and the real StarDist pair when it is on this machine)
        against Otsu + watershed; write scores.json and overlay pictures."""
        return evaluate_run_network(
            self.cfg, model, run_dir, include_real=self.cfg.segmentation.eval_real
        )

    def report_lines(self) -> list[str]:
        s = self.cfg.segmentation
        wmap = f"w0 = {s.w0:g}, sigma = {s.sigma:g}" if s.weight_map else "off"
        return [
            f"- U-Net: base {s.base_channels} channels, depth {s.depth}, {s.padding} padding, "
            f"tile {self.tile_in} -> {self.tile_out}; loss {s.loss}, weight map {wmap}, elastic "
            f"{'on' if s.elastic else 'off'}; {s.n_train} {s.data} training images"
        ]


def _public(scores: dict) -> dict:
    return {k: v for k, v in scores.items() if not k.startswith("_")}


def evaluate_run_network(
    cfg: Config,
    network: UNetSeg,
    out_dir: Path,
    include_real: bool = False,
    source: str | None = None,
    n: int | None = None,
) -> dict[str, Path]:
    """Measures of ``network`` on the run's held-out images (or ``source``), written to
    ``out_dir/scores[-SOURCE].json`` with a comparison picture."""
    from difusion.metrics.segmentation import otsu_watershed
    from difusion.segmentation.inference import save_comparison, score_images

    s = cfg.segmentation
    outputs: dict[str, Path] = {}
    sources = [source or s.data]
    if include_real and s.data != "stardist":
        from difusion.data.stardist_wheel import MEMBERS, stardist_dir

        if all((stardist_dir() / m).is_file() for m in MEMBERS):
            sources.append("stardist")
    for src in sources:
        images, truths = load_images(src, "test", n or s.n_test, s.image_size, s.data_seed)
        scores = score_images(network, images, truths, s.tile, s.instances)
        suffix = "" if src == (source or s.data) and source is None else f"-{src}"
        scores.update(data=src, images=len(images), tile=s.tile, instances=s.instances)
        path = out_dir / f"scores{suffix}.json"
        write_text(path, json.dumps(_public(scores), indent=2) + "\n")
        outputs[f"scores{suffix}"] = path
        k = min(3, len(images))
        preds = scores["_predictions"][:k]
        base = [otsu_watershed(img)[1] for img in images[:k]]
        outputs[f"overlay{suffix}"] = save_comparison(
            images[:k], truths[:k], [p[1] for p in preds], base, out_dir / f"overlay{suffix}.png"
        )
    return outputs


def load_segmentation_run(
    run_dir: Path, device: torch.device | str = "cpu"
) -> tuple[Config, UNetSeg, int]:
    """``(config, EMA network in eval mode, step)`` of a run trained with ``objective: segmentation``."""
    from difusion.checkpoint import load_checkpoint, load_module
    from difusion.training.loop import CHECKPOINT, load_run_config

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.objective != "segmentation":
        raise CheckpointError(
            f"{run_dir} was trained with objective {cfg.objective!r}, not segmentation"
        )
    groups, info = load_checkpoint(run_dir / CHECKPOINT, prefixes=("ema",))
    if "ema" not in groups:
        raise CheckpointError(f"{run_dir / CHECKPOINT} has no EMA weights; train the run again")
    network = build_seg_network(cfg)
    load_module(network, groups["ema"], run_dir / CHECKPOINT)
    return cfg, network.to(device).eval(), int(info["meta"]["step"])


register("segmentation", SegmentationObjective)
