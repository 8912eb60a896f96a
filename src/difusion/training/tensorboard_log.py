"""``train.log=tensorboard``: a run's metrics and pictures as TensorBoard events, beside metrics.jsonl.

Every numeric field of a metrics record becomes a scalar at the record's step under its own name
(``loss`` is the loss curve, then ``lr``, ``grad_norm``, ``images_per_s``, the objective's extras);
every preview grid becomes the image ``preview`` at its step, and the final pictures (``samples``,
``samples_scatter``, ...) images at the last step. The events go to RUN/tensorboard/, so that
``tensorboard --logdir runs/`` shows every run side by side. TensorBoard stores scalars as float32.

A resumed run appends a new event file to the same folder. It starts with a purge mark at the
checkpoint's step + 1: TensorBoard then hides what the killed run logged after its checkpoint, which
the resumed run logs again, so no step appears twice (as metrics.jsonl drops those lines).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from difusion.errors import ConfigError

TENSORBOARD_DIR = "tensorboard"  # inside the run folder


def require_tensorboard() -> None:
    """Refuse ``train.log=tensorboard`` before training starts when the package is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise ConfigError(
            "train.log=tensorboard needs the tensorboard package: pip install 'difusion[tensorboard]'"
            " (or set train.log=jsonl)"
        ) from None


class TensorBoardLog:
    """One SummaryWriter on RUN/tensorboard/; ``resume_step``: the checkpoint's step on resume."""

    def __init__(self, run_dir: Path, *, resume_step: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            str(Path(run_dir) / TENSORBOARD_DIR),
            purge_step=None if resume_step is None else resume_step + 1,
        )

    def scalars(self, record: dict) -> None:
        """A metrics record: each number but the step itself, at the record's step."""
        step = int(record["step"])
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, step)

    def image(self, tag: str, png: Path, step: int) -> None:
        """A picture the run wrote (a PNG), as RGB; nothing if it was not written."""
        from PIL import Image

        if not isinstance(png, str | Path) or Path(png).suffix != ".png" or not Path(png).is_file():
            return
        with Image.open(png) as im:
            pixels = np.asarray(im.convert("RGB"))
        self.writer.add_image(tag, pixels, step, dataformats="HWC")

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
