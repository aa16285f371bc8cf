"""The click commands, one module per subject, and the click parameter types they share.

:mod:`.params` (numbers, sizes, lists, shards, GPU lists, paths: every option's checks),
:mod:`.flow` (``backends``, ``bench-flow``), :mod:`.build` (``build``, ``build-hmdb5``,
``build-ucf101`` and their shared options; :mod:`.build_report` prints their plan and summary),
:mod:`.dataset` (``verify``, ``finalize``, ``pack``, ``unpack``, ``stats``), :mod:`.train`
(``train``, ``evaluate``), :mod:`.export`, :mod:`.serve` (``infer``), :mod:`.preview`,
:mod:`.doctor`. Each module defines ``COMMANDS``; :mod:`flowprep.cli` imports and registers them.
A command only parses options, calls a stage function and prints: stage packages hold no click
code, and a command imports its heavy dependencies (torch, onnxruntime, ...) inside its body.
"""
