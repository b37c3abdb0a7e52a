"""Shapes on the sky: circles, ranges and polygons, as IVOA names them.

SIA's ``POS`` and SODA's ``CIRCLE``, ``POLYGON`` and ``POS`` all name
one of three shapes (DALI 1.1 section 3.3): a circle (centre and
radius), a range of longitude and latitude, or a polygon given by its
vertices. This module checks them (a clear message naming the bad
value), measures them, turns them into `lsst.sphgeom` regions for the
registry's spatial queries, and samples their outlines so that the
cutout faces can find the pixel box a stencil covers
(`workers.regions.box_of_sky_points`).

Every angle is in degrees, ICRS.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from recreate.errors import InvalidRequestError

__all__ = [
    "SkyCircle",
    "SkyPolygon",
    "SkyRange",
    "SkyShape",
    "check_shape",
    "shape_extent",
    "shape_outline",
    "shape_region",
]

#: Outline points per degree of a stencil's edge: dense enough that the
#: outline between two points strays well under a pixel (0.2") from the
#: chord for every stencil the services accept.
POINTS_PER_DEGREE = 3600

#: Fewest points on a stencil's outline (small stencils).
MIN_OUTLINE_POINTS = 64

Array = npt.NDArray[np.float64]


class SkyCircle(NamedTuple):
    """A circle: centre and radius."""

    ra: float
    dec: float
    radius: float


class SkyRange(NamedTuple):
    """A range of longitude and latitude (a "box" in RA and Dec)."""

    ra_min: float
    ra_max: float
    dec_min: float
    dec_max: float


class SkyPolygon(NamedTuple):
    """A polygon: its vertices ``((ra, dec), ...)`` joined by great arcs."""

    vertices: tuple[tuple[float, float], ...]


SkyShape = SkyCircle | SkyRange | SkyPolygon


def check_shape(shape: SkyShape) -> SkyShape:
    """Return the shape if it is well formed.

    Parameters
    ----------
    shape
        The shape to check.

    Returns
    -------
    shape
        The same shape.

    Raises
    ------
    InvalidRequestError
        If a coordinate is off the sphere or not finite, a radius is not
        in (0, 180], a range's minimum exceeds its maximum, or a polygon
        has fewer than 3 vertices, repeats one, has no area, or crosses
        itself.
    """
    if isinstance(shape, SkyCircle):
        _check_position(shape.ra, shape.dec)
        if not (math.isfinite(shape.radius) and 0 < shape.radius <= 180):
            raise InvalidRequestError(
                f"circle radius must be in (0, 180] degrees, "
                f"got {shape.radius!r}"
            )
    elif isinstance(shape, SkyRange):
        _check_range(shape)
    else:
        _check_polygon(shape)
    return shape


def _check_position(ra: float, dec: float) -> None:
    """Reject a position off the sphere."""
    if not (math.isfinite(ra) and 0 <= ra <= 360):
        raise InvalidRequestError(
            f"ra must be in [0, 360] degrees, got {ra!r}"
        )
    if not (math.isfinite(dec) and -90 <= dec <= 90):
        raise InvalidRequestError(
            f"dec must be in [-90, 90] degrees, got {dec!r}"
        )


def _check_range(shape: SkyRange) -> None:
    """Reject a range off the sphere or with a minimum above its maximum.

    The longitude bounds may be infinite (DALI's open intervals).
    """
    for name in ("ra_min", "ra_max", "dec_min", "dec_max"):
        if math.isnan(getattr(shape, name)):
            raise InvalidRequestError(f"range {name} is not a number")
    if shape.ra_min > shape.ra_max:
        raise InvalidRequestError(
            f"range ra_min {shape.ra_min} exceeds ra_max {shape.ra_max}"
        )
    if shape.dec_min > shape.dec_max:
        raise InvalidRequestError(
            f"range dec_min {shape.dec_min} exceeds dec_max {shape.dec_max}"
        )
    if shape.dec_min > 90 or shape.dec_max < -90:
        raise InvalidRequestError(
            f"range dec [{shape.dec_min}, {shape.dec_max}] is off the sphere"
        )


def _check_polygon(shape: SkyPolygon) -> None:
    """Reject a polygon that is not a simple closed outline."""
    vertices = shape.vertices
    if len(vertices) < 3:
        raise InvalidRequestError(
            f"a polygon needs at least 3 vertices, got {len(vertices)}"
        )
    for ra, dec in vertices:
        _check_position(ra, dec)
    xyz = _unit_vectors(np.array(vertices, dtype=np.float64))
    for i in range(len(xyz)):
        j = (i + 1) % len(xyz)
        if np.linalg.norm(xyz[i] - xyz[j]) < 1e-12:
            raise InvalidRequestError(
                f"polygon vertices {i + 1} and {j + 1} are the same point"
            )
    plane = _tangent_plane(xyz)
    if _crosses_itself(plane):
        raise InvalidRequestError(
            f"the polygon {_describe(vertices)} crosses itself"
        )
    perimeter = float(
        np.sum(np.linalg.norm(plane - np.roll(plane, -1, axis=0), axis=1))
    )
    if abs(_signed_area(plane)) <= 1e-12 * perimeter**2:
        raise InvalidRequestError(
            f"the polygon {_describe(vertices)} has no area"
        )


def _describe(vertices: tuple[tuple[float, float], ...]) -> str:
    """Name a polygon in messages (its first vertices)."""
    shown = " ".join(f"{ra:g} {dec:g}" for ra, dec in vertices[:4])
    return f"({shown}{' ...' if len(vertices) > 4 else ''})"


def _unit_vectors(radec: Array) -> Array:
    """Return unit vectors of ``(ra, dec)`` rows in degrees."""
    ra, dec = np.radians(radec[:, 0]), np.radians(radec[:, 1])
    return np.column_stack(
        [np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)]
    )


def _tangent_plane(xyz: Array) -> Array:
    """Project unit vectors gnomonically about their mean direction.

    Great arcs become straight lines, so two edges cross on the sky
    exactly when they cross on this plane (for a polygon smaller than a
    hemisphere).

    Raises
    ------
    InvalidRequestError
        If the polygon spans a hemisphere or more.
    """
    centre = xyz.sum(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-9:
        raise InvalidRequestError("a polygon must fit within a hemisphere")
    centre /= norm
    cosines = xyz @ centre
    if np.any(cosines <= 1e-6):
        raise InvalidRequestError("a polygon must fit within a hemisphere")
    helper = np.array([0.0, 0.0, 1.0])
    if abs(centre[2]) > 0.9:
        helper = np.array([1.0, 0.0, 0.0])
    east = np.cross(helper, centre)
    east /= np.linalg.norm(east)
    north = np.cross(centre, east)
    projected = xyz / cosines[:, None]
    return np.column_stack([projected @ east, projected @ north])


def _crosses_itself(points: Array) -> bool:
    """Say whether two non-adjacent edges of a closed outline meet."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue
            if _segments_meet(*edges[i], *edges[j]):
                return True
    return False


def _segments_meet(a: Array, b: Array, c: Array, d: Array) -> bool:
    """Say whether the closed segments ab and cd share a point."""

    def side(p: Array, q: Array, r: Array) -> float:
        return float((q[0] - p[0]) * (r[1] - p[1])) - float(
            (q[1] - p[1]) * (r[0] - p[0])
        )

    d1, d2 = side(c, d, a), side(c, d, b)
    d3, d4 = side(a, b, c), side(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    eps = 1e-15
    return (
        (abs(d1) < eps and _within(c, d, a))
        or (abs(d2) < eps and _within(c, d, b))
        or (abs(d3) < eps and _within(a, b, c))
        or (abs(d4) < eps and _within(a, b, d))
    )


def _within(p: Array, q: Array, r: Array) -> bool:
    """Say whether r, on the line pq, lies within the segment pq."""
    return bool(
        min(p[0], q[0]) <= r[0] <= max(p[0], q[0])
        and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])
    )


