"""What ``difusion segment`` and ``difusion eval RUN --data ...`` do for segmentation runs (kept
here so that cli.py only dispatches)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from difusion.errors import DifusionError


def is_segmentation_run(run_dir: Path) -> bool:
    """True for a run folder whose config says ``objective: segmentation``."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and data.get("objective") == "segmentation"


def read_image(path: Path) -> np.ndarray:
    """A grey image ``(H, W)`` float32 normalised to about [0, 1] from a TIFF or PNG/JPEG file
    (colour is averaged to grey)."""
    from difusion.data.cells import normalize

    path = Path(path)
    if not path.is_file():
        raise DifusionError(f"{path} does not exist; give an image file (.tif, .png, .jpg)")
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path).astype(np.float32)
        else:
            from PIL import Image

            arr = np.asarray(Image.open(path)).astype(np.float32)
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise DifusionError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
    if arr.ndim == 3:
        arr = arr[..., :3].mean(-1) if arr.shape[-1] <= 4 else arr.mean(0)
    if arr.ndim != 2:
        raise DifusionError(f"{path} is not a 2-D image (shape {arr.shape})")
    return normalize(arr)


def segment_file(run_dir: Path, image_path: Path, out: Path) -> dict[str, Path]:
    """Segment one image with a run: ``out`` is the binary mask (PNG, 0/255), next to it
    ``*_instances.tif`` (uint16 instance ids) and ``*_overlay.png``."""
    import tifffile
    from PIL import Image

    from difusion.segmentation.inference import overlay, segment
    from difusion.segmentation.objective import load_segmentation_run

    cfg, network, _ = load_segmentation_run(run_dir)
    image = read_image(image_path)
    _, fg, inst = segment(network, image, cfg.segmentation.tile, cfg.segmentation.instances)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((fg * 255).astype(np.uint8)).save(out)
    inst_path = out.with_name(out.stem + "_instances.tif")
    tifffile.imwrite(inst_path, inst.astype(np.uint16))
    ov_path = out.with_name(out.stem + "_overlay.png")
    Image.fromarray(overlay(image, inst)).save(ov_path)
    return {"mask": out, "instances": inst_path, "overlay": ov_path, "cells": int(inst.max())}


def eval_segmentation(run_dir: Path, data: str | None, out: Path | None = None) -> tuple[str, Path]:
    """Score a segmentation run on ``data`` (synthetic, stardist, dsb2018-sample, dsb2018) next to
    Otsu + watershed; returns the printed table and the JSON path."""
    from difusion.segmentation.data import EVAL_SOURCES
    from difusion.segmentation.objective import evaluate_run_network, load_segmentation_run

    if data is not None and data not in EVAL_SOURCES:
        raise DifusionError(f"--data must be one of: {', '.join(EVAL_SOURCES)}, got {data!r}")
    cfg, network, step = load_segmentation_run(run_dir)
    src = data or cfg.segmentation.data
    folder = Path(out).parent if out is not None else Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    n = None if src == "dsb2018" else cfg.segmentation.n_test
    written = evaluate_run_network(cfg, network, folder, source=src, n=n)
    path = written[f"scores-{src}"]
    if out is not None:
        Path(out).write_text(path.read_text())
        path = Path(out)
    scores = json.loads(path.read_text())
    return format_table(scores, f"{run_dir} (step {step}) on {src}"), path


def eval_segmentation_lines(run_dir: Path, opts, device) -> list[str]:
    """`difusion eval RUN` for a segmentation run (``run_eval.EVALUATORS``): the printed lines."""
    table, written = eval_segmentation(run_dir, opts.data, opts.out)
    return [table, f"written: {written}"]


def format_table(scores: dict, title: str) -> str:
    """A small text table: U-Net vs Otsu + watershed."""
    keys = ("dice", "iou", "pixel_error", "ap50", "separated_share")
    lines = [title, f"{'method':18s}" + "".join(f"{k:>16s}" for k in keys)]
    for name, label in (("unet", "U-Net"), ("otsu_watershed", "Otsu+watershed")):
        if name in scores:
            lines.append(f"{label:18s}" + "".join(f"{scores[name][k]:16.3f}" for k in keys))
    u = scores["unet"]
    lines.append(f"({u['images']} image(s), {u['touching_pairs']} touching pairs)")
    return "\n".join(lines)


__all__ = [
    "eval_segmentation",
    "eval_segmentation_lines",
    "format_table",
    "is_segmentation_run",
    "read_image",
    "segment_file",
]
