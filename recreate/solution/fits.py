"""A solution as a FITS file: deterministic, checked, readable by anyone.

Layout (version 1; every HDU named by ``EXTNAME``)::

    0 PRIMARY        no data. SOLUTION (layout version), RECIPE,
                     PIPEVER (pipelines version), CODEVER (recreate),
                     CFGHASH (the recipe's configuration hash),
                     INSTRUME, VISIT, DETECTOR, DETX0/DETY0 (parent pixel
                     of the detector's first pixel), DETNX/DETNY (its
                     size), TILESIZE, NOTEnnn (provenance notes), and
                     SOLSUM: the SHA-256 of the content (below).
    1 PARAMS         table NAME (str), VALUE (float64, exact): coverage,
                     PSF FWHMs (px), ScaleVariance factors, the
                     decorrelation's variance levels, variance weights
                     and truncated energy, DP2's HIGH_VARIANCE threshold
                     and empty-bin fill, the bin-40 background's Akima
                     cutoff scale (NaN where a recipe has none).
    2 INPUTS         table ROLE, DATASET_TYPE, DATASET_ID, RUN, DATA_ID
                     (JSON): the input datasets, science first.
    3 KERNEL         table, one row per basis image of the matching
                     kernel (DP2's MatchingKernel: a LinearCombination-
                     Kernel of ip_diffim's Alard-Lupton basis): GAUSSIAN
                     (its Gaussian), SIGMA (px), XPOWER, YPOWER (the
                     monomial u^p v^q, u and v in [-1, 1] over the box),
                     COEFF (the Chebyshev coefficients of its weight,
                     terms 1, x', y' with x', y' in [-1, 1] over BBOX).
                     Cards KSIZE (box side, px), NGAUSS, DEGREEn,
                     BBOXX0/BBOXY0/BBOXNX/BBOXNY (science array px),
                     SPORDER, BGORDER, NCAND, NUSED. The images are
                     makeAlardLuptonBasisList's, renormalised as
                     renormalizeKernelList does (basis 0 unit sum, the
                     others zero sum and unit norm); the kernel at
                     (x, y) is sum_i w_i(x, y) B_i, applied as
                     out(x) = sum_u K(u) template(x + u). The fitted
                     background's Chebyshev coefficients are PARAMS rows
                     kernel_background_n; the sigmas, exactly, rows
                     kernel_sigma_n.
    4 DECORRELATION  image float32 (d, d): the DMTN-021 decorrelation
                     kernel, centred, unit sum.
    5 BACKGROUND     DP2 only: tile-compressed (GZIP_1, one tile,
                     lossless) float32 image of the bin-40 background's
                     bins of the difference (BINSIZE px, afw's layout).

Every HDU but the compressed one carries the FITS standard's CHECKSUM
and DATASUM cards, and
SOLSUM is `Solution.content_hash`: reading checks both and refuses a
file whose bytes or content do not match (`FormatError`), as it refuses
a layout version it does not know. The same solution always gives the
same bytes (no dates; compressed tiles without timestamps).
"""

from __future__ import annotations

import io
import json
import os
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from astropy.io import fits

from recreate.errors import FormatError
from recreate.io.dp1 import _plane_hdu  # noqa: F401 - pins gzip stamps
from recreate.io.fitsfile import atomic_destination, open_fits
from recreate.io.raw_tables import checksums_hold, table_columns
from recreate.pipeline.match.background_grid import BackgroundGrid
from recreate.pipeline.match.decorrelate import DecorrelationKernel
from recreate.pipeline.provenance import InputRef
from recreate.pipeline.recipes import get_recipe
from recreate.pipeline.template.high_variance import HighVarianceLevels
from recreate.solution.kernel_table import (
    kernel_from_table,
    kernel_numbers,
    kernel_table_hdu,
)
from recreate.solution.model import SOLUTION_VERSION, DetectorFrame, Solution

#: The comment of the CHECKSUM and DATASUM cards (no date: the same
#: solution gives the same bytes).
_CHECKSUM_COMMENT = "FITS checksum"

