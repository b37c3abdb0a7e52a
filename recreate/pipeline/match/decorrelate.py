"""DMTN-021 decorrelation of an Alard-Lupton difference image.

Convolving the template with the matching kernel correlates its noise,
so the plain difference has correlated noise and a PSF that differs
from the science PSF's noise response. v29's DecorrelateALKernelTask
undoes the correlation with a filter applied in Fourier space:

    corr(k) = sqrt((s + t * (sum K)^2) / (s + t * |K(k)|^2))

where ``s`` and ``t`` are afw's MEANCLIP (3 sigma, 3 iterations, started
from the median and interquartile range) of the science variance and of
the warped (unconvolved) template variance, and ``K`` is the matching kernel
evaluated once, at the image centre. DMTN-021 (eq. 1) and ip_diffim write
the numerator ``s + t``, which assumes ``sum K = 1``; with the kernel sum
in it, as here, ``corr(0) = 1`` exactly, so the filter never changes a
source's flux whatever the photometric scaling between the images.
The variance plane is replaced by ``w1 * V_science + w2 * V_template``
with ``w1 = mean |corr|^2`` and ``w2 = mean |K corr|^2`` over the FFT
grid (``shared/rubin-recipe.md`` section 1.5). The PSF is *not* changed,
as in v29.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import scipy.fft

from recreate.exposure import MaskPlanes
from recreate.numerics.fft import centred_rfft2, irfft2, rfft2
from recreate.numerics.robust import clipped_mean_std_of_plane
from recreate.numerics.threads import thread_count


@dataclass(frozen=True)
class DecorrelationResult:
    """The decorrelated image and variance, and the numbers behind them."""

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    science_variance: float
    template_variance: float
    science_weight: float
    template_weight: float


def decorrelate(
    difference: npt.NDArray[np.float32],
    science_variance: npt.NDArray[np.float32],
    template_variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    kernel: npt.NDArray[np.float64],
    ignore_planes: tuple[str, ...],
) -> DecorrelationResult:
    """Decorrelate a difference image (DMTN-021, as v29 applies it).

    Parameters
    ----------
    difference
        The difference image, science grid.
    science_variance
        The science image's variance plane (after ScaleVariance).
    template_variance
        The warped, *unconvolved* template's variance on the science grid.
    mask
        The difference image's mask: pixels with ``ignore_planes`` set do
        not enter the variance levels.
    planes
        Plane names of ``mask``.
    kernel
        The matching kernel at the image centre.
    ignore_planes
        Planes excluded from the variance levels.

    Returns
    -------
    result
        Decorrelated image and variance (float32) and the levels and
        weights used.
    """
    usable = (mask & planes.value_of_present(ignore_planes)) == 0
    svar, tvar = _variance_levels(science_variance, template_variance, usable)
    shape = _fft_shape(difference.shape, kernel.shape)
    kernel_ft, ksum = _kernel_transform(kernel, shape)
    correction, w1, w2 = _correction_and_weights(
        kernel_ft, svar, tvar, ksum, shape[1]
    )
    image = _filter(difference, correction, shape)
    # float32 throughout: a full detector's planes are 65 MB each, and
    # the weights need no more precision than the variances carry.
    variance = np.float32(w1) * science_variance
    variance += np.float32(w2) * template_variance
    return DecorrelationResult(
        image=image,
        variance=variance.astype(np.float32, copy=False),
        science_variance=svar,
        template_variance=tvar,
        science_weight=w1,
        template_weight=w2,
    )


def decorrelated_psf(
    psf: npt.NDArray[np.float64],
    kernel: npt.NDArray[np.float64],
    science_variance: float,
    template_variance: float,
) -> npt.NDArray[np.float64]:
    """Return the PSF of a decorrelated difference image.

    Decorrelation filters the image, so a point source in the difference
    has the science PSF *filtered*: ``P_D(k) = P(k) corr(k)``. v29 leaves
    the science PSF on the difference image (DM-47461), as do we, to
    match DP1; measurements that need the true PSF can use this.

    Parameters
    ----------
    psf
        The science PSF image (odd sides, centred).
    kernel
        The matching kernel at the image centre.
    science_variance, template_variance
        The levels used by `decorrelate` (`DecorrelationResult`).

    Returns
    -------
    psf
        The filtered PSF, same shape, unit sum.
    """
    shape = _fft_shape(psf.shape, kernel.shape)
    kernel_ft, ksum = _kernel_transform(kernel, shape)
    correction = np.sqrt(
        (science_variance + template_variance * ksum**2)
        / (science_variance + template_variance * np.abs(kernel_ft) ** 2)
    )
    padded = np.zeros(shape, dtype=np.float64)
    py, px = psf.shape
    padded[:py, :px] = psf
    padded = np.roll(padded, (-(py // 2), -(px // 2)), axis=(0, 1))
    filtered = scipy.fft.irfft2(scipy.fft.rfft2(padded) * correction, s=shape)
    out = np.roll(filtered, (py // 2, px // 2), axis=(0, 1))[:py, :px]
    return out / out.sum()


def _kernel_transform(
    kernel: npt.NDArray[np.float64], shape: tuple[int, int]
) -> tuple[npt.NDArray[np.complexfloating[Any, Any]], float]:
    """Return the kernel's half spectrum on ``shape`` and the kernel's sum.

    Single precision: ``|K|^2`` is needed to ~1e-7 of the kernel sum, far
    beyond what the variance levels it is compared with carry.
    """
    kernel_ft = centred_rfft2(kernel.astype(np.float32), shape, thread_count())
    return kernel_ft, float(np.sum(kernel, dtype=np.float64))


def _variance_levels(
    science_variance: npt.NDArray[np.float32],
    template_variance: npt.NDArray[np.float32],
    usable: npt.NDArray[np.bool_],
) -> tuple[float, float]:
    """Return the MEANCLIP levels of both variance planes.

    One after the other: each holds a float64 copy of a whole plane and
    its clipped subset, and side by side they would set the pipeline's
    peak memory for a tenth of a second saved.
    """
    science = clipped_mean_std_of_plane(science_variance, usable)[0]
    template = clipped_mean_std_of_plane(template_variance, usable)[0]
    return science, template


def _correction_and_weights(
    kernel_ft: npt.NDArray[np.complexfloating[Any, Any]],
    science_level: float,
    template_level: float,
    kernel_sum: float,
    n_cols: int,
) -> tuple[npt.NDArray[np.float32], float, float]:
    """Return the filter on the half spectrum and its two mean responses.

    ``w1`` and ``w2`` are the means of ``corr**2`` and ``|K|**2 corr**2``
    over the full FFT grid: ``rfft2`` keeps columns ``0 .. n/2`` of an
    ``n``-column grid, and every column but the first and (``n`` even)
    the last stands for itself and its mirror. One compiled pass, in
    float64, with per-row sums added pairwise; the filter is returned in
    float32, the precision it is applied in.
    """
    correction, row_sums = _correction_rows(
        kernel_ft, science_level, template_level, kernel_sum, n_cols
    )
    size = kernel_ft.shape[0] * n_cols
    # Each column of sums made contiguous, so numpy adds it pairwise.
    totals = np.ascontiguousarray(row_sums.T).sum(axis=1)
    return correction, float(totals[0]) / size, float(totals[1]) / size


@numba.njit(cache=True, nogil=True)
def _correction_rows(
    kernel_ft: npt.NDArray[np.complexfloating[Any, Any]],
    science_level: float,
    template_level: float,
    kernel_sum: float,
    n_cols: int,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    """Return the float32 filter and each row's weighted sums (see above)."""
    rows, cols = kernel_ft.shape
    numerator = science_level + template_level * kernel_sum * kernel_sum
    correction = np.empty((rows, cols), dtype=np.float32)
    sums = np.zeros((rows, 2))
    for r in range(rows):
        s1 = 0.0
        s2 = 0.0
        for c in range(cols):
            value = kernel_ft[r, c]
            re = np.float64(value.real)
            im = np.float64(value.imag)
            power = re * re + im * im
            squared = numerator / (science_level + template_level * power)
            correction[r, c] = np.float32(np.sqrt(squared))
            mirrored = c == 0 or (n_cols % 2 == 0 and c == cols - 1)
            weight = 1.0 if mirrored else 2.0
            s1 += weight * squared
            s2 += weight * power * squared
        sums[r, 0] = s1
        sums[r, 1] = s2
    return correction, sums


