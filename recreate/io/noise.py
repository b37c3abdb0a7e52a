"""Estimate a variance plane for an image that comes without one."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError, InvalidRequestError

#: sigma / MAD for a Gaussian: 1 / Phi^-1(3/4).
MAD_TO_SIGMA = 1.482602218505602
#: Fewest usable pixels for a noise estimate worth the name.
MIN_NOISE_PIXELS = 25
_CLIP_SIGMA = 3.0
_MAX_CLIP_ITERATIONS = 10


def estimate_variance(
    image: npt.NDArray[np.floating],
    mask: npt.NDArray[np.integer] | None,
    gain: float | None = None,
) -> tuple[npt.NDArray[np.float32], str]:
    """Estimate per-pixel variance from the image's own sky noise.

    The sky term is the square of a robust sigma: the median absolute
    deviation about the median, scaled to a Gaussian sigma, after
    iterative 3-sigma clipping so that sources do not inflate it. With a
    ``gain`` the sources' Poisson term ``(image - sky) / gain`` is added
    where the image is above the sky level; without one it is left out,
    which under-weights nothing but the bright sources themselves.

    Parameters
    ----------
    image
        Pixel values, in counts (ADU) when ``gain`` is given.
    mask
        Integer mask; pixels with any bit set are left out of the noise
        estimate. None uses every finite pixel.
    gain
        Electrons per unit of pixel value, if known.

    Returns
    -------
    variance
        float32 variance in the square of the image's unit; +inf where
        the image is not finite (zero weight).
    description
        One line saying how the variance was estimated, for metadata.

    Raises
    ------
    InvalidRequestError
        If ``gain`` is not a positive number, or the mask's shape differs.
    FormatError
        If fewer than 25 usable pixels remain, or they are all equal, so
        that no noise can be measured.
    """
    pixels = np.asarray(image, dtype=np.float64)
    usable = _usable_pixels(pixels, mask)
    sky, sigma, count = clipped_sky(pixels[usable])
    variance = np.full(pixels.shape, sigma**2, dtype=np.float64)
    description = (
        f"estimated: sky sigma {sigma:.6g} (3-sigma-clipped MAD of "
        f"{count} px, sky level {sky:.6g})"
    )
    if gain is not None:
        if not (np.isfinite(gain) and gain > 0):
            raise InvalidRequestError(f"gain {gain} is not positive")
        excess = np.clip(np.nan_to_num(pixels - sky), 0.0, None)
        variance += excess / gain
        description += f" + Poisson (image - sky) / gain {gain:.6g}"
    variance[~np.isfinite(pixels)] = np.inf
    return variance.astype(np.float32), description


def _usable_pixels(
    pixels: npt.NDArray[np.float64], mask: npt.NDArray[np.integer] | None
) -> npt.NDArray[np.bool_]:
    """Return where pixels are finite and unmasked."""
    usable = np.isfinite(pixels)
    if mask is not None:
        if np.shape(mask) != pixels.shape:
            raise InvalidRequestError(
                f"mask shape {np.shape(mask)} differs from image shape "
                f"{pixels.shape}"
            )
        usable &= np.asarray(mask) == 0
    return usable


def clipped_sky(values: npt.NDArray[np.float64]) -> tuple[float, float, int]:
    """Return the sky level, robust sigma and pixel count after clipping.

    Parameters
    ----------
    values
        Finite sky-dominated pixel values.

    Returns
    -------
    sky, sigma, count
        Median and MAD-based sigma of the pixels within 3 sigma of the
        median, and how many those are. (Clipping a Gaussian at 3 sigma
        biases its MAD by only 0.1%, so no correction is applied.)

    Raises
    ------
    FormatError
        If there are too few values, or no scatter among them.
    """
    if values.size < MIN_NOISE_PIXELS:
        raise FormatError(
            f"only {values.size} usable pixels: too few to estimate noise"
        )
    kept = values
    for _ in range(_MAX_CLIP_ITERATIONS):
        sky = float(np.median(kept))
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(kept - sky)))
        if sigma == 0.0:
            break
        clipped = values[np.abs(values - sky) <= _CLIP_SIGMA * sigma]
        if clipped.size == kept.size:
            break
        kept = clipped
    if not sigma > 0.0:
        raise FormatError("image has no scatter: cannot estimate its noise")
    return sky, sigma, int(kept.size)
