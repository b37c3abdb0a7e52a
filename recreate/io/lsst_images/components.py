"""The PSF, matching kernel and template provenance, as ``lsst.images``.

The PSF becomes a Gaussian of our FWHM, the `KernelModel` an
image-basis kernel with Chebyshev weights, and each
`TemplateProvenance` a template info clipped to the image.
"""

from __future__ import annotations

import math
import uuid

import lsst.images as li
import numpy as np
from lsst.images import convolution_kernels, fields, psfs

from recreate.errors import FormatError
from recreate.exposure import PsfInfo
from recreate.io.lsst_images.model import (
    KernelModel,
    TemplateProvenance,
    chebyshev_terms,
)

#: FWHM / sigma of a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Half-width of the Gaussian PSF stamp, in sigmas.
PSF_STAMP_SIGMAS = 5.0


def _gaussian_psf(
    psf: PsfInfo, bbox: li.Box
) -> psfs.GaussianPointSpreadFunction:
    """Return a circular Gaussian PSF of our FWHM, valid on the image."""
    sigma = psf.fwhm / FWHM_PER_SIGMA
    stamp_size = 2 * math.ceil(PSF_STAMP_SIGMAS * sigma) + 1
    return psfs.GaussianPointSpreadFunction(
        sigma, bounds=bbox, stamp_size=stamp_size
    )


def _to_kernel(
    kernel: KernelModel, xy0: tuple[int, int]
) -> convolution_kernels.ImageBasisConvolutionKernel:
    """Return the kernel as ``lsst.images`` Chebyshev-weighted images.

    The fields are defined on the kernel's box moved to the parent frame,
    where ``lsst.images`` evaluates them; they map its outer pixel edges
    to [-1, 1] as `KernelModel` does, so the two agree exactly.

    Parameters
    ----------
    kernel
        The kernel, in array pixels.
    xy0
        The image's origin in the parent frame.

    Returns
    -------
    kernel
        The same kernel, in parent pixels.
    """
    x0, y0, width, height = kernel.bbox
    start_x, start_y = x0 + xy0[0], y0 + xy0[1]
    bbox = li.Box.factory[
        start_y : start_y + height, start_x : start_x + width
    ]
    terms = chebyshev_terms(kernel.order)
    spatial = []
    for coefficients in kernel.coefficients:
        # ChebyshevField's matrix holds the coefficient of T_p(y) T_q(x)
        # at [p, q].
        matrix = np.zeros((kernel.order + 1, kernel.order + 1))
        for (p, q), value in zip(terms, coefficients, strict=True):
            matrix[p, q] = value
        spatial.append(fields.ChebyshevField(bbox, matrix))
    return convolution_kernels.ImageBasisConvolutionKernel(
        np.array(kernel.basis), spatial
    )


def _template_info(
    template: TemplateProvenance, bbox: li.Box, xy0: tuple[int, int]
) -> li.DifferenceImageTemplateInfo | None:
    """Return one template's provenance, its bounds clipped to the image.

    A patch found for the detector grown by GetTemplate's 20-px border
    may cover only that border: it gave no pixel of the image, and
    lsst.images cannot store an empty overlap, so it is left out (None).

    Raises
    ------
    FormatError
        If the template's overlap with the image is not a single polygon.
    """
    label = f"template tract {template.tract} patch {template.patch}"
    polygon = li.Polygon(
        x_vertices=template.bounds_xy[:, 0] + xy0[0],
        y_vertices=template.bounds_xy[:, 1] + xy0[1],
    )
    try:
        overlap = polygon.intersection(li.Polygon.from_box(bbox))
    except li.NoOverlapError:
        return None
    if not isinstance(overlap, li.Polygon):
        raise FormatError(f"{label} overlaps the image in several pieces")
    moments = (
        template.psf_shape_xx,
        template.psf_shape_yy,
        template.psf_shape_xy,
    )
    return li.DifferenceImageTemplateInfo(
        skymap=template.skymap,
        tract=template.tract,
        patch=template.patch,
        dataset_id=uuid.UUID(template.dataset_id),
        dataset_run=template.dataset_run,
        bounds=overlap,
        psf_shape_xx=template.psf_shape_xx,
        psf_shape_yy=template.psf_shape_yy,
        psf_shape_xy=template.psf_shape_xy,
        psf_shape_flag=not all(math.isfinite(m) for m in moments),
        instrument=template.instrument,
    )
