"""The build stage: source -> plan (select, split, job list) -> clip jobs (engine) -> finalize.

Public entry points: :func:`flowprep.builder.api.build` and :func:`flowprep.builder.api.build_hmdb5`,
configured by :class:`flowprep.builder.config.BuildConfig`.
"""
