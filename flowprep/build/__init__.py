"""The build stage: source -> plan (select, split, job list) -> clip jobs (engine) -> finalize.

Public entry points: :func:`flowprep.build.api.build` and :func:`flowprep.build.api.build_hmdb5`,
configured by :class:`flowprep.build.config.BuildConfig`.
"""
