"""A box's science, warped template and difference, from a solution.

The triplet preview (science, template, difference side by side) of a
region needs the two images the difference was made from, on the same
box. A render computes both already: the science window it reads and
the template warped on the tiles' window. `render_triplet` runs the
render's own steps (`recreate.solution.render`) once, keeps the warped
template it made, and cuts the three images to the box, so the
difference is the very Exposure `render` returns, bit for bit, and the
science and template cost no second read or warp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure, MaskPlanes
from recreate.numerics.box import PixelBox
from recreate.pipeline.template.window import TemplateWindow
from recreate.solution.model import Solution
from recreate.solution.render import (
    _template,
    detection_planes,
    parent_to_array,
    plan_for,
    predetection,
    region_exposure,
)
from recreate.solution.render_types import RenderInputs
from recreate.solution.tiles import Window

__all__ = ["Triplet", "render_triplet", "science_cut", "template_cut"]


@dataclass(frozen=True, eq=False)
class Triplet:
    """Science, warped template and difference on one box.

    Attributes
    ----------
    science
        The visit image's planes on the box (copies).
    template
        The warped template's planes on the box (on the science grid),
        its mask planes the template's.
    difference
        What `recreate.solution.render.render` returns for the box.

    All three have the box's ``xy0`` and the region's WCS.
    """

    science: Exposure
    template: Exposure
    difference: Exposure


def render_triplet(
    solution: Solution, inputs: RenderInputs, box: PixelBox
) -> Triplet:
    """Render a box of parent pixels with its science and template.

    Parameters
    ----------
    solution
        The detector's solution.
    inputs
        As `recreate.solution.render.render` takes them.
    box
        Parent pixels, inside the detector, not empty.

    Returns
    -------
    triplet
        The science and warped template cut to the box, and the
        difference: bit-identical to ``render(solution, inputs, box)``.

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    SolutionMismatchError
        If this code's recipe differs from the solution's.
    """
    plan = plan_for(solution, box)
    template = _template(solution, inputs, plan, solution.config())
    planes = predetection(solution, inputs, plan, template=template)
    difference = region_exposure(
        solution, inputs, detection_planes(solution, planes), plan.box
    )
    return Triplet(
        science=science_cut(solution, inputs.science, difference, box),
        template=template_cut(solution, template, difference, box),
        difference=difference,
    )


def science_cut(
    solution: Solution, science: Exposure, region: Exposure, box: PixelBox
) -> Exposure:
    """Return the visit image's planes on ``box`` (parent pixels).

    ``science`` is the visit image or a window of it holding the box;
    ``region`` gives the WCS, PSF and metadata of the box.

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    ValueError
        If ``science`` does not hold the box.
    """
    array_box = parent_to_array(solution, box)
    x0 = science.xy0[0] - solution.frame.xy0[0]
    y0 = science.xy0[1] - solution.frame.xy0[1]
    return _placed_like(
        region,
        (science.image, science.variance, science.mask),
        Window.at(science.image, x0, y0).box,
        array_box,
        science.mask_planes,
    )


def template_cut(
    solution: Solution,
    template: TemplateWindow,
    region: Exposure,
    box: PixelBox,
) -> Exposure:
    """Return the warped template's planes on ``box`` (parent pixels).

    ``template`` is the render's warped window (grown-grid pixels, its
    origin ``border`` pixels left of and below the detector's).

    Raises
    ------
    InvalidRequestError
        If the box is empty or leaves the detector.
    ValueError
        If the window does not hold the box.
    """
    array_box = parent_to_array(solution, box)
    border = solution.halos().border
    x0 = template.window.x0 - border
    y0 = template.window.y0 - border
    planes = template.planes
    return _placed_like(
        region,
        (planes.image, planes.variance, planes.mask),
        Window.at(planes.image, x0, y0).box,
        array_box,
        template.mask_planes,
    )


def _placed_like(
    region: Exposure,
    planes: tuple[
        npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.int32]
    ],
    where: PixelBox,
    box: PixelBox,
    mask_planes: MaskPlanes,
) -> Exposure:
    """Return ``box`` of planes lying on ``where``, placed as ``region``."""
    image, variance, mask = (
        Window(plane, where).cut(box).copy() for plane in planes
    )
    return Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=mask_planes,
        wcs=region.wcs,
        xy0=region.xy0,
        psf=region.psf,
        photo_calib=region.photo_calib,
        observation=region.observation,
    )