def _signed_area(points: Array) -> float:
    """Return the shoelace area of a closed outline on the plane."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def shape_extent(shape: SkyShape) -> float:
    """Return the diameter of a circle enclosing the shape, in degrees.

    For a range, the diameter of the circle through its corners (an
    open range is as large as the sphere: 360).
    """
    if isinstance(shape, SkyCircle):
        return 2.0 * shape.radius
    if isinstance(shape, SkyRange):
        if not all(math.isfinite(v) for v in shape):
            return 360.0
        corners = np.array(
            [
                (shape.ra_min, shape.dec_min),
                (shape.ra_max, shape.dec_min),
                (shape.ra_max, shape.dec_max),
                (shape.ra_min, shape.dec_max),
            ]
        )
        return 2.0 * _enclosing_radius(corners)
    return 2.0 * _enclosing_radius(np.array(shape.vertices, np.float64))


def _enclosing_radius(radec: Array) -> float:
    """Return the largest angle from the points' mean direction."""
    xyz = _unit_vectors(radec)
    centre = xyz.sum(axis=0)
    norm = np.linalg.norm(centre)
    if norm < 1e-9:
        return 180.0
    cosines = np.clip(xyz @ (centre / norm), -1.0, 1.0)
    return float(np.degrees(np.arccos(cosines.min())))


