"""Training and evaluation of ResNet-18 2D/3D action-recognition models on flowprep/TAO datasets.

Modules: :mod:`.spec` (what a model is: archs, streams, input shapes; torch-free),
:mod:`.config` (the stages' configs and summaries; torch-free), :mod:`.api` (``train``, ``evaluate``),
:mod:`.models` (networks), :mod:`.checkpoint` (the checkpoint file contract),
:mod:`.sampling` (frame indices), :mod:`.data` (dataset reading and augmentation),
:mod:`.loop` (training), :mod:`.evaluate` (evaluation), :mod:`.commands` (CLI).
The modules that build or run networks import torch; light code imports ``spec`` and ``config`` only.
"""
