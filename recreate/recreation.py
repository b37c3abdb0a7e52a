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

`write_result` writes either in the DP1 layout (with the solved kernel)
or as Rubin's DP2-style ``lsst.images.DifferenceImage``.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from recreate import __version__
from recreate.butler import DiffimInputs, find_inputs
from recreate.errors import InvalidRequestError
from recreate.inputs import butler_refs, read_butler_inputs, read_file_inputs
from recreate.io.difference import (
    difference_bytes,
    read_kernel,
    write_difference,
)
from recreate.io.lsst_images import (
    KernelModel,
    TemplateProvenance,
    write_lsst_images,
)
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import recipe as _recipe_of
from recreate.pipeline.provenance import recipe_hash
from recreate.pipeline.recipes import get_recipe, release_recipe
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.pipeline.subtract import DifferenceResult, subtract

OutputFormat = Literal["dp1", "lsst-images"]
FORMATS: tuple[str, ...] = get_args(OutputFormat)


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
    output_format: str = "dp1",
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
        ``dp1`` (afw ExposureF layout plus the kernel) or ``lsst-images``
        (Rubin's DP2-style DifferenceImage).
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
    check_format(output_format)
    if lossy16 and output_format != "lsst-images":
        raise InvalidRequestError(
            f"--lossy16 needs --format lsst-images, not {output_format!r}"
        )
    if output_format == "dp1":
        write_difference(
            result.exposure, result.kernel.to_dict(), path, overwrite=overwrite
        )
    else:
        write_lsst_images(
            result.exposure,
            kernel_model(result.kernel),
            template_provenance(result),
            path,
            overwrite=overwrite,
            lossy16=lossy16,
        )


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


def product_key(recipe_dict: dict[str, Any], output_format: str) -> str:
    """Return the SHA-256 naming one product: a recipe in one format."""
    check_format(output_format)
    return recipe_hash({"recipe": recipe_dict, "format": output_format})


def check_format(output_format: str) -> None:
    """Raise `InvalidRequestError` unless the format is one we write."""
    if output_format not in FORMATS:
        raise InvalidRequestError(
            f"unknown format {output_format!r}; choose one of "
            f"{', '.join(FORMATS)}"
        )


def result_bytes(result: DifferenceResult, output_format: str) -> bytes:
    """Return the bytes of a result as `write_result` would write them.

    The DP1 layout is written with uncompressed planes: a served file is
    compressed by the transport and the cache, and FITS tile compression
    would triple the time to encode it.

    Raises
    ------
    InvalidRequestError
        If the format is unknown.
    """
    check_format(output_format)
    if output_format == "dp1":
        return difference_bytes(
            result.exposure, result.kernel.to_dict(), compress=False
        )
    with tempfile.TemporaryDirectory(prefix="recreate-") as scratch:
        path = Path(scratch) / "diffim.fits"
        write_result(result, path, output_format=output_format)
        return path.read_bytes()


def kernel_model(kernel: SolvedKernel) -> KernelModel:
    """Return the solved kernel in the neutral form lsst.images stores.

    Both use afw's Chebyshev1Function2 terms (1, x, y, ...) normalised to
    the science bbox's pixel edges, and afw's kernel orientation.
    """
    return KernelModel(
        basis=kernel.basis.images(),
        coefficients=kernel.coefficients,
        bbox=kernel.bbox,
        order=kernel.spatial_kernel_order,
    )


def template_provenance(
    result: DifferenceResult,
) -> list[TemplateProvenance]:
    """Return one DP2-style template record per patch used.

    Butler inputs carry their skymap, tract and patch; files given on the
    command line have none (skymap "none", tract and patch -1) and are
    named by a UUID derived from their SHA-256.
    """
    sigma2 = (result.provenance.template_fwhm / FWHM_PER_SIGMA) ** 2
    templates = [i for i in result.provenance.inputs if i.role == "template"]
    records = []
    for ref, bounds in zip(
        templates, result.template.patch_bounds, strict=True
    ):
        data_id = ref.data_id
        records.append(
            TemplateProvenance(
                skymap=str(data_id.get("skymap", "none")),
                tract=int(data_id.get("tract", -1)),
                patch=int(data_id.get("patch", -1)),
                dataset_id=_as_uuid(ref.dataset_id),
                dataset_run=ref.run,
                bounds_xy=bounds,
                psf_shape_xx=sigma2,
                psf_shape_yy=sigma2,
                psf_shape_xy=0.0,
            )
        )
    return records


def _as_uuid(dataset_id: str) -> str:
    """Return a UUID string: Butler ids as they are, hashes folded."""
    try:
        return str(uuid.UUID(dataset_id))
    except ValueError:
        return str(uuid.UUID(hex=dataset_id[:32]))


def load_kernel(path: str | os.PathLike[str]) -> SolvedKernel:
    """Return the kernel stored in a difference image written here.

    Raises
    ------
    FormatError
        If the file holds no kernel.
    """
    return SolvedKernel.from_dict(read_kernel(path))
