"""Noise, calibration and saturation: `NoiseModel` and `expose`.

`expose` turns a noiseless model into what a background-subtracted
image holds: Poisson and read noise, a smooth variance, and full-well
clipping with bleed trails along columns, masked SAT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes
from recreate.simulate.render.sources import FloatArray

#: Rows of noise drawn at a time, to bound memory on full detectors.
_NOISE_BLOCK_ROWS = 256


@dataclass(frozen=True)
class NoiseModel:
    """Sky, calibration and detector of a (background-subtracted) image.

    Parameters
    ----------
    sky_electrons
        Sky level per pixel in electrons. It adds Poisson noise and
        variance but is subtracted from the output image, as the
        background is in DP1 images.
    njy_per_electron
        Calibration: nJy per photo-electron.
    read_noise
        Read noise in electrons rms (ComCam ITL: 6.21 e-).
    saturation_electrons
        Full well in electrons; ``None`` for no saturation (coadds).

    Raises
    ------
    ValueError
        If a value is negative, the calibration is not positive, or the
        full well does not exceed the sky.
    """

    sky_electrons: float
    njy_per_electron: float
    read_noise: float = 6.2
    saturation_electrons: float | None = 1.0e5

    def __post_init__(self) -> None:
        """Check the parameters."""
        if not self.sky_electrons >= 0 or not self.read_noise >= 0:
            raise ValueError(
                f"sky {self.sky_electrons} and read noise {self.read_noise} "
                "must be >= 0"
            )
        if not self.njy_per_electron > 0:
            raise ValueError(
                f"njy_per_electron {self.njy_per_electron} must be > 0"
            )
        full_well = self.saturation_electrons
        if full_well is not None and not full_well > self.sky_electrons:
            raise ValueError(
                f"full well {full_well} e- must exceed the sky "
                f"{self.sky_electrons} e-"
            )

    @property
    def sky_sigma_njy(self) -> float:
        """Noise of a blank-sky pixel, in nJy."""
        electrons = self.sky_electrons + self.read_noise**2
        return math.sqrt(electrons) * self.njy_per_electron

    @property
    def full_well_njy(self) -> float | None:
        """Full well above the (subtracted) sky, in image units (nJy)."""
        if self.saturation_electrons is None:
            return None
        headroom = self.saturation_electrons - self.sky_electrons
        return headroom * self.njy_per_electron


def expose(
    model: npt.NDArray[np.float32],
    noise: NoiseModel,
    rng: np.random.Generator,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
    MaskPlanes,
]:
    """Add sky, Poisson and read noise and saturation to a model.

    Pixels whose expected charge (sky + model) exceeds the full well
    spill the excess up and down their column (a bleed trail); every
    pixel at full well reads exactly ``full_well - sky`` (no noise) and
    is masked SAT. Other pixels read ``Poisson(sky + model) - sky`` plus
    Gaussian read noise, in nJy. The variance uses the expected charge
    after bleeding, so it is smooth.

    Parameters
    ----------
    model
        Noiseless image in nJy above the sky.
    noise
        The noise model.
    rng
        Source of the noise draws; its state advances.

    Returns
    -------
    image, variance, mask, planes
        The noisy image (nJy), its variance (nJy^2), the mask and its
        planes (afw defaults).

    Raises
    ------
    ValueError
        If the model is not 2-D.
    """
    if model.ndim != 2:
        raise ValueError(f"model must be 2-D, got shape {model.shape}")
    planes = MaskPlanes.afw_default()
    charge, full = _bleed(model, noise)
    image = np.empty(model.shape, dtype=np.float32)
    variance = np.empty(model.shape, dtype=np.float32)
    mask = np.zeros(model.shape, dtype=np.int32)
    sat_bit = planes.value("SAT")
    for start in range(0, model.shape[0], _NOISE_BLOCK_ROWS):
        rows = slice(start, start + _NOISE_BLOCK_ROWS)
        block_full = None if full is None else full[rows]
        image[rows], variance[rows], saturated = _expose_block(
            charge[rows], block_full, noise, rng
        )
        mask[rows][saturated] |= sat_bit
    return image, variance, mask, planes


def _expose_block(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_] | None,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Return image, variance and SAT flags of one block of rows."""
    gain = noise.njy_per_electron
    expected = charge.astype(np.float64) / gain + noise.sky_electrons
    # FFT ringing leaves tiny negative model values; no charge is < 0.
    np.maximum(expected, 0.0, out=expected)
    counts = rng.poisson(expected).astype(np.float64)
    read = rng.standard_normal(expected.shape, dtype=np.float32)
    electrons = counts - noise.sky_electrons + noise.read_noise * read
    saturated = np.zeros(expected.shape, dtype=np.bool_)
    well = noise.saturation_electrons
    if well is not None and full is not None:
        # A pixel is read as saturated when its charge reaches the well,
        # whether through the model (``full``) or a noise upswing.
        saturated = full | (counts >= well)
        electrons[saturated] = well - noise.sky_electrons
        np.minimum(expected, well, out=expected)
    variance = (expected + noise.read_noise**2) * gain**2
    return electrons * gain, variance, saturated


def _bleed(
    model: npt.NDArray[np.float32], noise: NoiseModel
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
    """Move charge above the full well along columns (bleed trails).

    Returns
    -------
    charge, full
        The model after bleeding (the input itself when nothing
        saturates) and where pixels are at full well (``None`` when the
        noise model has no full well).
    """
    well = noise.full_well_njy
    if well is None:
        return model, None
    over = model > well
    if not np.any(over):
        return model, over
    charge = model.copy()
    full = over.copy()
    for column in np.unique(np.nonzero(over)[1]):
        _bleed_column(charge[:, column], full[:, column], well)
    return charge, full


def _bleed_column(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_],
    well: float,
) -> None:
    """Bleed one column in place: fill neighbours of each over-full run.

    Half the excess of a run goes up the column and half down, filling
    pixels to the well one after another (charge is conserved until it
    runs off the array, as a real bleed trail would).
    """
    for start, stop in _runs(charge > well):
        excess = float(np.sum(charge[start:stop] - well, dtype=np.float64))
        charge[start:stop] = well
        full[start:stop] = True
        _fill_towards(
            charge, full, np.arange(stop, len(charge)), excess / 2, well
        )
        _fill_towards(
            charge, full, np.arange(start - 1, -1, -1), excess / 2, well
        )


def _fill_towards(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_],
    path: npt.NDArray[np.intp],
    excess: float,
    well: float,
) -> None:
    """Pour ``excess`` into the pixels of ``path`` in order, to the well."""
    room = np.maximum(well - charge[path].astype(np.float64), 0.0)
    poured = np.cumsum(room)
    filled = path[poured <= excess]
    charge[filled] = well
    full[filled] = True
    rest = np.flatnonzero(poured > excess)
    if len(rest):
        first = rest[0]
        before = poured[first - 1] if first > 0 else 0.0
        charge[path[first]] += np.float32(excess - before)


def _runs(flags: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Return ``(start, stop)`` of each run of True values."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [
        (int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]
