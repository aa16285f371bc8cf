"""Datasets on disk: the layouts (:mod:`.base`, one class per layout in :mod:`.tao` and
:mod:`.mmaction2`, listed in :mod:`.registry`), the dataset record (:mod:`.record`), names
(:mod:`.names`), opening a dataset (:mod:`.dataset`), ``verify`` (:mod:`.verify`, :mod:`.images`,
:mod:`.verify_packed`) and the packed shard format (:mod:`.packed`)."""
