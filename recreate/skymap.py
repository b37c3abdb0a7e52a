"""A Rubin-like skymap: tracts of TAN pixel grids cut into patches.

Rubin's ``lsst_cells_v1`` skymap gives each tract one TAN projection at
0.2"/px, cut into 10x10 patches of 3000x3000 inner pixels, each patch
stored with a 200-px border (3400x3400 outer pixels); patch index is
``y * 10 + x``. This module reproduces that geometry for any set of tract
centres. Only the geometry lives here; the simulator and the template
lookup both use it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from astropy.wcs import WCS

from recreate.errors import DataNotFoundError


@dataclass(frozen=True)
class PatchGeometry:
    """Pixel geometry shared by every tract of a skymap.

    Parameters
    ----------
    patch_inner
        Side of a patch's inner region in pixels (3000 in lsst_cells_v1).
    patch_border
        Border added on each side of the inner region (200).
    patches_per_side
        Patches along each tract axis (10).
    pixel_scale
        Arcsec per pixel (0.2).
    """

    patch_inner: int = 3000
    patch_border: int = 200
    patches_per_side: int = 10
    pixel_scale: float = 0.2

    @property
    def patch_outer(self) -> int:
        """Side of a stored patch, inner plus both borders."""
        return self.patch_inner + 2 * self.patch_border

    @property
    def tract_inner(self) -> int:
        """Side of a tract's inner pixel grid."""
        return self.patch_inner * self.patches_per_side


@dataclass(frozen=True)
class Tract:
    """One tract: a TAN projection about its centre.

    Parameters
    ----------
    tract_id
        Tract number.
    ra, dec
        Tract centre in degrees (the projection's tangent point).
    geometry
        Pixel geometry of the skymap.
    """

    tract_id: int
    ra: float
    dec: float
    geometry: PatchGeometry

    def wcs(self) -> WCS:
        """Return the tract's TAN WCS in tract pixel coordinates."""
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [self.ra, self.dec]
        # The tangent point sits at the centre of the inner grid; FITS
        # CRPIX is 1-based, so the 0-based centre (n - 1) / 2 becomes
        # (n + 1) / 2.
        centre = (self.geometry.tract_inner + 1) / 2.0
        wcs.wcs.crpix = [centre, centre]
        scale = self.geometry.pixel_scale / 3600.0
        wcs.wcs.cd = np.array([[-scale, 0.0], [0.0, scale]])
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.radesys = "ICRS"
        wcs.wcs.set()
        return wcs

    def patch_index(self, x: int, y: int) -> int:
        """Return the patch number of patch column ``x``, row ``y``."""
        return y * self.geometry.patches_per_side + x

    def patch_xy(self, patch: int) -> tuple[int, int]:
        """Return ``(x, y)`` of a patch number.

        Raises
        ------
        DataNotFoundError
            If the patch number is outside the tract.
        """
        n = self.geometry.patches_per_side
        if not 0 <= patch < n * n:
            raise DataNotFoundError(
                f"patch {patch} is not in tract {self.tract_id} "
                f"(patches are 0-{n * n - 1})"
            )
        return patch % n, patch // n

    def patch_outer_bbox(self, patch: int) -> tuple[int, int, int, int]:
        """Return ``(x0, y0, width, height)`` of a patch's stored pixels."""
        x, y = self.patch_xy(patch)
        geom = self.geometry
        return (
            x * geom.patch_inner - geom.patch_border,
            y * geom.patch_inner - geom.patch_border,
            geom.patch_outer,
            geom.patch_outer,
        )

    def patch_inner_bbox(self, patch: int) -> tuple[int, int, int, int]:
        """Return ``(x0, y0, width, height)`` of a patch's inner region."""
        x, y = self.patch_xy(patch)
        inner = self.geometry.patch_inner
        return x * inner, y * inner, inner, inner

    def patch_wcs(self, patch: int) -> WCS:
        """Return the TAN WCS of a patch's stored array.

        It is the tract WCS shifted so that array pixel 0 is the patch's
        outer corner; the patch's ``xy0`` is that corner.
        """
        x0, y0, _, _ = self.patch_outer_bbox(patch)
        wcs = self.wcs()
        wcs.wcs.crpix = wcs.wcs.crpix - np.array([x0, y0])
        wcs.wcs.set()
        return wcs

    def patch_corners_sky(self, patch: int) -> npt.NDArray[np.float64]:
        """Return (ra, dec) of a patch's outer corners, counter-clockwise."""
        x0, y0, width, height = self.patch_outer_bbox(patch)
        xs = np.array([x0, x0 + width, x0 + width, x0]) - 0.5
        ys = np.array([y0, y0, y0 + height, y0 + height]) - 0.5
        ra, dec = self.wcs().pixel_to_world_values(xs, ys)
        return np.column_stack([ra, dec])

    def patches_overlapping(
        self, ra: npt.ArrayLike, dec: npt.ArrayLike
    ) -> list[int]:
        """Return the patches whose outer boxes hold any of the points.

        The points are usually the densely sampled edge of a detector; a
        polygon whose corners fall in no patch has no overlap.
        """
        xs, ys = self.wcs().world_to_pixel_values(
            np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
        )
        geom = self.geometry
        n = geom.patches_per_side
        found: set[int] = set()
        lo, hi = float(np.min(xs)), float(np.max(xs))
        blo, bhi = float(np.min(ys)), float(np.max(ys))
        for py in range(n):
            for px in range(n):
                x0 = px * geom.patch_inner - geom.patch_border - 0.5
                y0 = py * geom.patch_inner - geom.patch_border - 0.5
                x1, y1 = x0 + geom.patch_outer, y0 + geom.patch_outer
                if lo < x1 and hi > x0 and blo < y1 and bhi > y0:
                    found.add(self.patch_index(px, py))
        return sorted(found)

    def contains(self, ra: float, dec: float) -> bool:
        """Say whether a sky point falls in the tract's inner grid."""
        x, y = self.wcs().world_to_pixel_values(ra, dec)
        size = self.geometry.tract_inner
        return bool(-0.5 <= x < size - 0.5 and -0.5 <= y < size - 0.5)


