"""Moved to :mod:`flowprep.loader.sampling` (the public loader samples the frames); kept under its old name."""

from flowprep.loader.sampling import CONV_SEGMENTS as CONV_SEGMENTS
from flowprep.loader.sampling import center_indices as center_indices
from flowprep.loader.sampling import conv_indices as conv_indices
from flowprep.loader.sampling import random_indices as random_indices
from flowprep.loader.sampling import span as span
from flowprep.loader.sampling import window as window