_STRING_CARDS = {
    "RECIPE": "recipe",
    "PIPEVER": "pipelines_version",
    "CODEVER": "code_version",
    "CFGHASH": "config_hash",
}


def solution_hdulist(solution: Solution) -> fits.HDUList:
    """Return the HDUs of a solution (module notes)."""
    hdus: list[fits.hdu.base.ExtensionHDU] = [
        _params_hdu(solution),
        _inputs_hdu(solution.inputs),
        kernel_table_hdu(solution.kernel),
        _image_hdu("DECORRELATION", solution.decorrelation.image, np.float32),
    ]
    if solution.background is not None:
        hdus.append(_background_hdu(solution.background))
    return fits.HDUList([fits.PrimaryHDU(header=_primary(solution)), *hdus])


def solution_bytes(solution: Solution) -> bytes:
    """Return the FITS bytes of a solution (module notes)."""
    hdulist = solution_hdulist(solution)
    for hdu in hdulist:
        # astropy would stamp the date in the cards' comment; the
        # compressed HDU's bytes are only known at writing, and its
        # content is in SOLSUM.
        if not isinstance(hdu, fits.CompImageHDU):
            hdu.add_checksum(when=_CHECKSUM_COMMENT)
    buffer = io.BytesIO()
    hdulist.writeto(buffer)
    return buffer.getvalue()


def write_solution(
    solution: Solution,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> None:
    """Write a solution to a FITS file, atomically.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    """
    data = solution_bytes(solution)
    with atomic_destination(path, overwrite=overwrite) as temp:
        temp.write_bytes(data)


def read_solution(path: str | os.PathLike[str]) -> Solution:
    """Read a solution file and check its checksum.

    Raises
    ------
    FormatError
        If the file is not a solution, of an unknown layout version, or
        its content does not match its checksum.
    FileNotFoundError
        If there is no such file.
    """
    with open_fits(path) as hdulist:
        return _from_hdulist(hdulist, str(path))


def solution_from_bytes(data: bytes, source: str = "<solution>") -> Solution:
    """Read a solution from its FITS bytes (`read_solution`).

    Raises
    ------
    FormatError
        As `read_solution`; also if the bytes are not FITS at all.
    """
    try:
        hdulist = fits.open(io.BytesIO(data), memmap=False)
    except (OSError, ValueError) as error:
        raise FormatError(f"{source}: not a FITS file ({error})") from None
    with hdulist:
        return _from_hdulist(hdulist, source, data)


def _from_hdulist(
    hdulist: fits.HDUList, source: str, data: bytes | None = None
) -> Solution:
    """Build and check a solution from an open HDU list.

    Every HDU's FITS checksum first (a changed byte anywhere), then the
    content's SHA-256 (what the numbers mean). With the file's ``data``
    at hand, checksums and tables are read from them with numpy
    (`recreate.io.raw_tables`: a light curve reads a solution per
    epoch); astropy reads what that leaves, and confirms a mismatch.
    """
    for index, hdu in enumerate(hdulist):
        if "CHECKSUM" in hdu.header and not _checksums_hold(hdu, data):
            name = hdu.name or f"HDU {index}"
            raise FormatError(
                f"{source}: checksum mismatch in {name} (corrupt file)"
            )
    try:
        solution, stored = _parse(hdulist, source, data)
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        OSError,
        zlib.error,
    ) as error:
        raise FormatError(
            f"{source}: not a recreate solution file ({error})"
        ) from None
    actual = solution.content_hash()
    if actual != stored:
        raise FormatError(
            f"{source}: checksum mismatch: SOLSUM says {stored[:16]}..., "
            f"the content hashes to {actual[:16]}... (corrupt file)"
        )
    return solution


def _checksums_hold(
    hdu: fits.hdu.base.ExtensionHDU, data: bytes | None
) -> bool:
    """Say whether an HDU's FITS checksums hold (numpy, else astropy)."""
    if data is not None and checksums_hold(hdu, data):
        return True
    return bool(hdu.verify_checksum() == 1)


