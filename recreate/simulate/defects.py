"""Detector defects, as they look after Rubin's processing.

A processed ``visit_image`` does not show cosmic rays or bad columns as
raw charge: ISR interpolates over known defects (masked BAD and INTRP)
and the CR finder interpolates over the cosmic rays it detects (masked
CR and INTRP). These functions reproduce that end state on a rendered
image: they add the defect, then "repair" it the way the pipeline
would, and return the truth of what they did so tests can check masks.

Everything draws from the `numpy.random.Generator` it is given, so the
same generator state gives the same defects, pixel for pixel. The
arrays are modified in place.

The repair is `recreate.simulate.repair`'s interpolation from the
nearest usable pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.simulate.repair import (
    FloatArray,
    Image,
    IntArray,
    interpolate_along_rows,
    interpolate_both_ways,
    usable_pixels,
)

#: Default cosmic-ray rate per million pixels in one 30 s visit: some
#: 30 hits on a 16 Mpx detector, the order of magnitude ground-based
#: CCDs see from muons and local radioactivity at 2.7 km altitude.
DEFAULT_CR_RATE_PER_MPIX = 2.0

#: Fraction of cosmic rays that are curly electron "worms" rather than
#: straight muon tracks.
WORM_FRACTION = 0.25

#: Sensor thickness over pixel size (100 um / 10 um for LSST CCDs): a
#: muon at zenith angle t leaves a track ``10 * tan(t)`` pixels long.
THICKNESS_IN_PIXELS = 10.0

#: Longest straight track drawn, in pixels.
MAX_TRACK_LENGTH = 120.0

#: Range of the charge deposited per pixel of path, in units of the
#: image's sky noise (log-uniform): from barely detectable to
#: hundreds of sigma, as muons crossing 100 um of silicon deposit.
DEPOSIT_RANGE_SKY_SIGMA = (3.0, 300.0)

#: Spacing of the points that rasterise a path, in pixels.
_PATH_STEP = 0.1

#: Planes whose pixels take no cosmic-ray charge (already clipped or
#: replaced) and never serve as interpolation sources.
_UNUSABLE_PLANES = ("BAD", "SAT", "NO_DATA")


@dataclass(frozen=True, eq=False)
class CosmicRayTruth:
    """What `add_cosmic_rays` did.

    Parameters
    ----------
    n_rays
        Number of cosmic rays.
    hit_x, hit_y
        Array positions of every pixel that received charge.
    deposit
        Charge each hit pixel received, in image units (nJy).
    repaired_x, repaired_y
        Pixels detected (grown), masked CR and INTRP and interpolated.
        Hit pixels not among them keep their charge, as faint cosmic-ray
        edges do in processed images.
    """

    n_rays: int
    hit_x: IntArray
    hit_y: IntArray
    deposit: FloatArray
    repaired_x: IntArray
    repaired_y: IntArray

    @property
    def left_in_image(self) -> npt.NDArray[np.bool_]:
        """Whether each hit pixel kept its charge (was not repaired).

        These faint remnants are in the processed image as a real one's
        are: a difference image shows them, and a detection on one is a
        cosmic ray, not noise.
        """
        return ~np.isin(
            _pixel_keys(self.hit_y, self.hit_x),
            _pixel_keys(self.repaired_y, self.repaired_x),
        )


@dataclass(frozen=True, eq=False)
class BadColumnTruth:
    """What `add_bad_columns` did.

    Parameters
    ----------
    columns
        Array x index of each bad column.
    y_start, y_stop
        Rows ``[y_start, y_stop)`` that are bad in each column: the full
        height, or a segment running from a defect to one edge.
    """

    columns: IntArray
    y_start: IntArray
    y_stop: IntArray


def add_cosmic_rays(
    image: Image,
    variance: Image,
    mask: npt.NDArray[np.int32],
    rng: np.random.Generator,
    rate_per_mpix: float = DEFAULT_CR_RATE_PER_MPIX,
    *,
    detect_nsigma: float = 5.0,
    grow: int = 1,
    planes: MaskPlanes | None = None,
) -> CosmicRayTruth:
    """Add cosmic rays, then detect and repair them as the pipeline does.

    Each ray is a straight track (a muon, of length drawn from the
    ``cos^2`` zenith distribution) or, with probability
    `WORM_FRACTION`, a curly worm (an electron). Charge is laid along
    the path with bilinear sharing, so tracks have soft edges. Pixels
    whose deposit exceeds ``detect_nsigma`` times their noise are
    "detected"; the detection is grown by ``grow`` pixels, masked CR and
    INTRP, and interpolated over. Undetected charge stays in the image.

    Parameters
    ----------
    image, variance, mask
        The planes to modify in place (nJy, nJy^2, int32 bits).
    rng
        Source of the randomness; its state advances.
    rate_per_mpix
        Mean number of cosmic rays per million pixels (Poisson).
    detect_nsigma
        Detection threshold in units of each pixel's noise.
    grow
        Growth of the detected footprint, in pixels (Chebyshev).
    planes
        Mask planes; afw defaults when not given.

    Returns
    -------
    truth
        The hits, their charge and the repaired pixels.

    Raises
    ------
    ValueError
        If the planes differ in shape or are not 2-D, a parameter is
        negative, or the variance has no positive finite value to scale
        the deposits by.
    """
    _check_planes(image, variance, mask)
    if rate_per_mpix < 0 or detect_nsigma < 0 or grow < 0:
        raise ValueError(
            f"rate {rate_per_mpix}, detect_nsigma {detect_nsigma} and grow "
            f"{grow} must be >= 0"
        )
    planes = planes or MaskPlanes.afw_default()
    height, width = image.shape
    n_rays = int(rng.poisson(rate_per_mpix * height * width / 1e6))
    sigma = _sky_sigma(variance)
    paths = [_cosmic_ray_path(rng, image.shape) for _ in range(n_rays)]
    low, high = DEPOSIT_RANGE_SKY_SIGMA
    amplitudes = sigma * np.exp(
        rng.uniform(math.log(low), math.log(high), n_rays)
    )
    hit_y, hit_x, deposit = _rasterise(paths, amplitudes, image.shape)
    unusable = planes.value_of_present(_UNUSABLE_PLANES)
    lands = (mask[hit_y, hit_x] & unusable) == 0
    hit_y, hit_x, deposit = hit_y[lands], hit_x[lands], deposit[lands]
    image[hit_y, hit_x] += deposit.astype(np.float32)
    noise = np.sqrt(variance[hit_y, hit_x].astype(np.float64))
    detected = deposit > detect_nsigma * noise
    rep_y, rep_x = _grow(hit_y[detected], hit_x[detected], grow, image.shape)
    keep = (mask[rep_y, rep_x] & unusable) == 0
    rep_y, rep_x = rep_y[keep], rep_x[keep]
    mask[rep_y, rep_x] |= planes.value("CR", "INTRP")
    usable = usable_pixels(
        mask, planes.value_of_present((*_UNUSABLE_PLANES, "CR"))
    )
    interpolate_both_ways(image, variance, usable, rep_y, rep_x)
    return CosmicRayTruth(
        n_rays=n_rays,
        hit_x=hit_x,
        hit_y=hit_y,
        deposit=deposit,
        repaired_x=rep_x,
        repaired_y=rep_y,
    )


def add_bad_columns(
    image: Image,
    variance: Image,
    mask: npt.NDArray[np.int32],
    rng: np.random.Generator,
    n_columns: int = 3,
    *,
    partial_fraction: float = 0.5,
    planes: MaskPlanes | None = None,
) -> BadColumnTruth:
    """Mark bad columns BAD and INTRP and interpolate over them, as ISR.

    Columns are distinct and drawn uniformly. With probability
    ``partial_fraction`` a column is bad only from a random row to one
    edge of the array (a charge trap upstream of the readout), else over
    its full height. Values are replaced by a linear interpolation along
    the row between the nearest good columns.

    Parameters
    ----------
    image, variance, mask
        The planes to modify in place (nJy, nJy^2, int32 bits).
    rng
        Source of the randomness; its state advances.
    n_columns
        Number of bad columns.
    partial_fraction
        Probability that a column is bad over part of its height only.
    planes
        Mask planes; afw defaults when not given.

    Returns
    -------
    truth
        The columns and the rows that are bad in each.

    Raises
    ------
    ValueError
        If the planes differ in shape or are not 2-D, ``n_columns`` is
        negative or exceeds the width, or ``partial_fraction`` is
        outside [0, 1].
    """
    _check_planes(image, variance, mask)
    height, width = image.shape
    if not 0 <= n_columns <= width:
        raise ValueError(f"n_columns {n_columns} must be in [0, {width}]")
    if not 0.0 <= partial_fraction <= 1.0:
        raise ValueError(
            f"partial_fraction {partial_fraction} must be in [0, 1]"
        )
    planes = planes or MaskPlanes.afw_default()
    columns = np.sort(rng.choice(width, size=n_columns, replace=False))
    partial = rng.uniform(size=n_columns) < partial_fraction
    defect_row = rng.integers(0, height, size=n_columns)
    towards_top = rng.uniform(size=n_columns) < 0.5
    y_start = np.where(partial & towards_top, defect_row, 0)
    y_stop = np.where(partial & ~towards_top, defect_row + 1, height)
    bad_y, bad_x = _column_pixels(columns, y_start, y_stop)
    mask[bad_y, bad_x] |= planes.value("BAD", "INTRP")
    usable = usable_pixels(mask, planes.value_of_present(("BAD", "NO_DATA")))
    interpolate_along_rows(image, variance, usable, bad_y, bad_x)
    return BadColumnTruth(
        columns=columns.astype(np.intp),
        y_start=y_start.astype(np.intp),
        y_stop=y_stop.astype(np.intp),
    )


def _cosmic_ray_path(
    rng: np.random.Generator, shape: tuple[int, int]
) -> FloatArray:
    """Return the points ``(x, y)`` of one ray's path, shape ``(n, 2)``."""
    height, width = shape
    start = rng.uniform((-0.5, -0.5), (width - 0.5, height - 0.5))
    heading = rng.uniform(0.0, 2.0 * math.pi)
    if rng.uniform() < WORM_FRACTION:
        return start + _worm_offsets(rng, heading)
    return start + _track_offsets(rng, heading)


