"""The catalogue of sources the renderer draws: `SourceTable`.

Shapes are GalSim reduced shears in the local sky frame ``(u, v)``
described in the `recreate.simulate.render` package docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: The float64 arrays every module of the renderer passes around.
FloatArray = npt.NDArray[np.float64]

#: GalSim's Sersic profiles are only defined for these indices.
SERSIC_N_RANGE = (0.3, 6.2)

#: Galaxies are truncated at this many half-light radii: the wings of
#: an untruncated de Vaucouleurs profile would otherwise force stamps
#: (and FFTs) several times larger for light far below the sky noise.
GALAXY_TRUNCATION_HLR = 5.0


@dataclass(frozen=True)
class SourceTable:
    """Sources to draw, as columns of equal length.

    Parameters
    ----------
    ra, dec
        Sky position in degrees (ICRS, the frame of the WCS).
    flux
        Total flux in this image, in nJy; must be finite and >= 0.
    is_galaxy
        True for a Sersic galaxy, False for a point source.
    half_light_radius
        Galaxy half-light radius in arcsec (ignored for stars).
    sersic_n
        Galaxy Sersic index, within `SERSIC_N_RANGE` (1 exponential,
        4 de Vaucouleurs). GalSim builds a lookup table once per distinct
        index (several ms each), so a catalogue should draw its indices
        from a short list of values rather than a continuum.
    g1, g2
        Galaxy reduced shear (intrinsic shape plus lensing) in the sky
        frame described in the package docstring; ignored for stars.

    Raises
    ------
    ValueError
        If the columns differ in length or are not 1-D, a flux is
        negative or not finite, or a galaxy has a non-positive size, a
        Sersic index out of range or a shear of modulus >= 1.
    """

    ra: FloatArray
    dec: FloatArray
    flux: FloatArray
    is_galaxy: npt.NDArray[np.bool_]
    half_light_radius: FloatArray
    sersic_n: FloatArray
    g1: FloatArray
    g2: FloatArray

    def __post_init__(self) -> None:
        """Coerce the columns to arrays and check their values."""
        for name in ("ra", "dec", "flux", "half_light_radius", "sersic_n"):
            self._coerce(name, np.float64)
        for name in ("g1", "g2"):
            self._coerce(name, np.float64)
        self._coerce("is_galaxy", np.bool_)
        lengths = {len(getattr(self, name)) for name in self._columns()}
        if len(lengths) != 1:
            raise ValueError(f"source columns differ in length: {lengths}")
        self._check_values()

    @classmethod
    def stars(
        cls, ra: npt.ArrayLike, dec: npt.ArrayLike, flux: npt.ArrayLike
    ) -> SourceTable:
        """Return a table of point sources only.

        Raises
        ------
        ValueError
            As for the class.
        """
        ra_array = np.atleast_1d(np.asarray(ra, dtype=np.float64))
        zeros = np.zeros_like(ra_array)
        return cls(
            ra=ra_array,
            dec=np.atleast_1d(np.asarray(dec, dtype=np.float64)),
            flux=np.atleast_1d(np.asarray(flux, dtype=np.float64)),
            is_galaxy=np.zeros(ra_array.shape, dtype=np.bool_),
            half_light_radius=zeros,
            sersic_n=np.ones_like(ra_array),
            g1=zeros,
            g2=zeros,
        )

    @classmethod
    def concatenate(cls, *tables: SourceTable) -> SourceTable:
        """Return the rows of several tables, one table after another.

        Parameters
        ----------
        *tables
            The tables to join, in the order their rows should appear.

        Returns
        -------
        table
            A new table whose columns are copies; empty when no table
            is given.
        """
        if not tables:
            # np.concatenate needs at least one array; no tables means
            # no sources, which is a valid (empty) table.
            return cls.stars([], [], [])
        columns = {
            name: np.concatenate([getattr(t, name) for t in tables])
            for name in cls._columns()
        }
        return cls(**columns)

    def take(
        self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]
    ) -> SourceTable:
        """Return the rows selected by a boolean mask or by indices.

        Parameters
        ----------
        keep
            Either a boolean mask with one entry per source, or integer
            row indices (which may repeat and set the order).

        Returns
        -------
        table
            A new table of the selected rows; its columns are copies, so
            it shares no memory with this one.

        Raises
        ------
        IndexError
            If a mask's length differs from the table's, or an index is
            out of range.
        """
        rows = np.asarray(keep)
        if rows.size == 0 and rows.dtype != np.bool_:
            # An empty list arrives as float64, which numpy will not
            # index with; it can only mean "no rows".
            rows = rows.astype(np.intp)
        columns = {name: getattr(self, name)[rows] for name in self._columns()}
        return type(self)(**columns)

    def __len__(self) -> int:
        """Return the number of sources."""
        return len(self.ra)

    @staticmethod
    def _columns() -> tuple[str, ...]:
        """Name the columns, in declaration order."""
        return (
            "ra",
            "dec",
            "flux",
            "is_galaxy",
            "half_light_radius",
            "sersic_n",
            "g1",
            "g2",
        )

    def _coerce(self, name: str, dtype: type[np.generic]) -> None:
        """Store a column as a 1-D array of ``dtype``."""
        column = np.atleast_1d(np.asarray(getattr(self, name), dtype=dtype))
        if column.ndim != 1:
            raise ValueError(f"source column {name!r} must be 1-D")
        object.__setattr__(self, name, column)

    def _check_values(self) -> None:
        """Reject values GalSim cannot draw or that have no meaning."""
        if not np.all(np.isfinite(self.flux)) or np.any(self.flux < 0):
            bad = int(np.flatnonzero(~(self.flux >= 0))[0])
            raise ValueError(
                f"source {bad} has flux {self.flux[bad]}; need finite >= 0"
            )
        galaxies = np.flatnonzero(self.is_galaxy)
        hlr = self.half_light_radius[galaxies]
        n = self.sersic_n[galaxies]
        shear = np.hypot(self.g1[galaxies], self.g2[galaxies])
        low, high = SERSIC_N_RANGE
        bad_mask = ~((hlr > 0) & (n >= low) & (n <= high) & (shear < 1))
        if np.any(bad_mask):
            bad = int(galaxies[np.flatnonzero(bad_mask)[0]])
            shear_bad = math.hypot(self.g1[bad], self.g2[bad])
            raise ValueError(
                f"galaxy {bad} has half_light_radius "
                f"{self.half_light_radius[bad]}, sersic_n "
                f"{self.sersic_n[bad]} and shear modulus {shear_bad}; "
                f"need > 0, within {SERSIC_N_RANGE}, and < 1"
            )
