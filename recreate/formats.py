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
    "OutputFormat",
    "check_write_options",
    "format_names",
    "get_format",
]

#: The format of a request that names none.
DEFAULT_FORMAT = "dp1"

FITS = "application/fits"

BytesWriter = Callable[["DifferenceResult"], bytes]
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
    """

    name: str
    media_type: str
    suffix: str
    description: str
    # Module-level functions, so a format pickles (it travels with a task).
    _to_bytes: BytesWriter
    _to_file: FileWriter

    def to_bytes(self, result: DifferenceResult) -> bytes:
        """Return the bytes the service caches and serves."""
        return self._to_bytes(result)

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


def _lsst_images_bytes(result: DifferenceResult) -> bytes:
    from recreate.writers import lsst_images_bytes

    return lsst_images_bytes(result)


def _lsst_images_file(
    result: DifferenceResult, path: str | os.PathLike[str], overwrite: bool
) -> None:
    from recreate.writers import write_lsst_images_file

    write_lsst_images_file(result, path, overwrite=overwrite)


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
        name="lsst-images",
        media_type=FITS,
        suffix=".fits",
        description="Rubin's DP2-style lsst.images DifferenceImage",
        _to_bytes=_lsst_images_bytes,
        _to_file=_lsst_images_file,
    ),
)

#: Every format by name, in the order help texts list them.
FORMATS: Mapping[str, OutputFormat] = MappingProxyType(
    {fmt.name: fmt for fmt in _ALL}
)

#: The formats in DP1's layout, which alone can carry the decorrelated
#: PSF extension.
DP1_LAYOUT_FORMATS: tuple[str, ...] = ("dp1", "dp1-compressed")


def format_names() -> tuple[str, ...]:
    """Return the names of the formats (the CLI's and the API's choices)."""
    return tuple(FORMATS)


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
