"""A PSF given as an image: an extension of the image's file, or a file.

Many surveys ship a PSF model image beside the pixels (an extension
named ``PSF``, or a separate file). `read_psf_image` finds and checks
it; its width is measured by the caller (`recreate.anysurvey.psf`),
which keeps the measurement with the star measurements it must agree
with.

A PSF image must be 2-D with odd sides (centred on its middle pixel),
finite, and with a positive sum; it is returned normalised to unit sum.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.io.auxiliary import Source, read_aux_array
from recreate.io.fitsfile import hdu_label, is_image_2d, read_array

#: Extension names (EXTNAME or EXTTYPE) read as a PSF image when the
#: caller names none.
PSF_EXTNAMES = ("PSF",)


def find_psf_hdu(hdulist: fits.HDUList) -> int | None:
    """Return the index of the first 2-D HDU named like a PSF image.

    Parameters
    ----------
    hdulist
        An open file.

    Returns
    -------
    index
        The HDU's index, or None when the file has no such extension.
    """
    for index, hdu in enumerate(hdulist):
        if index > 0 and hdu_label(hdu) in PSF_EXTNAMES and is_image_2d(hdu):
            return index
    return None


def read_psf_image(
    spec: Source, hdulist: fits.HDUList, source: str
) -> npt.NDArray[np.float64]:
    """Return a PSF image, normalised to unit sum.

    Parameters
    ----------
    spec
        An HDU index or name of the image's file, or another file (see
        `recreate.io.auxiliary.read_aux_array`).
    hdulist
        The image's file, open.
    source
        The image file's name, for messages.

    Returns
    -------
    psf
        The PSF, float64, unit sum, odd sides.

    Raises
    ------
    FileNotFoundError
        If ``spec`` names neither an HDU nor a file.
    FormatError
        If the PSF is not 2-D, has an even side, holds a non-finite
        value, or does not sum to a positive number.
    """
    if isinstance(spec, int):
        if not 0 <= spec < len(hdulist) or not is_image_2d(hdulist[spec]):
            raise FormatError(f"{source}: HDU {spec} is not a 2-D PSF image")
        data = read_array(hdulist[spec], "PSF", source)
    else:
        data, _, _ = read_aux_array(spec, hdulist, source, "PSF", None)
    return normalised_psf(data, source)


def normalised_psf(
    data: npt.NDArray[np.floating], source: str
) -> npt.NDArray[np.float64]:
    """Check a PSF image and return it with unit sum.

    Raises
    ------
    FormatError
        Naming the file and what is wrong with the image.
    """
    psf = np.asarray(data, dtype=np.float64)
    if psf.ndim != 2 or psf.shape[0] % 2 == 0 or psf.shape[1] % 2 == 0:
        raise FormatError(
            f"{source}: PSF image has shape {psf.shape}; it must be 2-D "
            "with odd sides, centred on its middle pixel"
        )
    if not np.all(np.isfinite(psf)):
        raise FormatError(f"{source}: PSF image holds non-finite values")
    total = float(psf.sum())
    if not total > 0.0:
        raise FormatError(f"{source}: PSF image sums to {total:g}, not > 0")
    return psf / total
