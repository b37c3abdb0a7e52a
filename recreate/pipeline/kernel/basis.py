"""The Alard-Lupton kernel basis (ip_diffim ``makeKernelBasisList``).

The basis is ip_diffim's ``makeAlardLuptonBasisList`` (v29): for each of
three Gaussians, the Gaussian times every monomial ``u^p v^q`` of total
degree up to 4, 2 and 2, with ``u, v`` running from -1 to 1 across the
kernel box; then ``renormalizeKernelList`` makes basis 0 unit-sum and every
other basis zero-sum and unit-norm, so the kernel sum is carried by the
first coefficient alone (27 images in all).

The Gaussian widths follow the PSF sizes (``generateAlardLuptonBasisList``
after DM-47642, which shares the convolution and deconvolution rules):
``sigma_K = sqrt(|sigma_sci^2 - sigma_tmpl^2|)``, floored at
``alardMinSig`` (0.7 px) or, when the template is the broader,
``alardMinSigDeconv`` (0.4 px); the widths are ``[sK/2, sK, 2 sK]`` when
``sK/2`` is above that floor and ``[sK, 2 sK, 4 sK]`` otherwise. The kernel
side is ``int(6 * largest sigma)``, made odd and clipped to [21, 35].

The PSF sizes are what v29's (and v30.0.x's) ``getPsfFwhm`` reports:
``2 ln(2 sqrt 2) = 2.0794`` times the PSF's trace radius, where a true
FWHM is 2.3548 times it, and ``makeKernelBasisList`` divides that by
2.3548. So every width, and the side before rounding and clipping, is
0.883 times what the true PSF widths give. It is a bug (fixed upstream
only after DP2, together with the first-width rule, which changed to
``max(minSig, sK/2)``); both releases have it, and so do both recipes
here (`KernelConfig.psf_fwhm_per_sigma`). The trace radius is taken as
``fwhm / 2.3548``, the Gaussian-equivalent width of the PSF's FWHM.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError, ProcessingError
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.spatial import monomial_powers, n_terms

#: FWHM of a Gaussian in units of its sigma.
SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))

#: ``renormalizeKernelList`` leaves a basis alone when its sum is below
#: float (not double) epsilon: odd monomials sum to ~1e-17, not to 0.
_RENORMALIZE_MIN_SUM = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class KernelBasis:
    """An Alard-Lupton basis: Gaussian widths, their degrees, the box.

    Parameters
    ----------
    size
        Side of the square kernel box, odd, in pixels.
    sigmas
        Gaussian widths in pixels, one per Gaussian.
    degrees
        Polynomial degree of the monomials that modulate each Gaussian.
    """

    size: int
    sigmas: tuple[float, ...]
    degrees: tuple[int, ...]

    def __post_init__(self) -> None:
        """Check the box is odd and every Gaussian has a width and degree.

        Raises
        ------
        FormatError
            If the size is even or below 3, a width is not positive, or
            the widths and degrees differ in number.
        """
        object.__setattr__(
            self, "sigmas", tuple(float(s) for s in self.sigmas)
        )
        object.__setattr__(
            self, "degrees", tuple(int(d) for d in self.degrees)
        )
        if self.size < 3 or self.size % 2 == 0:
            raise FormatError(
                f"kernel size must be odd and >= 3, got {self.size}"
            )
        if len(self.sigmas) != len(self.degrees) or not self.sigmas:
            raise FormatError(
                f"{len(self.sigmas)} Gaussian widths for "
                f"{len(self.degrees)} degrees"
            )
        if not all(s > 0.0 and math.isfinite(s) for s in self.sigmas):
            raise FormatError(
                f"Gaussian widths must be positive: {self.sigmas}"
            )
        if any(d < 0 for d in self.degrees):
            raise FormatError(f"degrees must be non-negative: {self.degrees}")

    @property
    def half_width(self) -> int:
        """Distance from the centre pixel to the box edge, in pixels."""
        return self.size // 2

    @property
    def n_basis(self) -> int:
        """Number of basis images (27 for degrees 4, 2, 2)."""
        return sum(n_terms(d) for d in self.degrees)

    def images(self) -> npt.NDArray[np.float64]:
        """Return the renormalised basis images, ``(n_basis, size, size)``.

        Array axes are ``(v, u)``: row offset then column offset from the
        centre pixel. The array is cached and read-only.
        """
        return _basis_images(self.size, self.sigmas, self.degrees)

    def sums(self) -> npt.NDArray[np.float64]:
        """Return each basis image's pixel sum, summed as afw does.

        ``FixedKernel`` keeps the sum of its image, accumulated row by row;
        a kernel's sum is then ``sum_i coefficient_i * sums[i]``.
        """
        return _basis_sums(self.size, self.sigmas, self.degrees)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description that round-trips exactly."""
        return {
            "size": self.size,
            "sigmas": [s.hex() for s in self.sigmas],
            "degrees": list(self.degrees),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KernelBasis:
        """Rebuild a basis from `to_dict` output.

        Raises
        ------
        FormatError
            If a field is missing or malformed.
        """
        try:
            return cls(
                size=int(data["size"]),
                sigmas=tuple(float.fromhex(s) for s in data["sigmas"]),
                degrees=tuple(int(d) for d in data["degrees"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise FormatError(
                f"bad kernel basis description: {error}"
            ) from None


def make_basis(
    science_fwhm: float, template_fwhm: float, config: KernelConfig
) -> KernelBasis:
    """Return the v29 basis for matching the template to the science PSF.

    Parameters
    ----------
    science_fwhm, template_fwhm
        PSF full widths at half maximum, in science pixels.
    config
        The kernel configuration (v29 defaults).

    Returns
    -------
    basis
        Widths scaled by the PSFs as v29 scales them (0.883 times the
        true widths, module notes); ``config.sig_gauss`` when the two
        FWHMs are equal.

    Raises
    ------
    FormatError
        If a FWHM is not a positive number, or the configuration gives
        widths and degrees of different lengths.
    """
    for name, fwhm in (("science", science_fwhm), ("template", template_fwhm)):
        if not (math.isfinite(fwhm) and fwhm > 0.0):
            raise FormatError(f"{name} PSF FWHM must be positive, got {fwhm}")
    sigmas = basis_sigmas(
        reported_fwhm(science_fwhm, config) / SIGMA_TO_FWHM,
        reported_fwhm(template_fwhm, config) / SIGMA_TO_FWHM,
        config,
    )
    size = kernel_size(sigmas[-1], config)
    return KernelBasis(
        size=size, sigmas=sigmas, degrees=tuple(config.deg_gauss)
    )


def reported_fwhm(fwhm: float, config: KernelConfig) -> float:
    """Return what ``getPsfFwhm`` reports for a PSF of this true FWHM.

    ``config.psf_fwhm_per_sigma`` times the trace radius, taken as the
    Gaussian-equivalent ``fwhm / 2.3548``: 0.883 times ``fwhm`` with
    v29's factor (module notes).
    """
    return config.psf_fwhm_per_sigma * (fwhm / SIGMA_TO_FWHM)


def basis_sigmas(
    science_sigma: float, template_sigma: float, config: KernelConfig
) -> tuple[float, ...]:
    """Return the Gaussian widths for the given PSF sigmas, in pixels.

    The template is convolved (``target``), the science image is matched
    (``reference``). A broader template is "deconvolution": the kernel
    width comes from the difference the other way round and may go down
    to ``min_sig_deconv``.
    """
    if science_sigma == template_sigma:
        return tuple(float(s) for s in config.sig_gauss)
    if science_sigma > template_sigma:
        floor = config.min_sig
        kernel_sigma = math.sqrt(science_sigma**2 - template_sigma**2)
    else:
        floor = config.min_sig_deconv
        kernel_sigma = math.sqrt(template_sigma**2 - science_sigma**2)
    kernel_sigma = max(kernel_sigma, floor)
    beta = config.gauss_beta
    if config.n_gauss == 1:
        sigmas = [kernel_sigma]
    elif kernel_sigma / beta > floor:
        sigmas = [kernel_sigma / beta, kernel_sigma]
    else:
        sigmas = [kernel_sigma]
    while len(sigmas) < config.n_gauss:
        sigmas.append(sigmas[-1] * beta)
    return tuple(sigmas)


def kernel_size(largest_sigma: float, config: KernelConfig) -> int:
    """Return ``int(scaling * sigma)`` made odd and clipped to the limits."""
    size = int(config.kernel_size_fwhm_scaling * largest_sigma)
    size += 0 if size % 2 else 1
    return min(config.kernel_size_max, max(size, config.kernel_size_min))


def sequential_sum(values: npt.NDArray[np.float64]) -> float:
    """Return the sum accumulated left to right, as afw's pixel loops do.

    ``np.sum`` adds pairwise; ``cumsum`` adds strictly in order, so the
    last partial sum is the loop's result to the last bit.
    """
    flat = np.ascontiguousarray(values, dtype=np.float64).ravel()
    return float(np.cumsum(flat)[-1]) if flat.size else 0.0


#: How far from 1 (basis 0) and from 0 (the others) a basis sum may be.
SUM_CONTRACT_TOLERANCE = 1e-10


def check_sum_carrier(images: npt.NDArray[np.float64]) -> None:
    """Check that basis 0 alone carries the kernel sum.

    The fit, the spatial solution and the stored kernel all read the
    kernel's sum (its photometric scaling) from the coefficient of basis 0
    only: that holds when basis 0 sums to 1 and every other basis to 0,
    which is what ``renormalizeKernelList`` makes. A basis that breaks it
    would silently scale the template.

    Parameters
    ----------
    images
        Basis images, ``(n_basis, size, size)``.

    Raises
    ------
    ProcessingError
        If basis 0 does not sum to 1 or another basis does not sum to 0,
        naming the first that fails and its sum.
    """
    sums = [sequential_sum(image) for image in images]
    if not sums or abs(sums[0] - 1.0) > SUM_CONTRACT_TOLERANCE:
        first = sums[0] if sums else float("nan")
        raise ProcessingError(
            f"kernel basis 0 sums to {first!r}, not 1: it must carry the "
            "kernel sum"
        )
    for index, total in enumerate(sums[1:], start=1):
        if abs(total) > SUM_CONTRACT_TOLERANCE:
            raise ProcessingError(
                f"kernel basis {index} sums to {total!r}, not 0: only "
                "basis 0 may carry the kernel sum"
            )


#: Bases whose images a process keeps: the widths come from the two PSF
#: sizes, so nearly every detector has its own basis (a few hundred KB),
#: and an unbounded cache would grow with every detector served.
BASES_KEPT = 16


def forget_bases() -> None:
    """Drop the bases this process keeps (each is made again when used)."""
    _basis_images.cache_clear()
    _basis_sums.cache_clear()


@functools.lru_cache(maxsize=BASES_KEPT)
def _basis_images(
    size: int, sigmas: tuple[float, ...], degrees: tuple[int, ...]
) -> npt.NDArray[np.float64]:
    """Build and renormalise the basis (cached per basis description)."""
    raw = _raw_basis(size, sigmas, degrees)
    images = _renormalize(raw)
    check_sum_carrier(images)
    images.setflags(write=False)
    return images


@functools.lru_cache(maxsize=BASES_KEPT)
def _basis_sums(
    size: int, sigmas: tuple[float, ...], degrees: tuple[int, ...]
) -> npt.NDArray[np.float64]:
    """Return the afw-order sums of the basis images (cached)."""
    images = _basis_images(size, sigmas, degrees)
    sums = np.array([sequential_sum(image) for image in images])
    sums.setflags(write=False)
    return sums


def _raw_basis(
    size: int, sigmas: tuple[float, ...], degrees: tuple[int, ...]
) -> npt.NDArray[np.float64]:
    """Return unit-sum Gaussians times monomials, before renormalising."""
    half = size // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    scaled = offsets / float(half)
    images = []
    for sigma, degree in zip(sigmas, degrees, strict=True):
        gaussian = _unit_gaussian(offsets, sigma)
        for p, q in monomial_powers(degree):
            if p == 0 and q == 0:
                images.append(gaussian.copy())
            else:
                images.append(gaussian * np.outer(scaled**q, scaled**p))
    return np.array(images)


def _unit_gaussian(
    offsets: npt.NDArray[np.float64], sigma: float
) -> npt.NDArray[np.float64]:
    """Return a circular Gaussian sampled at pixel centres, unit sum.

    afw's ``GaussianFunction2`` evaluates ``exp(-(x^2 a + y^2 a))`` with
    ``a = 1 / (2 sigma^2)``; ``AnalyticKernel`` then divides by the sum.
    """
    inverse = 1.0 / (2.0 * sigma * sigma)
    exponent = (offsets[None, :] ** 2) * inverse + (
        offsets[:, None] ** 2
    ) * inverse
    image = np.exp(-exponent)
    return image / sequential_sum(image)


def _renormalize(raw: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Apply ip_diffim's ``renormalizeKernelList`` in its fixed order.

    Basis 0 is scaled to unit sum. Every later basis with a sum above
    float epsilon is scaled to unit sum and has basis 0 subtracted (its
    sum becomes 0); then every later basis is scaled to unit L2 norm.
    """
    out = np.empty_like(raw)
    out[0] = raw[0] / sequential_sum(raw[0])
    for i in range(1, len(raw)):
        image = raw[i].copy()
        total = sequential_sum(image)
        if abs(total) > _RENORMALIZE_MIN_SUM:
            image = image / total - out[0]
        out[i] = image / math.sqrt(sequential_sum(image * image))
    return out