def shape_region(shape: SkyShape) -> Any:
    """Return the shape as an `lsst.sphgeom` region.

    A polygon becomes its convex hull (sphgeom's polygons are convex): a
    superset, so a spatial search by a concave polygon may also match
    what touches only its hull.
    """
    from lsst.sphgeom import (
        Angle,
        AngleInterval,
        Box,
        Circle,
        ConvexPolygon,
        LonLat,
        NormalizedAngle,
        NormalizedAngleInterval,
        UnitVector3d,
    )

    if isinstance(shape, SkyCircle):
        return Circle(
            UnitVector3d(LonLat.fromDegrees(shape.ra, shape.dec)),
            Angle.fromDegrees(shape.radius),
        )
    if isinstance(shape, SkyRange):
        if shape.ra_max - shape.ra_min >= 360 or not math.isfinite(
            shape.ra_max - shape.ra_min
        ):
            lon = NormalizedAngleInterval.full()
        else:
            lon = NormalizedAngleInterval.fromDegrees(
                shape.ra_min % 360.0, shape.ra_max % 360.0
            )
            if shape.ra_max % 360.0 == shape.ra_min % 360.0:
                lon = NormalizedAngleInterval(
                    NormalizedAngle.fromDegrees(shape.ra_min % 360.0)
                )
        lat = AngleInterval.fromDegrees(
            max(shape.dec_min, -90.0), min(shape.dec_max, 90.0)
        )
        return Box(lon, lat)
    return ConvexPolygon.convexHull(
        [
            UnitVector3d(LonLat.fromDegrees(ra, dec))
            for ra, dec in shape.vertices
        ]
    )


def shape_outline(shape: SkyShape) -> tuple[Array, Array]:
    """Return points on the shape's outline (and its centre), in degrees.

    The pixel box that holds these points holds the whole stencil: a
    circle's rim and centre; a range's four edges (meridians and
    parallels); a polygon's great-arc edges.

    Raises
    ------
    InvalidRequestError
        If a range is open (infinite): it has no outline to cut.
    """
    if isinstance(shape, SkyCircle):
        return _circle_outline(shape)
    if isinstance(shape, SkyRange):
        if not all(math.isfinite(v) for v in shape):
            raise InvalidRequestError(
                "an open range (with an infinite bound) cannot be cut out"
            )
        corners = [
            (shape.ra_min, shape.dec_min),
            (shape.ra_max, shape.dec_min),
            (shape.ra_max, shape.dec_max),
            (shape.ra_min, shape.dec_max),
        ]
        return _range_outline(corners)
    return _polygon_outline(shape.vertices)


def _samples(length_degrees: float) -> int:
    """Return how many points to put along an edge of this length."""
    return max(
        MIN_OUTLINE_POINTS, math.ceil(length_degrees * POINTS_PER_DEGREE)
    )


def _circle_outline(shape: SkyCircle) -> tuple[Array, Array]:
    """Return points on a circle's rim (spherical offsets) and centre."""
    n = _samples(2 * math.pi * shape.radius)
    bearing = np.linspace(0.0, 2 * math.pi, n, endpoint=False)
    ra0, dec0 = math.radians(shape.ra), math.radians(shape.dec)
    radius = math.radians(shape.radius)
    sin_dec = math.sin(dec0) * math.cos(radius) + math.cos(dec0) * math.sin(
        radius
    ) * np.cos(bearing)
    dec = np.arcsin(np.clip(sin_dec, -1.0, 1.0))
    ra = ra0 + np.arctan2(
        np.sin(bearing) * math.sin(radius) * math.cos(dec0),
        math.cos(radius) - math.sin(dec0) * sin_dec,
    )
    return (
        np.append(np.degrees(ra) % 360.0, shape.ra),
        np.append(np.degrees(dec), shape.dec),
    )


def _range_outline(
    corners: list[tuple[float, float]],
) -> tuple[Array, Array]:
    """Return points along a range's meridians and parallels."""
    ras: list[Array] = []
    decs: list[Array] = []
    for (ra0, dec0), (ra1, dec1) in zip(
        corners, corners[1:] + corners[:1], strict=True
    ):
        n = _samples(max(abs(ra1 - ra0), abs(dec1 - dec0)))
        ras.append(np.linspace(ra0, ra1, n, endpoint=False) % 360.0)
        decs.append(np.linspace(dec0, dec1, n, endpoint=False))
    return np.concatenate(ras), np.concatenate(decs)


def _polygon_outline(
    vertices: tuple[tuple[float, float], ...],
) -> tuple[Array, Array]:
    """Return points along a polygon's great-arc edges."""
    xyz = _unit_vectors(np.array(vertices, dtype=np.float64))
    points: list[Array] = []
    for i in range(len(xyz)):
        a, b = xyz[i], xyz[(i + 1) % len(xyz)]
        angle = math.degrees(
            math.acos(float(np.clip(np.dot(a, b), -1.0, 1.0)))
        )
        t = np.linspace(0.0, 1.0, _samples(angle), endpoint=False)
        chord = a[None, :] * (1 - t[:, None]) + b[None, :] * t[:, None]
        points.append(chord / np.linalg.norm(chord, axis=1)[:, None])
    every = np.concatenate(points)
    ra = np.degrees(np.arctan2(every[:, 1], every[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(every[:, 2], -1.0, 1.0)))
    return ra, dec
