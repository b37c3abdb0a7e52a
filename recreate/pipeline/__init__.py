"""The science: recreate one difference image as Rubin's v29 pipelines did.

The stages, in the order they run, and the modules behind each:

``config``
    The recipe: every v29 default, frozen and hashed.
``template`` (``template_patches``, ``template_tracts``, ``warp``,
``warp_kernels``, ``lanczos``)
    GetTemplateTask: merge the overlapping patches per tract with
    variance^-1/2 weights, warp them onto the science grid grown by 20 px
    (lanczos3, WCS interpolated on a coarse grid), NO_DATA where nothing
    covers.
``variance`` (``background``)
    ScaleVarianceTask on the template and the science image.
``sources`` (``detection``, ``footprints``, ``footprint_runs``,
``smoothing``, ``measure``, ``moments``, ``unresolved``, ``morphology``,
``psfsize``, ``moffat``)
    Detection, PSF size from the stars, kernel candidates, and the final
    two-sided 5-sigma detection planes.
``kernel`` (``basis``, ``kernel_stamps``, ``single_kernel``,
``kernel_fit``, ``kernel_spatial``, ``kernel_math``, ``solved_kernel``,
``spatial``)
    The Alard-Lupton basis and the spatially varying kernel fit.
``convolve`` (``tiled_correlation``, ``mask_growth``)
    Apply the spatial kernel: 3 image correlations, not 27.
``decorrelate`` (``fft``)
    DMTN-021 decorrelation of the difference image.
``subtract``
    The whole recipe from inputs to a difference image.
``provenance``
    Config hash, input ids, recipe hash, header cards.

Shared numerics: ``robust``, ``order_stats``, ``row_blocks``, ``arrays``,
``threads``. None of it imports Redis, Dask or web code.
"""
