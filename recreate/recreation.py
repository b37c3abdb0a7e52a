"""Recreate a difference image from a Butler key or from two files.

The two ways in that users have, without the service:

* `recreate_from_butler`: ``(visit, detector)`` in a Butler repository;
  the inputs are found as GetTemplateTask finds them, read through their
  URIs (so Rubin's repositories work as ours do), and named in the
  provenance by dataset id and run.
* `recreate_from_files`: a science image and one or more templates from
  any survey, in Rubin's layout or as plain FITS images with a WCS and
  optional variance and mask; named in the provenance by SHA-256. This
  is the any-survey mode (`recreate.anysurvey`): DP1's recipe, adapted
  and with recorded fallbacks, unless another recipe is named.

The inputs are read by `recreate.inputs` and `recreate.anysurvey.read`
(template patches only where the warped template can depend on them).

`write_result` writes a result in any format of `recreate.formats` (the
DP1 layout with the solved kernel, tile-compressed or not, optionally
with the decorrelated PSF, or Rubin's DP2-style
``lsst.images.DifferenceImage``, optionally lossy16); the writers are
imported only for the format asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from recreate import __version__
from recreate.anysurvey.options import AnySurveyOptions
from recreate.butler import DiffimInputs, find_inputs
from recreate.formats import (
    DEFAULT_FORMAT,
    OutputFormat,
    check_write_options,
    get_format,
)
from recreate.inputs import butler_refs, read_butler_inputs
from recreate.io.difference import read_kernel
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import recipe as _recipe_of
from recreate.pipeline.provenance import recipe_hash
from recreate.pipeline.recipes import (
    DEFAULT_RECIPE,
    get_recipe,
    release_recipe,
)
from recreate.pipeline.subtract import DifferenceResult, subtract


def recreate_from_butler(
    butler: Any,
    visit: int,
    detector: int,
    *,
    instrument: str | None = None,
    recipe: str | None = None,
    config: PipelineConfig | None = None,
    kernel: SolvedKernel | None = None,
    whole_patches: bool = False,
) -> DifferenceResult:
    """Recreate the difference image of one visit-detector.

    Parameters
    ----------
    butler
        An open Butler (`recreate.butler.open_butler`).
    visit, detector
        The key.
    instrument
        Instrument name, when the repository holds several.
    recipe
        The recipe's name; by default the repository release's
        (`recipe_config`).
    config
        An explicit configuration instead (overrides ``recipe``).
    kernel
        A stored kernel to reuse instead of fitting one.
    whole_patches
        Read every template patch whole rather than only the pixels the
        template can depend on: slower, and the same planes.

    Raises
    ------
    DataNotFoundError
        If the visit, detector or visit image does not exist.
    NoOverlapError
        If no template covers enough of the detector.
    ProcessingError
        If the kernel cannot be solved.
    """
    found = find_inputs(butler, visit, detector, instrument=instrument)
    return recreate_from_inputs(
        found,
        recipe=recipe,
        config=config,
        kernel=kernel,
        whole_patches=whole_patches,
    )


def recreate_from_inputs(
    found: DiffimInputs,
    *,
    recipe: str | None = None,
    config: PipelineConfig | None = None,
    kernel: SolvedKernel | None = None,
    whole_patches: bool = False,
) -> DifferenceResult:
    """Recreate a difference image from inputs already looked up.

    The service resolves the inputs once (they make the cache key) and
    recomputes from exactly those datasets.

    Parameters
    ----------
    found
        What `recreate.butler.find_inputs` returned.
    recipe
        The recipe's name; by default the repository release's
        (`recipe_config`).
    config
        An explicit configuration instead (overrides ``recipe``).
    kernel
        A stored kernel to reuse instead of fitting one.
    whole_patches
        Read every template patch whole rather than only the pixels the
        template can depend on: slower, and the same planes.

    Raises
    ------
    InvalidRequestError
        If ``recipe`` names no recipe.
    NoOverlapError
        If no template covers enough of the detector.
    ProcessingError
        If the kernel cannot be solved.
    """
    if config is None:
        config = recipe_config(found, recipe)
    inputs = read_butler_inputs(
        found, config=config, whole_patches=whole_patches
    )
    return subtract(
        inputs.science,
        inputs.templates,
        config=config,
        inputs=inputs.refs,
        kernel=kernel,
    )


def recreate_from_files(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
    *,
    science_variance: str | None = None,
    science_mask: str | None = None,
    gain: float | None = None,
    recipe: str = DEFAULT_RECIPE,
    config: PipelineConfig | None = None,
    kernel: SolvedKernel | None = None,
    whole_patches: bool = False,
    options: AnySurveyOptions | None = None,
) -> DifferenceResult:
    """Recreate a difference image from FITS files of any survey.

    The any-survey mode (`recreate.anysurvey.subtract_files`): the files
    are read in Rubin's layout when they have it, as plain images
    otherwise, with every plane they have; a science image with no
    variance plane gets one estimated from its noise (and the gain, when
    known). The inputs are then prepared as ``options`` say (sky,
    DETECTED, template variance) and subtracted with the recorded
    fallbacks; the provenance says what was done. The recipe is DP1's
    (v29), whose cuts the fallbacks relax, unless ``recipe`` names
    another (`recreate.pipeline.recipes`) or ``config`` is given.

    Raises
    ------
    InvalidRequestError
        If no template is given, or ``recipe`` names no recipe.
    FormatError
        If a file cannot be read, or has no celestial WCS.
    UnreliableKernelError
        If the kernel solution is ill-conditioned or too thin.
    """
    from recreate.anysurvey.read import PlaneSources
    from recreate.anysurvey.subtract import subtract_files

    return subtract_files(
        science_path,
        template_paths,
        science=PlaneSources(
            variance=science_variance, mask=science_mask, gain=gain
        ),
        options=options or AnySurveyOptions(),
        config=config if config is not None else get_recipe(recipe),
        kernel=kernel,
        whole_patches=whole_patches,
    )


def write_result(
    result: DifferenceResult,
    path: str | os.PathLike[str],
    *,
    output_format: str = DEFAULT_FORMAT,
    overwrite: bool = False,
    lossy16: bool = False,
    decorrelated_psf: bool = False,
) -> None:
    """Write a recreated difference image.

    Parameters
    ----------
    result
        What `recreate_from_butler` or `recreate_from_files` returned.
    path
        Output file.
    output_format
        The name of a format of `recreate.formats` (``dp1``: afw
        ExposureF layout plus the kernel; ``lsst-images``: Rubin's
        DP2-style DifferenceImage...).
    overwrite
        Replace an existing file.
    lossy16
        Quantise the image and variance as DP2's published files are
        (``lsst-images`` only; `recreate.io.lsst_images.lossy16`).
    decorrelated_psf
        Add the ``DECORRELATED_PSF`` extension beside the release's PSF
        (`recreate.decorrelated_psf`; ``dp1`` formats only).

    Raises
    ------
    InvalidRequestError
        If the format is unknown, or an option does not fit it
        (`check_write_options`).
    FormatError
        With ``lossy16``, if the image has no data ID for the seed.
    """
    chosen = check_write_options(
        output_format, lossy16=lossy16, decorrelated_psf=decorrelated_psf
    )
    if lossy16:
        from recreate.writers import write_lsst_images_file

        write_lsst_images_file(result, path, overwrite=overwrite, lossy16=True)
    elif decorrelated_psf:
        from recreate.writers import write_dp1_file

        write_dp1_file(
            result,
            path,
            compress=chosen.name == "dp1-compressed",
            overwrite=overwrite,
            decorrelated_psf=True,
        )
    else:
        chosen.write(result, path, overwrite=overwrite)


def request_recipe(
    found: DiffimInputs,
    *,
    recipe: str | None = None,
    config: PipelineConfig | None = None,
    code_version: str = __version__,
) -> dict[str, Any]:
    """Return the recipe of a (visit, detector) request.

    Everything the pixels depend on: the input dataset ids and runs, with
    their data ids (so the key, instrument, visit and detector, is in
    it), the recipe's name and configuration hash and the code version.
    A new template, recipe or code version changes it, so a cache keyed
    by its hash never serves a stale product.

    Parameters
    ----------
    found
        The request's inputs.
    recipe
        The recipe the request names (``dp1``, ``dp2``); by default the
        repository's release's (`recipe_config`).
    config
        An explicit configuration instead (overrides ``recipe``).
    code_version
        Version of this package.

    Raises
    ------
    InvalidRequestError
        If ``recipe`` names no recipe.
    """
    chosen = config if config is not None else recipe_config(found, recipe)
    return _recipe_of(
        butler_refs(found),
        chosen.config_hash(),
        code_version,
        chosen.recipe,
    )


def recipe_config(
    found: DiffimInputs, recipe: str | None = None
) -> PipelineConfig:
    """Return the configuration a request recreates with.

    The recipe the request names, else the one of the repository's
    release: ``dp2`` where visit images are ``lsst.images`` VisitImages
    (as in DP2), ``dp1`` otherwise (`recreate.pipeline.recipes`).

    Raises
    ------
    InvalidRequestError
        If ``recipe`` names no recipe.
    """
    name = recipe or release_recipe(found.visit_image.storage_class)
    return get_recipe(name)


def product_key(
    recipe_dict: dict[str, Any], output_format: OutputFormat
) -> str:
    """Return the SHA-256 naming one product: a recipe in one format."""
    return recipe_hash({"recipe": recipe_dict, "format": output_format.name})


def result_bytes(result: DifferenceResult, output_format: str) -> bytes:
    """Return the bytes of a result in a format, as the service caches them.

    Raises
    ------
    InvalidRequestError
        If the format is unknown.
    """
    return get_format(output_format).to_bytes(result)


def load_kernel(path: str | os.PathLike[str]) -> SolvedKernel:
    """Return the kernel stored in a difference image written here.

    Raises
    ------
    FormatError
        If the file holds no kernel.
    """
    return SolvedKernel.from_dict(read_kernel(path))