def _fft_shape(
    image_shape: tuple[int, ...], kernel_shape: tuple[int, ...]
) -> tuple[int, int]:
    """Return the FFT grid: at least v29's, rounded up to a fast size.

    v29 uses the two shapes summed less one, made even: for a DP1
    detector that is 4106 x 4034, and 4106 = 2 x 2053 (a prime) makes
    the FFT several times slower. Any grid at least that large holds the
    same linear filtering without wrap-around; the filter's sampling in
    k changes at the 1e-4 level of its real-space tail, far below noise.
    """
    rows = image_shape[0] + kernel_shape[0] - 1
    cols = image_shape[1] + kernel_shape[1] - 1
    return _fast_even(rows), _fast_even(cols)


def _fast_even(length: int) -> int:
    """Return the smallest even length >= ``length`` that FFTs fast."""
    size = scipy.fft.next_fast_len(length + length % 2, real=True)
    while size % 2:
        size = scipy.fft.next_fast_len(size + 1, real=True)
    return int(size)


def _filter(
    image: npt.NDArray[np.float32],
    correction: npt.NDArray[np.float32],
    shape: tuple[int, int],
) -> npt.NDArray[np.float32]:
    """Apply a real Fourier filter to an image, NaNs held at the mean.

    Non-finite pixels are replaced by the mean of the finite ones for the
    transform (as v29 does with nanmean) and restored afterwards.
    """
    # Single precision: the transform's relative error (~1e-7 of the
    # brightest residual) is far below the noise, and it halves the
    # memory and time of the largest arrays in the pipeline.
    bad = ~np.isfinite(image)
    filled = image
    if bad.any():
        good = image[~bad]
        fill = float(np.mean(good, dtype=np.float64)) if good.size else 0.0
        filled = np.where(bad, np.float32(fill), image)
    spectrum = rfft2(filled, workers=thread_count(), shape=shape)
    spectrum *= correction
    result = irfft2(spectrum, shape, workers=thread_count(), keep=image.shape)
    result = result.astype(np.float32, copy=False)
    result[bad] = image[bad]
    return result