@dataclass(frozen=True)
class SkyMap:
    """A named set of tracts sharing one patch geometry.

    Parameters
    ----------
    name
        Skymap name, the Butler ``skymap`` dimension value.
    tracts
        The tracts.
    geometry
        Pixel geometry shared by every tract.
    """

    name: str
    tracts: Sequence[Tract]
    geometry: PatchGeometry

    def tract(self, tract_id: int) -> Tract:
        """Return a tract by number.

        Raises
        ------
        DataNotFoundError
            If the skymap has no such tract.
        """
        for tract in self.tracts:
            if tract.tract_id == tract_id:
                return tract
        known = ", ".join(str(t.tract_id) for t in self.tracts)
        raise DataNotFoundError(
            f"tract {tract_id} is not in skymap {self.name!r} "
            f"(tracts: {known})"
        )

    def __iter__(self) -> Iterator[Tract]:
        """Iterate over the tracts."""
        return iter(self.tracts)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-able description, as stored in the repository."""
        geom = self.geometry
        return {
            "name": self.name,
            "patch_inner": geom.patch_inner,
            "patch_border": geom.patch_border,
            "patches_per_side": geom.patches_per_side,
            "pixel_scale": geom.pixel_scale,
            "tracts": [
                {"id": t.tract_id, "ra": t.ra, "dec": t.dec}
                for t in self.tracts
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> SkyMap:
        """Rebuild a skymap from `to_dict`'s description."""
        geom = PatchGeometry(
            patch_inner=int(data["patch_inner"]),  # type: ignore[call-overload]
            patch_border=int(data["patch_border"]),  # type: ignore[call-overload]
            patches_per_side=int(data["patches_per_side"]),  # type: ignore[call-overload]
            pixel_scale=float(data["pixel_scale"]),  # type: ignore[arg-type]
        )
        tracts = [
            Tract(int(t["id"]), float(t["ra"]), float(t["dec"]), geom)
            for t in data["tracts"]  # type: ignore[attr-defined]
        ]
        return cls(str(data["name"]), tracts, geom)
