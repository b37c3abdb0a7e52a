"""DP2's ``lossy16`` FITS quantisation, to write files as DP2 wrote them.

DP2's production Butler writes ``visit_image``, ``template_coadd`` and
(from 2026-04-03) ``difference_image`` with the write recipe ``lossy16``
(``drp_pipe`` bps compression config; ``daf_butler``
``writeRecipes.yaml``): the image and variance planes RICE_1-compressed
after quantisation with SUBTRACTIVE_DITHER_2, the mask losslessly
(GZIP_2), every tile one row. The quantisation step (``ZSCALE``) is one
per plane, ``STDEV_MASKED`` at level 16 (``afw`` ``fits.cc``):

    ZSCALE = float32(0.741 * (v[n // 4] - v[n // 4 + n // 2]) / 16)

over the plane's finite values ``v`` (sorted, ``n`` of them) whose mask
has neither NO_DATA nor INTRP, no interpolation between order
statistics. The dither seed is the same for both planes and comes from
the data ID (``obs_base`` ``fitsExposure.py``):

    seed = 1 + int.from_bytes(MD5(JSON(required data ID values))) % 9999

with the values in the Butler's order (instrument, detector, visit).
RewriteDifferenceImageTask copies those quantised tiles into the
``lsst.images`` file unchanged (``preserve_quantization``), so the
published pixels are these quantised values.

`lossy16_options` gives the ``lsst.images`` compression options that
reproduce the recipe, with ``ZSCALE`` passed as a negative level (as afw
passes it to CFITSIO). What is and is not verified is in the README.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from lsst.images.fits import (
    FitsCompressionAlgorithm,
    FitsCompressionOptions,
    FitsDitherAlgorithm,
    FitsQuantizationOptions,
)

from recreate.errors import FormatError
from recreate.exposure import Exposure

#: The recipe's quantisation level: the noise sigma in 16 steps.
LOSSY16_LEVEL = 16.0
#: Pixels left out of the noise estimate.
LOSSY16_MASK_PLANES = ("NO_DATA", "INTRP")
#: afw's robust sigma: 0.741 IQR.
IQR_TO_SIGMA = 0.741
#: FITS dither seeds run from 1 to 10000; the formula reaches 9999.
SEED_MODULUS = 9999


@dataclass(frozen=True)
class Lossy16:
    """The lossy16 settings of one file: a ZSCALE per plane, one seed."""

    image_zscale: float
    variance_zscale: float
    seed: int


def stdev_masked_zscale(
    values: npt.NDArray[np.floating],
    excluded: npt.NDArray[np.bool_],
    level: float = LOSSY16_LEVEL,
) -> float:
    """Return afw's ``STDEV_MASKED`` quantisation step of one plane.

    Parameters
    ----------
    values
        The plane.
    excluded
        Pixels left out (NO_DATA or INTRP); non-finite ones are too.
    level
        Steps per noise sigma.

    Returns
    -------
    zscale
        ``0.741 IQR / level`` rounded to float32 (module notes); 0 when
        fewer than 4 values are left or they do not spread.
    """
    kept = np.asarray(values)[~excluded & np.isfinite(values)]
    n = kept.size
    if n < 4:
        return 0.0
    q1 = n // 4
    q3 = q1 + n // 2
    low, high = np.partition(kept, (q1, q3))[[q1, q3]]
    stdev = IQR_TO_SIGMA * (float(high) - float(low))
    return float(np.float32(stdev / level))


def dither_seed(instrument: str, detector: int, visit: int) -> int:
    """Return the dither seed DP2's formatter derives from a data ID.

    The MD5 of the JSON list of the required values, in the Butler's
    order (instrument, detector, visit), as a big-endian integer, modulo
    9999, plus 1.
    """
    text = json.dumps([instrument, int(detector), int(visit)])
    digest = hashlib.md5(text.encode(), usedforsecurity=False).digest()
    return 1 + int.from_bytes(digest, "big") % SEED_MODULUS


def lossy16_settings(exposure: Exposure) -> Lossy16:
    """Return the lossy16 ZSCALEs and seed of a difference image.

    Raises
    ------
    FormatError
        If the exposure lacks the instrument, detector or visit of its
        data ID (the seed needs them).
    """
    obs = exposure.observation
    if (
        obs is None
        or obs.instrument is None
        or obs.detector is None
        or obs.visit is None
    ):
        raise FormatError(
            "lossy16 needs the data ID (instrument, detector, visit) for "
            "its dither seed; this image has none"
        )
    bits = exposure.mask_planes.value_of_present(LOSSY16_MASK_PLANES)
    excluded = (exposure.mask & np.int32(bits)) != 0
    return Lossy16(
        image_zscale=stdev_masked_zscale(exposure.image, excluded),
        variance_zscale=stdev_masked_zscale(exposure.variance, excluded),
        seed=dither_seed(obs.instrument, obs.detector, obs.visit),
    )


def lossy16_options(
    settings: Lossy16, width: int
) -> dict[str, FitsCompressionOptions | None]:
    """Return ``lsst.images`` compression options for the lossy16 recipe.

    Parameters
    ----------
    settings
        The ZSCALEs and seed (`lossy16_settings`).
    width
        Image width: every tile is one row, as afw writes them.
    """
    rows = (1, int(width))
    return {
        "image": _quantized(settings.image_zscale, settings.seed, rows),
        "variance": _quantized(settings.variance_zscale, settings.seed, rows),
        "mask": FitsCompressionOptions(tile_shape=rows),
    }


def _quantized(
    zscale: float, seed: int, tile_shape: tuple[int, int]
) -> FitsCompressionOptions:
    """Return RICE_1 + SUBTRACTIVE_DITHER_2 at a fixed ZSCALE.

    A plane without spread gets lossless GZIP_2, as afw switches to when
    its step comes out 0.
    """
    if zscale <= 0.0:
        return FitsCompressionOptions(tile_shape=tile_shape)
    return FitsCompressionOptions(
        algorithm=FitsCompressionAlgorithm.RICE_1,
        tile_shape=tile_shape,
        quantization=FitsQuantizationOptions(
            dither=FitsDitherAlgorithm.SUBTRACTIVE_DITHER_2,
            level=-zscale,
            seed=seed,
        ),
    )
