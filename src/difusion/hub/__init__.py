"""Handing a run to diffusers and back (docs/diffusers.md).

- :mod:`difusion.hub.export`: ``difusion export RUN --to diffusers OUT``, a DDPM or flow run as a
  diffusers pipeline folder (``DDPMPipeline``: the lab's network in :class:`~difusion.hub.model.
  DifusionUNet`, the run's betas and prediction in a ``DDPMScheduler``, or a
  ``FlowMatchEulerDiscreteScheduler`` for a flow run).
- :mod:`difusion.hub.imports`: ``difusion import DIR RUN``, a diffusers ``UNet2DModel`` pipeline
  folder (or one of our exports) as a run folder that every sampler of the lab opens.

diffusers is optional: nothing here imports it until a command needs it, except
:mod:`difusion.hub.model`, which imports it at the top and is itself imported only by an export
and by a script that loads one.
"""
