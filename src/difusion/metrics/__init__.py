"""Metrics. For now: distances between 2-D point clouds (``two_d``)."""
