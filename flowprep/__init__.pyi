"""Types of the public API: flowprep/__init__.py imports these names on first use (tests/test_api.py
keeps the two in step)."""

from flowprep.builder.api import build as build
from flowprep.builder.api import build_hmdb5 as build_hmdb5
from flowprep.builder.api import build_ucf101 as build_ucf101
from flowprep.builder.config import BuildConfig as BuildConfig
from flowprep.builder.config import BuildSummary as BuildSummary
from flowprep.errors import ArchiveError as ArchiveError
from flowprep.errors import BackendNotInstalledError as BackendNotInstalledError
from flowprep.errors import BackendUnavailableError as BackendUnavailableError
from flowprep.errors import CheckpointError as CheckpointError
from flowprep.errors import ClipError as ClipError
from flowprep.errors import ConfigError as ConfigError
from flowprep.errors import DatasetError as DatasetError
from flowprep.errors import DecodeError as DecodeError
from flowprep.errors import ExportError as ExportError
from flowprep.errors import FlowprepError as FlowprepError
from flowprep.errors import FlowResultError as FlowResultError
from flowprep.errors import FrameSizeError as FrameSizeError
from flowprep.errors import OptionError as OptionError
from flowprep.errors import OutputError as OutputError
from flowprep.errors import WorkerDiedError as WorkerDiedError
from flowprep.export import api as _export_api
from flowprep.export.config import ExportConfig as ExportConfig
from flowprep.export.config import ExportSummary as ExportSummary
from flowprep.flow import registry as _registry
from flowprep.flow.base import FlowBackend as FlowBackend
from flowprep.flow.encoding import FlowEncoding as FlowEncoding
from flowprep.flow.registry import flow_backends as flow_backends
from flowprep.layout.dataset import Dataset as Dataset
from flowprep.layout.dataset import open_dataset as open_dataset
from flowprep.layout.verify import VerifyReport as VerifyReport
from flowprep.layout.verify import verify as verify
from flowprep.loader import ClipDataset as ClipDataset
from flowprep.loader import ShardStream as ShardStream
from flowprep.preview import api as _preview_api
from flowprep.preview.config import PreviewConfig as PreviewConfig
from flowprep.preview.config import PreviewSummary as PreviewSummary
from flowprep.serve.api import infer as infer
from flowprep.serve.config import InferConfig as InferConfig
from flowprep.serve.config import InferSummary as InferSummary
from flowprep.synth import make_release_folder as make_release_folder
from flowprep.train import api as _train_api
from flowprep.train.config import EvalConfig as EvalConfig
from flowprep.train.config import EvalSummary as EvalSummary
from flowprep.train.config import TrainConfig as TrainConfig
from flowprep.train.config import TrainSummary as TrainSummary

__version__: str
__all__: list[str]

# stage functions under their public names (the stages' packages hold the names train, export, preview)
flow_backend_status = _registry.backend_status
create_flow_backend = _registry.create_backend
train_model = _train_api.train
evaluate_model = _train_api.evaluate
export_model = _export_api.export
preview_dataset = _preview_api.preview
