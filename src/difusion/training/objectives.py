"""What the one training loop trains: an objective owns the data, the network and the loss.

The loop (``training/loop.py``) does what every model needs: AdamW with warm-up and cosine decay,
gradient clipping, EMA, bf16 autocast, logging, atomic checkpoints, resume, Ctrl-C and DDP. An
objective says what is specific: which batches to draw, what the loss is, and which pictures to
make at the end. Diffusion is one objective; autoencoders and segmentation are others, registered
by name and chosen by the config's top-level ``objective`` key.

To add one, subclass :class:`Objective` and call :func:`register` in its module, then name the
module in ``_MODULES`` so the registry can import it on demand, and add the check of its config
section to :data:`difusion.config.OBJECTIVE_CHECKS` (the config sits below training and checks every
section when it is loaded, so no config needs the objective's module to be refused).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch

from difusion.config import Config
from difusion.errors import ConfigError


class Objective:
    """Base class. ``__init__(cfg, device)`` builds ``self.network`` (on ``device``) and the data."""

    name = "objective"
    loss_label = "loss"  # the loss curve's title
    last_indices: torch.Tensor | None = None  # the dataset rows of the last batch (for tracing)

    def __init__(self, cfg: Config, device: torch.device):
        self.cfg, self.device = cfg, device
        self.network: torch.nn.Module

    def describe(self) -> str:
        """One line for the start of training: data, shape, size."""
        return self.name

    def meta(self) -> dict:
        """JSON-able facts stored in the checkpoint so the run can be loaded without its data."""
        return {}

    def batch(self, generator: torch.Generator, size: int) -> Any:
        """Draw one training batch of ``size`` examples (already on the device): the global batch,
        which the loop splits among the DDP ranks by rows (``distributed.local_part``), so every
        per-example tensor has the examples along dim 0. Set ``self.last_indices`` to the drawn
        dataset rows."""
        raise NotImplementedError

    def loss(
        self,
        model: torch.nn.Module,
        batch: Any,
        generator: torch.Generator,
        autocast_dtype: torch.dtype | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar to minimise, and extra numbers to log (e.g. the KL of a VAE)."""
        raise NotImplementedError

    def state(self) -> dict[str, torch.Tensor]:
        """Extra training state to checkpoint (e.g. a loss history for importance sampling)."""
        return {}

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`state` returned."""

    def preview(
        self, model: torch.nn.Module, out: Path, autocast_dtype: torch.dtype | None
    ) -> None:
        """A quick picture during training (``train.sample_every``); optional."""

    def finish(
        self,
        model: torch.nn.Module,
        run_dir: Path,
        autocast_dtype: torch.dtype | None,
        progress: bool,
    ) -> dict[str, Path]:
        """The pictures and files of a finished run (EMA ``model``); returns name -> path."""
        return {}

    def report_lines(self) -> list[str]:
        """Extra lines for report.md."""
        return []


class TensorObjective(Objective):
    """An objective whose examples sit in one tensor ``self.data`` (N, *shape) on the device
    (normalizing flows, hierarchical VAEs, EBMs): batches drawn with replacement, the shape in
    the checkpoint."""

    data: torch.Tensor
    shape: tuple[int, ...]

    def meta(self) -> dict:
        return {"shape": list(self.shape)}

    def batch(self, generator: torch.Generator, size: int) -> torch.Tensor:
        """``size`` examples, drawn with replacement."""
        idx = torch.randint(len(self.data), (size,), generator=generator)
        self.last_indices = idx
        return self.data[idx.to(self.device)]


OBJECTIVES: dict[str, type[Objective]] = {}
# Modules that register objectives, imported on first use (they may import heavy things).
_MODULES = {
    "diffusion": "difusion.training.diffusion_objective",
    "autoencoder": "difusion.autoencoders.objective",
    "segmentation": "difusion.segmentation.objective",
    "flow": "difusion.training.flow_objective",
    "nflow": "difusion.nflows.objective",
    "hvae": "difusion.hvae.objective",
    "ebm": "difusion.ebm.objective",
}


def register(name: str, cls: type[Objective]) -> type[Objective]:
    """Make ``cls`` trainable as ``objective: name`` in a config."""
    OBJECTIVES[name] = cls
    cls.name = name
    return cls


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES and name in _MODULES:
        try:
            importlib.import_module(_MODULES[name])
        except ModuleNotFoundError as e:
            if not e.name or not _MODULES[name].startswith(e.name):
                raise
    if name not in OBJECTIVES:
        known = sorted(set(OBJECTIVES) | {n for n in _MODULES if _available(n)})
        raise ConfigError(f"unknown objective {name!r}; choose one of: {', '.join(known)}")
    return OBJECTIVES[name]


def _available(name: str) -> bool:
    return importlib.util.find_spec(_MODULES[name].rsplit(".", 1)[0]) is not None


def build_objective(cfg: Config, device: torch.device) -> Objective:
    """The objective named by ``cfg.objective``, with its data and network built."""
    return objective_class(cfg.objective)(cfg, device)
