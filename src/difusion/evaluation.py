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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from difusion.errors import DifusionError

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
    name, _, split = ref.partition(":")
    return name, split or "test"


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
    net: FeatureNetwork, dataset: str, split: str, n: int | None, progress: bool = True
) -> torch.Tensor:
    """Features of the first ``n`` images (all if None) of ``dataset:split``, cached on disk."""
    from difusion.data import load_dataset

    ref = load_dataset(dataset, split=split)
    images = ref.data if n is None else ref.data[:n]
    key = f"{dataset}-{split}-{net.kind}-{len(images)}"
    path = _cache_dir() / f"{key}.safetensors"
    if path.exists():
        return load_file(str(path))["features"]
    if progress:
        print(f"eval: computing reference features for {key} (cached afterwards in {path})")
    feats, _ = net(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: runs may score side by side
    save_file({"features": feats.contiguous()}, str(tmp))
    os.replace(tmp, path)
    return feats


def load_samples(path: Path) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
    """Images (N, C, H, W) in [-1, 1] and labels from a samples.npz written by `difusion sample`."""
    try:
        with np.load(path) as f:
            if "images" not in f:
                raise DifusionError(f"{path} has no 'images' array; give a samples.npz of images")
            images = torch.from_numpy(f["images"]).float()
            labels = torch.from_numpy(f["labels"]).long() if "labels" in f else None
            seeds = f["seeds"].tolist() if "seeds" in f else None
    except (OSError, ValueError) as e:
        raise DifusionError(f"cannot read {path} as .npz ({e})") from None
    if images.dim() != 4:
        raise DifusionError(f"{path}: images must be (N, C, H, W), got {tuple(images.shape)}")
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
    if unknown:
        raise DifusionError(f"unknown metric {unknown[0]!r}; choose from: {', '.join(METRICS)}")
    dataset, split = parse_reference(reference)
    net = FeatureNetwork(features, dataset, device)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, start: float) -> float:
        now = time.perf_counter()
        timings[name] = round(now - start, 2)
        return now

    ref = reference_features(net, dataset, split, n_reference, progress)
    t = lap("reference_features", t0)
    feats, logits = net(images)
    t = lap("sample_features", t)
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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(result: EvalResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"metrics": result.metrics, "setup": result.setup}, indent=2) + "\n")
    return path
