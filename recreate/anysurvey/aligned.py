"""The template of pixel-aligned inputs: placed, not warped.

Some pairs come already on one pixel grid, often without a sky WCS
(ip_diffim's own test pair is two afw MaskedImages with only their xy0
cards). With ``aligned`` the template's array pixel (i, j) *is* the
science's (i, j), as ip_diffim's test takes them (it sets both xy0 to
0): `aligned_template` puts the template on the science grid grown by
GetTemplate's border, with no interpolation at all, and marks the
border NO_DATA as GetTemplate marks pixels no patch covers. A recipe
that flags HIGH_VARIANCE (``dp2``) gets the plane as a warped template
does. The rest of the recipe is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recreate.errors import InvalidRequestError, NoOverlapError
from recreate.exposure import Exposure
from recreate.pipeline.config import TemplateConfig
from recreate.pipeline.template import WarpedTemplate
from recreate.pipeline.template.build import _grown_wcs
from recreate.pipeline.template.high_variance import (
    flag_high_variance,
    high_variance_levels,
)


def aligned_template(
    science: Exposure,
    templates: Sequence[Exposure],
    config: TemplateConfig,
) -> WarpedTemplate:
    """Return the template of pixel-aligned inputs on the grown grid.

    Parameters
    ----------
    science
        The science image (its WCS, if any, is carried over).
    templates
        Exactly one template, of the science image's shape.
    config
        Supplies the border and the coverage limits.

    Returns
    -------
    template
        The template on the science grid grown by ``config.border``;
        image NaN, variance +inf and NO_DATA in the border and where the
        template itself has NO_DATA.

    Raises
    ------
    InvalidRequestError
        If there is not exactly one template, or its shape differs.
    NoOverlapError
        If the template has data on less than the required fraction of
        the science image.
    """
    if len(templates) != 1:
        raise InvalidRequestError(
            f"--aligned takes exactly one template, not {len(templates)}"
        )
    (template,) = templates
    if template.shape != science.shape:
        raise InvalidRequestError(
            f"--aligned: template shape {template.shape} differs from the "
            f"science shape {science.shape}"
        )
    border = config.border
    planes = template.mask_planes.with_planes("NO_DATA")
    no_data = np.int32(planes.value("NO_DATA"))
    height, width = science.shape
    grown = (height + 2 * border, width + 2 * border)
    image = np.full(grown, np.nan, dtype=np.float32)
    variance = np.full(grown, np.inf, dtype=np.float32)
    mask = np.full(grown, no_data, dtype=np.int32)
    inner = (slice(border, border + height), slice(border, border + width))
    missing = (template.mask & no_data) != 0
    image[inner] = np.where(missing, np.nan, template.image)
    variance[inner] = np.where(missing, np.inf, template.variance)
    mask[inner] = template.mask
    levels = None
    if config.high_variance is not None:
        levels, flagged = high_variance_levels(
            variance, mask, planes, config.high_variance
        )
        mask, planes = flag_high_variance(mask, planes, flagged)
    coverage = float(1.0 - np.count_nonzero(missing) / missing.size)
    if coverage < config.required_fraction:
        raise NoOverlapError(
            f"the aligned template has data on {100.0 * coverage:.1f}% of "
            f"the science image; need >= {100.0 * config.required_fraction:g}%"
        )
    exposure = Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=None if science.wcs is None else _grown_wcs(science.wcs, border),
        xy0=(science.xy0[0] - border, science.xy0[1] - border),
        psf=template.psf,
        photo_calib=template.photo_calib,
        observation=template.observation,
    )
    corners = np.array(
        [
            [-0.5, -0.5],
            [width - 0.5, -0.5],
            [width - 0.5, height - 0.5],
            [-0.5, height - 0.5],
        ]
    )
    return WarpedTemplate(
        exposure=exposure,
        coverage=coverage,
        psf_fwhm=None if template.psf is None else template.psf.fwhm,
        patch_bounds=(corners,),
        warnings=(),
        high_variance=levels,
    )
