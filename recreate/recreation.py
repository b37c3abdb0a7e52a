"""Recreate a difference image from a Butler key or from two files.

The two ways in that users have, without the service:

* `recreate_from_butler`: ``(visit, detector)`` in a Butler repository;
  the inputs are found as GetTemplateTask finds them, read through their
  URIs (so Rubin's repositories work as ours do), and named in the
  provenance by dataset id and run.
* `recreate_from_files`: a science image and one or more templates from
  any survey, in Rubin's layout or as plain FITS images with a WCS and
  optional variance and mask; named in the provenance by SHA-256.

The inputs are read by `recreate.inputs` (template patches only where
the warped template can depend on them).

`write_result` writes a result in any format of `recreate.formats` (the
DP1 layout with the solved kernel, tile-compressed or not, or Rubin's
DP2-style ``lsst.images.DifferenceImage``); the writers are imported
only for the format asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from recreate import __version__
from recreate.butler import DiffimInputs, find_inputs
from recreate.errors import InvalidRequestError
from recreate.formats import DEFAULT_FORMAT, OutputFormat, get_format
from recreate.inputs import butler_refs, read_butler_inputs, read_file_inputs
from recreate.io.difference import read_kernel
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import recipe as _recipe_of
from recreate.pipeline.provenance import recipe_hash
from recreate.pipeline.recipes import get_recipe, release_recipe
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
    config: PipelineConfig = DEFAULT_CONFIG,
    kernel: SolvedKernel | None = None,
    whole_patches: bool = False,
) -> DifferenceResult:
    """Recreate a difference image from FITS files of any survey.

    The science image and templates are read in Rubin's layout when they
    have it, as plain images with a WCS otherwise. A science image with
    no variance plane gets one estimated from its noise (and the gain,
    when known); the provenance says so. Of templates in Rubin's layout
    only the pixels the template can depend on are read, unless
    ``whole_patches``; a plain template is read whole (its variance may
    be estimated from all its pixels).

    Raises
    ------
    InvalidRequestError
        If no template is given.
    FormatError
        If a file cannot be read, or has no celestial WCS.
    """
    inputs = read_file_inputs(
        science_path,
        template_paths,
        science_variance=science_variance,
        science_mask=science_mask,
        gain=gain,
        config=config,
        whole_patches=whole_patches,
    )
    return subtract(
        inputs.science,
        inputs.templates,
        config=config,
        inputs=inputs.refs,
        kernel=kernel,
        notes=inputs.notes,
    )


def write_result(
    result: DifferenceResult,
    path: str | os.PathLike[str],
    *,
    output_format: str = DEFAULT_FORMAT,
    overwrite: bool = False,
    lossy16: bool = False,
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

    Raises
    ------
    InvalidRequestError
        If the format is unknown, or ``lossy16`` is asked of ``dp1``.
    FormatError
        With ``lossy16``, if the image has no data ID for the seed.
    """
    chosen = get_format(output_format)
    if not lossy16:
        chosen.write(result, path, overwrite=overwrite)
        return
    if chosen.name != "lsst-images":
        raise InvalidRequestError(
            f"--lossy16 needs --format lsst-images, not {output_format!r}"
        )
    from recreate.writers import write_lsst_images_file

    write_lsst_images_file(result, path, overwrite=overwrite, lossy16=True)


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
