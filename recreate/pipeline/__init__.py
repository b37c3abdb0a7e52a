"""The science: recreate one difference image as Rubin's v29 pipelines did.

One module per stage, in the order they run:

``config``
    The recipe: every v29 default, frozen and hashed.
``template``
    GetTemplateTask: warp the overlapping patches onto the science grid
    grown by 20 px (lanczos3, WCS interpolated on a coarse grid), stitch
    them with variance^-1/2 weights, NO_DATA where nothing covers.
``sources``
    Detection, PSF size measurement, kernel candidates, ScaleVariance and
    the final two-sided 5-sigma detection planes.
``kernel``
    The Alard-Lupton basis and the spatially varying kernel fit.
``convolve``
    Apply the spatial kernel: 3 image convolutions, not 27.
``decorrelate``
    DMTN-021 decorrelation of the difference image.
``subtract``
    The whole recipe from inputs to a difference image.
``provenance``
    Config hash, input ids, output hash.

None of it imports Redis, Dask or web code.
"""
