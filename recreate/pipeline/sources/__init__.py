"""Sources: detection, footprints, measurement, PSF size, kernel candidates.

``detection``, ``footprints``, ``footprint_runs``
    afw-style thresholded detection and footprint growth.
``measure``, ``moments``, ``moffat``
    Centroids, second moments, Moffat fits.
``psfsize``
    The PSF width of an image, from its PSF model or from its stars.
``unresolved``, ``candidates``
    The unresolved cut and the kernel-candidate selection (S/N, isolation,
    clean stamps inside both images).
"""

from __future__ import annotations

from recreate.pipeline.sources.candidates import (
    KernelCandidates,
    detect_candidate_sources,
    select_kernel_candidates,
)
from recreate.pipeline.sources.detection import (
    Detections,
    detect,
    set_detection_planes,
)
from recreate.pipeline.sources.psfsize import measure_psf_fwhm

__all__ = [
    "Detections",
    "KernelCandidates",
    "detect",
    "detect_candidate_sources",
    "measure_psf_fwhm",
    "select_kernel_candidates",
    "set_detection_planes",
]
