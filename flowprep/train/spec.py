"""Moved to :mod:`flowprep.loader.spec` (the loader produces these inputs); kept under its old name."""

from flowprep.loader.spec import ARCHS as ARCHS
from flowprep.loader.spec import CHANNELS as CHANNELS
from flowprep.loader.spec import CROP_FRACTION as CROP_FRACTION
from flowprep.loader.spec import CROPS as CROPS
from flowprep.loader.spec import DEVICES as DEVICES
from flowprep.loader.spec import EVAL_MODES as EVAL_MODES
from flowprep.loader.spec import FRAMES_RANGE as FRAMES_RANGE
from flowprep.loader.spec import INPUT_NAMES as INPUT_NAMES
from flowprep.loader.spec import INPUT_SIZE_RANGE as INPUT_SIZE_RANGE
from flowprep.loader.spec import MAX_SPAN_VALUES as MAX_SPAN_VALUES
from flowprep.loader.spec import MAX_WINDOW_VALUES as MAX_WINDOW_VALUES
from flowprep.loader.spec import NORM_OFFSET as NORM_OFFSET
from flowprep.loader.spec import NORM_SCALE as NORM_SCALE
from flowprep.loader.spec import OPTIMIZERS as OPTIMIZERS
from flowprep.loader.spec import OUTPUT_NAME as OUTPUT_NAME
from flowprep.loader.spec import SAMPLE_RATE_RANGE as SAMPLE_RATE_RANGE
from flowprep.loader.spec import STREAM_INPUTS as STREAM_INPUTS
from flowprep.loader.spec import STREAMS as STREAMS
from flowprep.loader.spec import check_model as check_model
from flowprep.loader.spec import input_budget_problem as input_budget_problem
from flowprep.loader.spec import input_shapes as input_shapes
from flowprep.loader.spec import stream_channels as stream_channels
from flowprep.loader.spec import streams as streams
