"""The any-survey mode: difference images from other surveys' files.

``options``
    `AnySurveyOptions`: what `recreate subtract` may adapt.
``read``
    Read science and template files of any layout, keeping every plane.
``prepare``
    Template variance, sky, PSF and DETECTED, as DP1's inputs have them.
``aligned``
    The template of pixel-aligned inputs (no warp, no WCS needed).
``psf``
    The PSF of an input given as a PSF image.
``subtract``
    `subtract_files`: read, prepare, recreate, with recorded fallbacks.

Butler recreations (`recreate.recreation.recreate_from_butler`) run the
release's recipe exactly and never use this package.

Import from the modules: this package's ``__init__`` imports nothing, so
``recreate subtract --help`` can read `recreate.anysurvey.options`
without loading the pipeline (and numba).
"""
