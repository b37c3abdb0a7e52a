"""The steps of a solve that run side by side.

The science image's side (`prepare_science`): ScaleVariance on the
science image, its prepared mask, its PSF size and the detection of the
kernel-candidate sources read the visit image alone, so a solve runs
them beside the template warp (`recreate.numerics.threads.beside`). The
template's side (`template_and_variance`): its ScaleVariance runs beside
its last steps (the HIGH_VARIANCE plane, which it ignores). Each step is
the one the serial solve makes, on the same arrays, so the values are
the same whether it ran beside another or after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure, MaskPlanes
from recreate.numerics.threads import beside
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.match.variance import scale_variance
from recreate.pipeline.prepare import prepared_science_mask, science_psf_fwhm
from recreate.pipeline.sources import Detections, detect_candidate_sources
from recreate.pipeline.template import (
    WarpedTemplate,
    finish_template,
    merge_template,
)


@dataclass(frozen=True, eq=False)
class PreparedScience:
    """The science image's inputs to the kernel fit and the levels.

    Attributes
    ----------
    variance_factor
        The ScaleVariance factor (1 when the recipe does not scale).
    variance
        The scaled variance plane (float32).
    mask
        The science mask in the difference image's planes.
    fwhm
        The science PSF FWHM in pixels.
    notes
        Provenance notes of these steps (a PSF measured from stars).
    detections
        The kernel-candidate detections; None when no kernel is fitted.
    """

    variance_factor: float
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    fwhm: float
    notes: tuple[str, ...]
    detections: Detections | None


def scaled_variance(
    exposure: Exposure, config: PipelineConfig
) -> tuple[npt.NDArray[np.float32], float]:
    """Return an image's variance after ScaleVariance, and the factor.

    The plane as float32 with factor 1 when the recipe does not scale.

    Raises
    ------
    ProcessingError
        If ScaleVariance fails.
    """
    return scaled_planes_variance(
        (exposure.image, exposure.variance, exposure.mask),
        exposure.mask_planes,
        config,
    )


def scaled_planes_variance(
    planes: tuple[
        npt.NDArray[np.floating],
        npt.NDArray[np.floating],
        npt.NDArray[np.integer],
    ],
    mask_planes: MaskPlanes,
    config: PipelineConfig,
) -> tuple[npt.NDArray[np.float32], float]:
    """Return `scaled_variance` of an image, variance and mask.

    Raises
    ------
    ProcessingError
        If ScaleVariance fails.
    """
    image, variance, mask = planes
    if not config.subtract.do_scale_variance:
        return np.asarray(variance, np.float32), 1.0
    return scale_variance(image, variance, mask, mask_planes, config.subtract)


def prepare_science(
    science: Exposure,
    planes: MaskPlanes,
    config: PipelineConfig,
    *,
    find_sources: bool,
) -> PreparedScience:
    """Run the science image's steps of a solve (module notes).

    Parameters
    ----------
    science
        The visit image as read.
    planes
        The difference image's mask planes.
    config
        The recipe.
    find_sources
        Whether to detect the kernel-candidate sources (a fit follows).

    Returns
    -------
    prepared
        What the fit and the decorrelation levels need of the science.

    Raises
    ------
    ProcessingError
        If ScaleVariance fails, or the PSF cannot be measured.
    """
    variance, factor = scaled_variance(science, config)
    mask = prepared_science_mask(science.mask, planes)
    notes: list[str] = []
    fwhm = science_psf_fwhm(science, notes)
    detections = None
    if find_sources:
        detections = detect_candidate_sources(
            replace(science, variance=variance, mask=mask, mask_planes=planes),
            fwhm,
            config.sources,
        )
    return PreparedScience(
        factor, variance, mask, fwhm, tuple(notes), detections
    )


def template_and_variance(
    science: Exposure,
    patches: Sequence[Exposure],
    config: PipelineConfig,
    warped: WarpedTemplate | None,
) -> tuple[WarpedTemplate, tuple[npt.NDArray[np.float32], float]]:
    """Return the warped template and its ScaleVariance (and factor).

    ScaleVariance ignores HIGH_VARIANCE, so it runs on the merged planes
    beside `finish_template`, which adds that plane (DP2) from the whole
    template's variance background. ``warped``: a template given already
    (``patches`` unused).

    Raises
    ------
    NoOverlapError, FormatError, InvalidRequestError
        As `recreate.pipeline.template.build_template`.
    ProcessingError
        If ScaleVariance fails.
    """
    if warped is not None:
        return warped, scaled_variance(warped.exposure, config)
    merged = merge_template(science, patches, config.template)
    planes = merged.planes
    with beside(
        partial(
            scaled_planes_variance,
            (planes.image, planes.variance, planes.mask),
            merged.mask_planes,
            config,
        )
    ) as scaled:
        template = finish_template(merged, config.template)
        return template, scaled()
