"""Training and evaluation of ResNet-18 2D/3D action-recognition models on flowprep/TAO datasets.

Modules: :mod:`.config` (the stages' configs and summaries; torch-free), :mod:`.api` (``train``,
``evaluate``), :mod:`.models` (networks), :mod:`.checkpoint` (the checkpoint file contract),
:mod:`.prepare` (a run's data loaders and model), :mod:`.loop` (training),
:mod:`.evaluate` (evaluation), :mod:`.torchfile` (bounded ``torch.load``), :mod:`.synthdata`
(generated datasets for the demo and the doctor), :mod:`flowprep.commands.train` (CLI). What a model is (archs,
streams, input names and shapes, normalisation), the frame sampling and the dataset reading are the
public loader's (:mod:`flowprep.loader.spec`, :mod:`~flowprep.loader.sampling`,
:mod:`~flowprep.loader.torchdata`): training reads through it. The modules that build or run
networks import torch; light code imports ``config`` and :mod:`flowprep.loader.spec` only.
"""