def _table(
    hdulist: fits.HDUList, name: str, data: bytes | None
) -> Mapping[str, Any]:
    """Return a table's columns: from the bytes, else astropy's."""
    hdu = hdulist[name]
    columns = None if data is None else table_columns(hdu, data)
    return hdu.data if columns is None else columns


def _parse(
    hdulist: fits.HDUList, source: str, data: bytes | None = None
) -> tuple[Solution, str]:
    """Return the solution a file holds and its stored checksum."""
    header = hdulist[0].header
    version = header.get("SOLUTION")
    if version != SOLUTION_VERSION:
        raise FormatError(
            f"{source}: solution layout version {version!r}; this code "
            f"reads version {SOLUTION_VERSION}"
        )
    numbers = _numbers(_table(hdulist, "PARAMS", data))
    recipe = str(header["RECIPE"])
    kernel = kernel_from_table(
        hdulist["KERNEL"].header, _table(hdulist, "KERNEL", data), numbers
    )
    decorrelation = np.asarray(hdulist["DECORRELATION"].data, np.float64)
    frame = DetectorFrame(
        instrument=header.get("INSTRUME") or None,
        visit=_optional_int(header.get("VISIT")),
        detector=_optional_int(header.get("DETECTOR")),
        xy0=(int(header["DETX0"]), int(header["DETY0"])),
        shape=(int(header["DETNY"]), int(header["DETNX"])),
    )
    solution = Solution(
        recipe=recipe,
        pipelines_version=str(header["PIPEVER"]),
        config_hash=str(header["CFGHASH"]),
        code_version=str(header["CODEVER"]),
        inputs=_inputs(_table(hdulist, "INPUTS", data)),
        frame=frame,
        template_coverage=numbers["template_coverage"],
        notes=tuple(
            str(header[f"NOTE{i:03d}"]) for i in range(int(header["NNOTES"]))
        ),
        science_fwhm=numbers["science_fwhm"],
        template_fwhm=numbers["template_fwhm"],
        kernel=kernel,
        science_variance_factor=numbers["science_variance_factor"],
        template_variance_factor=numbers["template_variance_factor"],
        decorrelation=DecorrelationKernel(
            image=decorrelation,
            science_variance=numbers["decorrelation_science_variance"],
            template_variance=numbers["decorrelation_template_variance"],
            science_weight=numbers["decorrelation_science_weight"],
            template_weight=numbers["decorrelation_template_weight"],
            truncation=numbers["decorrelation_truncation"],
        ),
        high_variance=_high_variance(recipe, numbers),
        background=_background(hdulist, recipe, frame, numbers),
    )
    return solution, str(header["SOLSUM"])


def _primary(solution: Solution) -> fits.Header:
    """Return the primary header (module notes)."""
    header = fits.Header()
    header["SOLUTION"] = (SOLUTION_VERSION, "recreate solution layout version")
    header["ORIGIN"] = "recreate"
    for key, name in _STRING_CARDS.items():
        header[key] = getattr(solution, name)
    frame = solution.frame
    header["INSTRUME"] = frame.instrument or ""
    header["VISIT"] = -1 if frame.visit is None else frame.visit
    header["DETECTOR"] = -1 if frame.detector is None else frame.detector
    header["DETX0"] = (frame.xy0[0], "parent x of the detector's first pixel")
    header["DETY0"] = (frame.xy0[1], "parent y of the detector's first pixel")
    header["DETNX"] = (frame.shape[1], "detector width (px)")
    header["DETNY"] = (frame.shape[0], "detector height (px)")
    config = get_recipe(solution.recipe)
    header["TILESIZE"] = (config.render.tile_size, "render tile side (px)")
    header["NNOTES"] = len(solution.notes)
    for index, note in enumerate(solution.notes):
        header[f"NOTE{index:03d}"] = note
    header["SOLSUM"] = solution.content_hash()
    return header


def _params_hdu(solution: Solution) -> fits.BinTableHDU:
    """Return the table of scalar numbers (exact float64)."""
    numbers = {**solution.numbers(), **kernel_numbers(solution.kernel)}
    names = list(numbers)
    width = max(len(n) for n in names)
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(name="NAME", format=f"{width}A", array=names),
            fits.Column(
                name="VALUE",
                format="D",
                array=np.array([numbers[n] for n in names], np.float64),
            ),
        ],
        name="PARAMS",
    )


