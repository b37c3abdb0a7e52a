"""Recreate a difference image from a Butler key or from two files.

The two ways in that users have, without the service:

* `recreate_from_butler`: ``(visit, detector)`` in a Butler repository;
  the inputs are found as GetTemplateTask finds them, read through their
  URIs (so Rubin's repositories work as ours do), and named in the
  provenance by dataset id and run.
* `recreate_from_files`: a science image and one or more templates from
  any survey, in Rubin's layout or as plain FITS images with a WCS and
  optional variance and mask; named in the provenance by SHA-256.

Of each template patch in Rubin's layout only the pixels the warped
template can depend on are read (`_read_patch`): a detector overlaps a
part of each patch, and decompressing whole patches was half the time of
a recreation. The planes are bit-identical to those from whole patches;
``whole_patches=True`` reads them whole, to check that.

`write_result` writes either in the DP1 layout (with the solved kernel)
or as Rubin's DP2-style ``lsst.images.DifferenceImage``.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from astropy.io import fits

from recreate import __version__
from recreate.butler import DatasetHandle, DiffimInputs, find_inputs
from recreate.errors import InvalidRequestError
from recreate.exposure import Exposure
from recreate.io import (
    PixelBox,
    read_dp1,
    read_dp1_geometry,
    read_dp1_region,
    read_exposure,
    read_plain,
)
from recreate.io.afwplanes import is_afw_layout
from recreate.io.difference import (
    difference_bytes,
    read_kernel,
    write_difference,
)
from recreate.io.fitsfile import open_fits
from recreate.io.lsst_images import (
    KernelModel,
    TemplateProvenance,
    write_lsst_images,
)
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.provenance import InputRef, recipe, recipe_hash
from recreate.pipeline.subtract import DifferenceResult, subtract
from recreate.pipeline.template_patches import PatchCutout, PatchFrame
from recreate.pipeline.template_tracts import patch_read_box

OutputFormat = Literal["dp1", "lsst-images"]
#: FWHM of a Gaussian in units of its sigma.
FWHM_PER_SIGMA = 2.0 * (2.0 * math.log(2.0)) ** 0.5
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


def read_butler_inputs(
    found: DiffimInputs,
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
    whole_patches: bool = False,
) -> ReadInputs:
    """Read what `recreate_from_inputs` subtracts; see it for the arguments.

    The visit image is read whole and each template patch only where the
    template can depend on it, through the datasets' URIs.
    """
    science = _read_handle(found.visit_image)
    patches = [
        _read_patch_handle(handle, science, config, whole=whole_patches)
        for handle in found.templates
    ]
    refs = [_input_ref("science", found.visit_image)] + [
        _input_ref("template", handle) for handle in found.templates
    ]
    return ReadInputs(science, patches, refs, [])


@dataclass(frozen=True)
class ReadInputs:
    """A science image and its templates, read and ready to subtract.

    Attributes
    ----------
    science
        The science exposure.
    templates
        The templates (cut-outs of Rubin-layout patches).
    refs
        Their provenance names, science first.
    notes
        Provenance notes (variance estimated, and how).
    """

    science: Exposure
    templates: list[Exposure]
    refs: list[InputRef]
    notes: list[str]


def read_file_inputs(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
    *,
    science_variance: str | None = None,
    science_mask: str | None = None,
    gain: float | None = None,
    config: PipelineConfig = DEFAULT_CONFIG,
    whole_patches: bool = False,
) -> ReadInputs:
    """Read what `recreate_from_files` subtracts; see it for the arguments.

    Raises
    ------
    InvalidRequestError
        If no template is given.
    FormatError
        If a file cannot be read, or has no celestial WCS.
    """
    if not template_paths:
        raise InvalidRequestError("give at least one template image")
    science = _read_science(science_path, science_variance, science_mask, gain)
    templates = [
        _read_template_file(path, science, config, whole=whole_patches)
        for path in template_paths
    ]
    notes = [
        f"{label} variance estimated: {exposure.metadata['VARIANCE_METHOD']}"
        for label, exposure in [("science", science)]
        + [(f"template {i}", t) for i, t in enumerate(templates)]
        if exposure.metadata.get("VARIANCE_ESTIMATED")
    ]
    refs = [_file_ref("science", science_path)] + [
        _file_ref("template", path) for path in template_paths
    ]
    return ReadInputs(science, templates, refs, notes)


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

    Raises
    ------
    InvalidRequestError
        If the format is unknown.
    """
    check_format(output_format)
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
        )


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
    refs = [_input_ref("science", found.visit_image)] + [
        _input_ref("template", handle) for handle in found.templates
    ]
    return recipe(refs, config.config_hash(), code_version)


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


