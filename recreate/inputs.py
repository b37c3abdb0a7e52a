"""Read the inputs of a recreation: from a Butler's datasets or from files.

`read_butler_inputs` reads what `recreate.butler.find_inputs` found,
through the datasets' URIs (so Rubin's repositories work as ours do),
and names them in the provenance by dataset id and run.
Files from any survey are read by `recreate.anysurvey.read`, which
reads Rubin-layout templates by region with `_read_patch`.

Of each template patch in Rubin's layout only the pixels the warped
template can depend on are read (`_read_patch`): a detector overlaps a
part of each patch, and decompressing whole patches was half the time of
a recreation. The planes are bit-identical to those from whole patches;
``whole_patches=True`` reads them whole, to check that.
"""

from __future__ import annotations

from dataclasses import dataclass

from astropy.io import fits

from recreate.butler import DatasetHandle, DiffimInputs
from recreate.exposure import Exposure
from recreate.io import (
    read_dp1,
    read_dp1_geometry,
    read_dp1_region,
)
from recreate.io.fitsfile import open_fits
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.provenance import InputRef
from recreate.pipeline.template.patches import PatchCutout, PatchFrame
from recreate.pipeline.template.tracts import patch_read_box

#: The primary-header card of an ``lsst.images`` file (DP2's types).
LSST_IMAGES_MODEL_KEY = "DATAMODL"


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


def read_butler_inputs(
    found: DiffimInputs,
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
    whole_patches: bool = False,
) -> ReadInputs:
    """Read what `recreate.recreation.recreate_from_inputs` subtracts.

    The visit image is read whole and each template patch only where the
    template can depend on it, through the datasets' URIs.
    """
    science = _read_handle(found.visit_image)
    patches = [
        _read_patch_handle(handle, science, config, whole=whole_patches)
        for handle in found.templates
    ]
    return ReadInputs(science, patches, butler_refs(found), [])


def _read_handle(handle: DatasetHandle) -> Exposure:
    """Read a dataset through its URI (local, S3, HTTP: lsst.resources).

    An ``lsst.images`` file (DP2's VisitImage) is read with
    ``lsst.images``, anything else as DP1's afw layout.
    """
    from lsst.resources import ResourcePath

    with ResourcePath(handle.uri).as_local() as local:
        if LSST_IMAGES_MODEL_KEY in fits.getheader(local.ospath, 0):
            # Imported here: lsst.images is slow to import and only
            # DP2-like repositories need it.
            from recreate.io.lsst_images.read import read_visit_image

            return read_visit_image(local.ospath)
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


def _read_patch(
    hdulist: fits.HDUList,
    science: Exposure,
    config: PipelineConfig,
    *,
    whole: bool,
) -> Exposure:
    """Read the pixels of a DP1-layout patch the template can depend on.

    The box comes from the headers alone
    (`recreate.pipeline.template.tracts.patch_read_box`); the cut-out
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
    frame = PatchFrame(*geometry)
    box = patch_read_box(science, frame, config.template.border)
    if box is None:
        return read_dp1(hdulist)
    cutout = read_dp1_region(hdulist, box)
    return PatchCutout.of(cutout, frame)


def butler_refs(found: DiffimInputs) -> list[InputRef]:
    """Name a request's inputs in the provenance: the science image first."""
    return [_input_ref("science", found.visit_image)] + [
        _input_ref("template", handle) for handle in found.templates
    ]


def _input_ref(role: str, handle: DatasetHandle) -> InputRef:
    """Name a Butler dataset in the provenance."""
    return InputRef(
        role=role,
        dataset_type=handle.dataset_type,
        dataset_id=handle.dataset_id,
        run=handle.run,
        data_id=dict(handle.data_id),
    )
