"""Normalizing flows (Tomczak, "Deep Generative Modeling", ch. 3): RealNVP's affine couplings with
the exact likelihood by the change of variables, on points and on uniformly dequantized images,
and integer discrete flows, a lossless model of integer images with an exact code length. Trained
by the one training loop as ``objective: nflow``; docs/normalizing-flows.md walks through them.

    from difusion.nflows import load_nflow
    flow = load_nflow("runs/realnvp-digits")   # EMA weights, eval mode
    x = flow.sample(16, seed=0)                # RealNVP: (16, 1, 8, 8) on the dequantized scale
    z, log_det = flow(x)                       # the forward map and log |det J|
"""

from __future__ import annotations

from difusion.nflows.idf import IDF
from difusion.nflows.realnvp import RealNVP
from difusion.nflows.run import eval_nflow_run, load_nflow, sample_nflow_run

__all__ = ["IDF", "RealNVP", "eval_nflow_run", "load_nflow", "sample_nflow_run"]
