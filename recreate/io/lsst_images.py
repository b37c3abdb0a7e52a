"""Write a difference image as Rubin's DP2-style ``lsst.images`` file.

DP2 publishes difference images as `lsst.images.DifferenceImage`: a
`~lsst.images.VisitImage` (pixels, mask, sky projection, PSF, detector,
observation info) plus the matching kernel and one
`~lsst.images.DifferenceImageTemplateInfo` per template coadd patch.
This module builds one from an `Exposure`, the solved kernel in a neutral
form (`KernelModel`) and the template provenance (`TemplateProvenance`),
without the LSST stack, and writes it in the ``lsst.images`` FITS
container. Read it back with ``lsst.images.DifferenceImage.read(path)``
(the name must end in ``.fits`` for ``read`` to pick the backend;
reading imports ``requests``).

How each component is made
--------------------------
image, variance
    Copied; unit ``nJy`` (``nJy**2``) unless ``metadata["BUNIT"]`` names
    another one, as in `recreate.io.dp1`.
mask
    One `~lsst.images.MaskPlane` per plane of ours, renamed and described
    as ``lsst.images`` does for legacy afw masks
    (`~lsst.images.get_legacy_difference_image_mask_planes`, then the
    optional and template maps): ``SAT`` becomes ``SATURATED``, ``INTRP``
    ``INTERPOLATED``, ``CR`` ``COSMIC_RAY``, ``EDGE`` ``DETECTION_EDGE``,
    ``UNMASKEDNAN`` ``UNMASKED_NAN``. Unknown planes keep their names.
sky projection
    Our TAN-SIP FITS WCS, through AST, offset by ``xy0`` so it maps
    detector (parent) pixels, the frame ``lsst.images`` uses.
psf
    A `~lsst.images.psfs.GaussianPointSpreadFunction` of sigma
    ``fwhm / 2.3548``: ``lsst.images`` serializes only Piff, PSFEx and
    Gaussian PSFs, so a PSF grid is *not* carried.
detector
    A nominal LSSTComCam ITL detector (4072x4000 pixels of 10 um,
    0.2"/px) on a 3x3 raft, with a linear pixel -> focal plane -> field
    angle chain and *one amplifier covering the whole detector*: the
    per-amplifier layout and the sensor serial are not known here.
obs_info
    An `astro_metadata_translator.ObservationInfo` with what
    `recreate.exposure.ObservationInfo` holds; the exposure id is the
    visit id (one exposure per visit, as in DP1).
photometric scaling
    ``nJy`` per post-ISR electron where known (the scaling already
    applied to an nJy image), the calibration to nJy for an image in
    another unit, else none.
kernel
    An `~lsst.images.convolution_kernels.ImageBasisConvolutionKernel`
    whose `~lsst.images.fields.ChebyshevField` weights equal
    `KernelModel.kernel_image` exactly (see `KernelModel`).
templates
    From `TemplateProvenance`, each polygon moved to the parent frame
    and clipped to the image: DP2 records the overlap only.
metadata
    ``Exposure.metadata`` but ``BUNIT``. Summary statistics are left
    unset (NaN): Rubin's pipeline measures them on the science image.

Writes are not byte-reproducible: the container stamps every HDU with
the write time (``DATE``) and astropy's GZIP codec stamps every
compressed tile with the current second. The decoded content is the same.
"""

from __future__ import annotations

import errno
import math
import os
import secrets
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import astropy.units as u
import lsst.images as li
import lsst.images.fits
import numpy as np
import numpy.typing as npt
from astro_metadata_translator import ObservationInfo as AstroObservationInfo
from astropy.coordinates import Angle, SkyCoord
from astropy.time import Time
from lsst.images import cameras, convolution_kernels, fields, psfs
from lsst.images.json import JsonInputArchive
from lsst.images.serialization import MetadataValue
from starlink import Ast

from recreate.errors import FormatError
from recreate.exposure import (
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfInfo,
)
from recreate.io.dp1 import UNIT_KEY

if TYPE_CHECKING:
    from astropy.wcs import WCS

#: The instrument whose detector geometry this module knows.
COMCAM = "LSSTComCam"
#: Processed (trimmed, assembled) ITL detector size, pixels.
COMCAM_WIDTH = 4072
COMCAM_HEIGHT = 4000
#: Pixel size, mm, and plate scale, arcsec per pixel.
COMCAM_PIXEL_SIZE = 0.010
COMCAM_PIXEL_SCALE = 0.2
#: ComCam's one raft, and its sensor pitch in mm (x, y): the ITL raft
#: layout of ``lsst/obs_lsst:policy/cameraHeader.yaml`` (``RAFT_ITL``).
COMCAM_RAFT = "R22"
COMCAM_SENSOR_PITCH = (41.5, 40.5)
#: Name of the single amplifier that stands for the whole detector.
WHOLE_DETECTOR_AMPLIFIER = "ALL"

