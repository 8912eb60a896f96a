"""difusion: a laboratory for generative models, from autoencoders to the U-Net to diffusion."""

__version__ = "0.1.0"
