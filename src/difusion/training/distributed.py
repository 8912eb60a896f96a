"""Several processes, one model: DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU).

``train.batch_size`` is per process: with N processes a step trains on a global batch of
N x batch_size examples. Every rank draws that global batch from one shared data stream (same seed,
no rank in it) and keeps its own rows [rank b, (rank + 1) b) (:func:`local_part`), so the ranks see
disjoint parts of one draw, and together exactly the examples one process with batch N b would
draw. DDP averages the gradients of the ranks' mean losses, which is the gradient of the mean loss
over the global batch: the update of N x b is the update of one process with N b (up to the order
of float additions) wherever the loss draws no randomness of its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def default_device() -> torch.device:
    """This process's GPU when there is one (LOCAL_RANK under torchrun), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def setup() -> Dist:
    """Join the process group when started by torchrun (WORLD_SIZE > 1); otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return Dist(dist.get_rank(), dist.get_world_size())


def global_batch_size(batch_size: int, d: Dist) -> int:
    """The examples one step trains on: ``train.batch_size`` per process times the processes."""
    return batch_size * d.world_size


def local_part(batch: Any, d: Dist) -> Any:
    """This rank's rows [rank b, (rank + 1) b) of a global batch of world_size x b rows: a tensor,
    or a tuple of tensors (None stays None). One process keeps the whole batch."""
    if not d.enabled:
        return batch
    if isinstance(batch, tuple):
        return tuple(local_part(part, d) for part in batch)
    if batch is None:
        return None
    b, rest = divmod(batch.shape[0], d.world_size)
    if rest:
        raise ValueError(
            f"a global batch of {batch.shape[0]} rows does not split {d.world_size} ways"
        )
    return batch[d.rank * b : (d.rank + 1) * b]


def broadcast_floats(values: list[float], d: Dist, device: torch.device) -> list[float]:
    """Rank 0's values on every rank (the stop decision and the time-based progress)."""
    if not d.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return t.tolist()


def max_param_difference(module: torch.nn.Module, d: Dist) -> float:
    """The largest |theta_rank - theta_0| over all parameters and ranks: 0 when DDP kept them in sync."""
    if not d.enabled:
        return 0.0
    flat = torch.cat([p.detach().flatten().float() for p in module.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(d.world_size)]
    dist.all_gather(gathered, flat)
    return max(float((g - gathered[0]).abs().max()) for g in gathered)


def teardown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
