"""Streaming inference: frame sources (:mod:`.stream`), dataset-exact pre-processing and the sliding
window (:mod:`.window`), ONNX Runtime / PyTorch runners (:mod:`.runner`), the ``infer`` stage
(:mod:`.config`: ``InferConfig``/``InferSummary``, :mod:`.infer`: the session, :mod:`.api`: ``infer``),
annotated output (:mod:`.annotate`); its CLI is :mod:`flowprep.commands.serve`.
"""
