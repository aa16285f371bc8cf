"""Reading a built dataset into network inputs: moved to the public loader, :mod:`flowprep.loader`
(one implementation for ``flowprep train`` and users' own code); kept under its old names."""

from flowprep.loader.frames import MULTISCALE as MULTISCALE
from flowprep.loader.frames import crop_box as crop_box
from flowprep.loader.frames import flip_u as flip_u
from flowprep.loader.frames import load_windows as load_windows
from flowprep.loader.frames import stream_length as stream_length
from flowprep.loader.source import Clip as Clip
from flowprep.loader.source import DatasetInfo as DatasetInfo
from flowprep.loader.source import open_dataset as open_dataset
from flowprep.loader.torchdata import ClipDataset as ClipDataset
from flowprep.loader.torchdata import to_model_inputs as to_model_inputs
