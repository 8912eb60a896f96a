"""`difusion eval`: score samples against a reference set, stating everything that fixes the number.

A number here is only meaningful with its feature network, its sample count and its reference set,
so every result records all three (plus the seeds and the run step when it sampled a run itself).
Reference features are computed once per (dataset, split, feature network, count) and cached.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from difusion.errors import DifusionError
from difusion.files import FileWriteError, atomic_path, describe_os_error, write_text

METRICS = ("fid", "kid", "pr", "acc")
FEATURES = ("domain", "inception")


@dataclass
class EvalResult:
    metrics: dict[str, float] = field(default_factory=dict)
    setup: dict = field(default_factory=dict)

    def table(self) -> str:
        lines = [f"{'metric':<22} {'value':>12}"]
        for key, value in self.metrics.items():
            lines.append(f"{key:<22} {value:>12.4f}")
        s = self.setup
        lines.append(
            f"({s['n_samples']} samples vs {s['n_reference']} images of {s['reference']}, "
            f"features: {s['features']})"
        )
        return "\n".join(lines)


def parse_reference(ref: str) -> tuple[str, str]:
    """``fashion-mnist:test`` -> ("fashion-mnist", "test"); the split defaults to test."""
    name, _, split = ref.strip().partition(":")
    if not name:
        raise DifusionError(
            f"--ref {ref!r} names no dataset; write DATASET:SPLIT, e.g. digits:test"
        )
    return name, split or "test"


def reference_data(reference: str):
    """The reference set ``DATASET:SPLIT`` (a :class:`difusion.data.Dataset`)."""
    from difusion.data import load_dataset

    dataset, split = parse_reference(reference)
    return load_dataset(dataset, split=split)


def check_same_shape(sample_shape, reference: str, reference_shape) -> None:
    """Samples are only comparable with references of their own shape (C, H, W): a feature network
    would silently resize 8x8 samples to score them against 28x28 images."""
    sample_shape, reference_shape = tuple(sample_shape), tuple(reference_shape)
    if sample_shape != reference_shape:
        size = "x".join
        raise DifusionError(
            f"the samples are {size(map(str, sample_shape))} but the images of {reference} are "
            f"{size(map(str, reference_shape))} (channels x height x width); compare samples with "
            "a reference set of their own size (--ref DATASET:SPLIT)"
        )


def _cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "difusion" / "reference"


class FeatureNetwork:
    """The network whose features the metrics compare: 'domain' (the project's shipped classifier
    for the dataset, fast) or 'inception' (Inception-v3 pool3, the FID literature's, slow)."""

    def __init__(self, kind: str, dataset: str, device="cpu"):
        if kind not in FEATURES:
            raise DifusionError(
                f"unknown --features {kind!r}; choose one of: {', '.join(FEATURES)}"
            )
        self.kind, self.dataset = kind, dataset
        if kind == "domain":
            from difusion.metrics.classifier import load_classifier

            self.model = load_classifier(dataset, device)
            self.name = f"domain classifier for {dataset}"
        else:
            from difusion.metrics.inception import InceptionFeatures

            self.model = InceptionFeatures(device)
            self.name = "Inception-v3 pool3 (TF 2015-12-05 weights)"

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(features (N, D) float64, predicted class logits or None)."""
        if self.kind == "domain":
            from difusion.metrics.classifier import predict

            logits, feats = predict(self.model, images)
            return feats.double(), logits
        return self.model(images).double(), None


def reference_features(
    net: FeatureNetwork,
    dataset: str,
    split: str,
    n: int | None,
    progress: bool = True,
    data=None,
) -> torch.Tensor:
    """Features of the first ``n`` images (all if None) of ``dataset:split`` (``data``: that set,
    already loaded), cached on disk."""
    from difusion.data import load_dataset

    ref = data if data is not None else load_dataset(dataset, split=split)
    images = ref.data if n is None else ref.data[:n]
    key = f"{dataset}-{split}-{net.kind}-{len(images)}"
    path = _cache_dir() / f"{key}.safetensors"
    if path.exists():
        try:
            cached = load_file(str(path))["features"]
        except Exception:  # noqa: BLE001 - a torn or foreign cache file is computed again
            cached = None
        if cached is not None and cached.dim() == 2 and len(cached) == len(images):
            return cached
    if progress:
        print(f"eval: computing reference features for {key} (cached afterwards in {path})")
    feats, _ = net(images)
    try:  # one temporary file per process: runs may score side by side
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"features": feats.contiguous()}, str(tmp))
    except FileWriteError:
        raise
    except OSError as e:
        raise FileWriteError(describe_os_error(e, path)) from None
    except Exception as e:  # noqa: BLE001 - safetensors' own error on a full disk is no OSError
        raise FileWriteError(
            f"cannot write {path}: {' '.join(str(e).split())}; free some disk space, or set "
            "XDG_CACHE_HOME to a folder with room"
        ) from None
    return feats


def load_samples(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Images (N, C, H, W) in [-1, 1] and labels from a samples.npz written by `difusion sample`;
    a file that is not one (truncated, foreign, NaN, out of range) is a one-line DifusionError."""
    again = "draw it again with `difusion sample RUN`"
    if not zipfile.is_zipfile(path):
        raise DifusionError(
            f"{path} is not a .npz file (truncated, or another kind of file); {again}"
        )
    try:
        with np.load(path) as f:
            if "images" not in f:
                raise DifusionError(f"{path} has no 'images' array; give a samples.npz of images")
            images = f["images"]
            labels = f.get("labels")
            seeds = f.get("seeds")
    except DifusionError:
        raise
    except Exception as e:  # noqa: BLE001 - a torn archive or a pickled array: the user's file
        raise DifusionError(
            f"cannot read {path} as .npz ({type(e).__name__}: {e}); {again}"
        ) from None
    if images.dtype.kind not in "fiu" or images.ndim != 4 or len(images) == 0:
        raise DifusionError(
            f"{path}: 'images' must be a non-empty (N, C, H, W) array of numbers, got "
            f"{images.dtype} of shape {images.shape}"
        )
    images = torch.from_numpy(np.asarray(images, dtype=np.float32))
    if not torch.isfinite(images).all():
        raise DifusionError(f"{path}: 'images' holds NaN or infinite values; {again}")
    low, high = images.min().item(), images.max().item()
    if low < -1.001 or high > 1.001:
        raise DifusionError(
            f"{path}: 'images' must lie in [-1, 1] as `difusion sample` writes them, got "
            f"[{low:g}, {high:g}]"
        )
    if labels is not None:
        if labels.dtype.kind not in "iu" or labels.shape != (len(images),):
            raise DifusionError(
                f"{path}: 'labels' must be {len(images)} integers (one per image), got "
                f"{labels.dtype} of shape {labels.shape}"
            )
        labels = torch.from_numpy(labels.astype(np.int64))
    seeds = seeds.reshape(-1).tolist() if seeds is not None else None
    return images, labels, {"seeds": [seeds[0], seeds[-1]] if seeds else None}


def evaluate(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    *,
    reference: str = "fashion-mnist:test",
    metrics: tuple[str, ...] = ("fid", "kid", "pr"),
    features: str = "domain",
    n_reference: int | None = None,
    device="cpu",
    progress: bool = True,
) -> EvalResult:
    """Score ``images`` against a reference set on one feature network.

    fid: Fréchet distance of the two feature Gaussians (Heusel et al. 2017); kid: unbiased MMD^2 with
    a cubic kernel (Bińkowski et al. 2018), mean and std over subsets; pr: improved precision and
    recall, k = 3 (Kynkäänniemi et al. 2019); acc: the share of samples the domain classifier puts
    in the class they were asked for (class-conditional samples only).
    """
    from difusion.metrics.classes import class_accuracy, class_coverage
    from difusion.metrics.fid import fid_from_features
    from difusion.metrics.kid import kid
    from difusion.metrics.precision_recall import precision_recall

    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        what = f"unknown metric {unknown[0]!r}" if unknown else "no metric asked for"
        raise DifusionError(f"{what}; choose from: {', '.join(METRICS)}")
    if n_reference is not None and n_reference < 1:
        raise DifusionError(f"--n-ref must be at least 1, got {n_reference}")
    dataset, split = parse_reference(reference)
    ref_data = reference_data(f"{dataset}:{split}")
    check_same_shape(images.shape[1:], f"{dataset}:{split}", ref_data.data.shape[1:])
    need = min_samples(metrics)
    n_ref = len(ref_data.data) if n_reference is None else min(n_reference, len(ref_data.data))
    for what, count in (("samples", len(images)), (f"reference images of {reference}", n_ref)):
        if count < need:
            raise DifusionError(
                f"{', '.join(metrics)} need at least {need} {what}, got {count}"
                + ("; drop pr from --metrics for fewer" if "pr" in metrics else "")
            )
    net = FeatureNetwork(features, dataset, device)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - start, 2)
        return now

    ref = reference_features(net, dataset, split, n_reference, progress, data=ref_data)
    t = lap("reference_features", t0)
    feats, logits = net(images)
    t = lap("sample_features", t)
    if labels is not None and logits is not None and len(labels):
        k = logits.shape[1]
        if labels.min() < 0 or labels.max() >= k:
            raise DifusionError(
                f"the samples' labels must be classes 0..{k - 1} of {dataset}, got "
                f"{labels.min().item()}..{labels.max().item()}"
            )
    result = EvalResult(
        setup={
            "features": net.name,
            "reference": f"{dataset}:{split}",
            "n_reference": len(ref),
            "n_samples": len(images),
        }
    )
    m = result.metrics
    if "fid" in metrics:
        m[f"fid_{features}"] = fid_from_features(feats, ref)
        t = lap("fid", t)
    if "kid" in metrics:
        size = min(1000, len(feats), len(ref))
        mean, std = kid(feats, ref, subsets=100, subset_size=size)
        m[f"kid_{features}"], m[f"kid_{features}_std"] = mean, std
        t = lap("kid", t)
    if "pr" in metrics:
        m["precision"], m["recall"] = precision_recall(ref, feats, k=3)
        t = lap("pr", t)
    if logits is not None:
        predicted = logits.argmax(1)
        cover = class_coverage(predicted, logits.shape[1])
        m["classes_covered"] = float(cover["covered"])
        m["classes_entropy"] = float(cover["normalized_entropy"])
        if "acc" in metrics and labels is not None:
            m["class_accuracy"] = class_accuracy(predicted, labels)
    result.setup["timings_s"] = timings
    result.setup["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def min_samples(metrics) -> int:
    """The fewest samples (and reference images) ``metrics`` can be computed from: precision and
    recall need more than k = 3 neighbours, the Fréchet distance and KID two."""
    return 4 if "pr" in metrics else 2


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(result: EvalResult, path: Path) -> Path:
    """The result as JSON, written atomically (never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text(
        path, json.dumps({"metrics": result.metrics, "setup": result.setup}, indent=2) + "\n"
    )
