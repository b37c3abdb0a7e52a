"""One candidate's own kernel fit and residual statistics (ip_diffim).

The single-kernel fit is ``StaticKernelSolution::build``: the template
stamp correlated with every basis image, only where the whole kernel
overlaps the stamp, a column of ones for the background, and least
squares with one constant weight per candidate, the median of
``V_science + V_template`` over the stamp (``constantVarianceWeighting``;
v29's ``KernelCandidate::build``). Its quality is ``ImageStatistics`` of
``(science - template * K - background) / sigma`` over the stamp, pixels
float32 as in afw's ``convolveAndSubtract``.

Convolution follows afw's convention (``convolveWithBruteForce``): the
output at ``x`` is ``sum_u K(u) I(x + u)``, where ``K(u)`` is the kernel
image pixel ``u`` from the centre - a correlation with the kernel image.
Stamps are correlated through small FFTs (``scipy.fft``, one thread).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.ndimage

from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import KernelBasis, sequential_sum
from recreate.pipeline.kernel.linalg import solve_like_eigen
from recreate.pipeline.kernel.stamps import KernelCandidate, SingleSolution


@dataclass(frozen=True)
class Residual:
    """Mean and rms of ``difference / sigma`` over the usable pixels."""

    mean: float
    rms: float
    n_pixels: int


def fit_single_kernel(
    candidate: KernelCandidate, basis: KernelBasis, fit_background: bool
) -> SingleSolution | None:
    """Solve the candidate's own kernel (``StaticKernelSolution``).

    Returns
    -------
    solution
        The solution, or None when it is not finite (ip_diffim throws and
        the candidate is marked BAD).
    """
    k = basis.size
    valid = candidate.stamp_size - k + 1
    fft_size = _fft_size(candidate.stamp_size)
    spectra = _basis_spectra(basis, fft_size)
    correlated = scipy.fft.irfft2(
        candidate.spectrum("image", fft_size)[None] * spectra,
        s=(fft_size, fft_size),
        workers=1,
    )[:, k - 1 : k - 1 + valid, k - 1 : k - 1 + valid]
    design = correlated.reshape(len(spectra), -1)
    if fit_background:
        design = np.vstack([design, np.ones((1, design.shape[1]))])
    science = _valid(candidate.science, k).astype(np.float64).ravel()
    weight = 1.0 / float(_constant_variance(candidate))
    # Eigen: C^T (diag(1/v) C) and C^T (diag(1/v) I), in that order.
    matrix = np.einsum("ip,jp->ij", design, design * weight)
    vector = np.einsum("ip,p->i", design, science * weight)
    solution = solve_like_eigen(matrix, vector)
    if not np.all(np.isfinite(solution)):
        return None
    weights = solution[: basis.n_basis]
    background = float(solution[basis.n_basis]) if fit_background else 0.0
    return SingleSolution(
        weights=weights,
        background=background,
        kernel_sum=kernel_sum(weights, basis),
        normal_matrix=matrix,
        normal_vector=vector,
    )


def kernel_sum(weights: npt.NDArray[np.float64], basis: KernelBasis) -> float:
    """Return ``sum_i w_i * sum(B_i)``, accumulated in basis order."""
    return sequential_sum(np.asarray(weights) * basis.sums())


def difference_residual(
    candidate: KernelCandidate,
    weights: npt.NDArray[np.float64],
    background: float,
    basis: KernelBasis,
) -> Residual | None:
    """Return the stamp's residual statistics for one kernel and background.

    This is ``convolveAndSubtract`` then ``ImageStatistics``: the template
    stamp and its variance are correlated with ``K`` and ``K^2``; pixels
    are float32 as afw's MaskedImageF; the statistics skip pixels with a
    bad-mask bit (the template's smeared by the kernel box) and pixels of
    non-finite inverse variance.

    Returns
    -------
    residual
        The statistics, or None when a sum is not finite (ip_diffim throws
        and the candidate is marked BAD).
    """
    k = basis.size
    valid = candidate.stamp_size - k + 1
    fft_size = _fft_size(candidate.stamp_size)
    kernel = np.einsum("i,ivu->vu", np.asarray(weights), basis.images())
    convolved = _correlate_valid(
        candidate.spectrum("image", fft_size), kernel, fft_size, valid
    ).astype(np.float32)
    convolved_variance = _correlate_valid(
        candidate.spectrum("variance", fft_size),
        kernel * kernel,
        fft_size,
        valid,
    ).astype(np.float32)
    convolved = convolved + np.float32(background)
    difference = -(convolved - _valid(candidate.science, k))
    variance = convolved_variance + _valid(candidate.science_variance, k)
    bad = _valid(candidate.science_bad, k) | _valid(
        _grown(candidate.template_bad, k), k
    )
    return _residual_statistics(difference.astype(np.float64), variance, bad)


def passes_residual_clipping(residual: Residual, config: KernelConfig) -> bool:
    """Say whether residuals are within the mean and rms limits."""
    if abs(residual.mean) > config.candidate_residual_mean_max:
        return False
    return residual.rms <= config.candidate_residual_std_max


def _residual_statistics(
    image: npt.NDArray[np.float64],
    variance: npt.NDArray[np.float32],
    bad: npt.NDArray[np.bool_],
) -> Residual | None:
    """Return ip_diffim ``ImageStatistics`` of ``image / sqrt(variance)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / variance.astype(np.float64)
    use = ~bad & np.isfinite(inverse)
    values = image[use]
    weights = inverse[use]
    total = sequential_sum(values * np.sqrt(weights))
    total_squares = sequential_sum(values * values * weights)
    if not (math.isfinite(total) and math.isfinite(total_squares)):
        return None
    n = int(values.size)
    mean = total / n if n > 0 else math.nan
    if n > 1:
        spread = (total_squares / n - mean * mean) * n / (n - 1.0)
        rms = math.sqrt(spread) if spread >= 0.0 else math.nan
    else:
        rms = math.nan
    return Residual(mean=mean, rms=rms, n_pixels=n)


def _constant_variance(candidate: KernelCandidate) -> np.float32:
    """Return the median of ``V_science + V_template`` over the stamp.

    As ``KernelCandidate::build``: NaNs are skipped, a median <= 0 is
    replaced by 1, and a NaN median (nothing left) stays NaN, which makes
    the fit fail and the candidate BAD.
    """
    total = candidate.science_variance + candidate.template_variance
    kept = total[~np.isnan(total)]
    median = np.float32(np.median(kept)) if kept.size else np.float32(np.nan)
    return np.float32(1.0) if median <= 0.0 else median


def _correlate_valid(
    spectrum: npt.NDArray[np.complex128],
    kernel: npt.NDArray[np.float64],
    fft_size: int,
    valid: int,
) -> npt.NDArray[np.float64]:
    """Correlate a stamp (given by its spectrum) with one kernel."""
    k = kernel.shape[0]
    kernel_spectrum = scipy.fft.rfft2(
        kernel[::-1, ::-1], s=(fft_size, fft_size), workers=1
    )
    full = scipy.fft.irfft2(
        spectrum * kernel_spectrum, s=(fft_size, fft_size), workers=1
    )
    return full[k - 1 : k - 1 + valid, k - 1 : k - 1 + valid]


#: Basis spectra a process keeps (a solve uses one basis; each detector
#: has its own, so an unbounded cache would grow with every solve).
_SPECTRA_KEPT = 4


@functools.lru_cache(maxsize=_SPECTRA_KEPT)
def _basis_spectra(
    basis: KernelBasis, fft_size: int
) -> npt.NDArray[np.complex128]:
    """Return the FFTs of the flipped basis images (correlation kernels)."""
    spectra = scipy.fft.rfft2(
        basis.images()[:, ::-1, ::-1], s=(fft_size, fft_size), workers=1
    )
    spectra.setflags(write=False)
    return spectra


def _fft_size(stamp_size: int) -> int:
    """Return a fast FFT length that holds a stamp without wrap-around."""
    return int(scipy.fft.next_fast_len(stamp_size, real=True))


def _valid[T: np.generic](stamp: npt.NDArray[T], k: int) -> npt.NDArray[T]:
    """Return the part of a stamp where a ``k``-pixel kernel fits wholly."""
    half = k // 2
    return stamp[half : stamp.shape[0] - half, half : stamp.shape[1] - half]


def _grown(bad: npt.NDArray[np.bool_], k: int) -> npt.NDArray[np.bool_]:
    """Return ``bad`` dilated by a ``k`` x ``k`` box (afw mask smearing)."""
    if not bad.any():
        return bad
    grown = scipy.ndimage.maximum_filter1d(bad.astype(np.uint8), k, axis=0)
    grown = scipy.ndimage.maximum_filter1d(grown, k, axis=1)
    return grown.astype(bool)
