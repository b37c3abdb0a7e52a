"""An LSSTComCam-like camera and the LSST bands' sky and throughput.

Numbers come from Rubin's public documents: ComCam is one raft of 3x3
ITL CCDs of 4072x4000 processed pixels at 0.2"/px, read noise 6.21 e-;
zero points and dark-sky brightness per band are SMTN-002's for a 30 s
visit (see ``shared/simulation-notes.md`` section 3.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS

INSTRUMENT = "LSSTComCam"

#: DP1 physical filters of LSSTComCam, by band.
PHYSICAL_FILTERS = {
    "u": "u_02",
    "g": "g_01",
    "r": "r_03",
    "i": "i_06",
    "z": "z_03",
    "y": "y_04",
}


@dataclass(frozen=True)
class BandModel:
    """Throughput and dark sky of one band (SMTN-002, 1x30 s)."""

    zero_point: float  # AB mag giving 1 e-/s
    sky_mag: float  # dark sky, mag / arcsec^2
    median_seeing: float  # DP1 median PSF FWHM, arcsec

    def njy_per_electron(self, exposure_time: float) -> float:
        """Return nJy per photo-electron for an exposure of this length."""
        return 10 ** ((31.4 - self.zero_point) / 2.5) / exposure_time

    def sky_electrons(self, exposure_time: float, pixel_scale: float) -> float:
        """Return sky electrons per pixel in an exposure."""
        per_arcsec2 = 10 ** ((self.zero_point - self.sky_mag) / 2.5)
        return per_arcsec2 * exposure_time * pixel_scale**2


BANDS = {
    "u": BandModel(26.52, 23.05, 1.39),
    "g": BandModel(28.51, 22.25, 1.25),
    "r": BandModel(28.36, 21.20, 1.11),
    "i": BandModel(28.17, 20.46, 0.965),
    "z": BandModel(27.78, 19.61, 1.15),
    "y": BandModel(26.82, 18.60, 0.856),
}


@dataclass(frozen=True)
class Camera:
    """A 3x3 raft of identical detectors, ComCam-like.

    Parameters
    ----------
    width, height
        Processed detector size in pixels (4072x4000 for ComCam).
    gap
        Gap between neighbouring detectors, pixels.
    pixel_scale
        Arcsec per pixel.
    read_noise
        Electrons rms.
    full_well
        Saturation level, electrons.
    """

    width: int = 4072
    height: int = 4000
    gap: int = 60
    pixel_scale: float = 0.2
    read_noise: float = 6.21
    full_well: float = 1.2e5

    @property
    def detectors(self) -> range:
        """Detector numbers, 0-8."""
        return range(9)

    @staticmethod
    def detector_name(detector: int) -> str:
        """Return the DP1 full name, e.g. ``R22_S02`` for detector 2."""
        return f"R22_S{detector // 3}{detector % 3}"

    def detector_offset(self, detector: int) -> tuple[float, float]:
        """Return the focal-plane offset of a detector centre, pixels."""
        col, row = detector % 3, detector // 3
        return (
            (col - 1) * (self.width + self.gap),
            (row - 1) * (self.height + self.gap),
        )

    def detector_wcs(
        self,
        detector: int,
        ra: float,
        dec: float,
        rotation: float,
        *,
        distortion: float = 0.0,
    ) -> WCS:
        """Return a TAN-SIP WCS for one detector of a pointing.

        Parameters
        ----------
        detector
            Detector number.
        ra, dec
            Boresight in degrees (the tangent point).
        rotation
            Sky rotation of the focal plane, degrees east of north.
        distortion
            Radial (pincushion) distortion coefficient: a point at focal
            radius r lands at r * (1 + distortion * (r / 10000 px)^2).
            Written as SIP terms about the detector's own centre.

        Returns
        -------
        wcs
            The detector's WCS for array pixels, with SIP terms.
        """
        ox, oy = self.detector_offset(detector)
        theta = math.radians(rotation)
        scale = self.pixel_scale / 3600.0
        cd = scale * np.array(
            [
                [-math.cos(theta), math.sin(theta)],
                [math.sin(theta), math.cos(theta)],
            ]
        )
        # The tangent point is the boresight, off the detector: the
        # reference pixel is the boresight's position in this array.
        crpix = np.array(
            [(self.width + 1) / 2.0 - ox, (self.height + 1) / 2.0 - oy]
        )
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
        wcs.wcs.crval = [ra, dec]
        wcs.wcs.crpix = crpix
        wcs.wcs.cd = cd
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.radesys = "ICRS"
        wcs.sip = _radial_sip(crpix, distortion)
        wcs.wcs.set()
        return wcs


def _radial_sip(crpix: np.ndarray, distortion: float) -> object:
    """Return SIP polynomials for a cubic radial distortion about CRPIX.

    With u, v the offsets from CRPIX, a cubic radial term
    ``k (u^2 + v^2) (u, v)`` expands to SIP coefficients of order 3.
    """
    from astropy.wcs import Sip

    k = distortion / 10000.0**2
    a = np.zeros((4, 4))
    b = np.zeros((4, 4))
    a[3, 0] = a[1, 2] = k
    b[0, 3] = b[2, 1] = k
    # Forward only: astropy inverts SIP iteratively when it needs to.
    return Sip(a, b, None, None, crpix)
