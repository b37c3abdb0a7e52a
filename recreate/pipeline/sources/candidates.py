"""Sources for difference imaging: kernel candidates, and the stage API.

The kernel-candidate selection; its detection is
`recreate.pipeline.sources.detection`, its PSF widths
`recreate.pipeline.sources.psfsize`.

Kernel candidates (v29 AlardLuptonSubtractTask, DP1)
----------------------------------------------------
DP1 selected kernel sources from the ``src`` catalogue, which is not
public; with ``allowKernelSourceDetection`` v29 falls back to detecting
on the science image, which is what we always do:

1. Detect on the science image at ``detection_threshold`` (10) sigma,
   positive, excluding EDGE, with afw's ``stdev`` threshold (MakeKernel's
   ``selectDetection`` keeps SourceDetectionTask's default type). DP1
   visit images are background-subtracted, so the temporary background
   MakeKernel subtracts first is not repeated.
2. ScienceSourceSelector, as AlardLuptonSubtractTask configures it:

   * signal-to-noise: ``detection_threshold < S/N < detection_threshold_max``
     (10 < S/N < 500, strict as meas_algorithms' limits are), S/N being
     the Gaussian-PSF flux over its error;
   * isolated: one peak in the footprint (``parent == 0`` and
     ``deblend_nChild == 0``: not a blend); ``detect_isPrimary`` adds
     nothing on a single detector without deblending;
   * unresolved: adaptive-moment size within 0.8-1.1 times the PSF's
     (`recreate.pipeline.sources.unresolved`);
   * no ``exclude_mask_planes`` bit at the centroid pixel
     (``rint(x), rint(y)``) or its 8 neighbours, in the science mask or
     the template mask (their OR, plane by plane by name); off-image
     neighbours count as bad.
3. If more than ``max_sources`` pass, keep the highest S/N (ties: lower
   detection index first).
4. MakeKernel's stamps: a square of side ``2 * kernel_size + 1`` centred
   on ``floor(x + 0.5), floor(y + 0.5)``; rejected if it leaves the
   science image or the template (the science grid grown by ``border``)
   or holds a ``stamp_reference_mask_planes`` pixel (NO_DATA, EDGE, SAT)
   in either mask. v29 checks the science mask only; we also check the
   template's, whose remaining planes (after updateMasks) are NO_DATA
   and BAD, so that no stamp reaches template pixels with no data.
5. Fewer than ``min_sources`` left is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.exposure import Exposure, MaskPlanes
from recreate.pipeline.config import SourceConfig
from recreate.pipeline.sources.detection import (
    Detections,
    detect,
)
from recreate.pipeline.sources.unresolved import unresolved

FloatArray = npt.NDArray[np.float64]

#: Planes kernel-candidate detection excludes (MakeKernel selectDetection).
CANDIDATE_DETECTION_EXCLUDE = ("EDGE",)


@dataclass(frozen=True, eq=False)
class KernelCandidates:
    """Sources whose stamps the kernel fit uses, highest S/N first.

    Attributes
    ----------
    x, y
        Centroids in science array pixels.
    snr, flux
        Gaussian-PSF S/N and flux (science image units).
    n_detected
        Positive footprints detected on the science image.
    n_after_selection
        Sources passing the catalogue cuts and the ``max_sources`` cap,
        before the stamp checks.
    """

    x: FloatArray
    y: FloatArray
    snr: FloatArray
    flux: FloatArray
    n_detected: int
    n_after_selection: int

    def __len__(self) -> int:
        """Return the number of candidates."""
        return len(self.x)


def select_kernel_candidates(
    science: Exposure,
    template_image: npt.NDArray[np.floating],
    template_mask: npt.NDArray[np.integer],
    template_planes: MaskPlanes,
    *,
    border: int,
    kernel_size: int,
    science_fwhm: float,
    config: SourceConfig,
) -> KernelCandidates:
    """Select PSF-matching kernel sources as v29 did (module notes).

    Parameters
    ----------
    science
        The science exposure (image, variance, mask, PSF grid if any).
    template_image, template_mask, template_planes
        The warped template on the science grid grown by ``border``:
        template pixel ``[j + border, i + border]`` is science ``[j, i]``.
    border
        Template border in pixels.
    kernel_size
        Kernel side in pixels; stamps are ``2 * kernel_size + 1`` wide.
    science_fwhm
        Science PSF FWHM in pixels (detection smoothing).
    config
        Thresholds, limits and mask planes.

    Returns
    -------
    candidates
        The candidates, highest S/N first.

    Raises
    ------
    ProcessingError
        If fewer than ``config.min_sources`` candidates survive.
    ValueError
        If the template is not the science grid grown by ``border``.
    """
    height, width = science.shape
    expected = (height + 2 * border, width + 2 * border)
    if template_image.shape != expected or template_mask.shape != expected:
        raise ValueError(
            f"template shape {template_image.shape} (mask "
            f"{template_mask.shape}) is not the science shape grown by "
            f"{border}: {expected}"
        )
    detections = detect(
        science.image,
        science.variance,
        science.mask,
        science.mask_planes,
        science_fwhm,
        config.detection_threshold,
        polarity="positive",
        exclude_planes=CANDIDATE_DETECTION_EXCLUDE,
        threshold_type="stdev",
    )
    keep = (
        (detections.snr > config.detection_threshold)
        & (detections.snr < config.detection_threshold_max)
        & (detections.n_peaks == 1)
    )
    keep &= _clean_centroids(
        detections,
        (science.mask, science.mask_planes),
        (template_mask, template_planes),
        border,
        config.exclude_mask_planes,
    )
    rows = np.flatnonzero(keep)
    rows = rows[unresolved(science, detections, rows, science_fwhm)]
    rows = rows[np.lexsort((rows, -detections.snr[rows]))]
    rows = rows[: config.max_sources]
    n_after_selection = len(rows)
    rows = rows[
        _stamps_usable(
            detections.x[rows],
            detections.y[rows],
            (science.mask, science.mask_planes),
            (template_mask, template_planes),
            border,
            kernel_size,
            config.stamp_reference_mask_planes,
        )
    ]
    if len(rows) < config.min_sources:
        raise ProcessingError(
            f"only {len(rows)} kernel candidates (need "
            f"{config.min_sources}): {len(detections)} detected, "
            f"{n_after_selection} passed the source selection"
        )
    return KernelCandidates(
        x=detections.x[rows],
        y=detections.y[rows],
        snr=detections.snr[rows],
        flux=detections.flux[rows],
        n_detected=len(detections),
        n_after_selection=n_after_selection,
    )


def _clean_centroids(
    detections: Detections,
    science: tuple[npt.NDArray[np.integer], MaskPlanes],
    template: tuple[npt.NDArray[np.integer], MaskPlanes],
    border: int,
    planes: tuple[str, ...],
) -> npt.NDArray[np.bool_]:
    """Say which centroids have no excluded plane in their 3x3 pixels."""
    cx = np.rint(detections.x).astype(np.int64)
    cy = np.rint(detections.y).astype(np.int64)
    clean = np.ones(len(cx), dtype=np.bool_)
    for (mask, mask_planes), offset in ((science, 0), (template, border)):
        bits = mask_planes.value_of_present(planes)
        height, width = mask.shape
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                x, y = cx + dx + offset, cy + dy + offset
                inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                values = mask[
                    np.clip(y, 0, height - 1), np.clip(x, 0, width - 1)
                ]
                clean &= inside & ((values & bits) == 0)
    return clean


def _stamps_usable(
    x: FloatArray,
    y: FloatArray,
    science: tuple[npt.NDArray[np.integer], MaskPlanes],
    template: tuple[npt.NDArray[np.integer], MaskPlanes],
    border: int,
    kernel_size: int,
    planes: tuple[str, ...],
) -> npt.NDArray[np.bool_]:
    """Say which kernel stamps lie in both images and avoid bad planes."""
    cx = np.floor(x + 0.5).astype(np.int64)
    cy = np.floor(y + 0.5).astype(np.int64)
    usable = np.ones(len(cx), dtype=np.bool_)
    for (mask, mask_planes), offset in ((science, 0), (template, border)):
        bits = mask_planes.value_of_present(planes)
        height, width = mask.shape
        x0, y0 = cx + offset - kernel_size, cy + offset - kernel_size
        x1, y1 = x0 + 2 * kernel_size + 1, y0 + 2 * kernel_size + 1
        usable &= (x0 >= 0) & (y0 >= 0) & (x1 <= width) & (y1 <= height)
        if not bits:
            continue
        # At most max_sources stamps: a loop costs milliseconds.
        for k in np.flatnonzero(usable):
            stamp = mask[y0[k] : y1[k], x0[k] : x1[k]]
            usable[k] = not np.any(stamp & bits)
    return usable
