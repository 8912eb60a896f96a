"""The autoencoder family as one module: :class:`Autoencoder` and its kinds.

The network is defined with the other networks in :mod:`difusion.nn.autoencoders` (so that the
layers below this chapter, e.g. the first stage of latent diffusion, can build it); this module is
the chapter's name for it.
"""

from difusion.nn.autoencoders import KINDS, NETWORKS, VARIATIONAL, Autoencoder

__all__ = ["KINDS", "NETWORKS", "VARIATIONAL", "Autoencoder"]
