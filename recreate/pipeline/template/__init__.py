"""GetTemplateTask: the template coadd warped onto the science grid.

``build``
    The stage: choose the patches, merge them per tract, warp, stitch,
    coverage checks (`build_template`: `merge_template`, then
    `finish_template`, which a solve overlaps with ScaleVariance).
``patches``, ``tracts``
    Patch cut-outs and their per-tract merge with variance^-1/2 weights.
``warp``, ``warp_rows``, ``lanczos``
    afw's Warper: lanczos3 image and variance, bilinear mask, the WCS
    interpolated on a coarse grid; the compiled row loops.
"""

from __future__ import annotations

from recreate.pipeline.template.build import (
    MergedTemplate,
    WarpedTemplate,
    build_template,
    finish_template,
    merge_template,
)

__all__ = [
    "MergedTemplate",
    "WarpedTemplate",
    "build_template",
    "finish_template",
    "merge_template",
]