def _read_handle(handle: DatasetHandle) -> Exposure:
    """Read a dataset through its URI (local, S3, HTTP: lsst.resources)."""
    from lsst.resources import ResourcePath

    with ResourcePath(handle.uri).as_local() as local:
        return read_dp1(local.ospath)


def _read_patch_handle(
    handle: DatasetHandle,
    science: Exposure,
    config: PipelineConfig,
    *,
    whole: bool,
) -> Exposure:
    """Read a template patch through its URI, as `_read_patch` does."""
    from lsst.resources import ResourcePath

    with (
        ResourcePath(handle.uri).as_local() as local,
        open_fits(local.ospath) as hdulist,
    ):
        return _read_patch(hdulist, science, config, whole=whole)


def _read_template_file(
    path: str | os.PathLike[str],
    science: Exposure,
    config: PipelineConfig,
    *,
    whole: bool,
) -> Exposure:
    """Read a template file as `read_exposure` does, Rubin's by region."""
    with open_fits(path) as hdulist:
        if is_afw_layout(hdulist):
            return _read_patch(hdulist, science, config, whole=whole)
    return read_plain(path)


def _read_patch(
    hdulist: fits.HDUList,
    science: Exposure,
    config: PipelineConfig,
    *,
    whole: bool,
) -> Exposure:
    """Read the pixels of a DP1-layout patch the template can depend on.

    The box comes from the headers alone
    (`recreate.pipeline.template_tracts.patch_read_box`); the cut-out
    carries the whole patch's frame, so the template is bit-identical to
    one from the whole patch. A patch the science image misses gives an
    empty cut-out (no pixel read) that still names its place in the
    provenance. Without a WCS on either side, or where the mapping
    fails, the patch is read whole and the template code reports it.
    """
    if whole:
        return read_dp1(hdulist)
    geometry = read_dp1_geometry(hdulist)
    if geometry.wcs is None:
        return read_dp1(hdulist)
    frame = PatchFrame(geometry.wcs, geometry.xy0, geometry.shape)
    box = patch_read_box(science, frame, config.template.border)
    if box is None:
        return read_dp1(hdulist)
    cutout = read_dp1_region(hdulist, PixelBox(*box))
    return PatchCutout.of(cutout, frame)


def _input_ref(role: str, handle: DatasetHandle) -> InputRef:
    """Name a Butler dataset in the provenance."""
    return InputRef(
        role=role,
        dataset_type=handle.dataset_type,
        dataset_id=handle.dataset_id,
        run=handle.run,
        data_id=dict(handle.data_id),
    )


def _read_science(
    path: str | os.PathLike[str],
    variance: str | None,
    mask: str | None,
    gain: float | None,
) -> Exposure:
    """Read the science image, with separate variance and mask if given."""
    if variance is None and mask is None and gain is None:
        return read_exposure(path)
    return read_plain(path, variance=variance, mask=mask, gain=gain)


def _file_ref(role: str, path: str | os.PathLike[str]) -> InputRef:
    """Name a file in the provenance by its SHA-256 and name."""
    with Path(path).open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return InputRef(
        role=role, dataset_type="file", dataset_id=digest, run=Path(path).name
    )
