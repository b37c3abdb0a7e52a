"""Read what a render of a box needs of a request's inputs.

`read_inputs_for_box` reads, through the datasets' URIs (as
`recreate.inputs` does), only the part of the visit image a render of
the box reads (`needed_science_box`: the box's tiles and the
decorrelation halo) and of each template patch only the part the warp
of the render's template window can depend on
(`recreate.pipeline.template.tracts.patch_read_box` of that window).
Tile-compressed planes decompress only the tiles (rows) those parts
touch. DP1-layout files are read with `recreate.io.read_dp1_region`,
``lsst.images`` VisitImages (DP2) with their subset read.

`read_inputs_whole` reads what a render of the whole detector needs
(`recreate.inputs.read_butler_inputs`), for a full product rendered
from a stored solution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from recreate.exposure import Exposure
from recreate.inputs import (
    LSST_IMAGES_MODEL_KEY,
    read_butler_inputs,
)
from recreate.io import read_dp1, read_dp1_geometry, read_dp1_region
from recreate.io.fitsfile import open_fits
from recreate.io.image_file import forget_image_file, open_image_file
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.template.patches import PatchCutout, PatchFrame
from recreate.pipeline.template.tracts import patch_read_box
from recreate.pipeline.template.window import (
    science_outline,
    template_window_for,
)
from recreate.solution.layout import shift
from recreate.solution.model import Solution
from recreate.solution.render import plan_for
from recreate.solution.render_types import RenderInputs, ScienceImage

if TYPE_CHECKING:
    from recreate.butler import DatasetHandle, DiffimInputs


def read_inputs_for_box(
    found: DiffimInputs, solution: Solution, box: PixelBox
) -> RenderInputs:
    """Read what `recreate.solution.render.render` of ``box`` needs.

    Parameters
    ----------
    found
        The request's inputs (`recreate.butler.find_inputs`); they must
        be the solution's (`Solution.check_inputs`).
    solution
        The detector's solution.
    box
        Parent pixels, inside the detector, not empty.

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    FormatError, FileNotFoundError
        If an input cannot be read.
    """
    config = solution.config()
    plan = plan_for(solution, box)
    xy0 = solution.frame.xy0
    science, image, geometry = _read_science(
        found.visit_image,
        (shift(plan.difference, *xy0), shift(plan.detection, *xy0)),
        solution.frame.box,
    )
    border = config.template.border
    height, width = geometry.shape
    window = template_window_for(
        plan.template,
        plan.template_mask,
        (height + 2 * border, width + 2 * border),
        config.template,
    )
    if geometry.wcs is None:
        patches = [_read_whole(h) for h in found.templates]
        return RenderInputs(science, geometry, patches, image)
    outline = science_outline(geometry.wcs, geometry.shape, geometry.xy0)
    patches = [
        _read_patch(handle, outline, config, window)
        for handle in found.templates
    ]
    return RenderInputs(science, geometry, patches, image)


def read_geometry(found: DiffimInputs) -> ImageGeometry:
    """Return the visit image's WCS, ``xy0`` and shape (headers only).

    Raises
    ------
    FormatError, FileNotFoundError
        If the visit image cannot be read.
    """
    local = _local_path(found.visit_image)
    if local is not None:
        return open_image_file(local).geometry
    from lsst.resources import ResourcePath

    with ResourcePath(found.visit_image.uri).as_local() as copy:
        return open_image_file(copy.ospath).geometry


def read_inputs_whole(
    found: DiffimInputs, config: PipelineConfig
) -> RenderInputs:
    """Read what a render of the whole detector needs.

    The visit image whole, each patch where the template can depend on
    it (`recreate.inputs.read_butler_inputs`).
    """
    read = read_butler_inputs(found, config=config)
    science = read.science
    geometry = ImageGeometry(science.wcs, science.xy0, science.shape)
    return RenderInputs(science, geometry, read.templates)


def forget_visit_image(found: DiffimInputs) -> None:
    """Drop what this process keeps of a request's visit image.

    Its parsed headers and decoded rows (`recreate.io.image_file`): the
    next render of the detector reads it as a never-seen epoch's. The
    template patches, which every epoch of a band shares, stay.
    """
    local = _local_path(found.visit_image)
    if local is not None:
        forget_image_file(local)


def _read_science(
    handle: DatasetHandle,
    boxes: tuple[PixelBox, PixelBox],
    whole: PixelBox,
) -> tuple[Exposure, ScienceImage | None, ImageGeometry]:
    """Read what a render reads of the visit image, and its geometry.

    ``boxes``: where the render reads the image plane, and the smaller
    box where it reads the variance and mask too. A local file gives the
    image plane on the first (a `ScienceImage`) and every plane on the
    second, so the rows the tiles need are decoded once, not thrice; a
    remote one gives every plane on the first (one transfer), and no
    `ScienceImage`.
    """
    box, detail = boxes
    local = _local_path(handle)
    if local is not None:
        image = open_image_file(local)
        # The image plane first: the detail box's image rows are then
        # decoded already (`recreate.io.input_cache`).
        wide = ScienceImage(*image.image_plane(box))
        return image.region(detail), wide, image.geometry
    from lsst.resources import ResourcePath

    with (
        ResourcePath(handle.uri).as_local() as copy,
        open_fits(copy.ospath) as hdulist,
    ):
        if LSST_IMAGES_MODEL_KEY in hdulist[0].header:
            # Imported here: lsst.images is slow to import and only
            # DP2-like repositories need it.
            from recreate.io.lsst_images.read import read_visit_image_region

            science, geometry = read_visit_image_region(
                copy.ospath, box, whole
            )
            return science, None, geometry
        return (
            read_dp1_region(hdulist, box),
            None,
            read_dp1_geometry(hdulist),
        )


def _read_patch(
    handle: DatasetHandle,
    outline: Exposure,
    config: PipelineConfig,
    window: PixelBox,
) -> Exposure:
    """Read the part of a patch the warp of ``window`` can depend on.

    As `recreate.inputs` reads patches, but for the window: a patch it
    misses gives an empty cut-out that keeps its place.
    """
    local = _local_path(handle)
    if local is not None:
        image = open_image_file(local)
        return _patch_cutout(
            image.geometry, image.region, outline, config, window
        )
    from lsst.resources import ResourcePath

    with (
        ResourcePath(handle.uri).as_local() as copy,
        open_fits(copy.ospath) as hdulist,
    ):
        return _patch_cutout(
            read_dp1_geometry(hdulist),
            lambda box: read_dp1_region(hdulist, box),
            outline,
            config,
            window,
        )


def _patch_cutout(
    geometry: ImageGeometry,
    region: Callable[[PixelBox], Exposure],
    outline: Exposure,
    config: PipelineConfig,
    window: PixelBox,
) -> Exposure:
    """Return the cut-out of a patch the window needs (whole if no WCS)."""
    height, width = geometry.shape
    whole = PixelBox(*geometry.xy0, width, height)
    if geometry.wcs is None:
        return region(whole)
    frame = PatchFrame(*geometry)
    read_box = patch_read_box(outline, frame, config.template.border, window)
    if read_box is None:
        return region(whole)
    return PatchCutout.of(region(read_box), frame)


def _local_path(handle: DatasetHandle) -> str | None:
    """Return the dataset's file name when it is local, else None."""
    from lsst.resources import ResourcePath

    path = ResourcePath(handle.uri)
    return path.ospath if path.isLocal else None


def _read_whole(handle: DatasetHandle) -> Exposure:
    """Read a patch whole."""
    from lsst.resources import ResourcePath

    with ResourcePath(handle.uri).as_local() as local:
        return read_dp1(local.ospath)


__all__ = [
    "forget_visit_image",
    "read_geometry",
    "read_inputs_for_box",
    "read_inputs_whole",
]
