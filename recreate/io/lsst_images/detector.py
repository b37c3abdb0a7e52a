"""A nominal LSSTComCam detector and its camera frames.

The per-amplifier layout and the sensor serial are not known here, so
the detector has one amplifier covering it all and a linear pixel ->
focal plane -> field angle chain.
"""

from __future__ import annotations

import math

import lsst.images as li
from lsst.images import cameras
from lsst.images.json import JsonInputArchive
from starlink import Ast

from recreate.errors import FormatError
from recreate.exposure import ObservationInfo

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

_ARCSEC_PER_RADIAN = 180.0 * 3600.0 / math.pi
#: AST CmpMap flag: apply the two mappings one after the other.
_IN_SERIES = True


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
