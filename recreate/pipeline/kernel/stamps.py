"""Kernel candidates: the stamps ip_diffim fits a kernel on.

ip_diffim's ``MakeKernelTask.makeCandidateList`` replaces each source's
footprint by ``Box2I.makeCenteredBox(centroid, 2 * kernelSize + 1)``: a
square stamp spanning ``round(x) - k .. round(x) + k`` (halves round up),
and refuses the source if the stamp leaves either image or touches a
``badMaskPlanes`` bit (NO_DATA, EDGE, SAT) of the science mask.
``makeKernelCandidate`` then keeps the centre as float32
(``SpatialCellCandidate``) and, for a source, ranks it by its PSF flux;
a candidate made from a position alone is ranked by the mean S/N of its
7x7 core (``ImageStatistics`` with core radius 3).
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from recreate.exposure import MaskPlanes
from recreate.pipeline.config import KernelConfig
from recreate.pipeline.kernel.basis import sequential_sum

#: ``ImageStatistics`` core half-size used to rank candidates by default.
CORE_RADIUS = 3

#: Science then template ``(image, variance)`` arrays.
ImagePair = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


class Status(enum.Enum):
    """afw ``SpatialCellCandidate`` status."""

    UNKNOWN = 0
    GOOD = 1
    BAD = 2


@dataclass(frozen=True)
class SingleSolution:
    """One candidate's own kernel: ip_diffim's ``ORIG`` solution.

    Attributes
    ----------
    weights
        Coefficient of each basis image.
    background
        Constant background (0 when it is not fitted).
    kernel_sum
        ``sum_i weights[i] * basis_sum[i]``, as ``LinearCombinationKernel``.
    normal_matrix, normal_vector
        ``M = C^T C / v`` and ``b = C^T I / v``, kernel terms then the
        background term: what the spatial fit accumulates.
    """

    weights: npt.NDArray[np.float64]
    background: float
    kernel_sum: float
    normal_matrix: npt.NDArray[np.float64]
    normal_vector: npt.NDArray[np.float64]


@dataclass(eq=False)
class KernelCandidate:
    """Stamps and fit state of one kernel candidate.

    Attributes
    ----------
    index
        Position of the candidate in the caller's list.
    x, y
        Centre in science array pixels, rounded to float32 as afw's
        ``SpatialCellCandidate`` stores it.
    rating
        Ranking within its cell, highest first.
    template, template_variance
        Template stamp, ``(S, S)`` float32.
    science, science_variance
        Science stamp, ``(S, S)`` float32.
    science_bad, template_bad
        ``(S, S)`` booleans: pixels with a statistics bad-mask bit.
    status
        GOOD, BAD or not yet judged.
    single
        The candidate's own kernel solution once fitted.
    """

    index: int
    x: float
    y: float
    rating: float
    template: npt.NDArray[np.float32]
    template_variance: npt.NDArray[np.float32]
    science: npt.NDArray[np.float32]
    science_variance: npt.NDArray[np.float32]
    science_bad: npt.NDArray[np.bool_]
    template_bad: npt.NDArray[np.bool_]
    status: Status = Status.UNKNOWN
    single: SingleSolution | None = None
    _spectra: dict[str, npt.NDArray[np.complex128]] = field(
        default_factory=dict, repr=False
    )

    @property
    def stamp_size(self) -> int:
        """Side of the stamp, ``2 * kernel_size + 1``."""
        return int(self.template.shape[0])

    def spectrum(self, name: str, fft_size: int) -> npt.NDArray[np.complex128]:
        """Return (and cache) the real FFT of the template or its variance.

        Parameters
        ----------
        name
            ``"image"`` or ``"variance"``.
        fft_size
            Side of the zero-padded FFT.
        """
        key = f"{name}:{fft_size}"
        if key not in self._spectra:
            stamp = (
                self.template if name == "image" else self.template_variance
            )
            self._spectra[key] = scipy.fft.rfft2(
                stamp.astype(np.float64), s=(fft_size, fft_size), workers=1
            )
        return self._spectra[key]


def check_shapes(
    science: ImagePair,
    template: ImagePair,
    masks: tuple[npt.NDArray[Any] | None, npt.NDArray[Any] | None],
    border: int,
) -> None:
    """Check every array has the science or the grown template shape.

    Raises
    ------
    ValueError
        On the first array of the wrong shape.
    """
    shape = np.shape(science[0])
    if len(shape) != 2 or border < 0:
        raise ValueError(
            f"science must be 2-D and border >= 0, got {shape}, {border}"
        )
    grown = (shape[0] + 2 * border, shape[1] + 2 * border)
    for name, array, expected in (
        ("science variance", science[1], shape),
        ("science mask", masks[0], shape),
        ("template", template[0], grown),
        ("template variance", template[1], grown),
        ("template mask", masks[1], grown),
    ):
        if array is not None and np.shape(array) != expected:
            raise ValueError(
                f"{name} has shape {np.shape(array)}, expected {expected}"
            )


def cut_candidates(
    science: ImagePair,
    template: ImagePair,
    masks: tuple[
        npt.NDArray[np.int32] | None,
        npt.NDArray[np.int32] | None,
        MaskPlanes | None,
    ],
    xy: npt.NDArray[np.float64],
    ratings: npt.NDArray[np.float64] | None,
    kernel_size: int,
    config: KernelConfig,
    border: int,
) -> list[KernelCandidate]:
    """Cut the stamps of every usable candidate, in the caller's order.

    Parameters
    ----------
    science, template
        ``(image, variance)`` of the science image and of the template
        (grown by ``border``).
    masks
        Science mask, template mask and their planes (any may be None).
    xy
        ``(n, 2)`` centres in science array pixels.
    ratings
        Per-candidate ranking, or None for the core S/N.
    kernel_size
        Kernel side ``k``; stamps are ``2k + 1`` square.
    config
        Kernel configuration (its ``stats_bad_mask_planes``).
    border
        Template border in pixels.

    Returns
    -------
    candidates
        The candidates whose stamps fit and avoid the bad bits.
    """
    science_mask, template_mask, planes = masks
    bad_bits = (
        0
        if planes is None
        else planes.value_of_present(config.stats_bad_mask_planes)
    )
    height, width = np.shape(science[0])
    k = kernel_size
    candidates = []
    for index, (x, y) in enumerate(xy):
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
        if ix - k < 0 or iy - k < 0 or ix + k >= width or iy + k >= height:
            continue
        box = (slice(iy - k, iy + k + 1), slice(ix - k, ix + k + 1))
        grown = (
            slice(iy - k + border, iy + k + 1 + border),
            slice(ix - k + border, ix + k + 1 + border),
        )
        science_bad = _bad(science_mask, box, bad_bits)
        if science_bad.any():
            continue
        stamp = np.asarray(science[0][box], dtype=np.float32)
        stamp_variance = np.asarray(science[1][box], dtype=np.float32)
        rating = (
            rate_by_core_signal(stamp, stamp_variance, science_bad)
            if ratings is None
            else float(ratings[index])
        )
        candidates.append(
            KernelCandidate(
                index=index,
                x=float(np.float32(x)),
                y=float(np.float32(y)),
                rating=rating if math.isfinite(rating) else -math.inf,
                template=np.asarray(template[0][grown], dtype=np.float32),
                template_variance=np.asarray(
                    template[1][grown], dtype=np.float32
                ),
                science=stamp,
                science_variance=stamp_variance,
                science_bad=science_bad,
                template_bad=_bad(template_mask, grown, bad_bits),
            )
        )
    return candidates


def rate_by_core_signal(
    science: npt.NDArray[np.float32],
    variance: npt.NDArray[np.float32],
    bad: npt.NDArray[np.bool_],
) -> float:
    """Return the mean ``image / sigma`` of a stamp's 7x7 core.

    Returns
    -------
    rating
        NaN when no core pixel is usable.
    """
    centre = science.shape[0] // 2
    core = slice(centre - CORE_RADIUS, centre + CORE_RADIUS + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = 1.0 / variance[core, core].astype(np.float64)
    use = ~bad[core, core] & np.isfinite(inverse)
    values = science[core, core].astype(np.float64)[use]
    if values.size == 0:
        return math.nan
    return sequential_sum(values * np.sqrt(inverse[use])) / values.size


def _bad(
    mask: npt.NDArray[np.int32] | None,
    box: tuple[slice, slice],
    bits: int,
) -> npt.NDArray[np.bool_]:
    """Return which stamp pixels carry any of ``bits`` (none without mask)."""
    rows, cols = box
    size = (rows.stop - rows.start, cols.stop - cols.start)
    if mask is None or bits == 0:
        return np.zeros(size, dtype=bool)
    return (mask[box].astype(np.int64) & bits) != 0
