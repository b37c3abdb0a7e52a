"""DMTN-021 decorrelation of an Alard-Lupton difference image.

Convolving the template with the matching kernel correlates its noise,
so the plain difference has correlated noise and a PSF that differs
from the science PSF's noise response. v29's DecorrelateALKernelTask
undoes the correlation with the filter

    corr(k) = sqrt((s + t * (sum K)^2) / (s + t * |K(k)|^2))

where ``s`` and ``t`` are afw's MEANCLIP (3 sigma, 3 iterations, started
from the median and interquartile range) of the science variance and of
the warped (unconvolved) template variance (`variance_levels`), and
``K`` is the matching kernel evaluated once, at the image centre.
DMTN-021 (eq. 1) and ip_diffim write the numerator ``s + t``, which
assumes ``sum K = 1``; with the kernel sum in it, as here, ``corr(0) =
1`` exactly, so the filter never changes a source's flux whatever the
photometric scaling between the images.

v29 applies the filter in Fourier space over the whole image, which
makes every output pixel depend on every input pixel (and NaN pixels on
the image's mean). Here it is a real-space kernel (`decorrelation_kernel`):
the filter's transform on a fine grid, cut to the matching kernel's box
and normalised to unit sum. Its energy beyond that box is ~1e-11 of
the whole for DP1-like depths (the filter is smooth in k, so its kernel
is compact; `DecorrelationKernel.truncation` records it), so the image
is the same to far below the noise, and a pixel depends only on the
difference within the box around it: a render of any region gives the
whole image's bits. NaN pixels are held at 0 (the difference's
expected level) rather than at the image mean.

The variance plane is replaced by ``w1 * V_science + w2 * V_template``
with ``w1 = sum D^2`` and ``w2 = sum (K * D)^2`` for the kernel ``D``
applied (by Parseval, v29's means of ``|corr|^2`` and ``|K corr|^2``
over the FFT grid; ``shared/rubin-recipe.md`` section 1.5). The PSF is
*not* changed, as in v29.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from recreate.exposure import MaskPlanes
from recreate.numerics.fft import centred_rfft2
from recreate.numerics.robust import clipped_mean_std_of_plane
from recreate.numerics.threads import thread_count

#: The filter is sampled on a grid at least this many times the
#: kernel's side (and at least `_MIN_GRID` px), fine enough that its
#: kernel does not wrap around.
_GRID_PER_KERNEL = 8
_MIN_GRID = 256


@dataclass(frozen=True, eq=False)
class DecorrelationKernel:
    """The decorrelation filter as a kernel, and what the variance needs.

    Attributes
    ----------
    image
        ``(2h + 1, 2h + 1)`` kernel, centred, unit sum, its values
        float32 numbers (stored exactly in a solution); applied as
        ``out(x) = sum_u D(u) diff(x + u)`` (it is symmetric).
    science_variance, template_variance
        The variance levels ``s`` and ``t``.
    science_weight, template_weight
        ``w1`` and ``w2`` of the decorrelated variance plane.
    truncation
        The fraction of the filter's energy beyond the box.
    """

    image: npt.NDArray[np.float64]
    science_variance: float
    template_variance: float
    science_weight: float
    template_weight: float
    truncation: float

    @property
    def half_width(self) -> int:
        """Distance from the centre pixel to the box edge."""
        return self.image.shape[0] // 2


def variance_levels(
    science_variance: npt.NDArray[np.float32],
    template_variance: npt.NDArray[np.float32],
    mask: npt.NDArray[np.int32],
    planes: MaskPlanes,
    ignore_planes: tuple[str, ...],
) -> tuple[float, float]:
    """Return the MEANCLIP levels of both variance planes.

    Parameters
    ----------
    science_variance
        The science variance (after ScaleVariance), science grid.
    template_variance
        The warped, unconvolved template's variance on the science grid.
    mask
        The difference image's mask before detection: pixels with
        ``ignore_planes`` set do not enter the levels.
    planes
        Plane names of ``mask``.
    ignore_planes
        Planes excluded from the levels.

    Returns
    -------
    levels
        ``(s, t)``. Side by side on two threads when there are two (each
        holds a float64 copy of its plane's usable pixels; the solve,
        where they run, holds no convolved plane): the same numbers.
    """
    usable = (mask & planes.value_of_present(ignore_planes)) == 0
    jobs = (science_variance, template_variance)

    def level(plane: npt.NDArray[np.float32]) -> float:
        return clipped_mean_std_of_plane(plane, usable)[0]

    if thread_count() < 2:
        science, template = (level(plane) for plane in jobs)
        return science, template
    with ThreadPoolExecutor(max_workers=2) as pool:
        science, template = pool.map(level, jobs)
    return science, template


def decorrelation_kernel(
    kernel: npt.NDArray[np.float64],
    science_variance: float,
    template_variance: float,
    half_width: int,
) -> DecorrelationKernel:
    """Return the DMTN-021 filter as a real-space kernel (module notes).

    Parameters
    ----------
    kernel
        The matching kernel at the image centre (odd square).
    science_variance, template_variance
        The levels ``s`` and ``t`` (`variance_levels`).
    half_width
        The kernel's half-width (the matching kernel's).

    Returns
    -------
    decorrelation
        The kernel and the variance weights.
    """
    side = 2 * half_width + 1
    size = max(_MIN_GRID, _GRID_PER_KERNEL * max(side, kernel.shape[0]))
    size = int(scipy.fft.next_fast_len(size + size % 2, real=True))
    shape = (size, size)
    correction = _correction(
        kernel, science_variance, template_variance, shape
    )
    full = scipy.fft.irfft2(correction, s=shape, workers=1)
    full = np.roll(full, (half_width, half_width), axis=(0, 1))
    box = full[:side, :side]
    total = float(np.sum(full * full))
    kept = float(np.sum(box * box))
    image = (box / box.sum()).astype(np.float32).astype(np.float64)
    matched = full_convolution(kernel, image)
    return DecorrelationKernel(
        image=image,
        science_variance=float(science_variance),
        template_variance=float(template_variance),
        science_weight=float(np.sum(image * image)),
        template_weight=float(np.sum(matched * matched)),
        truncation=max(0.0, 1.0 - kept / total) if total > 0 else 0.0,
    )


def full_convolution(
    first: npt.NDArray[np.float64], second: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Return the full 2-d convolution of two small images, summed directly.

    The bits of ``scipy.signal.convolve(first, second, method="direct")``:
    like its correlation of ``first`` (zero-padded) with ``second``
    flipped, each output pixel is the sum of one product per pixel of
    ``second``, added in row-major order of the flipped ``second``. Done
    here so that a solve does not import scipy.signal (about 0.3 s, with
    the scipy.stats it loads, in a fresh process).
    """
    rows, cols = first.shape
    k_rows, k_cols = second.shape
    out_rows, out_cols = rows + k_rows - 1, cols + k_cols - 1
    padded = np.zeros((rows + 2 * (k_rows - 1), cols + 2 * (k_cols - 1)))
    padded[k_rows - 1 : k_rows - 1 + rows, k_cols - 1 : k_cols - 1 + cols] = (
        first
    )
    flipped = second[::-1, ::-1]
    out = np.zeros((out_rows, out_cols))
    for i in range(k_rows):
        for j in range(k_cols):
            out += padded[i : i + out_rows, j : j + out_cols] * flipped[i, j]
    return out


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
        The levels the decorrelation used.

    Returns
    -------
    psf
        The filtered PSF, same shape, unit sum.
    """
    rows = psf.shape[0] + kernel.shape[0] - 1
    cols = psf.shape[1] + kernel.shape[1] - 1
    shape = (
        int(scipy.fft.next_fast_len(rows + rows % 2, real=True)),
        int(scipy.fft.next_fast_len(cols + cols % 2, real=True)),
    )
    correction = _correction(
        kernel, science_variance, template_variance, shape
    )
    padded = np.zeros(shape, dtype=np.float64)
    py, px = psf.shape
    padded[:py, :px] = psf
    padded = np.roll(padded, (-(py // 2), -(px // 2)), axis=(0, 1))
    filtered = scipy.fft.irfft2(scipy.fft.rfft2(padded) * correction, s=shape)
    out = np.roll(filtered, (py // 2, px // 2), axis=(0, 1))[:py, :px]
    return np.asarray(out / out.sum())


def _correction(
    kernel: npt.NDArray[np.float64],
    science_variance: float,
    template_variance: float,
    shape: tuple[int, int],
) -> npt.NDArray[np.float64]:
    """Return ``corr(k)`` on the half spectrum of ``shape`` (float64)."""
    kernel_ft: npt.NDArray[np.complexfloating[Any, Any]] = centred_rfft2(
        np.asarray(kernel, np.float64), shape, thread_count()
    )
    kernel_sum = float(np.sum(kernel, dtype=np.float64))
    numerator = science_variance + template_variance * kernel_sum**2
    power = kernel_ft.real**2 + kernel_ft.imag**2
    return np.asarray(
        np.sqrt(numerator / (science_variance + template_variance * power))
    )
