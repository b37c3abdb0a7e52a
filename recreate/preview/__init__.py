"""PNG previews of difference images, triplets and regions.

A difference image, a science/template/difference triplet, any
region's FITS (a SODA cutout), or a light curve's stamps side by side,
stretched (IRAF zscale, or asinh), reduced by block means to at most
1024 pixels a side, masked pixels tinted and detections outlined;
written by a small deterministic PNG encoder.

``scale``
    zscale limits (IRAF's algorithm) and the stretches.
``render``
    Block means, tints, outlines, the triplet's and the strip's layout.
``png``
    The encoder (zlib, no imaging library).
``images``
    What the format registry and the cutout faces call.
"""

from __future__ import annotations

from recreate.preview.images import (
    difference_png,
    fits_to_png,
    image_png,
    strip_png,
    triplet_png,
)
from recreate.preview.render import PreviewLayout, preview_layout
from recreate.preview.scale import STRETCHES, check_stretch, zscale_limits

__all__ = [
    "STRETCHES",
    "PreviewLayout",
    "check_stretch",
    "difference_png",
    "fits_to_png",
    "image_png",
    "preview_layout",
    "strip_png",
    "triplet_png",
    "zscale_limits",
]
