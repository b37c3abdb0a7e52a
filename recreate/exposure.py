"""The in-memory exposure: pixels, mask planes, WCS, PSF, calibration.

One type, `Exposure`, stands for every image the project handles: a
visit image, a template coadd patch, a warped template, a difference
image. It mirrors afw's ``ExposureF`` closely enough that the DP1 file
layout maps onto it one to one, without needing the LSST stack.

Coordinate conventions
----------------------
Array axes are ``(y, x)``. ``Exposure.wcs`` maps *array* pixel
coordinates (0-based, astropy's convention) to the sky, exactly as the
FITS WCS written in an afw image header does. ``xy0`` is the array's
origin in the parent ("LSST pixel") frame, which afw stores in the
``LTV1/LTV2`` and ``CRVAL1A/CRVAL2A`` cards: parent = array + xy0.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from recreate.errors import FormatError

if TYPE_CHECKING:
    from astropy.io.fits import Header
    from astropy.wcs import WCS

#: afw's default mask planes and bits (``lsst/afw:MaskDict.cc``). Files
#: carry their own ``MP_*`` cards, which always win over this table.
AFW_DEFAULT_MASK_PLANES: Mapping[str, int] = MappingProxyType(
    {
        "BAD": 0,
        "SAT": 1,
        "INTRP": 2,
        "CR": 3,
        "EDGE": 4,
        "DETECTED": 5,
        "DETECTED_NEGATIVE": 6,
        "SUSPECT": 7,
        "NO_DATA": 8,
        "VIGNETTED": 9,
        "STREAK": 10,
    }
)

#: An int32 mask holds at most 32 planes.
MAX_MASK_PLANES = 32

_MASK_CARD_PREFIX = "MP_"


@dataclass(frozen=True)
class MaskPlanes:
    """Named bit planes of an integer mask.

    Parameters
    ----------
    bits
        Plane name to bit number (0-31). Bit numbers are per-file in
        LSST data, so they are always read from the file's ``MP_*`` cards.
    """

    bits: Mapping[str, int]

    def __post_init__(self) -> None:
        """Check that every bit fits an int32 and none is used twice."""
        frozen = MappingProxyType(dict(sorted(self.bits.items())))
        object.__setattr__(self, "bits", frozen)
        seen: dict[int, str] = {}
        for name, bit in frozen.items():
            if not 0 <= bit < MAX_MASK_PLANES:
                raise FormatError(
                    f"mask plane {name!r} has bit {bit}, outside 0-31"
                )
            if bit in seen:
                raise FormatError(
                    f"mask planes {seen[bit]!r} and {name!r} share bit {bit}"
                )
            seen[bit] = name

    @classmethod
    def afw_default(cls) -> MaskPlanes:
        """Return afw's default planes (BAD 0 ... STREAK 10)."""
        return cls(AFW_DEFAULT_MASK_PLANES)

    @classmethod
    def from_header(cls, header: Header) -> MaskPlanes:
        """Read the planes from a header's ``MP_<NAME> = bit`` cards.

        Parameters
        ----------
        header
            A FITS header, normally the MASK extension's.

        Returns
        -------
        planes
            The planes named in the header. A header with no ``MP_*``
            card gives an empty set of planes.

        Raises
        ------
        FormatError
            If a card's value is not an integer bit in 0-31.
        """
        bits: dict[str, int] = {}
        for card in header.cards:  # only the MP_ cards' values are parsed
            if not (key := card.keyword).startswith(_MASK_CARD_PREFIX):
                continue
            value = card.value
            if isinstance(value, bool) or not isinstance(value, int):
                raise FormatError(f"mask card {key}={value!r} is not a bit")
            bits[key.removeprefix(_MASK_CARD_PREFIX)] = value
        return cls(bits)

    def header_cards(self) -> list[tuple[str, int]]:
        """Return ``(keyword, bit)`` pairs in bit order, for a header.

        Long names are written as HIERARCH cards, as afw does.
        """
        cards = []
        for name, bit in sorted(self.bits.items(), key=lambda item: item[1]):
            key = f"{_MASK_CARD_PREFIX}{name}"
            cards.append((key if len(key) <= 8 else f"HIERARCH {key}", bit))
        return cards

    @property
    def names(self) -> tuple[str, ...]:
        """Plane names in bit order."""
        return tuple(sorted(self.bits, key=self.bits.__getitem__))

    def __contains__(self, name: object) -> bool:
        """Say whether a plane of this name exists."""
        return name in self.bits

    def bit(self, name: str) -> int:
        """Return the bit number of a plane.

        Raises
        ------
        KeyError
            If there is no such plane; the message lists those there are.
        """
        try:
            return self.bits[name]
        except KeyError:
            raise KeyError(
                f"no mask plane {name!r}; planes are {', '.join(self.names)}"
            ) from None

    def value(self, *names: str) -> int:
        """Return the bitmask that selects the named planes."""
        total = 0
        for name in names:
            total |= 1 << self.bit(name)
        return total

    def value_of_present(self, names: Iterable[str]) -> int:
        """Return the bitmask of those of ``names`` that exist here."""
        return self.value(*(name for name in names if name in self.bits))

    def with_planes(self, *names: str) -> MaskPlanes:
        """Return these planes plus ``names``, each on the lowest free bit.

        Raises
        ------
        FormatError
            If the mask would need more than 32 planes.
        """
        bits = dict(self.bits)
        for name in names:
            if name in bits:
                continue
            free = sorted(set(range(MAX_MASK_PLANES)) - set(bits.values()))
            if not free:
                raise FormatError(f"no free mask bit left for plane {name!r}")
            bits[name] = free[0]
        return MaskPlanes(bits)


