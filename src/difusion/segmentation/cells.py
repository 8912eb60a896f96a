"""The synthetic cells of the segmentation chapter; defined with the other data in
:mod:`difusion.data.cells` (the real nuclei loaders there share its normalisation)."""

from difusion.data.cells import normalize, synthetic_cells, synthetic_set

__all__ = ["normalize", "synthetic_cells", "synthetic_set"]
