"""Checkpoints: one safetensors file with the model, the EMA, the optimizer, the RNG and the step.

A utility at the bottom of the package: training writes checkpoints, and every layer that reads a
run back (``build``'s first stage, ``runs``, the autoencoder and segmentation chapters) reads them.

Written atomically (``files.atomic_path``: a temporary file in the same folder, fsync, then rename),
so a run killed at any moment, or a full disk, leaves either the previous checkpoint or the new
one, never a torn file; a failed write is a one-line ``FileWriteError``. Nothing is pickled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from difusion.errors import CheckpointError
from difusion.files import atomic_path

FORMAT = "difusion-checkpoint-1"
CHECKPOINT = "checkpoint.safetensors"  # the file name inside a run folder


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"optim/{idx}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {}
    for name, value in tensors.items():  # names are "idx/key" (the "optim/" prefix is stripped)
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta.get("scalars", {}).items():
        idx, key = name.split("/", 1)
        state.setdefault(int(idx), {})[key] = value
    # JSON turned tuples (Adam's betas) into lists; give them back as tuples.
    groups = [
        {k: (tuple(v) if isinstance(v, list) and k != "params" else v) for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    ema: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    rng: dict[str, torch.Tensor] | None = None,
    meta: dict | None = None,
    extra: dict[str, dict[str, torch.Tensor]] | None = None,
) -> Path:
    """Write everything needed to resume (or just to sample) to ``path``, atomically.

    ``extra`` maps a group name to more tensors (an objective's own state), read back as a group.
    """
    path = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("model", model), ("ema", ema)):
        if module is not None:
            for name, value in module.state_dict().items():
                tensors[f"{prefix}/{name}"] = value.detach().cpu().contiguous()
    info = {"format": FORMAT, "meta": meta or {}}
    if optimizer is not None:
        optim_tensors, info["optimizer"] = _flatten_optimizer(optimizer.state_dict())
        tensors.update(optim_tensors)
    for name, value in (rng or {}).items():
        tensors[f"rng/{name}"] = value
    for group, values in (extra or {}).items():
        for name, value in values.items():
            tensors[f"{group}/{name}"] = value.detach().cpu().contiguous()
    # serialized here and written by Python, so that no space, a read-only folder or a file-size
    # limit is an OSError (one line, FileWriteError) rather than the Rust writer's SafetensorError
    data = save(tensors, metadata={"difusion": json.dumps(info)})
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_checkpoint(path: str | Path, prefixes: tuple[str, ...] | None = None) -> tuple[dict, dict]:
    """Read a checkpoint: (tensors grouped by prefix: model, ema, optim, rng; info dict).

    ``prefixes`` limits which groups are read (sampling needs only ``ema``).
    A missing, truncated or foreign file raises CheckpointError with a one-line message.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first with `difusion train`")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get("difusion")
            if raw is None:
                raise CheckpointError(f"{path} is a safetensors file but not a difusion checkpoint")
            info = json.loads(raw)
            groups: dict[str, dict[str, torch.Tensor]] = {}
            for key in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                prefix, name = key.split("/", 1)
                if prefixes is None or prefix in prefixes:
                    groups.setdefault(prefix, {})[name] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError, json.JSONDecodeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path} is corrupt or truncated ({reason}); delete it to start over, or restore a copy"
        ) from None
    if info.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {info.get('format')!r}, expected {FORMAT}")
    return groups, info


def load_module(module: torch.nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Load weights, turning a shape or key mismatch into a one-line CheckpointError."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise CheckpointError(
            f"{path} does not fit this model ({first}); was the config changed after training?"
        ) from None


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, info: dict) -> None:
    optimizer.load_state_dict(_unflatten_optimizer(tensors, info["optimizer"]))
