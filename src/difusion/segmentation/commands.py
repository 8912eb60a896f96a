"""What ``difusion segment`` and ``difusion eval RUN --data ...`` do for segmentation runs (kept
here so that cli.py only dispatches)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from difusion.errors import DifusionError
from difusion.files import atomic_path, write_text

MAX_SIDE = 4096  # pixels a side that `difusion segment` takes unless told --no-limits


def is_segmentation_run(run_dir: Path) -> bool:
    """True for a run folder whose config says ``objective: segmentation``; a config.yaml that
    cannot be read (not UTF-8, not YAML) is a one-line ConfigError naming it."""
    from difusion.config import load_yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return False
    return load_yaml(path).get("objective") == "segmentation"


def _image_shape(path: Path) -> tuple[int, ...]:
    """The shape of the image in ``path``, read from its header (the pixels are not decoded)."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as f:
            return tuple(f.series[0].shape)
    from PIL import Image

    with Image.open(path) as im:
        return (im.height, im.width)


def read_image(path: Path, max_side: int | None = None) -> np.ndarray:
    """A grey image ``(H, W)`` float32 normalised to about [0, 1] from a TIFF or PNG/JPEG file
    (colour is averaged to grey). ``max_side``: refuse larger images before decoding them."""
    from difusion.data.cells import normalize

    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DifusionError(f"{path} {what}; give an image file (.tif, .png, .jpg)")
    quiet = logging.getLogger("tifffile")  # a torn TIFF is one line here, not a log of its tags
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        shape = _image_shape(path)
        if max_side is not None and max(shape[:2]) > max_side:
            raise DifusionError(
                f"{path} is {shape[1]}x{shape[0]} pixels, more than {max_side} a side; crop it, "
                "or pass --no-limits if you mean it"
            )
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path).astype(np.float32)
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.asarray(im).astype(np.float32)
    except DifusionError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is the user's file
        raise DifusionError(f"cannot read {path} as an image ({type(e).__name__}: {e})") from None
    finally:
        quiet.setLevel(level)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(-1) if arr.shape[-1] <= 4 else arr.mean(0)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise DifusionError(f"{path} is not a 2-D image (shape {arr.shape})")
    if not np.isfinite(arr).all():
        raise DifusionError(f"{path} holds NaN or infinite pixels")
    return normalize(arr)


def mask_paths(out: Path) -> dict[str, Path]:
    """What `difusion segment --out OUT` writes: OUT (a PNG), OUT_instances.tif, OUT_overlay.png;
    OUT must end in .png (so no checkpoint, config or folder is ever written over)."""
    out = Path(out)
    if out.suffix.lower() != ".png" or out.is_dir():
        what = (
            "a folder" if out.is_dir() else ("an existing file" if out.exists() else "not a .png")
        )
        raise DifusionError(
            f"--out {out} is {what}; name the mask's .png file, e.g. --out mask.png "
            "(MASK_instances.tif and MASK_overlay.png go beside it)"
        )
    if out.parent.exists() and not out.parent.is_dir():
        raise DifusionError(f"--out {out}: {out.parent} is a file, not a folder")
    return {
        "mask": out,
        "instances": out.with_name(out.stem + "_instances.tif"),
        "overlay": out.with_name(out.stem + "_overlay.png"),
    }


def segment_file(
    run_dir: Path, image_path: Path, out: Path, max_side: int | None = None
) -> dict[str, Path]:
    """Segment one image with a run: ``out`` is the binary mask (PNG, 0/255), next to it
    ``*_instances.tif`` (uint16 instance ids) and ``*_overlay.png``, each written atomically.
    ``out`` and the image are checked before the run is loaded."""
    import tifffile
    from PIL import Image

    from difusion.segmentation.inference import overlay, segment
    from difusion.segmentation.objective import load_segmentation_run

    paths = mask_paths(out)
    image = read_image(image_path, max_side)
    cfg, network, _ = load_segmentation_run(run_dir)
    _, fg, inst = segment(network, image, cfg.segmentation.tile, cfg.segmentation.instances)
    paths["mask"].parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(paths["mask"]) as tmp:
        Image.fromarray((fg * 255).astype(np.uint8)).save(tmp, format="PNG")
    with atomic_path(paths["instances"]) as tmp:
        tifffile.imwrite(tmp, inst.astype(np.uint16))
    with atomic_path(paths["overlay"]) as tmp:
        Image.fromarray(overlay(image, inst)).save(tmp, format="PNG")
    return {**paths, "cells": int(inst.max())}


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
        path = write_text(out, path.read_text())
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
    "mask_paths",
    "read_image",
    "segment_file",
]
