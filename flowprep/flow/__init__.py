"""Optical-flow backends and the flow -> 8-bit encodings.

A backend turns two gray frames into flow; an encoding turns flow into two 8-bit images. They are
independent so that every backend gets every encoding. Backends are listed as data in
:mod:`flowprep.flow.registry` and imported lazily.
"""
