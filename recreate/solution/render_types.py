"""The types a render takes and gives (`recreate.solution.render`).

`RenderInputs` (what a render reads of the inputs, `ScienceImage` the
visit image's image plane on a wider window than the rest), `Planes`
(a difference's planes on a box) and `SolvedMasks` (masks a solve made
that a render of the same window would make again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure, MaskPlanes
from recreate.io.region import ImageGeometry
from recreate.numerics.box import PixelBox


@dataclass(frozen=True, eq=False)
class ScienceImage:
    """The visit image's image plane on a window.

    Attributes
    ----------
    pixels
        The window's pixels.
    xy0
        Its first pixel, in the parent frame.
    """

    pixels: npt.NDArray[np.float32]
    xy0: tuple[int, int]


@dataclass(frozen=True, eq=False)
class RenderInputs:
    """What a render reads of the inputs.

    Attributes
    ----------
    science
        The visit image, whole or a window of it (its ``xy0`` in the
        parent frame) holding at least the detection box's pixels
        (`RenderPlan.detection`): the only ones whose variance and mask
        a render reads. Its image plane must hold all a render reads of
        it (`needed_science_box`) unless ``science_image`` is given.
    geometry
        The whole visit image's WCS, ``xy0`` and shape, as its reader
        gives them (the template's geometry is computed on it).
    patches
        The template patches, whole or cut-outs holding what the render
        reads.
    science_image
        The image plane on a window holding `needed_science_box`, where
        ``science`` holds less (a stamp's tiles need the image over
        them, the variance and mask only around the stamp); None: the
        image of ``science``.
    """

    science: Exposure
    geometry: ImageGeometry
    patches: Sequence[Exposure]
    science_image: ScienceImage | None = None


@dataclass(frozen=True, eq=False)
class Planes:
    """A difference image's planes on a box (science array pixels)."""

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    planes: MaskPlanes
    box: PixelBox


@dataclass(frozen=True, eq=False)
class SolvedMasks:
    """Masks a solve made that a render of the same window remakes.

    Attributes
    ----------
    template
        The warped template's mask in the difference's planes
        (`prepared_template_bits`), on the template window.
    difference
        The difference's mask before detection on ``plan.detection``:
        the science mask and the template mask grown by the kernel.
    """

    template: npt.NDArray[np.int32]
    difference: npt.NDArray[np.int32]


__all__ = ["Planes", "RenderInputs", "ScienceImage", "SolvedMasks"]
