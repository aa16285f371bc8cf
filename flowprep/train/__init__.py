"""Training and evaluation of ResNet-18 2D/3D action-recognition models on flowprep/TAO datasets.

Modules: :mod:`.models` (networks), :mod:`.checkpoint` (the checkpoint file contract),
:mod:`.sampling` (frame indices), :mod:`.data` (dataset reading and augmentation),
:mod:`.loop` (training), :mod:`.evaluate` (evaluation), :mod:`.commands` (CLI).
Everything here imports torch; import the submodules, not this package, from light code.
"""
