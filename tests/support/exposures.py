"""Builders of small synthetic exposures and WCSs for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.wcs import WCS, Sip

from recreate.exposure import (
    Exposure,
    MaskPlanes,
    ObservationInfo,
    PhotoCalib,
    PsfGrid,
    PsfInfo,
)

#: Where the real afw-written reference files live, if present.
REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata"

ARCSEC = 1.0 / 3600.0


def tan_sip_wcs(
    *, crpix: tuple[float, float] = (2000.5, 2036.5), sip: bool = True
) -> WCS:
    """Return a 0.2"/px TAN(-SIP) WCS, rotated, with LSST-like distortion.

    The SIP terms reach about a pixel at the corners of a 4k detector.
    """
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = (
        ["RA---TAN-SIP", "DEC--TAN-SIP"] if sip else ["RA---TAN", "DEC--TAN"]
    )
    wcs.wcs.crval = [53.1234567, -27.7654321]
    wcs.wcs.crpix = list(crpix)
    scale, angle = 0.2 * ARCSEC, np.radians(31.0)
    wcs.wcs.cd = scale * np.array(
        [
            [-np.cos(angle), np.sin(angle)],
            [np.sin(angle), np.cos(angle)],
        ]
    )
    if sip:
        a = np.zeros((4, 4))
        b = np.zeros((4, 4))
        a[2, 0], a[1, 1], a[0, 2], a[3, 0] = 1.2e-7, -3.1e-8, 4.4e-8, 2e-12
        b[0, 2], b[1, 1], b[2, 0], b[0, 3] = 9.5e-8, 2.2e-8, -5.3e-8, -3e-12
        wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    wcs.wcs.set()
    return wcs


def difference_planes() -> MaskPlanes:
    """Return afw's defaults plus difference-imaging planes at high bits."""
    bits = dict(MaskPlanes.afw_default().bits)
    bits.update({"SAT_TEMPLATE": 20, "HIGH_VARIANCE": 21, "CROSSTALK": 12})
    return MaskPlanes(bits)


def visit_observation() -> ObservationInfo:
    """Return a fully populated visit-detector ObservationInfo."""
    return ObservationInfo(
        instrument="LSSTComCam",
        band="r",
        physical_filter="r_03",
        visit=2024120200123,
        detector=4,
        detector_name="R22_S11",
        day_obs=20241202,
        exposure_time=30.0,
        date_avg="2024-12-03T03:12:45.123456789",
        boresight_ra=53.125,
        boresight_dec=-27.76,
        rotation_angle=271.25,
        airmass=1.0634,
    )


def coadd_observation() -> ObservationInfo:
    """Return a coadd-patch ObservationInfo."""
    return ObservationInfo(
        instrument="LSSTComCam",
        band="g",
        skymap="lsst_cells_v1",
        tract=5063,
        patch=14,
    )


def psf_grid(shape: tuple[int, int] = (3, 4), side: int = 11) -> PsfGrid:
    """Return a grid of unit-sum Gaussian PSFs whose width varies."""
    ny, nx = shape
    ys = np.linspace(10.0, 70.0, ny)
    xs = np.linspace(5.0, 95.0, nx)
    offsets = np.arange(side) - side // 2
    yy, xx = np.meshgrid(offsets, offsets, indexing="ij")
    images = np.empty((ny, nx, side, side), dtype=np.float32)
    for j in range(ny):
        for i in range(nx):
            sigma = 1.5 + 0.1 * i + 0.05 * j
            psf = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
            images[j, i] = psf / psf.sum()
    return PsfGrid(xs=xs, ys=ys, images=images)


def make_exposure(
    shape: tuple[int, int] = (80, 100), *, seed: int = 5
) -> Exposure:
    """Return an exposure with every field set and awkward pixel values.

    The image holds NaN, +-inf, a negative zero and a NaN with a payload;
    the mask sets bit 31 and a high named plane, so that any lossy step
    in a round trip shows.
    """
    rng = np.random.default_rng(seed)
    image = rng.normal(0.0, 25.0, shape).astype(np.float32)
    image[3, 4] = np.nan
    image[5, 6] = np.inf
    image[7, 8] = -np.inf
    image[9, 10] = -0.0
    image.view(np.uint32)[11, 12] = 0x7FC00123  # NaN with a payload
    variance = rng.uniform(500.0, 800.0, shape).astype(np.float32)
    planes = difference_planes()
    mask = rng.integers(0, 2**11, shape, dtype=np.int32)
    mask[0, 0] = np.int32(-(2**31))  # bit 31
    mask[1, 1] = 1 << planes.bit("SAT_TEMPLATE")
    return Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=tan_sip_wcs(),
        xy0=(1234, -56),
        psf=PsfInfo(fwhm=3.7, grid=psf_grid()),
        photo_calib=PhotoCalib(0.0625, 0.00125, 1.5),
        observation=visit_observation(),
        metadata={
            "LSST BUTLER RUN": "LSSTComCam/runs/DRP/DP1/w_2025_03",
            "RECREATE NOTE": "synthetic",
            "SEED": seed,
            "SCALE": 0.5,
            "FLAG": True,
            "lower case key": "kept",
        },
    )
