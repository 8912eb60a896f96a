"""Segmentation with the U-Net of Ronneberger et al. 2015: the weight map, elastic deformation,
overlap-tile inference, synthetic cells, real nuclei, and the training objective."""
