"""Render any box of a difference image from its solution.

`render` makes the planes of a box of parent pixels from the solution
and what the box needs of the inputs (`RenderInputs`): the template
warped on the tiles' window, the science pixels there, the tiles
convolved, subtracted and decorrelated (`recreate.solution.tiles`), the
variance and mask planes, the detection planes over the box and their
halo, and (DP2) the bin-40 background from the solution's bins. The
full product is the render of the whole detector: every box's planes
are the same pixels of it, bit for bit (`recreate.solution.layout`
says why).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from recreate.errors import InvalidRequestError
from recreate.exposure import Exposure, MaskPlanes
from recreate.io.region import image_window, window_psf
from recreate.numerics.box import PixelBox
from recreate.numerics.smoothing import Edges
from recreate.numerics.threads import thread_count
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.match.background_grid import BackgroundGrid
from recreate.pipeline.match.mask_growth import grow_mask
from recreate.pipeline.prepare import (
    difference_planes,
    grown_template_planes,
    prepared_science_mask,
    prepared_template_bits,
)
from recreate.pipeline.sources.detection import set_detection_planes
from recreate.pipeline.template.window import (
    TemplateWindow,
    science_outline,
    template_window_for,
    warp_template_window,
)
from recreate.solution.layout import RenderPlan, plan_render, shift
from recreate.solution.model import Solution
from recreate.solution.render_types import (
    Planes,
    RenderInputs,
    SolvedMasks,
)
from recreate.solution.tiles import Window

#: Rows of a background model evaluated at once.
_BACKGROUND_ROWS = 512


def parent_to_array(solution: Solution, box: PixelBox) -> PixelBox:
    """Return a parent-pixel box in the detector's array pixels.

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    """
    frame = solution.frame
    inside = box.intersection(frame.box)
    if box.empty or inside != box:
        raise InvalidRequestError(
            f"box {tuple(box)} (x0, y0, width, height) is not inside "
            f"{frame.describe()} {tuple(frame.box)}"
        )
    return PixelBox(box.x0 - frame.xy0[0], box.y0 - frame.xy0[1], *box[2:])


def plan_for(solution: Solution, box: PixelBox) -> RenderPlan:
    """Return the render plan of a parent-pixel box."""
    config = solution.config()
    return plan_render(
        parent_to_array(solution, box),
        solution.frame.shape,
        config.render.tile_size,
        solution.halos(),
    )


def needed_science_box(solution: Solution, box: PixelBox) -> PixelBox:
    """Return the parent pixels of the visit image a render of ``box`` reads.

    The tiles the box needs, grown by the decorrelation half-width.
    """
    plan = plan_for(solution, box)
    return shift(plan.difference, *solution.frame.xy0)


def render(
    solution: Solution, inputs: RenderInputs, box: PixelBox
) -> Exposure:
    """Render a box of parent pixels of the difference image.

    Parameters
    ----------
    solution
        The detector's solution.
    inputs
        The visit image (or a window holding `needed_science_box`) and
        the template patches (or cut-outs).
    box
        Parent pixels, inside the detector, not empty.

    Returns
    -------
    region
        The planes of the box (bit-identical to the full product's
        there), its ``xy0`` the box's origin, a WCS for the box, and
        the product's provenance cards.

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    SolutionMismatchError
        If this code's recipe differs from the solution's.
    """
    plan = plan_for(solution, box)
    planes = predetection(solution, inputs, plan)
    planes = detection_planes(solution, planes)
    return region_exposure(solution, inputs, planes, plan.box)


def render_full(solution: Solution, inputs: RenderInputs) -> Exposure:
    """Render the whole detector: the full product, from a solution.

    The same planes as `recreate.pipeline.subtract.subtract` made with
    the solve that made the solution.
    """
    return render(solution, inputs, solution.frame.box)


def predetection(
    solution: Solution,
    inputs: RenderInputs,
    plan: RenderPlan,
    template: TemplateWindow | None = None,
    masks: SolvedMasks | None = None,
) -> Planes:
    """Return the decorrelated difference on ``plan.detection``.

    ``template`` may hold the warped template already (the solve's),
    and ``masks`` the masks the solve made of it (the same arrays this
    would make, so they are not made again).
    """
    config = solution.config()
    halos = solution.halos()
    border = halos.border
    if template is None:
        template = _template(solution, inputs, plan, config)
    planes = difference_planes(inputs.science.mask_planes, config)
    t_mask = (
        prepared_template_bits(
            template.planes.mask, template.mask_planes, planes, config
        )
        if masks is None
        else masks.template
    )
    t_origin = (template.window.x0 - border, template.window.y0 - border)
    no_data = Window.at(
        (t_mask & np.int32(planes.value("NO_DATA"))) != 0, *t_origin
    )
    science = _science_windows(solution, inputs)
    image = _tiled_image(
        solution,
        plan,
        Window.at(template.planes.image, *t_origin),
        science[0],
        no_data,
    )
    det = plan.detection
    mask = (
        _difference_mask(solution, planes, (t_mask, t_origin), science[2], det)
        if masks is None
        else masks.difference
    )
    dec = solution.decorrelation
    science_variance = np.asarray(science[1].cut(det), dtype=np.float32)
    science_variance = science_variance * np.float32(
        solution.science_variance_factor
    )
    template_variance = np.asarray(
        Window.at(template.planes.variance, *t_origin).cut(det),
        dtype=np.float32,
    ) * np.float32(solution.template_variance_factor)
    variance = np.float32(dec.science_weight) * science_variance
    variance += np.float32(dec.template_weight) * template_variance
    return Planes(
        image=Window.at(image, plan.tiled.x0, plan.tiled.y0).cut(det).copy(),
        variance=variance,
        mask=mask,
        planes=planes,
        box=det,
    )


def _difference_mask(
    solution: Solution,
    planes: MaskPlanes,
    template: tuple[npt.NDArray[np.int32], tuple[int, int]],
    science: Window,
    box: PixelBox,
) -> npt.NDArray[np.int32]:
    """Return the mask before detection on ``box``, in ``planes``.

    The science mask (its window ``science``) and the prepared template
    mask (``template``: the array and its origin) grown by the kernel's
    half-width.
    """
    config = solution.config()
    half = solution.halos().kernel
    t_mask, t_origin = template
    grown = Window.at(t_mask, *t_origin).cut(
        PixelBox(
            box.x0 - half,
            box.y0 - half,
            box.width + 2 * half,
            box.height + 2 * half,
        )
    )
    carried = planes.value_of_present(grown_template_planes(config))
    science_mask = prepared_science_mask(science.cut(box), planes)
    return science_mask | grow_mask(grown, half, carried)


def detection_planes(solution: Solution, planes: Planes) -> Planes:
    """Return the planes as DetectAndMeasureTask leaves them.

    DP1: the detection planes. DP2: the bin-40 background (from the
    solution's bins) subtracted, the detection planes, 0 where NO_DATA.
    """
    config = solution.config().subtract
    edges = _edges(planes.box, solution.frame.shape)
    image, mask, names = planes.image, planes.mask, planes.planes
    backgrounds = config.difference_background
    if backgrounds is not None and solution.background is not None:
        names = names.with_planes(*backgrounds.cleared_planes)
        mask = mask & ~np.int32(names.value(*backgrounds.cleared_planes))
        image = _less_background(image, solution.background, planes.box)
    if config.do_detection:
        mask, names = set_detection_planes(
            image,
            planes.variance,
            mask,
            names,
            solution.science_fwhm,
            config,
            edges,
        )
    if config.no_data_image_value is not None and "NO_DATA" in names:
        no_data = (mask & np.int32(names.value("NO_DATA"))) != 0
        if np.any(no_data):
            image = np.array(image, dtype=np.float32, copy=True)
            image[no_data] = np.float32(config.no_data_image_value)
    return Planes(image, planes.variance, mask, names, planes.box)


def region_exposure(
    solution: Solution, inputs: RenderInputs, planes: Planes, box: PixelBox
) -> Exposure:
    """Cut ``box`` (array pixels) from the planes, as the product has it.

    The WCS is the whole detector's moved to the box, as a cut-out of
    the full product's is; the provenance cards are the product's with
    the box's own planes hash.
    """
    rows = slice(box.y0 - planes.box.y0, box.y0 - planes.box.y0 + box.height)
    cols = slice(box.x0 - planes.box.x0, box.x0 - planes.box.x0 + box.width)
    geometry = inputs.geometry
    window = image_window(
        PixelBox(box.x0 + geometry.xy0[0], box.y0 + geometry.xy0[1], *box[2:]),
        geometry.xy0,
        geometry.shape,
    )
    whole = box == PixelBox(0, 0, geometry.shape[1], geometry.shape[0])
    wcs = geometry.wcs
    if wcs is not None and not whole:
        wcs = wcs.slice(window)
    science = inputs.science
    psf = science.psf
    if psf is not None and psf.grid is not None:
        offset = (
            box.x0 + geometry.xy0[0] - science.xy0[0],
            box.y0 + geometry.xy0[1] - science.xy0[1],
        )
        psf = window_psf(psf, (slice(offset[1], None), slice(offset[0], None)))
    exposure = Exposure(
        image=np.ascontiguousarray(planes.image[rows, cols]),
        variance=np.ascontiguousarray(planes.variance[rows, cols]),
        mask=np.ascontiguousarray(planes.mask[rows, cols]),
        mask_planes=planes.planes,
        wcs=wcs,
        xy0=(box.x0 + geometry.xy0[0], box.y0 + geometry.xy0[1]),
        psf=psf,
        photo_calib=science.photo_calib,
        observation=science.observation,
    )
    exposure.metadata = solution.provenance().cards(exposure.plane_hash())
    return exposure


def _template(
    solution: Solution,
    inputs: RenderInputs,
    plan: RenderPlan,
    config: PipelineConfig,
) -> TemplateWindow:
    """Warp the template where the plan reads it."""
    geometry = inputs.geometry
    if geometry.wcs is None:
        raise InvalidRequestError("the visit image has no WCS")
    outline = science_outline(geometry.wcs, geometry.shape, geometry.xy0)
    border = config.template.border
    grown = (geometry.shape[0] + 2 * border, geometry.shape[1] + 2 * border)
    window = template_window_for(
        plan.template, plan.template_mask, grown, config.template
    )
    return warp_template_window(
        outline,
        inputs.patches,
        config.template,
        window,
        high_variance=solution.high_variance,
        flag_box=plan.template_mask,
    )


def _science_windows(
    solution: Solution, inputs: RenderInputs
) -> tuple[Window, Window, Window]:
    """Return the science image, variance and mask as windows."""
    frame_x0, frame_y0 = solution.frame.xy0
    science = inputs.science
    x0, y0 = science.xy0[0] - frame_x0, science.xy0[1] - frame_y0
    wide = inputs.science_image
    image = (
        Window.at(science.image, x0, y0)
        if wide is None
        else Window.at(
            wide.pixels, wide.xy0[0] - frame_x0, wide.xy0[1] - frame_y0
        )
    )
    return (
        image,
        Window.at(science.variance, x0, y0),
        Window.at(science.mask, x0, y0),
    )


def _tiled_image(
    solution: Solution,
    plan: RenderPlan,
    template: Window,
    science: Window,
    no_data: Window,
) -> npt.NDArray[np.float32]:
    """Return the decorrelated difference on ``plan.tiled``."""
    engine = solution.engine
    tiled = plan.tiled
    out = np.empty((tiled.height, tiled.width), dtype=np.float32)

    def one(tile: PixelBox) -> None:
        rows = slice(tile.y0 - tiled.y0, tile.y0 - tiled.y0 + tile.height)
        cols = slice(tile.x0 - tiled.x0, tile.x0 - tiled.x0 + tile.width)
        out[rows, cols] = engine.tile(tile, template, science, no_data)

    workers = min(thread_count(), len(plan.tiles))
    if workers <= 1:
        for tile in plan.tiles:
            one(tile)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, plan.tiles))
    return out


def _less_background(
    image: npt.NDArray[np.float32], grid: BackgroundGrid, box: PixelBox
) -> npt.NDArray[np.float32]:
    """Return ``image - background`` (float32, as afw subtracts it).

    The background is evaluated a block of rows at a time (each value
    depends on its pixel alone), which keeps the float64 model small.
    """
    out = np.empty_like(image)
    for top in range(0, box.height, _BACKGROUND_ROWS):
        rows = min(_BACKGROUND_ROWS, box.height - top)
        part = PixelBox(box.x0, box.y0 + top, box.width, rows)
        model = grid.evaluate(part).astype(np.float32)
        out[top : top + rows] = image[top : top + rows] - model
    return out


def _edges(box: PixelBox, shape: tuple[int, int]) -> Edges:
    """Say which sides of ``box`` are the detector's edges."""
    height, width = shape
    return (
        box.y0 == 0,
        box.y0 + box.height == height,
        box.x0 == 0,
        box.x0 + box.width == width,
    )
