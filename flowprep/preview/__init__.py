"""``flowprep preview``: a browsable static page of a built dataset (RGB next to its decoded flow).

Modules: :mod:`.config` (``PreviewConfig``, ``PreviewSummary``; no OpenCV), :mod:`.api` (the
``preview`` stage function), :mod:`.media` (decoding a clip's frames and writing its video),
:mod:`.page` (the HTML page); its CLI is :mod:`flowprep.commands.preview`.
"""