@dataclass(frozen=True, eq=False)
class PsfGrid:
    """PSF images sampled on a regular grid of detector positions.

    Parameters
    ----------
    xs, ys
        Array-pixel coordinates of the grid columns and rows, ascending.
    images
        Array of shape ``(len(ys), len(xs), h, w)``, each image centred on
        its middle pixel and normalised to unit sum.
    """

    xs: npt.NDArray[np.float64]
    ys: npt.NDArray[np.float64]
    images: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        """Check that the images match the grid."""
        shape = self.images.shape
        if self.images.ndim != 4 or shape[:2] != (len(self.ys), len(self.xs)):
            raise FormatError(
                f"PSF grid images have shape {shape}; expected "
                f"({len(self.ys)}, {len(self.xs)}, h, w)"
            )
        if shape[2] % 2 == 0 or shape[3] % 2 == 0:
            raise FormatError(f"PSF images must have odd sides, got {shape}")

    def image_at(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the PSF image at ``(x, y)``, bilinear in the grid.

        Positions outside the grid take the nearest edge. The result is
        normalised to unit sum.
        """
        wx, ix = _bracket(self.xs, x)
        wy, iy = _bracket(self.ys, y)
        grid = self.images.astype(np.float64)
        image = (
            (1 - wy) * (1 - wx) * grid[iy, ix]
            + (1 - wy) * wx * grid[iy, ix + 1]
            + wy * (1 - wx) * grid[iy + 1, ix]
            + wy * wx * grid[iy + 1, ix + 1]
        )
        return image / image.sum()


def _bracket(
    nodes: npt.NDArray[np.float64], value: float
) -> tuple[float, int]:
    """Return ``(weight, index)`` so that value lies at nodes[i] + w*step."""
    if len(nodes) == 1:
        return 0.0, 0
    index = int(np.clip(np.searchsorted(nodes, value) - 1, 0, len(nodes) - 2))
    step = nodes[index + 1] - nodes[index]
    weight = float(np.clip((value - nodes[index]) / step, 0.0, 1.0))
    return weight, index


@dataclass(frozen=True, eq=False)
class PsfInfo:
    """What is known of an image's point-spread function.

    Parameters
    ----------
    fwhm
        Full width at half maximum at the image centre, in pixels.
    grid
        PSF images on a grid of positions, where known.
    """

    fwhm: float
    grid: PsfGrid | None = None

    @property
    def sigma(self) -> float:
        """Gaussian-equivalent width at the centre, in pixels."""
        return self.fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class PhotoCalib:
    """Photometric calibration of the pixel values.

    Parameters
    ----------
    calibration
        nJy per unit of pixel value: 1 for images already in nJy, as DP1
        visit images and coadds are.
    calibration_error
        Uncertainty of ``calibration``, in the same units.
    njy_per_electron
        nJy per detected photo-electron, where known; it lets a variance
        be rebuilt from the pixel values (the source Poisson term).
    """

    calibration: float = 1.0
    calibration_error: float = 0.0
    njy_per_electron: float | None = None

    @property
    def zero_point(self) -> float:
        """AB magnitude of one unit of pixel value."""
        return 31.4 - 2.5 * float(np.log10(self.calibration))


@dataclass(frozen=True)
class ObservationInfo:
    """Where an image comes from: a visit-detector or a coadd patch.

    Visit images fill the visit fields; coadds fill ``skymap``, ``tract``
    and ``patch``. Every field but ``instrument`` and ``band`` may be
    unknown (``None``) for images from other surveys.
    """

    instrument: str
    band: str
    physical_filter: str | None = None
    visit: int | None = None
    detector: int | None = None
    detector_name: str | None = None
    day_obs: int | None = None
    exposure_time: float | None = None
    date_avg: str | None = None
    boresight_ra: float | None = None
    boresight_dec: float | None = None
    rotation_angle: float | None = None
    airmass: float | None = None
    skymap: str | None = None
    tract: int | None = None
    patch: int | None = None

    @property
    def is_coadd(self) -> bool:
        """Say whether this describes a coadd patch."""
        return self.patch is not None


@dataclass(eq=False)
class Exposure:
    """A masked image with its WCS, PSF, calibration and metadata.

    Parameters
    ----------
    image
        Pixel values, float32, in nJy when ``photo_calib.calibration`` is 1.
    variance
        Per-pixel variance, float32, in the square of the image's unit.
    mask
        int32 bit mask; plane names in ``mask_planes``.
    mask_planes
        Names and bits of the mask planes.
    wcs
        Celestial WCS of the array pixels (TAN or TAN-SIP), if any.
    xy0
        Origin of the array in the parent pixel frame, ``(x0, y0)``.
    psf
        PSF information, if known.
    photo_calib
        Photometric calibration.
    observation
        Where the image comes from, if known.
    metadata
        Further header cards to carry along (e.g. provenance).
    """

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.afw_default)
    wcs: WCS | None = None
    xy0: tuple[int, int] = (0, 0)
    psf: PsfInfo | None = None
    photo_calib: PhotoCalib = field(default_factory=PhotoCalib)
    observation: ObservationInfo | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Coerce the planes to their dtypes and check their shapes."""
        self.image = np.asarray(self.image, dtype=np.float32)
        self.variance = np.asarray(self.variance, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=np.int32)
        shapes = {self.image.shape, self.variance.shape, self.mask.shape}
        if len(shapes) != 1 or self.image.ndim != 2:
            raise FormatError(
                "image, variance and mask must be 2-D of one shape; got "
                f"{self.image.shape}, {self.variance.shape}, "
                f"{self.mask.shape}"
            )
        self.xy0 = (int(self.xy0[0]), int(self.xy0[1]))

    @property
    def shape(self) -> tuple[int, int]:
        """Array shape, ``(height, width)``."""
        height, width = self.image.shape
        return int(height), int(width)

    def pixel_scale(self) -> float:
        """Return the pixel scale at the array centre, in arcsec.

        Raises
        ------
        FormatError
            If the exposure has no WCS.
        """
        wcs = self.require_wcs()
        height, width = self.shape
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        corners = wcs.pixel_to_world_values(
            np.array([cx, cx + 1.0, cx]), np.array([cy, cy, cy + 1.0])
        )
        ra, dec = np.radians(corners[0]), np.radians(corners[1])
        dx = _angular_separation(ra[0], dec[0], ra[1], dec[1])
        dy = _angular_separation(ra[0], dec[0], ra[2], dec[2])
        return float(np.degrees(np.sqrt(dx * dy)) * 3600.0)

    def require_wcs(self) -> WCS:
        """Return the WCS, or raise a clear error when there is none."""
        if self.wcs is None:
            raise FormatError("this exposure has no celestial WCS")
        return self.wcs

    def corners_sky(self) -> npt.NDArray[np.float64]:
        """Return the (ra, dec) in degrees of the array's four corners.

        The corners are the outer pixel edges, counter-clockwise from
        ``(-0.5, -0.5)``, so the polygon covers every pixel.
        """
        wcs = self.require_wcs()
        height, width = self.shape
        xs = np.array([-0.5, width - 0.5, width - 0.5, -0.5])
        ys = np.array([-0.5, -0.5, height - 0.5, height - 0.5])
        ra, dec = wcs.pixel_to_world_values(xs, ys)
        return np.column_stack([ra, dec])

    def plane_hash(self) -> str:
        """Return a SHA-256 of the image, variance and mask bytes.

        The planes are hashed little-endian in that order, so the digest
        is the same on any machine for the same pixels.
        """
        digest = hashlib.sha256()
        for plane, dtype in (
            (self.image, "<f4"),
            (self.variance, "<f4"),
            (self.mask, "<i4"),
        ):
            digest.update(np.ascontiguousarray(plane, dtype=dtype).tobytes())
        return digest.hexdigest()


def _angular_separation(
    ra1: float, dec1: float, ra2: float, dec2: float
) -> float:
    """Return the angle between two points in radians (Vincenty)."""
    dra = ra2 - ra1
    num = np.hypot(
        np.cos(dec2) * np.sin(dra),
        np.cos(dec1) * np.sin(dec2)
        - np.sin(dec1) * np.cos(dec2) * np.cos(dra),
    )
    den = np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(
        dra
    )
    return float(np.arctan2(num, den))