def _inputs_hdu(inputs: tuple[InputRef, ...]) -> fits.BinTableHDU:
    """Return the table of input datasets."""
    data_ids = [
        json.dumps(dict(sorted(ref.data_id.items())), separators=(",", ":"))
        for ref in inputs
    ]
    columns = [
        ("ROLE", [ref.role for ref in inputs]),
        ("DATASET_TYPE", [ref.dataset_type for ref in inputs]),
        ("DATASET_ID", [ref.dataset_id for ref in inputs]),
        ("RUN", [ref.run for ref in inputs]),
        ("DATA_ID", data_ids),
    ]
    return fits.BinTableHDU.from_columns(
        [
            fits.Column(
                name=name,
                format=f"{max([len(v) for v in values] + [1])}A",
                array=values,
            )
            for name, values in columns
        ],
        name="INPUTS",
    )


def _background_hdu(grid: BackgroundGrid) -> fits.CompImageHDU:
    """Return the bin-40 background's bins, compressed losslessly."""
    header = fits.Header()
    header["BINSIZE"] = (grid.config.bin_size, "background bin side (px)")
    values = np.ascontiguousarray(grid.values, dtype=np.float32)
    # One tile: small tiles cost a gzip header each and compress worse.
    return fits.CompImageHDU(
        data=values,
        header=header,
        name="BACKGROUND",
        compression_type="GZIP_1",
        tile_shape=values.shape,
        quantize_level=0.0,
    )


def _image_hdu(
    name: str, data: npt.NDArray[np.floating], dtype: type[np.floating]
) -> fits.ImageHDU:
    """Return an uncompressed image HDU of ``data`` as ``dtype``."""
    return fits.ImageHDU(
        data=np.ascontiguousarray(data, dtype=dtype), name=name
    )


def _numbers(table: Mapping[str, Any]) -> dict[str, float]:
    """Return the PARAMS table as a dict."""
    return {
        str(name).strip(): float(value)
        for name, value in zip(table["NAME"], table["VALUE"], strict=True)
    }


def _inputs(table: Mapping[str, Any]) -> tuple[InputRef, ...]:
    """Return the INPUTS table's references."""
    columns = ("ROLE", "DATASET_TYPE", "DATASET_ID", "RUN", "DATA_ID")
    return tuple(
        InputRef(
            role=str(role),
            dataset_type=str(dataset_type),
            dataset_id=str(dataset_id),
            run=str(run),
            data_id=json.loads(str(data_id)),
        )
        for role, dataset_type, dataset_id, run, data_id in zip(
            *(table[name] for name in columns), strict=True
        )
    )


def _high_variance(
    recipe: str, numbers: dict[str, float]
) -> HighVarianceLevels | None:
    """Return the HIGH_VARIANCE levels, None when the recipe has none."""
    if get_recipe(recipe).template.high_variance is None:
        return None
    return HighVarianceLevels(
        numbers["high_variance_threshold"], numbers["high_variance_fill"]
    )


def _background(
    hdulist: fits.HDUList,
    recipe: str,
    frame: DetectorFrame,
    numbers: dict[str, float],
) -> BackgroundGrid | None:
    """Return the bin-40 background's bins, if the file holds them."""
    if "BACKGROUND" not in hdulist:
        return None
    backgrounds = get_recipe(recipe).subtract.difference_background
    if backgrounds is None:
        raise FormatError(f"recipe {recipe!r} has no difference background")
    values = np.asarray(hdulist["BACKGROUND"].data, np.float64)
    return BackgroundGrid(
        frame.shape,
        values,
        backgrounds.final,
        numbers["background_akima_scale"],
    )


def _optional_int(value: object) -> int | None:
    """Return a header integer, None for the -1 that stands for none."""
    if value is None or int(value) == -1:  # type: ignore[call-overload]
        return None
    return int(value)  # type: ignore[call-overload]
