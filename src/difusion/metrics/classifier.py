"""Small per-dataset classifiers, trained by this project, for domain metrics.

Two uses:

* **FID-FMNIST** (and FID-digits, FID-MNIST): the Fréchet distance between Gaussians fitted
  to the *penultimate features* (:meth:`SmallCNN.features`) of real and generated images,
  computed exactly like FID but with this small domain classifier in place of Inception-v3.
  Inception was trained on ImageNet photographs at 299×299; on 28×28 grey clothes or digits
  its features mostly describe upsampling artefacts, and running it on CPU is slow. A classifier
  trained on the dataset itself has features that separate what matters there (the garment,
  the digit, its strokes) and runs thousands of images a second on a laptop CPU.
* **Class accuracy** of class-conditional samples: the fraction of samples generated for class
  ``y`` that the classifier (:meth:`SmallCNN.forward`) assigns to ``y``.

Numbers from these metrics are only comparable when computed with the *same weights*: the
files shipped in ``difusion/metrics/weights/`` (their sha256 sums are listed in the README
there). A retrained classifier gives a different feature space and different FID values.

Weights are safetensors files ``weights/<dataset>-classifier.safetensors``; their metadata
holds the architecture hyper-parameters (``config``, JSON), so :func:`load_classifier` needs no
guesswork. They are trained by ``scripts/train_classifier.py``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from difusion.errors import DifusionError

__all__ = [
    "CLASSIFIER_DATASETS",
    "ClassifierConfig",
    "SmallCNN",
    "default_config",
    "load_classifier",
    "predict",
    "read_metadata",
    "weights_path",
]

#: Datasets a classifier can be trained for (``digits`` is 8×8, the others 28×28).
CLASSIFIER_DATASETS = ("fashion-mnist", "mnist", "digits")


@dataclass(frozen=True)
class ClassifierConfig:
    """Architecture hyper-parameters of a :class:`SmallCNN` (stored in the weights' metadata)."""

    in_channels: int = 1
    num_classes: int = 10
    channels: tuple[int, int, int] = (32, 64, 128)
    feature_dim: int = 256
    pool_size: int = 2
    dropout: float = 0.3

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ClassifierConfig:
        raw = json.loads(text)
        raw["channels"] = tuple(raw["channels"])
        return cls(**raw)


def default_config(dataset: str) -> ClassifierConfig:
    """The architecture used for ``dataset``."""
    if dataset not in CLASSIFIER_DATASETS:
        raise DifusionError(
            f"no classifier for dataset {dataset!r}; choose one of {', '.join(CLASSIFIER_DATASETS)}."
        )
    # One architecture for all: on 8×8 digits it is cheap anyway (max-pooling stops at 4×4),
    # and a smaller one (16, 32, 64) / 128 was about 0.5 % less accurate there.
    return ClassifierConfig()


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class SmallCNN(nn.Module):
    """conv c1 → pool → conv c2 → conv c2 → pool → conv c3 → adaptive avg-pool → fc D → head.

    Every conv is 3×3 + BatchNorm + ReLU. Max-pooling halves the resolution only while it is at
    least 8 pixels (28 → 14 → 7; the 8×8 ``digits`` images are pooled once, to 4×4), then
    ``AdaptiveAvgPool2d(pool_size)`` makes the flattened size independent of ``H``.
    Inputs: ``(N, in_channels, H, W)`` in ``[-1, 1]``.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ClassifierConfig()
        c1, c2, c3 = config.channels
        self.block1 = _conv(config.in_channels, c1)
        self.block2 = nn.Sequential(_conv(c1, c2), _conv(c2, c2))
        self.block3 = _conv(c2, c3)
        self.pool = nn.AdaptiveAvgPool2d(config.pool_size)
        self.fc = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(c3 * config.pool_size**2, config.feature_dim),
            nn.BatchNorm1d(config.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @staticmethod
    def _maybe_pool(x: torch.Tensor) -> torch.Tensor:
        return nn.functional.max_pool2d(x, 2) if min(x.shape[-2:]) >= 8 else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_dim)``, after the ReLU (these feed FID-FMNIST)."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise DifusionError(
                f"classifier expects images of shape (N, {self.config.in_channels}, H, W); "
                f"got {tuple(x.shape)}."
            )
        x = self._maybe_pool(self.block1(x))
        x = self._maybe_pool(self.block2(x))
        x = self.pool(self.block3(x))
        return self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.dropout(self.features(x)))


def weights_path(dataset: str) -> Path:
    """Where the shipped weights for ``dataset`` live inside the installed package."""
    return Path(
        str(resources.files("difusion.metrics") / "weights" / f"{dataset}-classifier.safetensors")
    )


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of a classifier safetensors file (config, dataset, accuracy, ...)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_classifier(
    dataset: str, device: str | torch.device = "cpu", path: str | Path | None = None
) -> SmallCNN:
    """The shipped classifier for ``dataset`` in eval mode on ``device``.

    ``path`` overrides the packaged file (for a classifier you trained yourself; its FID values
    are then not comparable with ones computed on the shipped weights).
    """
    from safetensors.torch import load_file

    if dataset not in CLASSIFIER_DATASETS:
        raise DifusionError(
            f"no classifier for dataset {dataset!r}; choose one of {', '.join(CLASSIFIER_DATASETS)}."
        )
    file = Path(path) if path is not None else weights_path(dataset)
    if not file.is_file():
        raise DifusionError(
            f"no classifier weights at {file}; train them with: "
            f"python scripts/train_classifier.py --dataset {dataset} --out {file}"
        )
    meta = read_metadata(file)
    if "config" not in meta:
        raise DifusionError(f"{file} has no 'config' metadata; it is not a difusion classifier.")
    model = SmallCNN(ClassifierConfig.from_json(meta["config"]))
    model.load_state_dict(load_file(str(file)))
    return model.to(device).eval()


@torch.no_grad()
def predict(
    model: SmallCNN, images: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits, features)`` of ``images`` ``(N, C, H, W)`` in ``[-1, 1]``, batched, no grad.

    Runs on the model's device; returns float32 CPU tensors of shape ``(N, num_classes)`` and
    ``(N, feature_dim)``. Call it on a model in eval mode (as :func:`load_classifier` returns).
    """
    device = next(model.parameters()).device
    logits, feats = [], []
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device, torch.float32)
        f = model.features(x)
        feats.append(f.float().cpu())
        logits.append(model.head(f).float().cpu())
    if not logits:
        return (
            torch.empty(0, model.config.num_classes),
            torch.empty(0, model.config.feature_dim),
        )
    return torch.cat(logits), torch.cat(feats)