def _track_offsets(rng: np.random.Generator, heading: float) -> FloatArray:
    """Return points of a straight muon track from the origin."""
    # Muon zenith angles follow cos^2: cos(t) = U^(1/3) samples it.
    cos_t = rng.uniform() ** (1.0 / 3.0)
    tan_t = math.sqrt(max(1.0 - cos_t**2, 0.0)) / max(cos_t, 1e-9)
    length = min(THICKNESS_IN_PIXELS * tan_t, MAX_TRACK_LENGTH)
    steps = np.arange(0.0, length + _PATH_STEP, _PATH_STEP)
    direction = np.array([math.cos(heading), math.sin(heading)])
    return steps[:, None] * direction[None, :]


def _worm_offsets(rng: np.random.Generator, heading: float) -> FloatArray:
    """Return points of a curly electron track (a persistent walk)."""
    length = rng.uniform(8.0, 40.0)
    n = int(length / _PATH_STEP)
    # Small random turns at every step make the path wander and curl.
    turns = rng.normal(0.0, 0.12, n)
    angles = heading + np.cumsum(turns)
    steps = _PATH_STEP * np.column_stack([np.cos(angles), np.sin(angles)])
    return np.cumsum(steps, axis=0)


def _rasterise(
    paths: list[FloatArray],
    amplitudes: FloatArray,
    shape: tuple[int, int],
) -> tuple[IntArray, IntArray, FloatArray]:
    """Share the charge of path points among pixels (bilinearly).

    Each point carries ``amplitude * step`` so a pixel crossed along a
    row receives about ``amplitude``. Returns ``(y, x, charge)`` of the
    hit pixels inside the array, each pixel once.
    """
    height, width = shape
    if not paths:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy(), np.zeros(0)
    points = np.concatenate(paths)
    charge = np.concatenate(
        [
            np.full(len(p), a * _PATH_STEP)
            for p, a in zip(paths, amplitudes, strict=True)
        ]
    )
    x0, y0 = np.floor(points[:, 0]), np.floor(points[:, 1])
    fx, fy = points[:, 0] - x0, points[:, 1] - y0
    corners = (
        (0, 0, (1 - fx) * (1 - fy)),
        (1, 0, fx * (1 - fy)),
        (0, 1, (1 - fx) * fy),
        (1, 1, fx * fy),
    )
    xs = np.concatenate([x0 + dx for dx, _, _ in corners]).astype(np.intp)
    ys = np.concatenate([y0 + dy for _, dy, _ in corners]).astype(np.intp)
    weights = np.concatenate([charge * w for _, _, w in corners])
    inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
    flat = ys[inside] * width + xs[inside]
    pixels, where = np.unique(flat, return_inverse=True)
    deposit = np.bincount(where, weights=weights[inside])
    hit = deposit > 0
    return pixels[hit] // width, pixels[hit] % width, deposit[hit]


