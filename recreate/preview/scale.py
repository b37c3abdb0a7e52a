"""Display limits and stretches: IRAF's zscale, and an asinh option.

`zscale_limits` is IRAF's ``zscale`` (the ``display`` task's default):
sort a regular sample of the good pixels, fit a straight line to the
sorted values against their rank with iterative k-sigma rejection (the
rejected points grown by 1% of the sample), and divide the slope by the
contrast. The limits are the line's values at the ends of the sample,
clipped to the sample's range; when too few points survive, the range
itself. Its defaults are IRAF's: contrast 0.25, 1000 samples, at most
half of them rejected, 2.5-sigma clipping, 5 iterations.

`stretch_to_bytes` maps values to 0..255: linearly between the zscale
limits (``zscale``), or through an arcsinh from the low zscale limit to
the brightest sampled pixel (``asinh``), which keeps faint structure
visible without saturating bright sources.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from recreate.errors import InvalidRequestError

__all__ = [
    "STRETCHES",
    "check_stretch",
    "grid_sample",
    "stretch_to_bytes",
    "zscale_limits",
]

#: The stretches a preview can have; the first is the default.
STRETCHES = ("zscale", "asinh")

#: IRAF zscale's parameters.
ZSCALE_CONTRAST = 0.25
ZSCALE_SAMPLES = 1000
ZSCALE_MAX_REJECT = 0.5
ZSCALE_MIN_PIXELS = 5
ZSCALE_KREJ = 2.5
ZSCALE_ITERATIONS = 5

#: The asinh softening, as a fraction of the display range (astropy's
#: AsinhStretch default).
ASINH_SOFTENING = 0.1


def check_stretch(name: str) -> str:
    """Return ``name`` if it is a stretch.

    Raises
    ------
    InvalidRequestError
        If it is not; the message names it and the choices.
    """
    if name not in STRETCHES:
        raise InvalidRequestError(
            f"unknown stretch {name!r}; choose one of {', '.join(STRETCHES)}"
        )
    return name


def grid_sample(
    values: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer] | None = None,
    bad_bits: int = 0,
    size: int = ZSCALE_SAMPLES,
) -> npt.NDArray[np.float64]:
    """Return about ``size`` finite values on a regular grid, sorted.

    The grid steps by the same number of pixels along both axes, so the
    sample is spread over the whole image, and deterministic. Pixels
    with any of ``bad_bits`` set in ``mask`` are left out.
    """
    step = max(1, math.isqrt(max(1, values.size // max(size, 1))))
    picked = values[::step, ::step].astype(np.float64)
    keep = np.isfinite(picked)
    if mask is not None and bad_bits:
        keep &= (mask[::step, ::step] & bad_bits) == 0
    return np.sort(picked[keep])


def zscale_limits(sample: npt.NDArray[np.float64]) -> tuple[float, float]:
    """Return IRAF's zscale display limits of a sorted sample.

    Parameters
    ----------
    sample
        Sorted finite values (`grid_sample`).

    Returns
    -------
    limits
        ``(z1, z2)``; ``(0, 0)`` for an empty sample.
    """
    npix = sample.size
    if npix == 0:
        return 0.0, 0.0
    zmin, zmax = float(sample[0]), float(sample[-1])
    center = (npix - 1) // 2
    median = (
        float(sample[center])
        if npix % 2
        else 0.5 * float(sample[center] + sample[center + 1])
    )
    min_pixels = max(ZSCALE_MIN_PIXELS, int(npix * ZSCALE_MAX_REJECT))
    if npix < min_pixels:
        return zmin, zmax
    fitted = _fit_line_rejecting(sample, min_pixels)
    if fitted is None:
        return zmin, zmax
    slope = fitted / ZSCALE_CONTRAST
    z1 = max(zmin, median - (center - 1) * slope)
    z2 = min(zmax, median + (npix - center) * slope)
    return z1, z2


def _fit_line_rejecting(
    sample: npt.NDArray[np.float64], min_pixels: int
) -> float | None:
    """Return the slope per rank of a line fitted with k-sigma rejection.

    None when fewer than ``min_pixels`` points survive the rejection.
    """
    npix = sample.size
    ranks = np.arange(npix, dtype=np.float64)
    good = np.ones(npix, dtype=bool)
    grow = max(1, int(npix * 0.01))
    kernel = np.ones(2 * grow + 1)
    n_good, last_good = npix, npix + 1
    slope = 0.0
    for _ in range(ZSCALE_ITERATIONS):
        if n_good >= last_good or n_good < min_pixels:
            break
        slope, intercept = _least_squares_line(ranks[good], sample[good])
        residuals = sample - (intercept + slope * ranks)
        sigma = float(np.std(residuals[good]))
        rejected = ~good | (np.abs(residuals) > ZSCALE_KREJ * sigma)
        # Rejected points stay rejected and take their neighbours with
        # them, as IRAF does.
        grown = np.convolve(rejected.astype(float), kernel, mode="same") > 0
        good = ~grown
        last_good, n_good = n_good, int(good.sum())
    if n_good < min_pixels:
        return None
    return float(slope)


def _least_squares_line(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Return the slope and intercept of the least-squares line."""
    x_mean, y_mean = float(x.mean()), float(y.mean())
    dx = x - x_mean
    slope = float(np.dot(dx, y - y_mean) / np.dot(dx, dx))
    return slope, y_mean - slope * x_mean


def stretch_to_bytes(
    values: npt.NDArray[np.floating],
    sample: npt.NDArray[np.float64],
    stretch: str,
) -> npt.NDArray[np.uint8]:
    """Map values to display bytes with the limits of ``sample``.

    Non-finite values become 0 (black).

    Raises
    ------
    InvalidRequestError
        If ``stretch`` is unknown.
    """
    check_stretch(stretch)
    low, high = zscale_limits(sample)
    if stretch == "asinh" and sample.size:
        high = max(high, float(sample[-1]))
    span = high - low if high > low else 1.0
    scaled = (np.asarray(values, np.float64) - low) / span
    if stretch == "asinh":
        scaled = np.arcsinh(scaled / ASINH_SOFTENING) / math.asinh(
            1.0 / ASINH_SOFTENING
        )
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
