"""The science: recreate one difference image as Rubin's pipelines did.

The recipe, and one sub-package per stage, in the order they run:

``config``
    The recipe: every v29 default, frozen and hashed.
``template/``
    GetTemplateTask: merge the overlapping patches per tract with
    variance^-1/2 weights, warp them onto the science grid grown by 20 px
    (lanczos3, WCS interpolated on a coarse grid), NO_DATA where nothing
    covers.
``match/`` (``variance``, ``background``)
    ScaleVarianceTask on the template and the science image.
``sources/``
    Detection, PSF size from the stars, kernel candidates, and the final
    two-sided 5-sigma detection planes.
``kernel/``
    The Alard-Lupton basis (basis 0 carries the kernel sum, checked) and
    the spatially varying kernel fit.
``match/`` (``convolve``, ``decorrelate``)
    Apply the spatial kernel (3 image correlations, not 27), subtract,
    and decorrelate (DMTN-021).
``subtract``
    The whole recipe from inputs to a difference image.
``provenance``
    Config hash, input ids, recipe hash, header cards.
``warmup``
    A small synthetic recreation that compiles and warms a new process.

Shared numerics live below both this package and `recreate.io`, in
`recreate.numerics`. None of it imports Redis, Dask or web code.
"""
