"""PSF FWHM measured from the stars of an image without a PSF model.

`measure_psf_fwhm` works in four steps:

1. Detect at 10 sigma (positive, PSF-smoothed with a guessed FWHM of
   4 px, footprints not grown so that crowded neighbours stay apart)
   and keep single-peak footprints with S/N >= 30 whose stamp is on the
   image and free of BAD, SAT, NO_DATA, EDGE, INTRP, CR and SUSPECT
   pixels.
2. Measure adaptive second moments of the brightest 1000 (neighbouring
   footprints masked) and find the compact locus: the densest +-5 %
   window of the determinant radius, its members being the sources
   within 10 % of that window's median. Stars share one size; galaxies
   spread above it and cannot outnumber the stars within so narrow a
   window unless the stars are very few.
3. Fit the brightest (up to 50) locus members with a pixel-integrated
   circular Moffat of free index over the core, the pixels within one
   FWHM of the centre (`recreate.pipeline.sources.moffat`): that fixes the
   half-maximum width of Gaussian, Moffat and Kolmogorov profiles to
   about 1 %.
4. Return the 3-sigma clipped median (MAD-based) of the fitted FWHMs.

If the result differs from the guess by more than a factor 2, steps 1-4
run again with the measured FWHM smoothing the detection; should that
pass find too few stars (matched smoothing merges crowded neighbours),
the first result stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.errors import ProcessingError
from recreate.exposure import MaskPlanes
from recreate.pipeline.sources.detection import Detections, detect
from recreate.pipeline.sources.measure import (
    FWHM_PER_SIGMA,
    StampStack,
    cut_stamps,
    stamp_touches,
)
from recreate.pipeline.sources.moffat import fit_fwhm
from recreate.pipeline.sources.moments import adaptive_moments

FloatArray = npt.NDArray[np.float64]

#: Fewest usable stars for a measurement.
MIN_STARS = 5
#: Sources whose moments are measured, and stars fitted, at most
#: (brightest first).
MAX_MOMENT_SOURCES = 1000
MAX_FIT_STARS = 50
#: Detection threshold and the S/N a star must reach.
DETECTION_THRESHOLD = 10.0
MIN_STAR_SNR = 30.0
#: First guess of the FWHM in pixels, and the factor that triggers a rerun.
INITIAL_FWHM = 4.0
RERUN_FACTOR = 2.0
#: Planes no star stamp may touch.
STAR_BAD_PLANES = ("BAD", "SAT", "NO_DATA", "EDGE", "INTRP", "CR", "SUSPECT")
#: Half-width (natural log of the radius) of the densest window, and of
#: the locus around its median.
LOCUS_SEARCH = 0.05
LOCUS_WIDTH = 0.10

#: MAD to Gaussian sigma, and the clip in sigmas.
_MAD_TO_SIGMA = 1.4826
_CLIP_SIGMAS = 3.0


@dataclass(frozen=True, eq=False)
class StarSample:
    """Bright, isolated, clean sources and their adaptive-moment sizes.

    Attributes
    ----------
    stamps
        Stamps around each source (other footprints masked).
    snr
        Detection S/N.
    dx, dy
        Adaptive centroid offsets from the stamp centres.
    radius
        Adaptive-moment determinant radius in pixels (NaN if failed).
    trace
        Adaptive-moment ``ixx + iyy`` in pixels^2 (NaN if failed).
    """

    stamps: StampStack
    snr: FloatArray
    dx: FloatArray
    dy: FloatArray
    radius: FloatArray
    trace: FloatArray


def measure_psf_fwhm(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
) -> float:
    """Return the PSF FWHM in pixels, measured from the image's stars.

    Parameters
    ----------
    image, variance, mask
        The planes, of one 2-D shape; the image background-subtracted.
    planes
        Names of the mask bits.

    Returns
    -------
    fwhm
        Full width at half maximum of the PSF (before the pixel
        response) in pixels.

    Raises
    ------
    ProcessingError
        If fewer than `MIN_STARS` usable stars are found.
    ValueError
        If the planes differ in shape.
    """
    fwhm = _measure_once(image, variance, mask, planes, INITIAL_FWHM)
    if 1 / RERUN_FACTOR <= fwhm / INITIAL_FWHM <= RERUN_FACTOR:
        return fwhm
    try:
        return _measure_once(image, variance, mask, planes, fwhm)
    except ProcessingError:
        # Smoothing matched to a broad PSF merges crowded neighbours;
        # the first pass, which did find enough stars, stands.
        return fwhm


def star_sample(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    detections: Detections,
    rows: npt.NDArray[np.intp],
    half: int,
    sigma: float,
) -> StarSample:
    """Return stamps and adaptive moments of chosen detections.

    Parameters
    ----------
    image, variance, mask, planes
        The image the detections were made on.
    detections
        The detections.
    rows
        Which detections to measure.
    half
        Stamp half-side.
    sigma
        Starting weight width (the PSF sigma guess), pixels.

    Returns
    -------
    sample
        Stamps and moments, one per row.
    """
    bad = planes.value_of_present(STAR_BAD_PLANES)
    usable = (mask & bad) == 0
    stamps = cut_stamps(
        image,
        variance,
        usable,
        detections.peak_x[rows],
        detections.peak_y[rows],
        half,
        labels=detections.labels,
        own=rows + 1,
    )
    moments = adaptive_moments(stamps, sigma)
    return StarSample(
        stamps=stamps,
        snr=detections.snr[rows],
        dx=moments.dx,
        dy=moments.dy,
        radius=moments.radius,
        trace=moments.trace,
    )


def compact_locus(radius: FloatArray) -> npt.NDArray[np.bool_]:
    """Say which sizes belong to the compact (stellar) locus.

    Parameters
    ----------
    radius
        Sizes, e.g. adaptive determinant radii; NaN are never members.

    Returns
    -------
    members
        True within `LOCUS_WIDTH` (in log size) of the median of the
        densest window of half-width `LOCUS_SEARCH`; ties between
        windows go to the smaller size. All False for no finite size.
    """
    finite = np.isfinite(radius) & (radius > 0)
    members = np.zeros(len(radius), dtype=np.bool_)
    if not np.any(finite):
        return members
    logs = np.sort(np.log(radius[finite]))
    ends = np.searchsorted(logs, logs + 2 * LOCUS_SEARCH, side="right")
    best = int(np.argmax(ends - np.arange(len(logs))))
    center = float(np.median(logs[best : ends[best]]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return finite & (np.abs(np.log(radius) - center) <= LOCUS_WIDTH)


def _measure_once(
    image: npt.NDArray[np.floating],
    variance: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    guess: float,
) -> float:
    """Run steps 1-4 with ``guess`` as the detection FWHM."""
    detections = detect(
        image,
        variance,
        mask,
        planes,
        guess,
        DETECTION_THRESHOLD,
        polarity="positive",
        exclude_planes=("EDGE", "BAD", "NO_DATA"),
        grow=False,
    )
    half = math.ceil(3.0 * guess) + 2
    rows = _candidate_rows(detections, mask, planes, half)
    parts = (image, variance, mask, planes)
    sample = star_sample(
        *parts, detections, rows, half, guess / FWHM_PER_SIGMA
    )
    members = np.flatnonzero(compact_locus(sample.radius))
    if len(members) < MIN_STARS:
        raise ProcessingError(
            f"cannot measure the PSF: {len(members)} usable stars "
            f"(of {len(detections)} detections), need {MIN_STARS}"
        )
    # The rows, hence the members, are in order of decreasing S/N.
    chosen = members[:MAX_FIT_STARS]
    start = FWHM_PER_SIGMA * float(np.median(sample.radius[members]))
    # The fit needs a stamp reaching past the core: at least 1.5 FWHM.
    fit_half = math.ceil(1.5 * start) + 3
    if fit_half > half:
        sample = star_sample(
            *parts, detections, rows[chosen], fit_half, start / FWHM_PER_SIGMA
        )
        chosen = np.arange(len(chosen))
    stamps = sample.stamps
    fwhms = np.array(
        [
            fit_fwhm(
                stamps.values[i],
                stamps.variance[i],
                stamps.valid[i],
                (sample.dx[i], sample.dy[i]),
                start,
            )
            for i in chosen
        ]
    )
    fwhms = fwhms[np.isfinite(fwhms)]
    if len(fwhms) < MIN_STARS:
        raise ProcessingError(
            f"cannot measure the PSF: {len(fwhms)} star fits converged, "
            f"need {MIN_STARS}"
        )
    return _clipped_median(fwhms)


def _candidate_rows(
    detections: Detections,
    mask: npt.NDArray[np.integer],
    planes: MaskPlanes,
    half: int,
) -> npt.NDArray[np.intp]:
    """Return bright, single-peak, clean detections, brightest first.

    At most `MAX_MOMENT_SOURCES`; the detection order breaks S/N ties.
    """
    bad = (mask & planes.value_of_present(STAR_BAD_PLANES)) != 0
    clean = ~stamp_touches(bad, detections.peak_x, detections.peak_y, half)
    rows = np.flatnonzero(
        clean & (detections.n_peaks == 1) & (detections.snr >= MIN_STAR_SNR)
    )
    rows = rows[np.lexsort((rows, -detections.snr[rows]))]
    return rows[:MAX_MOMENT_SOURCES]


def _clipped_median(values: FloatArray) -> float:
    """Return the median after a 3-sigma (MAD) clip."""
    median = float(np.median(values))
    spread = _MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    if spread > 0:
        values = values[np.abs(values - median) <= _CLIP_SIGMAS * spread]
    return float(np.median(values))
