"""The writers behind `recreate.formats`: a recreation to bytes or a file.

Imported only when a format is used (the registry imports this module
lazily): the lsst-images writer pulls in ``lsst.images`` and its
dependencies, which a DP1 product never needs.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from astropy.io import fits

from recreate.io.difference import difference_bytes, write_difference
from recreate.io.direct import direct_difference_bytes
from recreate.io.fitsfile import atomic_destination
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.sources.measure import FWHM_PER_SIGMA
from recreate.pipeline.subtract import DifferenceResult

__all__ = [
    "dp1_bytes",
    "dp1_decorrelated_psf_bytes",
    "kernel_model",
    "lsst_images_bytes",
    "template_provenance",
    "write_bytes_file",
    "write_dp1_file",
    "write_lsst_images_file",
]

if TYPE_CHECKING:
    # Imported at run time only by the lsst-images writer (see above).
    from recreate.io.lsst_images import KernelModel, TemplateProvenance


def dp1_bytes(result: DifferenceResult, *, compress: bool) -> bytes:
    """Return a result in the DP1 layout, with its kernel, as bytes.

    Uncompressed planes are the fastest to encode and serve (the cache
    compresses the mask and variance itself); lossless GZIP_2 tile
    compression, as DP1's files have, halves the bytes sent. Those are
    written by `recreate.io.direct` (a stamp's headers in a millisecond
    rather than twenty), the same bytes as astropy's reference writer,
    which writes whatever the direct writer leaves to it.
    """
    kernel = result.kernel.to_dict()
    if not compress:
        data = direct_difference_bytes(result.exposure, kernel)
        if data is not None:
            return data
    return difference_bytes(result.exposure, kernel, compress=compress)


def dp1_decorrelated_psf_bytes(result: DifferenceResult) -> bytes:
    """Return `dp1_bytes` (uncompressed) with the ``DECORRELATED_PSF``.

    The bytes `write_dp1_file` writes with ``decorrelated_psf``: the
    release's science PSF stays the product's PSF, the difference's own
    PSF is the extra extension (`recreate.decorrelated_psf`).
    """
    return difference_bytes(
        result.exposure,
        result.kernel.to_dict(),
        compress=False,
        extra_hdus=_decorrelated_psf_hdus(result),
    )


def write_dp1_file(
    result: DifferenceResult,
    path: str | os.PathLike[str],
    *,
    compress: bool,
    overwrite: bool = False,
    decorrelated_psf: bool = False,
) -> None:
    """Write a result in the DP1 layout, as `dp1_bytes` encodes it.

    With ``decorrelated_psf`` the ``DECORRELATED_PSF`` extension (the
    difference image's own PSF, `recreate.decorrelated_psf`) is added
    beside the release's science PSF.
    """
    extra = _decorrelated_psf_hdus(result) if decorrelated_psf else []
    write_difference(
        result.exposure,
        result.kernel.to_dict(),
        path,
        compress=compress,
        overwrite=overwrite,
        extra_hdus=extra,
    )


def write_bytes_file(
    data: bytes, path: str | os.PathLike[str], *, overwrite: bool = False
) -> None:
    """Write bytes (a PNG preview) so that ``path`` is whole or untouched.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    with atomic_destination(path, overwrite=overwrite) as temp:
        # O_EXCL: never write through a temporary name someone else made.
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)


def _decorrelated_psf_hdus(result: DifferenceResult) -> list[fits.ImageHDU]:
    """Return the ``DECORRELATED_PSF`` extension of a result, if it has one."""
    from recreate.decorrelated_psf import decorrelated_psf_hdu

    hdu = decorrelated_psf_hdu(result)
    return [] if hdu is None else [hdu]


def write_lsst_images_file(
    result: DifferenceResult,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    lossy16: bool = False,
) -> None:
    """Write a result as Rubin's DP2-style lsst.images DifferenceImage.

    With ``lossy16`` the image and variance are quantised as DP2's
    published files are (`recreate.io.lsst_images.lossy16`).
    """
    from recreate.io.lsst_images import write_lsst_images

    write_lsst_images(
        result.exposure,
        kernel_model(result.kernel),
        template_provenance(result),
        path,
        overwrite=overwrite,
        lossy16=lossy16,
    )


def lsst_images_bytes(result: DifferenceResult) -> bytes:
    """Return the bytes `write_lsst_images_file` would write.

    lsst.images writes files only, so the product goes through a
    scratch file.
    """
    with tempfile.TemporaryDirectory(prefix="recreate-") as scratch:
        path = Path(scratch) / "diffim.fits"
        write_lsst_images_file(result, path)
        return path.read_bytes()


def kernel_model(kernel: SolvedKernel) -> KernelModel:
    """Return the solved kernel in the neutral form lsst.images stores.

    Both use afw's Chebyshev1Function2 terms (1, x, y, ...) normalised to
    the science bbox's pixel edges, and afw's kernel orientation.
    """
    from recreate.io.lsst_images import KernelModel

    return KernelModel(
        basis=kernel.basis.images(),
        coefficients=kernel.coefficients,
        bbox=kernel.bbox,
        order=kernel.spatial_kernel_order,
    )


def template_provenance(
    result: DifferenceResult,
) -> list[TemplateProvenance]:
    """Return one DP2-style template record per patch used.

    Butler inputs carry their skymap, tract and patch; files given on the
    command line have none (skymap "none", tract and patch -1) and are
    named by a UUID derived from their SHA-256.
    """
    from recreate.io.lsst_images import TemplateProvenance

    sigma2 = (result.provenance.template_fwhm / FWHM_PER_SIGMA) ** 2
    templates = [i for i in result.provenance.inputs if i.role == "template"]
    records = []
    for ref, bounds in zip(templates, result.patch_bounds, strict=True):
        data_id = ref.data_id
        records.append(
            TemplateProvenance(
                skymap=str(data_id.get("skymap", "none")),
                tract=int(data_id.get("tract", -1)),
                patch=int(data_id.get("patch", -1)),
                dataset_id=_as_uuid(ref.dataset_id),
                dataset_run=ref.run,
                bounds_xy=bounds,
                psf_shape_xx=sigma2,
                psf_shape_yy=sigma2,
                psf_shape_xy=0.0,
            )
        )
    return records


def _as_uuid(dataset_id: str) -> str:
    """Return a UUID string: Butler ids as they are, hashes folded."""
    try:
        return str(uuid.UUID(dataset_id))
    except ValueError:
        return str(uuid.UUID(hex=dataset_id[:32]))
