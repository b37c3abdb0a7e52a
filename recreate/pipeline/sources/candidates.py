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
   * unresolved: ``base_ClassificationSizeExtendedness_value`` below
     ``unresolved_max_extendedness`` (0.1), from adaptive moments
     (`recreate.pipeline.sources.unresolved`);
   * ``mask_check == "centroid"`` (v29): no ``exclude_mask_planes`` bit
     at the centroid pixel (``rint(x), rint(y)``) or its 8 neighbours,
     in the science mask or the template mask (their OR, plane by plane
     by name); off-image neighbours count as bad.
     ``mask_check == "box"`` (v30, DP2): no such bit anywhere in the
     ``2 * kernel_size + 1`` box around the source, checked in the
     science mask and in the template mask separately, the box inside
     the science bbox, shrunk by ``kernel_size`` when
     ``restrict_edge_sources``. Both precede the trim, as in each
     version.
3. If more than ``max_sources`` pass, keep the highest S/N (ties: lower
   detection index first).
4. MakeKernel's stamps: a square of side ``2 * kernel_size + 1`` centred
   on ``floor(x + 0.5), floor(y + 0.5)``; rejected if it leaves the
   science image or the template (the science grid grown by ``border``)
   or holds a ``stamp_reference_mask_planes`` pixel (NO_DATA, EDGE, SAT)
   in either mask. v29 checks the science mask only; we also check the
   template's, whose remaining planes (after updateMasks) are NO_DATA
   and BAD, so that no stamp reaches template pixels with no data.
5. Fewer than ``min_sources`` left: with ``fallback_selector`` (v30)
   steps 2-4 run again without the isolation cut (v30's fallback
   selector, applied to a fresh 10-sigma detection on the science image,
   which is what step 1 already is); then, or without it, too few is an
   error.
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
    detections: Detections | None = None,
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
    detections
        What `detect_candidate_sources` found on ``science`` (step 1),
        when the caller ran it already; detected here otherwise.

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
    if detections is None:
        detections = detect_candidate_sources(science, science_fwhm, config)
    selection = _Selection(
        science,
        detections,
        (template_mask, template_planes),
        border,
        kernel_size,
        science_fwhm,
        config,
    )
    rows = selection.select(isolated=True)
    if len(rows) < config.min_sources and config.fallback_selector:
        # v30: too few stars -> detect again and take the fallback
        # selector (no isolation cut) on what that finds. Our stars
        # always come from detection, so it is the same detections.
        rows = selection.select(isolated=False)
    n_after_selection = len(rows)
    rows = selection.usable_stamps(rows)
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


def detect_candidate_sources(
    science: Exposure, science_fwhm: float, config: SourceConfig
) -> Detections:
    """Detect the kernel-candidate sources on the science image (step 1).

    It needs the science image alone, so a solve may run it while the
    template is warped.

    Parameters
    ----------
    science
        The science exposure, with its scaled variance and prepared mask.
    science_fwhm
        Science PSF FWHM in pixels (detection smoothing).
    config
        The detection threshold.

    Returns
    -------
    detections
        The positive footprints above ``config.detection_threshold``.
    """
    return detect(
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


MaskAndPlanes = tuple[npt.NDArray[np.integer], MaskPlanes]


@dataclass(frozen=True, eq=False)
class _Selection:
    """The selector's cuts on one set of detections (module notes)."""

    science: Exposure
    detections: Detections
    template: MaskAndPlanes
    border: int
    kernel_size: int
    science_fwhm: float
    config: SourceConfig

    @property
    def masks(self) -> tuple[MaskAndPlanes, MaskAndPlanes]:
        """The science, then the template mask with its planes."""
        return (self.science.mask, self.science.mask_planes), self.template

    def select(self, *, isolated: bool) -> npt.NDArray[np.intp]:
        """Return the rows the selector keeps, highest S/N first.

        Steps 2 and 3 of the module notes; ``isolated`` applies the
        isolation (single-peak) cut: the main selector does, v30's
        fallback selector does not.
        """
        detections, config = self.detections, self.config
        keep = (detections.snr > config.detection_threshold) & (
            detections.snr < config.detection_threshold_max
        )
        if isolated:
            keep &= detections.n_peaks == 1
        if config.mask_check == "box":
            keep &= _clean_boxes(
                detections,
                self.masks,
                self.border,
                self.kernel_size,
                config,
            )
        else:
            keep &= _clean_centroids(
                detections,
                *self.masks,
                self.border,
                config.exclude_mask_planes,
            )
        rows = np.flatnonzero(keep)
        rows = rows[
            unresolved(
                self.science,
                detections,
                rows,
                self.science_fwhm,
                config.unresolved_max_extendedness,
            )
        ]
        rows = rows[np.lexsort((rows, -detections.snr[rows]))]
        return rows[: config.max_sources]

    def usable_stamps(
        self, rows: npt.NDArray[np.intp]
    ) -> npt.NDArray[np.intp]:
        """Return the rows whose MakeKernel stamps are usable (step 4)."""
        usable = _stamps_usable(
            self.detections.x[rows],
            self.detections.y[rows],
            *self.masks,
            self.border,
            self.kernel_size,
            self.config.stamp_reference_mask_planes,
        )
        return rows[usable]


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


def _clean_boxes(
    detections: Detections,
    masks: tuple[MaskAndPlanes, MaskAndPlanes],
    border: int,
    kernel_size: int,
    config: SourceConfig,
) -> npt.NDArray[np.bool_]:
    """Say which kernel boxes are clean in each mask (v30 ``checkMask``).

    The box is the ``2 k + 1`` square v30 gives each source
    (``setSourceFootprints``), centred as MakeKernel's stamps are. It
    must lie inside the science bbox, shrunk by ``k`` when
    ``restrict_edge_sources``, and hold no ``exclude_mask_planes`` bit
    in the science mask, nor (separately) in the template mask over the
    same science-frame box.
    """
    k = kernel_size
    cx = np.floor(detections.x + 0.5).astype(np.int64)
    cy = np.floor(detections.y + 0.5).astype(np.int64)
    (science_mask, _), _ = masks
    height, width = science_mask.shape
    inset = k if config.restrict_edge_sources else 0
    x0, y0 = cx - k, cy - k
    x1, y1 = x0 + 2 * k + 1, y0 + 2 * k + 1
    clean = (
        (x0 >= inset)
        & (y0 >= inset)
        & (x1 <= width - inset)
        & (y1 <= height - inset)
    )
    for (mask, mask_planes), offset in zip(masks, (0, border), strict=True):
        bits = mask_planes.value_of_present(config.exclude_mask_planes)
        if not bits:
            continue
        for i in np.flatnonzero(clean):
            box = mask[
                y0[i] + offset : y1[i] + offset,
                x0[i] + offset : x1[i] + offset,
            ]
            clean[i] = not np.any(box & bits)
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
