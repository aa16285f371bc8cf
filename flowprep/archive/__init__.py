"""Reading video releases safely (folders, RAR, zip, tar, HMDB51's RAR of RARs) and writing stored RAR 4.x.

See :mod:`flowprep.archive.reader` for the source shapes understood and the safety rules, and
:mod:`flowprep.archive.rar4` for the writer used by tests and the demo.
"""
