"""Prepare a subtraction's inputs (AlardLuptonSubtractTask._prepareInputs).

After the template is built (ScaleVariance is in
`recreate.solution.solve`): ``updateMasks`` (the science detection
planes cleared; in the template only ``preserve_template_mask`` kept and
SAT copied to SAT_TEMPLATE); the PSF sizes of both images.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recreate.exposure import Exposure, MaskPlanes
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.sources import measure_psf_fwhm
from recreate.pipeline.template import WarpedTemplate

#: Planes the difference image has beyond the science image's own (and
#: the template planes the recipe preserves).
DIFFERENCE_PLANES = ("SAT_TEMPLATE", "DETECTED", "DETECTED_NEGATIVE")
#: Template planes copied under a new name (updateMasks' rename).
RENAMED_TEMPLATE_PLANES = ("SAT_TEMPLATE",)
#: Science planes cleared before subtraction (updateMasks).
CLEARED_SCIENCE_PLANES = ("DETECTED", "DETECTED_NEGATIVE")


def difference_planes(
    science: MaskPlanes, config: PipelineConfig
) -> MaskPlanes:
    """Return the difference image's planes.

    The science image's, the renamed and detection planes, and the
    preserved template planes (DP2's HIGH_VARIANCE).
    """
    return science.with_planes(
        *DIFFERENCE_PLANES, *config.subtract.preserve_template_mask
    )


def grown_template_planes(config: PipelineConfig) -> tuple[str, ...]:
    """Return the template planes the convolution grows by the kernel.

    The preserved ones and SAT_TEMPLATE.
    """
    return (*config.subtract.preserve_template_mask, *RENAMED_TEMPLATE_PLANES)


def prepared_science_mask(
    mask: npt.NDArray[np.int32], planes: MaskPlanes
) -> npt.NDArray[np.int32]:
    """Return the science mask with its detection planes cleared."""
    cleared = planes.value_of_present(CLEARED_SCIENCE_PLANES)
    return mask & ~np.int32(cleared)


def prepared_template_mask(
    template: Exposure, planes: MaskPlanes, config: PipelineConfig
) -> npt.NDArray[np.int32]:
    """Return the template mask in the difference's planes (updateMasks).

    Renamed planes (SAT -> SAT_TEMPLATE) are copied; of the rest only
    ``preserve_template_mask`` (NO_DATA, BAD) survive. Bits are mapped by
    plane name: the template's bit numbers may differ from the science's.
    """
    return prepared_template_bits(
        template.mask, template.mask_planes, planes, config
    )


def prepared_template_bits(
    mask: npt.NDArray[np.int32],
    source: MaskPlanes,
    planes: MaskPlanes,
    config: PipelineConfig,
) -> npt.NDArray[np.int32]:
    """Return `prepared_template_mask` of a mask with planes ``source``."""
    out = np.zeros(mask.shape, dtype=np.int32)
    kept = [(n, n) for n in config.subtract.preserve_template_mask]
    renamed = [
        (n, f"{n}_TEMPLATE") for n in config.subtract.rename_template_mask
    ]
    for name, target in kept + renamed:
        if name in source and target in planes:
            on = (mask & source.value(name)) != 0
            out[on] |= np.int32(planes.value(target))
    return out


def psf_sizes(
    science: Exposure, template: WarpedTemplate, notes: list[str]
) -> tuple[float, float]:
    """Return the science and template PSF FWHMs in science pixels.

    Each comes from the PSF model where the input has one, and is measured
    from the stars otherwise (and the provenance says so).
    """
    return science_psf_fwhm(science, notes), template_psf_fwhm(template, notes)


def science_psf_fwhm(science: Exposure, notes: list[str]) -> float:
    """Return `psf_sizes`'s science FWHM, noting a measured one."""
    if science.psf is not None:
        return science.psf.fwhm
    fwhm = measure_psf_fwhm(
        science.image, science.variance, science.mask, science.mask_planes
    )
    notes.append(f"science PSF FWHM measured from stars: {fwhm:.3f} px")
    return fwhm


def template_psf_fwhm(template: WarpedTemplate, notes: list[str]) -> float:
    """Return `psf_sizes`'s template FWHM, noting a measured one."""
    if template.psf_fwhm is not None:
        return template.psf_fwhm
    warped = template.exposure
    fwhm = measure_psf_fwhm(
        warped.image, warped.variance, warped.mask, warped.mask_planes
    )
    notes.append(f"template PSF FWHM measured from stars: {fwhm:.3f} px")
    return fwhm