def _grow(
    ys: IntArray, xs: IntArray, grow: int, shape: tuple[int, int]
) -> tuple[IntArray, IntArray]:
    """Return the pixels within ``grow`` (Chebyshev) of the given ones."""
    height, width = shape
    offsets = np.arange(-grow, grow + 1)
    dy, dx = (o.ravel() for o in np.meshgrid(offsets, offsets))
    gy = (ys[:, None] + dy[None, :]).ravel()
    gx = (xs[:, None] + dx[None, :]).ravel()
    inside = (gx >= 0) & (gx < width) & (gy >= 0) & (gy < height)
    flat = np.unique(gy[inside] * width + gx[inside])
    return flat // width, flat % width


def _pixel_keys(ys: IntArray, xs: IntArray) -> npt.NDArray[np.int64]:
    """Return one integer per ``(y, x)`` pixel, equal for equal pixels."""
    return (ys.astype(np.int64) << 32) | xs.astype(np.int64)


def _column_pixels(
    columns: IntArray, y_start: IntArray, y_stop: IntArray
) -> tuple[IntArray, IntArray]:
    """Return ``(y, x)`` of every pixel of the bad column segments."""
    ys = [np.arange(a, b) for a, b in zip(y_start, y_stop, strict=True)]
    xs = [np.full(len(y), c) for y, c in zip(ys, columns, strict=True)]
    if not ys:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()
    return np.concatenate(ys), np.concatenate(xs)


def _sky_sigma(variance: Image) -> float:
    """Return the typical noise of a pixel (median over a subsample)."""
    sample = variance[::8, ::8].astype(np.float64)
    sample = sample[np.isfinite(sample) & (sample > 0)]
    if len(sample) == 0:
        raise ValueError("variance has no positive finite value")
    return float(np.sqrt(np.median(sample)))


def _check_planes(
    image: Image, variance: Image, mask: npt.NDArray[np.int32]
) -> None:
    """Reject planes of different shapes or of the wrong rank."""
    if image.ndim != 2 or not image.shape == variance.shape == mask.shape:
        raise ValueError(
            "image, variance and mask must be 2-D of one shape; got "
            f"{image.shape}, {variance.shape}, {mask.shape}"
        )
