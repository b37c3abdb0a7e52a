"""The output formats: one registry that every face reads.

A format is a name (what users type: ``?format=``, ``--format``), the
function that turns a recreation into bytes (what the service caches and
serves), the function that writes it to a file (what the CLI does), a
media type, a file suffix and a one-line description. The recreation,
the CLI's choices, ``recreate prewarm``, the API's ``format`` parameter
and response headers, and the Python client all read this table, so a
new format is one entry here and one writer in `recreate.writers`.

This module is light on purpose: the writers (numba, astropy,
lsst.images) are imported only when a format is used, so importing the
settings or running ``recreate --help`` loads none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from recreate.errors import InvalidRequestError

if TYPE_CHECKING:
    from recreate.pipeline.subtract import DifferenceResult

__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "PREVIEW_FORMATS",
    "OutputFormat",
    "check_write_options",
    "companions",
    "format_names",
    "get_format",
    "stretched_format",
]

#: The format of a request that names none.
DEFAULT_FORMAT = "dp1"

FITS = "application/fits"
PNG = "image/png"
#: The preview formats (`recreate.preview`) that take a ``stretch``;
#: the default stretch (zscale) is the plain name, the others a suffix.
PREVIEW_FORMATS = ("png", "png-triplet")

BytesWriter = Callable[["DifferenceResult"], bytes]
SourceRenderer = Callable[[bytes], bytes]
FileWriter = Callable[["DifferenceResult", str | os.PathLike[str], bool], None]


@dataclass(frozen=True)
class OutputFormat:
    """One output format: its name, writers and how it is served.

    Attributes
    ----------
    name
        What users type (``dp1``, ``lsst-images``...); part of the cache
        key, so each format is cached under its own key.
    media_type
        The HTTP ``Content-Type`` of a served product.
    suffix
        The file suffix of a written product.
    description
        One line for ``--help`` and the API's documentation.
    sources
        Formats whose cached bytes this one can be rendered from,
        without a recreation, to the same bytes (a preview of the
        difference from the DP1 FITS); empty for most.
    beside_sources
        Cached beside each product of a source format whenever that is
        recreated (the zscale preview: a tenth of a second for a 4k
        detector), so a preview of a cached product is a hit.
    needs_inputs
        Written from the science image and the warped template too (the
        triplet previews): a whole detector is made by a recreation (it
        keeps both), a region by `recreate.solution.render_triplet` (the
        render's own science window and warped template).
    """

    name: str
    media_type: str
    suffix: str
    description: str
    # Module-level functions, so a format pickles (it travels with a task).
    _to_bytes: BytesWriter
    _to_file: FileWriter
    sources: tuple[str, ...] = ()
    _from_source: SourceRenderer | None = None
    beside_sources: bool = False
    needs_inputs: bool = False

    def to_bytes(self, result: DifferenceResult) -> bytes:
        """Return the bytes the service caches and serves."""
        return self._to_bytes(result)

    def from_source(self, data: bytes) -> bytes:
        """Return this format's bytes rendered from a source's bytes.

        The same bytes `to_bytes` gives for the recreation that the
        source's bytes hold.

        Raises
        ------
        InvalidRequestError
            If this format has no source.
        FormatError
            If ``data`` is not a product in a source format.
        """
        if self._from_source is None:
            raise InvalidRequestError(
                f"format {self.name!r} is not rendered from another format"
            )
        return self._from_source(data)

    def write(
        self,
        result: DifferenceResult,
        path: str | os.PathLike[str],
        *,
        overwrite: bool = False,
    ) -> None:
        """Write the product to ``path`` (atomically)."""
        self._to_file(result, path, overwrite)


# The writers, imported when first used (see the module's docstring).


def _dp1_bytes(result: DifferenceResult) -> bytes:
    from recreate.writers import dp1_bytes

    return dp1_bytes(result, compress=False)


def _dp1_compressed_bytes(result: DifferenceResult) -> bytes:
    from recreate.writers import dp1_bytes

    return dp1_bytes(result, compress=True)


def _dp1_file(
    result: DifferenceResult, path: str | os.PathLike[str], overwrite: bool
) -> None:
    from recreate.writers import write_dp1_file

    write_dp1_file(result, path, compress=False, overwrite=overwrite)


def _dp1_compressed_file(
    result: DifferenceResult, path: str | os.PathLike[str], overwrite: bool
) -> None:
    from recreate.writers import write_dp1_file

    write_dp1_file(result, path, compress=True, overwrite=overwrite)


def _dp1_decorrelated_psf_bytes(result: DifferenceResult) -> bytes:
    from recreate.writers import dp1_decorrelated_psf_bytes

    return dp1_decorrelated_psf_bytes(result)


def _dp1_decorrelated_psf_file(
    result: DifferenceResult, path: str | os.PathLike[str], overwrite: bool
) -> None:
    from recreate.writers import write_dp1_file

    write_dp1_file(
        result,
        path,
        compress=False,
        overwrite=overwrite,
        decorrelated_psf=True,
    )


def _lsst_images_bytes(result: DifferenceResult) -> bytes:
    from recreate.writers import lsst_images_bytes

    return lsst_images_bytes(result)


def _lsst_images_file(
    result: DifferenceResult, path: str | os.PathLike[str], overwrite: bool
) -> None:
    from recreate.writers import write_lsst_images_file

    write_lsst_images_file(result, path, overwrite=overwrite)


def _png_bytes(result: DifferenceResult) -> bytes:
    from recreate.preview import difference_png

    return difference_png(result, "zscale")


def _png_asinh_bytes(result: DifferenceResult) -> bytes:
    from recreate.preview import difference_png

    return difference_png(result, "asinh")


def _png_from_fits(data: bytes) -> bytes:
    from recreate.preview import fits_to_png

    return fits_to_png(data, "zscale")


def _png_asinh_from_fits(data: bytes) -> bytes:
    from recreate.preview import fits_to_png

    return fits_to_png(data, "asinh")


def _png_triplet_bytes(result: DifferenceResult) -> bytes:
    from recreate.preview import triplet_png

    return triplet_png(result, "zscale")


def _png_triplet_asinh_bytes(result: DifferenceResult) -> bytes:
    from recreate.preview import triplet_png

    return triplet_png(result, "asinh")


@dataclass(frozen=True)
class _BytesFile:
    """A file writer that writes a bytes writer's output atomically.

    A frozen dataclass of a module-level function: it pickles, and
    compares equal after a round trip (a format travels with a task).
    """

    to_bytes: BytesWriter

    def __call__(
        self,
        result: DifferenceResult,
        path: str | os.PathLike[str],
        overwrite: bool,
    ) -> None:
        from recreate.writers import write_bytes_file

        write_bytes_file(self.to_bytes(result), path, overwrite=overwrite)


#: The formats in DP1's layout, which alone can carry the decorrelated
#: PSF extension.
DP1_LAYOUT_FORMATS: tuple[str, ...] = ("dp1", "dp1-compressed")

#: What a preview of the difference renders from: the DP1 FITS holds the
#: image and mask it shows (lossless either way). Not the triplet: its
#: science and template are not in the product.
_PREVIEW_SOURCES = DP1_LAYOUT_FORMATS

_ALL = (
    OutputFormat(
        name="dp1",
        media_type=FITS,
        suffix=".fits",
        description="DP1 layout (afw ExposureF) with the solved kernel; "
        "uncompressed planes, fastest to write and serve (default)",
        _to_bytes=_dp1_bytes,
        _to_file=_dp1_file,
    ),
    OutputFormat(
        name="dp1-compressed",
        media_type=FITS,
        suffix=".fits",
        description="DP1 layout with lossless GZIP_2 tile-compressed "
        "planes, as DP1's own files: about half the bytes",
        _to_bytes=_dp1_compressed_bytes,
        _to_file=_dp1_compressed_file,
    ),
    OutputFormat(
        name="dp1-decorrelated-psf",
        media_type=FITS,
        suffix=".fits",
        description="the dp1 format plus a DECORRELATED_PSF extension: "
        "the difference's own PSF (the science PSF filtered by the "
        "decorrelation) beside the release's science PSF",
        _to_bytes=_dp1_decorrelated_psf_bytes,
        _to_file=_dp1_decorrelated_psf_file,
    ),
    OutputFormat(
        name="lsst-images",
        media_type=FITS,
        suffix=".fits",
        description="Rubin's DP2-style lsst.images DifferenceImage",
        _to_bytes=_lsst_images_bytes,
        _to_file=_lsst_images_file,
    ),
    OutputFormat(
        name="png",
        media_type=PNG,
        suffix=".png",
        description="PNG preview of the difference: IRAF zscale, masked "
        "pixels tinted, detections outlined, at most 1024 px a side",
        _to_bytes=_png_bytes,
        _to_file=_BytesFile(_png_bytes),
        sources=_PREVIEW_SOURCES,
        _from_source=_png_from_fits,
        beside_sources=True,
    ),
    OutputFormat(
        name="png-asinh",
        media_type=PNG,
        suffix=".png",
        description="the png preview with an asinh stretch",
        _to_bytes=_png_asinh_bytes,
        _to_file=_BytesFile(_png_asinh_bytes),
        sources=_PREVIEW_SOURCES,
        _from_source=_png_asinh_from_fits,
    ),
    OutputFormat(
        name="png-triplet",
        media_type=PNG,
        suffix=".png",
        description="PNG of science, warped template and difference side "
        "by side (zscale; the difference tinted and outlined)",
        _to_bytes=_png_triplet_bytes,
        _to_file=_BytesFile(_png_triplet_bytes),
        needs_inputs=True,
    ),
    OutputFormat(
        name="png-triplet-asinh",
        media_type=PNG,
        suffix=".png",
        description="the png-triplet preview with an asinh stretch",
        _to_bytes=_png_triplet_asinh_bytes,
        _to_file=_BytesFile(_png_triplet_asinh_bytes),
        needs_inputs=True,
    ),
)

#: Every format by name, in the order help texts list them.
FORMATS: Mapping[str, OutputFormat] = MappingProxyType(
    {fmt.name: fmt for fmt in _ALL}
)


def companions(name: str) -> tuple[OutputFormat, ...]:
    """Return the formats cached beside a recreated product of ``name``."""
    return tuple(
        fmt for fmt in _ALL if fmt.beside_sources and name in fmt.sources
    )


def format_names() -> tuple[str, ...]:
    """Return the names of the formats (the CLI's and the API's choices)."""
    return tuple(FORMATS)


def stretched_format(name: str, stretch: str | None) -> str:
    """Return the registry name of a format with a preview stretch.

    ``("png", "asinh")`` is ``png-asinh``; no stretch, or the default
    ``zscale``, leaves the name as it is.

    Raises
    ------
    InvalidRequestError
        If the stretch is unknown, or given for a format that is not a
        preview.
    """
    from recreate.preview.scale import STRETCHES, check_stretch

    if stretch is None:
        return name
    check_stretch(stretch)
    if name not in PREVIEW_FORMATS:
        raise InvalidRequestError(
            f"stretch applies to the preview formats "
            f"({', '.join(PREVIEW_FORMATS)}), not to {name!r}"
        )
    return name if stretch == STRETCHES[0] else f"{name}-{stretch}"


def get_format(name: str) -> OutputFormat:
    """Return the format called ``name``.

    Raises
    ------
    InvalidRequestError
        If there is no such format; the message names it and the choices.
    """
    try:
        return FORMATS[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown format {name!r}; choose one of "
            f"{', '.join(format_names())}"
        ) from None


def check_write_options(
    name: str, *, lossy16: bool = False, decorrelated_psf: bool = False
) -> OutputFormat:
    """Return the format called ``name``, if it can be written as asked.

    The command line calls this before any work, so a bad combination
    costs nothing.

    Parameters
    ----------
    name
        The format's name.
    lossy16
        Quantise as DP2's published files are: ``lsst-images`` only.
    decorrelated_psf
        Add the ``DECORRELATED_PSF`` extension: DP1's layout only.

    Raises
    ------
    InvalidRequestError
        If the format is unknown, or an option does not fit it; the
        message names both.
    """
    chosen = get_format(name)
    if lossy16 and chosen.name != "lsst-images":
        raise InvalidRequestError(
            f"--lossy16 needs --format lsst-images, not {name!r}"
        )
    if decorrelated_psf and chosen.name not in DP1_LAYOUT_FORMATS:
        raise InvalidRequestError(
            "--decorrelated-psf needs a dp1 format "
            f"({', '.join(DP1_LAYOUT_FORMATS)}), not {name!r}"
        )
    return chosen
