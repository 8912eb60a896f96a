"""bf16 autocast of the training loop; the choice lives in :mod:`difusion.precision` (a bottom
utility, so that the layers below training can run a network at the same precision)."""

from difusion.precision import autocast_dtype, cpu_has_fast_bf16

__all__ = ["autocast_dtype", "cpu_has_fast_bf16"]
