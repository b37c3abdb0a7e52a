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
from recreate.anysurvey.options import AnySurveyOptions
from recreate.butler import DiffimInputs, find_inputs
from recreate.errors import InvalidRequestError
from recreate.inputs import butler_refs, read_butler_inputs
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
from recreate.pipeline.provenance import recipe, recipe_hash
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
    config: PipelineConfig = DEFAULT_CONFIG,
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
    config
        The recipe.
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
        found, config=config, kernel=kernel, whole_patches=whole_patches
    )


def recreate_from_inputs(
    found: DiffimInputs,
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
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
    config
        The recipe.
    kernel
        A stored kernel to reuse instead of fitting one.
    whole_patches
        Read every template patch whole rather than only the pixels the
        template can depend on: slower, and the same planes.

    Raises
    ------
    NoOverlapError
        If no template covers enough of the detector.
    ProcessingError
        If the kernel cannot be solved.
    """
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
    options: AnySurveyOptions | None = None,
) -> DifferenceResult:
    """Recreate a difference image from FITS files of any survey.

    The any-survey mode (`recreate.anysurvey.subtract_files`): the files
    are read in Rubin's layout when they have it, as plain images
    otherwise, with every plane they have; a science image with no
    variance plane gets one estimated from its noise (and the gain, when
    known). The inputs are then prepared as ``options`` say (sky,
    DETECTED, template variance) and subtracted with the recorded
    fallbacks; the provenance says what was done.

    Raises
    ------
    InvalidRequestError
        If no template is given.
    FormatError
        If a file cannot be read, or has no celestial WCS.
    UnreliableKernelError
        If the kernel solution is ill-conditioned or too thin.
    """
    from recreate.anysurvey import PlaneSources, subtract_files

    return subtract_files(
        science_path,
        template_paths,
        science=PlaneSources(
            variance=science_variance, mask=science_mask, gain=gain
        ),
        options=options or AnySurveyOptions(),
        config=config,
        kernel=kernel,
        whole_patches=whole_patches,
    )


def write_result(
    result: DifferenceResult,
    path: str | os.PathLike[str],
    *,
    output_format: str = "dp1",
    overwrite: bool = False,
    compress: bool = True,
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
        ``dp1`` (afw ExposureF layout plus the kernel) or ``lsst-images``
        (Rubin's DP2-style DifferenceImage).
    overwrite
        Replace an existing file.
    compress
        Tile-compress the DP1 layout's planes (lossless GZIP): smaller,
        and slower to write and read.
    decorrelated_psf
        Add the ``DECORRELATED_PSF`` extension beside the release's PSF
        (`recreate.decorrelated_psf`); DP1 layout only.

    Raises
    ------
    InvalidRequestError
        If the format is unknown, or the decorrelated PSF is asked of the
        lsst-images format.
    """
    check_format(output_format)
    if output_format == "dp1":
        extra = _decorrelated_psf_hdus(result) if decorrelated_psf else []
        write_difference(
            result.exposure,
            result.kernel.to_dict(),
            path,
            overwrite=overwrite,
            compress=compress,
            extra_hdus=extra,
        )
    elif decorrelated_psf:
        raise InvalidRequestError(
            "the decorrelated PSF is written in the dp1 format only"
        )
    else:
        write_lsst_images(
            result.exposure,
            kernel_model(result.kernel),
            template_provenance(result),
            path,
            overwrite=overwrite,
        )


def _decorrelated_psf_hdus(result: DifferenceResult) -> list[Any]:
    """Return the ``DECORRELATED_PSF`` extension of a result, if it has one."""
    from recreate.decorrelated_psf import decorrelated_psf_hdu

    hdu = decorrelated_psf_hdu(result)
    return [] if hdu is None else [hdu]


def request_recipe(
    found: DiffimInputs,
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
    code_version: str = __version__,
) -> dict[str, Any]:
    """Return the recipe of a (visit, detector) request.

    Everything the pixels depend on: the input dataset ids and runs, with
    their data ids (so the key, instrument, visit and detector, is in
    it), the configuration hash and the code version. A new template or
    code version changes it, so a cache keyed by its hash never serves a
    stale product.
    """
    return recipe(butler_refs(found), config.config_hash(), code_version)


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
