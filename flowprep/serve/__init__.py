"""Streaming inference: frame sources (:mod:`.stream`), dataset-exact pre-processing and the sliding
window (:mod:`.window`), ONNX Runtime / PyTorch runners (:mod:`.runner`), the ``infer`` stage
(:mod:`.infer`), annotated output (:mod:`.annotate`) and the CLI (:mod:`.commands`).
"""