#: FWHM / sigma of a Gaussian.
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
#: Half-width of the Gaussian PSF stamp, in sigmas.
PSF_STAMP_SIGMAS = 5.0

_ARCSEC_PER_RADIAN = 180.0 * 3600.0 / math.pi
#: AST CmpMap flag: apply the two mappings one after the other.
_IN_SERIES = True


@dataclass(frozen=True, eq=False)
class TemplateProvenance:
    """One template coadd patch that went into a difference image.

    Parameters
    ----------
    skymap, tract, patch
        The patch's skymap name and tract and patch numbers.
    dataset_id
        Butler dataset UUID of the template coadd, as a string.
    dataset_run
        Butler RUN collection of the template coadd.
    bounds_xy
        ``(n, 2)`` polygon vertices ``(x, y)`` in science *array* pixels:
        the patch's outer box mapped onto the science grid. It is clipped
        to the image on writing, as Rubin records the overlap only.
    psf_shape_xx, psf_shape_yy, psf_shape_xy
        Second moments of the template PSF, pixels^2 (a Gaussian of
        width sigma gives ``sigma**2, sigma**2, 0``); NaN where unknown.
    instrument
        Instrument whose visits were coadded.
    """

    skymap: str
    tract: int
    patch: int
    dataset_id: str
    dataset_run: str
    bounds_xy: npt.NDArray[np.float64]
    psf_shape_xx: float
    psf_shape_yy: float
    psf_shape_xy: float
    instrument: str = COMCAM

    def __post_init__(self) -> None:
        """Coerce the vertices to floats and check the id and polygon.

        Raises
        ------
        FormatError
            If the dataset id is not a UUID or the vertices are not an
            ``(n >= 3, 2)`` array of finite numbers.
        """
        try:
            uuid.UUID(self.dataset_id)
        except (ValueError, TypeError, AttributeError) as exc:
            raise FormatError(
                f"template dataset_id {self.dataset_id!r} is not a UUID"
            ) from exc
        bounds = np.array(self.bounds_xy, dtype=np.float64)
        if bounds.ndim != 2 or bounds.shape[1] != 2 or len(bounds) < 3:
            raise FormatError(
                f"template bounds_xy has shape {bounds.shape}; "
                "expected (n >= 3, 2)"
            )
        if not np.all(np.isfinite(bounds)):
            raise FormatError("template bounds_xy has non-finite vertices")
        bounds.flags.writeable = False
        object.__setattr__(self, "bounds_xy", bounds)


@dataclass(frozen=True, eq=False)
class KernelModel:
    """A spatially varying matching kernel: basis images, Chebyshev weights.

    The kernel at array position ``(x, y)`` is
    ``sum_i sum_t coefficients[i, t] * T_t(x~, y~) * basis[i]``. The
    terms ``T_t`` are products ``T_q(x~) T_p(y~)`` of Chebyshev
    polynomials of the first kind, ``q + p <= order``, in afw's
    ``Chebyshev1Function2D`` order: by total degree, then by rising
    power of y; for order 1 that is ``(1, x~, y~)`` and for order 2
    ``(1, x~, y~, x~^2, x~ y~, y~^2)``. The reduced coordinates map the
    *outer pixel edges* of ``bbox`` to -1 and 1, as afw (and
    `lsst.images.fields.ChebyshevField`) do:
    ``x~ = (2 (x - x0) + 1) / width - 1``, likewise for y.

    Parameters
    ----------
    basis
        ``(n_basis, h, w)`` basis images, odd sides, centred on their
        middle pixel.
    coefficients
        ``(n_basis, n_terms)`` Chebyshev coefficients,
        ``n_terms = (order + 1)(order + 2) / 2``.
    bbox
        ``(x0, y0, width, height)`` of the fit domain, array pixels.
    order
        Spatial order of the Chebyshev polynomials.
    """

    basis: npt.NDArray[np.float64]
    coefficients: npt.NDArray[np.float64]
    bbox: tuple[int, int, int, int]
    order: int

    def __post_init__(self) -> None:
        """Coerce the arrays to float64 and check their shapes.

        Raises
        ------
        FormatError
            If the shapes do not agree with each other and ``order``, a
            basis side is even, the box is empty or a value is not finite.
        """
        basis = np.array(self.basis, dtype=np.float64)
        coefficients = np.array(self.coefficients, dtype=np.float64)
        if self.order < 0:
            raise FormatError(f"kernel order {self.order} is negative")
        if (
            basis.ndim != 3
            or basis.shape[1] % 2 == 0
            or basis.shape[2] % 2 == 0
        ):
            raise FormatError(
                f"kernel basis has shape {basis.shape}; expected "
                "(n_basis, h, w) with odd h and w"
            )
        expected = (basis.shape[0], len(chebyshev_terms(self.order)))
        if coefficients.shape != expected:
            raise FormatError(
                f"kernel coefficients have shape {coefficients.shape}; "
                f"expected {expected} for order {self.order}"
            )
        if not (
            np.all(np.isfinite(basis)) and np.all(np.isfinite(coefficients))
        ):
            raise FormatError("kernel basis or coefficients are not finite")
        x0, y0, width, height = (int(value) for value in self.bbox)
        if width <= 0 or height <= 0:
            raise FormatError(f"kernel bbox {self.bbox} is empty")
        for array in (basis, coefficients):
            array.flags.writeable = False
        object.__setattr__(self, "basis", basis)
        object.__setattr__(self, "coefficients", coefficients)
        object.__setattr__(self, "bbox", (x0, y0, width, height))

    def reduced(self, x: float, y: float) -> tuple[float, float]:
        """Return ``(x~, y~)``: the position mapped onto [-1, 1]^2."""
        x0, y0, width, height = self.bbox
        return (
            (2.0 * (x - x0) + 1.0) / width - 1.0,
            (2.0 * (y - y0) + 1.0) / height - 1.0,
        )

    def weights(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the weight of each basis image at array ``(x, y)``."""
        rx, ry = self.reduced(x, y)
        tx = chebyshev_values(rx, self.order)
        ty = chebyshev_values(ry, self.order)
        terms = np.array(
            [tx[q] * ty[p] for p, q in chebyshev_terms(self.order)]
        )
        return self.coefficients @ terms

    def kernel_image(self, x: float, y: float) -> npt.NDArray[np.float64]:
        """Return the ``(h, w)`` kernel image at array position ``(x, y)``.

        This is the reference the written kernel is checked against.
        """
        return np.tensordot(self.weights(x, y), self.basis, axes=1)


def chebyshev_terms(order: int) -> list[tuple[int, int]]:
    """Return the ``(p, q)`` powers of ``T_p(y) T_q(x)``, afw's order.

    Terms go by total degree ``n = p + q``, then by rising ``p``; this is
    the parameter order of afw's ``Chebyshev1Function2D``.
    """
    return [(p, n - p) for n in range(order + 1) for p in range(n + 1)]


def chebyshev_values(value: float, order: int) -> list[float]:
    """Return ``[T_0(value), ..., T_order(value)]`` (first kind)."""
    values = [1.0, value]
    while len(values) <= order:
        values.append(2.0 * value * values[-1] - values[-2])
    return values[: order + 1]


def to_difference_image(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
) -> li.DifferenceImage:
    """Build the ``lsst.images`` difference image of an exposure.

    Parameters
    ----------
    exposure
        The difference image. It needs a WCS, a PSF and observation
        info naming the physical filter and the (LSSTComCam) detector.
    kernel
        The matching kernel, in the exposure's array pixels.
    templates
        The template patches used.

    Returns
    -------
    difference_image
        The DP2-style difference image; it shares no arrays with
        ``exposure`` but the image and variance planes.

    Raises
    ------
    FormatError
        If the exposure lacks what a `lsst.images.DifferenceImage` needs
        (the message names everything missing), its instrument is not
        LSSTComCam, it does not fit on the detector, a mask bit is set
        that no plane names, its unit or metadata cannot be represented,
        or a template does not overlap it.
    """
    wcs, psf, observation = _require_parts(exposure)
    bbox = _image_box(exposure)
    detector = _comcam_detector(observation)
    _check_on_detector(bbox, detector)
    unit, metadata = _unit_and_metadata(exposure.metadata)
    projection = li.SkyProjection.from_fits_wcs(
        wcs,
        detector.frame,
        pixel_bounds=bbox,
        x0=exposure.xy0[0],
        y0=exposure.xy0[1],
    )
    return li.DifferenceImage(
        li.Image(exposure.image, bbox=bbox, unit=unit),
        mask=_to_mask(exposure.mask, exposure.mask_planes, bbox),
        variance=li.Image(exposure.variance, bbox=bbox, unit=unit**2),
        sky_projection=projection,
        bounds=bbox,
        obs_info=_to_obs_info(observation),
        photometric_scaling=_photometric_scaling(
            exposure.photo_calib, unit, bbox
        ),
        psf=_gaussian_psf(psf, bbox),
        detector=detector,
        band=observation.band,
        kernel=_to_kernel(kernel, exposure.xy0),
        templates=[
            _template_info(template, bbox, exposure.xy0)
            for template in templates
        ],
        metadata=metadata,
    )


def write_lsst_images(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> None:
    """Write a difference image as an ``lsst.images`` FITS file, atomically.

    The file is written under a hidden temporary name in the same
    directory, synced and renamed over ``path``, so ``path`` is either
    complete or untouched. Name it ``*.fits`` for
    ``lsst.images.DifferenceImage.read`` to recognise it.

    Parameters
    ----------
    exposure, kernel, templates
        As for `to_difference_image`.
    path
        The file to write.
    overwrite
        Replace an existing file when true.

    Raises
    ------
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the directory of ``path`` does not exist.
    FormatError
        As for `to_difference_image`.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            errno.ENOENT, "no such directory", str(path.parent)
        )
    if path.exists() and not overwrite:
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    image = to_difference_image(exposure, kernel, templates)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        # lsst.images creates the file itself (it refuses an existing
        # one) and reopens it by name to patch the primary header.
        lsst.images.fits.write(image, temp)
        _fsync(temp)
        temp.replace(path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def difference_image_bytes(
    exposure: Exposure,
    kernel: KernelModel,
    templates: Sequence[TemplateProvenance],
) -> bytes:
    """Return the content of the file `write_lsst_images` writes.

    ``lsst.images`` writes only to named files, so this writes to a
    private temporary directory and reads the file back. The bytes
    differ from write to write in their time stamps only (see the module
    notes).

    Parameters
    ----------
    exposure, kernel, templates
        As for `to_difference_image`.

    Returns
    -------
    content
        The FITS file's bytes.

    Raises
    ------
    FormatError
        As for `to_difference_image`.
    """
    image = to_difference_image(exposure, kernel, templates)
    with tempfile.TemporaryDirectory(prefix="recreate-lsst-images-") as tmp:
        path = Path(tmp) / "difference_image.fits"
        lsst.images.fits.write(image, path)
        return path.read_bytes()


def _fsync(path: Path) -> None:
    """Flush a written file to disk before it is renamed into place."""
    with path.open("rb+") as stream:
        os.fsync(stream.fileno())


def _require_parts(
    exposure: Exposure,
) -> tuple[WCS, PsfInfo, ObservationInfo]:
    """Return the WCS, PSF and observation info, or name all that lack.

    Raises
    ------
    FormatError
        If any of them is missing, or the observation info lacks the
        physical filter or detector number.
    """
    wcs, psf, observation = exposure.wcs, exposure.psf, exposure.observation
    missing = []
    if wcs is None:
        missing.append("a celestial WCS")
    if psf is None:
        missing.append("a PSF")
    if observation is None:
        missing.append("observation info")
    else:
        if observation.physical_filter is None:
            missing.append("observation.physical_filter")
        if observation.detector is None:
            missing.append("observation.detector")
    # The None tests repeat the ones above so that mypy sees them.
    if missing or wcs is None or psf is None or observation is None:
        raise FormatError(
            "cannot make an lsst.images DifferenceImage: the exposure "
            f"lacks {', '.join(missing)}"
        )
    return wcs, psf, observation


def _image_box(exposure: Exposure) -> li.Box:
    """Return the image's box in the parent (detector) pixel frame."""
    height, width = exposure.shape
    x0, y0 = exposure.xy0
    return li.Box.factory[y0 : y0 + height, x0 : x0 + width]


def _check_on_detector(bbox: li.Box, detector: cameras.Detector) -> None:
    """Check that the image lies within the detector's pixels.

    Raises
    ------
    FormatError
        If part of the image is off the detector.
    """
    if not detector.bbox.contains(bbox):
        raise FormatError(
            f"the image {bbox} does not fit on detector "
            f"{detector.name} ({detector.bbox})"
        )


# --- units, calibration and metadata ---------------------------------------


def _unit_and_metadata(
    metadata: Mapping[str, Any],
) -> tuple[u.UnitBase, dict[str, MetadataValue]]:
    """Return the image unit (``BUNIT``, else nJy) and the other items.

    Raises
    ------
    FormatError
        If ``BUNIT`` is not a unit astropy knows, or an item's value is
        not None, bool, int, finite float or str.
    """
    items = dict(metadata)
    text = items.pop(UNIT_KEY, "nJy")
    try:
        unit = u.Unit(text)
    except (ValueError, TypeError) as exc:
        raise FormatError(f"metadata BUNIT={text!r} is not a unit") from exc
    return unit, {
        key: _metadata_value(key, value) for key, value in items.items()
    }


def _metadata_value(key: str, value: object) -> MetadataValue:
    """Return a metadata value as a plain JSON-able Python value.

    Raises
    ------
    FormatError
        If the value is not None, bool, int, finite float or str.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise FormatError(
        f"metadata {key!r}={value!r} cannot be lsst.images metadata"
    )


def _photometric_scaling(
    calib: PhotoCalib, unit: u.UnitBase, bbox: li.Box
) -> fields.ChebyshevField | None:
    """Return the scaling from post-ISR units to nJy, where known.

    ``lsst.images`` defines it as what multiplies post-ISR pixels to give
    calibrated ones: for an nJy image the scaling that was applied (nJy
    per electron), for an image in instrumental units the one to apply.
    An image in another flux unit, or with no known calibration, gets
    none.

    Raises
    ------
    FormatError
        If an nJy image has a calibration other than 1.
    """
    if unit == u.nJy:
        if calib.calibration != 1.0:
            raise FormatError(
                "the image is in nJy but its calibration is "
                f"{calib.calibration}, not 1"
            )
        if calib.njy_per_electron is None:
            return None
        return _constant_field(
            calib.njy_per_electron, u.nJy / u.electron, bbox
        )
    # recreate.io.plain gives calibration 1 when no zero point is known.
    if unit.is_equivalent(u.nJy) or calib.calibration == 1.0:
        return None
    return _constant_field(calib.calibration, u.nJy / unit, bbox)


def _constant_field(
    value: float, unit: u.UnitBase, bbox: li.Box
) -> fields.ChebyshevField:
    """Return a field that is ``value`` everywhere on ``bbox``."""
    return fields.ChebyshevField(bbox, np.array([[value]]), unit=unit)


# --- mask --------------------------------------------------------------------


def _to_mask(
    mask: npt.NDArray[np.int32], planes: MaskPlanes, bbox: li.Box
) -> li.Mask:
    """Return our int32 mask as an ``lsst.images`` mask, planes renamed.

    The planes keep our bit order; each is named and described by
    `lsst_mask_plane`.

    Parameters
    ----------
    mask
        Our int32 mask.
    planes
        Its plane names and bits.
    bbox
        The image's box in the parent frame.

    Returns
    -------
    mask
        The mask, one ``lsst.images`` plane per plane of ours.

    Raises
    ------
    FormatError
        If two planes map to one ``lsst.images`` name, or a bit is set
        that no plane names (it would be lost).
    """
    bits = np.ascontiguousarray(mask).view(np.uint32)
    _check_unnamed_bits(bits, planes)
    new_planes = [lsst_mask_plane(name) for name in planes.names]
    new_names = [plane.name for plane in new_planes]
    if len(set(new_names)) != len(new_names):
        raise FormatError(
            f"mask planes {list(planes.names)} map to repeated "
            f"lsst.images names {new_names}"
        )
    schema = li.MaskSchema(new_planes)
    # Mask.set ORs through a boolean index, about 0.2 s per plane on a
    # full detector; shifting each bit into place is some 20x faster.
    array = np.zeros((*bits.shape, schema.mask_size), dtype=schema.dtype)
    for name, plane in zip(planes.names, new_planes, strict=True):
        target = schema.bit(plane.name)
        flags = ((bits >> np.uint32(planes.bit(name))) & 1).astype(
            schema.dtype
        )
        array[..., target.index] |= flags * target.mask
    return li.Mask(array, schema=schema, bbox=bbox)


def _check_unnamed_bits(
    bits: npt.NDArray[np.uint32], planes: MaskPlanes
) -> None:
    """Check that every set mask bit belongs to a named plane.

    Raises
    ------
    FormatError
        If a set bit names no plane; the message lists the bits.
    """
    named = 0
    for name in planes.names:
        named |= 1 << planes.bit(name)
    stray = int(np.bitwise_or.reduce(bits, axis=None)) & ~named
    if stray:
        unnamed = [bit for bit in range(32) if stray >> bit & 1]
        raise FormatError(f"mask bits {unnamed} are set but name no plane")


def lsst_mask_plane(name: str) -> li.MaskPlane:
    """Return the ``lsst.images`` plane a legacy afw plane becomes.

    Known legacy names are renamed and described as ``lsst.images`` does
    for difference images; a name that is already an ``lsst.images``
    one keeps its description; any other keeps its name.
    """
    legacy, modern = _known_mask_planes()
    if name in legacy:
        return legacy[name]
    if name in modern:
        return modern[name]
    return li.MaskPlane(name, f"Mask plane {name!r} of the afw mask.")


@cache
def _known_mask_planes() -> tuple[
    dict[str, li.MaskPlane], dict[str, li.MaskPlane]
]:
    """Return the legacy-name and new-name maps of known mask planes.

    The difference-image map wins; the optional (injection) and template
    maps add the planes DP1 difference images inherit from templates.
    """
    legacy: dict[str, li.MaskPlane] = {}
    for plane_map in (
        li.get_legacy_template_mask_planes(),
        li.get_legacy_optional_mask_planes(),
        li.get_legacy_difference_image_mask_planes(),
    ):
        legacy.update(plane_map)
    modern = {plane.name: plane for plane in legacy.values()}
    return legacy, modern


# --- detector ----------------------------------------------------------------


def _comcam_detector(observation: ObservationInfo) -> cameras.Detector:
    """Return a nominal LSSTComCam detector for an observation.

    The detector is an ITL CCD of 4072x4000 pixels of 10 um on a 3x3
    raft (``R22_S<row><column>`` for detector ``3 row + column``), with
    one amplifier covering it all and a linear pixel -> focal plane
    (mm) -> field angle (rad, 0.2"/px) chain without distortion.

    Parameters
    ----------
    observation
        Names the instrument, detector number and, optionally, name.

    Returns
    -------
    detector
        The detector, tied to ``observation.visit``.

    Raises
    ------
    FormatError
        If the instrument is not LSSTComCam, the detector number is not
        0-8, or the detector name does not match the number.
    """
    if observation.instrument != COMCAM:
        raise FormatError(
            f"lsst.images output knows the detectors of {COMCAM} only; "
            f"this exposure is from {observation.instrument!r}"
        )
    number = _comcam_detector_number(observation)
    name = comcam_detector_name(number)
    bbox = li.Box.factory[0:COMCAM_HEIGHT, 0:COMCAM_WIDTH]
    centre = ((COMCAM_WIDTH - 1) / 2.0, (COMCAM_HEIGHT - 1) / 2.0)
    position = _comcam_focal_plane_position(number)
    attributes = cameras.DetectorAttributes(
        name=name,
        id=number,
        type=cameras.DetectorType.SCIENCE,
        serial="UNKNOWN",
        bbox=bbox,
        orientation=cameras.Orientation(
            focal_plane_x=position[0],
            focal_plane_y=position[1],
            focal_plane_z=0.0,
            pixel_reference_x=centre[0],
            pixel_reference_y=centre[1],
        ),
        pixel_size=COMCAM_PIXEL_SIZE,
        physical_type="ITL",
    )
    amplifier = cameras.Amplifier(
        name=WHOLE_DETECTOR_AMPLIFIER,
        bbox=bbox,
        readout_corner=cameras.ReadoutCorner.LL,
        # Unknown here: the raw layout and the nominal gains and levels.
        assembled_raw_geometry=None,
        unassembled_raw_geometry=None,
        nominal_calibrations=None,
    )
    frames = _comcam_frames(number, centre, position)
    return cameras.Detector(
        attributes, [amplifier], frames, visit=observation.visit
    )


def comcam_detector_name(number: int) -> str:
    """Return the full name of a ComCam detector, e.g. ``R22_S11``."""
    row, column = divmod(number, 3)
    return f"{COMCAM_RAFT}_S{row}{column}"


def _comcam_detector_number(observation: ObservationInfo) -> int:
    """Return the detector number, checked against the detector name.

    Raises
    ------
    FormatError
        If the number is not 0-8 or the name is not that of the number.
    """
    number = observation.detector
    if number is None or not 0 <= number <= 8:
        raise FormatError(
            f"{COMCAM} detector number {number!r} is not one of 0-8"
        )
    name = observation.detector_name
    if name is not None and name != comcam_detector_name(number):
        raise FormatError(
            f"detector name {name!r} does not match detector {number} "
            f"({comcam_detector_name(number)})"
        )
    return number


def _comcam_focal_plane_position(number: int) -> tuple[float, float]:
    """Return the nominal focal-plane centre of a detector, mm."""
    row, column = divmod(number, 3)
    pitch_x, pitch_y = COMCAM_SENSOR_PITCH
    return (column - 1) * pitch_x, (row - 1) * pitch_y


def _comcam_frames(
    number: int,
    centre: tuple[float, float],
    position: tuple[float, float],
) -> cameras.CameraFrameSet:
    """Return the camera frames of one detector: pixels, focal plane, sky.

    ``CameraFrameSet`` has no public constructor; it is loaded from its
    serialized form, an AST FrameSet in AST's native text encoding, which
    pyast (a dependency of lsst.images) writes.
    """
    focal_plane = Ast.Frame(
        2, "Domain=FOCAL_PLANE,Ident=FOCAL_PLANE,Unit(1)=mm,Unit(2)=mm"
    )
    frame_set = Ast.FrameSet(focal_plane)
    field_angle = Ast.Frame(
        2, "Domain=FIELD_ANGLE,Ident=FIELD_ANGLE,Unit(1)=rad,Unit(2)=rad"
    )
    radians_per_mm = (
        COMCAM_PIXEL_SCALE / COMCAM_PIXEL_SIZE / _ARCSEC_PER_RADIAN
    )
    frame_set.addframe(Ast.BASE, Ast.ZoomMap(2, radians_per_mm), field_angle)
    pixels = Ast.Frame(2, f"Domain=PIXELS,Ident=DETECTOR_{number}")
    # lsst.images reads the detector's box from the frame's bounds,
    # as half-open [Bottom, Top) ranges.
    pixels.Bottom_1, pixels.Top_1 = 0, COMCAM_WIDTH
    pixels.Bottom_2, pixels.Top_2 = 0, COMCAM_HEIGHT
    pixel_to_focal_plane = Ast.CmpMap(
        Ast.CmpMap(
            Ast.ShiftMap([-centre[0], -centre[1]]),
            Ast.ZoomMap(2, COMCAM_PIXEL_SIZE),
            _IN_SERIES,
        ),
        Ast.ShiftMap(list(position)),
        _IN_SERIES,
    )
    # addframe takes the mapping from the base frame to the new one.
    pixel_to_focal_plane.invert()
    frame_set.addframe(Ast.BASE, pixel_to_focal_plane, pixels)
    model = cameras.CameraFrameSetSerializationModel(
        instrument=COMCAM, ast=str(frame_set)
    )
    return model.deserialize(JsonInputArchive())


# --- observation info, PSF, kernel, templates -------------------------------


def _to_obs_info(observation: ObservationInfo) -> AstroObservationInfo:
    """Return an ``astro_metadata_translator`` observation info.

    The exposure id is the visit id (DP1 has one exposure per visit);
    the begin and end times are ``date_avg`` -/+ half the exposure
    time, and are left unset without an exposure time.

    Raises
    ------
    FormatError
        If ``date_avg`` is not an ISO time.
    """
    values: dict[str, Any] = {
        "instrument": observation.instrument,
        "physical_filter": observation.physical_filter,
        "visit_id": observation.visit,
        "exposure_id": observation.visit,
        "detector_num": observation.detector,
        "observing_day": observation.day_obs,
        "boresight_airmass": observation.airmass,
    }
    values.update(_detector_names(observation))
    values.update(_times(observation))
    values.update(_boresight(observation))
    present = {
        key: value for key, value in values.items() if value is not None
    }
    return AstroObservationInfo(**present)


def _detector_names(observation: ObservationInfo) -> dict[str, str]:
    """Return detector name, group and unique name, LSST-style.

    LSST names a detector ``R22_S11``: group ``R22``, name ``S11``.
    """
    if observation.detector is None:
        return {}
    unique = comcam_detector_name(observation.detector)
    group, _, name = unique.partition("_")
    return {
        "detector_unique_name": unique,
        "detector_group": group,
        "detector_name": name,
    }


def _times(observation: ObservationInfo) -> dict[str, Any]:
    """Return the exposure time and the begin and end times.

    Raises
    ------
    FormatError
        If ``date_avg`` is not an ISO time.
    """
    result: dict[str, Any] = {}
    exposure_time = observation.exposure_time
    if exposure_time is not None:
        result["exposure_time"] = exposure_time * u.s
    if observation.date_avg is None or exposure_time is None:
        return result
    try:
        middle = Time(observation.date_avg, scale="tai")
    except ValueError as exc:
        raise FormatError(
            f"date_avg {observation.date_avg!r} is not an ISO time"
        ) from exc
    half = 0.5 * exposure_time * u.s
    result["datetime_begin"] = middle - half
    result["datetime_end"] = middle + half
    return result


def _boresight(observation: ObservationInfo) -> dict[str, Any]:
    """Return the tracking position and the sky rotation angle."""
    result: dict[str, Any] = {}
    ra, dec = observation.boresight_ra, observation.boresight_dec
    if ra is not None and dec is not None:
        result["tracking_radec"] = SkyCoord(
            ra * u.deg, dec * u.deg, frame="icrs"
        )
    if observation.rotation_angle is not None:
        result["boresight_rotation_angle"] = Angle(
            observation.rotation_angle * u.deg
        )
        result["boresight_rotation_coord"] = "sky"
    return result


def _gaussian_psf(
    psf: PsfInfo, bbox: li.Box
) -> psfs.GaussianPointSpreadFunction:
    """Return a circular Gaussian PSF of our FWHM, valid on the image."""
    sigma = psf.fwhm / FWHM_PER_SIGMA
    stamp_size = 2 * math.ceil(PSF_STAMP_SIGMAS * sigma) + 1
    return psfs.GaussianPointSpreadFunction(
        sigma, bounds=bbox, stamp_size=stamp_size
    )


def _to_kernel(
    kernel: KernelModel, xy0: tuple[int, int]
) -> convolution_kernels.ImageBasisConvolutionKernel:
    """Return the kernel as ``lsst.images`` Chebyshev-weighted images.

    The fields are defined on the kernel's box moved to the parent frame,
    where ``lsst.images`` evaluates them; they map its outer pixel edges
    to [-1, 1] as `KernelModel` does, so the two agree exactly.

    Parameters
    ----------
    kernel
        The kernel, in array pixels.
    xy0
        The image's origin in the parent frame.

    Returns
    -------
    kernel
        The same kernel, in parent pixels.
    """
    x0, y0, width, height = kernel.bbox
    start_x, start_y = x0 + xy0[0], y0 + xy0[1]
    bbox = li.Box.factory[
        start_y : start_y + height, start_x : start_x + width
    ]
    terms = chebyshev_terms(kernel.order)
    spatial = []
    for coefficients in kernel.coefficients:
        # ChebyshevField's matrix holds the coefficient of T_p(y) T_q(x)
        # at [p, q].
        matrix = np.zeros((kernel.order + 1, kernel.order + 1))
        for (p, q), value in zip(terms, coefficients, strict=True):
            matrix[p, q] = value
        spatial.append(fields.ChebyshevField(bbox, matrix))
    return convolution_kernels.ImageBasisConvolutionKernel(
        np.array(kernel.basis), spatial
    )


def _template_info(
    template: TemplateProvenance, bbox: li.Box, xy0: tuple[int, int]
) -> li.DifferenceImageTemplateInfo:
    """Return one template's provenance, its bounds clipped to the image.

    Raises
    ------
    FormatError
        If the template's polygon does not overlap the image, or its
        overlap is not a single polygon.
    """
    label = f"template tract {template.tract} patch {template.patch}"
    polygon = li.Polygon(
        x_vertices=template.bounds_xy[:, 0] + xy0[0],
        y_vertices=template.bounds_xy[:, 1] + xy0[1],
    )
    try:
        overlap = polygon.intersection(li.Polygon.from_box(bbox))
    except li.NoOverlapError as exc:
        raise FormatError(f"{label} does not overlap the image") from exc
    if not isinstance(overlap, li.Polygon):
        raise FormatError(f"{label} overlaps the image in several pieces")
    moments = (
        template.psf_shape_xx,
        template.psf_shape_yy,
        template.psf_shape_xy,
    )
    return li.DifferenceImageTemplateInfo(
        skymap=template.skymap,
        tract=template.tract,
        patch=template.patch,
        dataset_id=uuid.UUID(template.dataset_id),
        dataset_run=template.dataset_run,
        bounds=overlap,
        psf_shape_xx=template.psf_shape_xx,
        psf_shape_yy=template.psf_shape_yy,
        psf_shape_xy=template.psf_shape_xy,
        psf_shape_flag=not all(math.isfinite(m) for m in moments),
        instrument=template.instrument,
    )
