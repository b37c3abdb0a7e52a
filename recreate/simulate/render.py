"""Turn a source catalogue, a WCS, a PSF and a noise model into pixels.

This is the pixel stage of the LSST-like simulator: survey planning
(visits, pointings, catalogues) happens elsewhere and hands over a
`SourceTable`, an astropy WCS, a `PsfModel` and a `NoiseModel`;
`render_image` returns what a processed Rubin image holds: a
background-subtracted image in nJy, its variance, an afw-style mask and
the true PSF on a grid of positions.

Conventions
-----------
* Array axes are ``(y, x)``; pixel coordinates are astropy's 0-based
  array coordinates, where the centre of pixel ``[j, i]`` is ``(i, j)``.
  GalSim stamps are given bounds in these same coordinates (GalSim
  allows any origin), so no 1-based offset enters anywhere.
* Shapes (source shears, PSF ellipticity) are GalSim reduced shears in
  the local sky frame ``(u, v)``: ``+u`` points West (decreasing RA),
  ``+v`` North. ``g1 > 0`` stretches East-West, ``g2 > 0`` along the
  North-West/South-East diagonal.
* Every object is drawn with GalSim's ``method='auto'`` (convolved with
  the pixel response) through the local Jacobian of the WCS at its
  position, so SIP distortion and rotation are honoured; a star is then
  exactly the image of the PSF stored in the `PsfGrid` at that place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import galsim
import numpy as np
import numpy.typing as npt

from recreate.exposure import MaskPlanes, PsfGrid

if TYPE_CHECKING:
    from astropy.wcs import WCS

FloatArray = npt.NDArray[np.float64]

#: GalSim's Sersic profiles are only defined for these indices.
SERSIC_N_RANGE = (0.3, 6.2)

#: Galaxies are truncated at this many half-light radii: the wings of
#: an untruncated de Vaucouleurs profile would otherwise force stamps
#: (and FFTs) several times larger for light far below the sky noise.
GALAXY_TRUNCATION_HLR = 5.0

#: A stamp ends where the object's surface brightness falls below this
#: fraction of the per-pixel sky noise: the light left out is invisible
#: pixel by pixel, and bright stars get the large stamps their wings need.
WING_THRESHOLD_SKY_SIGMA = 0.05

#: Smallest stamp half-width, in PSF FWHMs (about 99 % of the light of a
#: Kolmogorov profile), so faint sources still carry a sensible stamp.
MIN_STAMP_RADIUS_FWHM = 4.0

#: Largest stamp half-width in pixels: beyond it the FFT cost grows for
#: a handful of very bright stars whose far wings no test can see.
MAX_STAMP_RADIUS = 256

#: Finite-difference step, in pixels, for the local WCS Jacobian.
_JACOBIAN_STEP = 0.5

#: Rows of noise drawn at a time, to bound memory on full detectors.
_NOISE_BLOCK_ROWS = 256

_ARCSEC_PER_RADIAN = 180.0 * 3600.0 / math.pi


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
        frame described in the module docstring; ignored for stars.

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


@dataclass(frozen=True)
class PsfModel:
    """A PSF whose width varies smoothly across the detector.

    The FWHM at array position ``(x, y)`` of an image of shape
    ``(height, width)`` is ``fwhm * (1 + a*u + b*v + c*(u**2 + v**2))``
    with ``u = 2x/(width-1) - 1`` and ``v = 2y/(height-1) - 1`` (so both
    run over [-1, 1] across the array), ``(a, b) = gradient`` and
    ``c = curvature``.

    Parameters
    ----------
    fwhm
        FWHM in arcsec at the array centre, before the pixel response.
    gradient
        Fractional FWHM change per unit of ``u`` and of ``v``.
    curvature
        Fractional FWHM change per unit of ``u**2 + v**2``.
    g1, g2
        Reduced shear of the PSF, the same everywhere, in the sky frame
        of the module docstring. The shear keeps the area, so ``fwhm``
        is the geometric mean of the major- and minor-axis widths.
    profile
        ``"kolmogorov"`` (atmospheric seeing) or ``"moffat"``.
    moffat_beta
        Moffat index, used only for the Moffat profile.

    Raises
    ------
    ValueError
        If ``fwhm`` is not positive, the shear modulus is >= 1, the
        profile is unknown or ``moffat_beta`` is <= 1.
    """

    fwhm: float
    gradient: tuple[float, float] = (0.0, 0.0)
    curvature: float = 0.0
    g1: float = 0.0
    g2: float = 0.0
    profile: Literal["kolmogorov", "moffat"] = "kolmogorov"
    moffat_beta: float = 3.5

    def __post_init__(self) -> None:
        """Check the parameters."""
        if not self.fwhm > 0:
            raise ValueError(f"PSF fwhm {self.fwhm} must be > 0")
        if not math.hypot(self.g1, self.g2) < 1:
            raise ValueError(f"PSF shear ({self.g1}, {self.g2}) must be < 1")
        if self.profile not in {"kolmogorov", "moffat"}:
            raise ValueError(f"unknown PSF profile {self.profile!r}")
        if not self.moffat_beta > 1:
            raise ValueError(f"Moffat beta {self.moffat_beta} must be > 1")

    def fwhm_at(self, x: float, y: float, shape: tuple[int, int]) -> float:
        """Return the FWHM in arcsec at array position ``(x, y)``.

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM there.
        """
        widths = self.fwhm_at_positions(np.array([x]), np.array([y]), shape)
        return float(widths[0])

    def fwhm_at_positions(
        self, x: FloatArray, y: FloatArray, shape: tuple[int, int]
    ) -> FloatArray:
        """Return the FWHM in arcsec at many array positions at once.

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM at any of them.
        """
        u, v = _unit_coordinates(x, y, shape)
        a, b = self.gradient
        factor = 1.0 + a * u + b * v + self.curvature * (u * u + v * v)
        if np.any(factor <= 0):
            raise ValueError(
                "PSF model gives a non-positive FWHM on this image: "
                f"gradient {self.gradient}, curvature {self.curvature}"
            )
        return np.asarray(self.fwhm * factor, dtype=np.float64)

    def galsim_profile(
        self, x: float, y: float, shape: tuple[int, int]
    ) -> galsim.GSObject:
        """Return the unit-flux PSF at ``(x, y)`` in sky units (arcsec).

        Raises
        ------
        ValueError
            If the model gives a non-positive FWHM there.
        """
        return self.profile_of_width(self.fwhm_at(x, y, shape))

    def profile_of_width(self, fwhm: float) -> galsim.GSObject:
        """Return the unit-flux PSF of a given FWHM, sheared as specified."""
        if self.profile == "moffat":
            base = galsim.Moffat(beta=self.moffat_beta, fwhm=fwhm)
        else:
            base = galsim.Kolmogorov(fwhm=fwhm)
        if self.g1 == 0.0 and self.g2 == 0.0:
            return base
        return base.shear(g1=self.g1, g2=self.g2)


@dataclass(frozen=True)
class NoiseModel:
    """Sky, calibration and detector of a (background-subtracted) image.

    Parameters
    ----------
    sky_electrons
        Sky level per pixel in electrons. It adds Poisson noise and
        variance but is subtracted from the output image, as the
        background is in DP1 images.
    njy_per_electron
        Calibration: nJy per photo-electron.
    read_noise
        Read noise in electrons rms (ComCam ITL: 6.21 e-).
    saturation_electrons
        Full well in electrons; ``None`` for no saturation (coadds).

    Raises
    ------
    ValueError
        If a value is negative, the calibration is not positive, or the
        full well does not exceed the sky.
    """

    sky_electrons: float
    njy_per_electron: float
    read_noise: float = 6.2
    saturation_electrons: float | None = 1.0e5

    def __post_init__(self) -> None:
        """Check the parameters."""
        if not self.sky_electrons >= 0 or not self.read_noise >= 0:
            raise ValueError(
                f"sky {self.sky_electrons} and read noise {self.read_noise} "
                "must be >= 0"
            )
        if not self.njy_per_electron > 0:
            raise ValueError(
                f"njy_per_electron {self.njy_per_electron} must be > 0"
            )
        full_well = self.saturation_electrons
        if full_well is not None and not full_well > self.sky_electrons:
            raise ValueError(
                f"full well {full_well} e- must exceed the sky "
                f"{self.sky_electrons} e-"
            )

    @property
    def sky_sigma_njy(self) -> float:
        """Noise of a blank-sky pixel, in nJy."""
        electrons = self.sky_electrons + self.read_noise**2
        return math.sqrt(electrons) * self.njy_per_electron

    @property
    def full_well_njy(self) -> float | None:
        """Full well above the (subtracted) sky, in image units (nJy)."""
        if self.saturation_electrons is None:
            return None
        headroom = self.saturation_electrons - self.sky_electrons
        return headroom * self.njy_per_electron


@dataclass(frozen=True, eq=False)
class RenderResult:
    """The pixels of a rendered image and the truth behind them.

    Parameters
    ----------
    image
        Background-subtracted image in nJy, with Poisson and read noise.
    variance
        Variance in nJy^2 (sky + source Poisson + read noise), computed
        from the noiseless model, so it is smooth.
    mask
        int32 mask on `mask_planes` (afw default bits); SAT where a
        pixel reached the full well, including bleed trails.
    model
        Noiseless, unsaturated source model in nJy.
    psf_grid
        The PSF (pixel response included, unit sum) on a regular grid
        of array positions spanning the image.
    x, y
        Array position of each source; NaN for those too far away.
    drawn
        Whether each source's stamp touched the image.
    mask_planes
        Names and bits of the mask planes.
    """

    image: npt.NDArray[np.float32]
    variance: npt.NDArray[np.float32]
    mask: npt.NDArray[np.int32]
    model: npt.NDArray[np.float32]
    psf_grid: PsfGrid
    x: FloatArray
    y: FloatArray
    drawn: npt.NDArray[np.bool_]
    mask_planes: MaskPlanes = field(default_factory=MaskPlanes.afw_default)


def render_image(
    shape: tuple[int, int],
    wcs: WCS,
    sources: SourceTable,
    psf: PsfModel,
    noise: NoiseModel,
    *,
    seed: int,
    psf_grid_size: int = 5,
    psf_stamp: int = 41,
) -> RenderResult:
    """Render sources into a noisy, background-subtracted image.

    Parameters
    ----------
    shape
        Array shape ``(height, width)``.
    wcs
        Celestial WCS of the array pixels (0-based), TAN or TAN-SIP.
    sources
        What to draw. Sources whose stamps miss the image are skipped.
    psf
        The PSF and how it varies across the array.
    noise
        Sky, calibration, read noise and full well.
    seed
        Seed of the noise; the same seed gives bit-identical pixels.
    psf_grid_size
        Number of PSF grid nodes along each axis.
    psf_stamp
        Side of each PSF grid image, in pixels (odd).

    Returns
    -------
    result
        Image, variance, mask, noiseless model and PSF grid.

    Raises
    ------
    ValueError
        If the shape, seed or grid parameters are invalid, the PSF
        model gives a non-positive width on the image, or the WCS cannot
        place a source that falls near the image.
    """
    _check_shape(shape)
    if seed < 0:
        raise ValueError(f"seed {seed} must be >= 0")
    x, y = source_positions(wcs, shape, sources)
    model, drawn = draw_model(
        shape, wcs, sources, psf, noise, positions=(x, y)
    )
    rng = np.random.Generator(np.random.PCG64(seed))
    image, variance, mask, planes = expose(model, noise, rng)
    grid = draw_psf_grid(shape, wcs, psf, psf_grid_size, psf_stamp)
    return RenderResult(
        image=image,
        variance=variance,
        mask=mask,
        model=model,
        psf_grid=grid,
        x=x,
        y=y,
        drawn=drawn,
        mask_planes=planes,
    )


def source_positions(
    wcs: WCS, shape: tuple[int, int], sources: SourceTable
) -> tuple[FloatArray, FloatArray]:
    """Return the array positions of sources, NaN for far-away ones.

    Sources more than a generous margin (the largest stamp, plus slack
    for distortion) off the image are not inverted: a SIP polynomial can
    diverge there, and they could not touch the image anyway. So are
    those whose SIP inversion fails while the linear (TAN) part of the
    WCS puts them beyond the reach of any stamp.

    Raises
    ------
    ValueError
        If the WCS fails to place a source that could touch the image.
    """
    x = np.full(len(sources), np.nan)
    y = np.full(len(sources), np.nan)
    near = np.flatnonzero(_near_image(wcs, shape, sources.ra, sources.dec))
    if len(near) == 0:
        return x, y
    ra, dec = sources.ra[near], sources.dec[near]
    px, py = wcs.all_world2pix(ra, dec, 0, tolerance=1e-8, quiet=True)
    back_ra, back_dec = wcs.all_pix2world(px, py, 0)
    miss = _separation_arcsec(ra, dec, back_ra, back_dec)
    # 1e-4 arcsec is well under a thousandth of a pixel.
    placed = miss < 1e-4
    lost = near[~placed]
    if np.any(_within_reach(wcs, shape, sources.ra[lost], sources.dec[lost])):
        index = int(lost[0])
        raise ValueError(
            f"the WCS cannot place source {index} at "
            f"({sources.ra[index]}, {sources.dec[index]}) deg"
        )
    x[near[placed]], y[near[placed]] = px[placed], py[placed]
    return x, y


def _within_reach(
    wcs: WCS, shape: tuple[int, int], ra: FloatArray, dec: FloatArray
) -> npt.NDArray[np.bool_]:
    """Flag positions whose linear-WCS pixel is within a stamp of the array."""
    if len(ra) == 0:
        return np.zeros(0, dtype=np.bool_)
    px, py = wcs.wcs_world2pix(ra, dec, 0)
    height, width = shape
    reach = MAX_STAMP_RADIUS
    inside_x = (px > -reach) & (px < width - 1 + reach)
    inside_y = (py > -reach) & (py < height - 1 + reach)
    # NaN (beyond the projection's horizon) compares False: not in reach.
    return np.asarray(inside_x & inside_y)


def local_jacobians(wcs: WCS, x: FloatArray, y: FloatArray) -> FloatArray:
    """Return the local WCS Jacobian at array positions, arcsec/pixel.

    Returns
    -------
    jacobian
        Array of shape ``(n, 2, 2)`` holding ``[[du/dx, du/dy],
        [dv/dx, dv/dy]]`` with ``(u, v)`` GalSim's sky frame (``+u``
        West, ``+v`` North), from central differences of the full WCS
        (SIP included).
    """
    h = _JACOBIAN_STEP
    xs = np.concatenate([x, x + h, x - h, x, x])
    ys = np.concatenate([y, y, y, y + h, y - h])
    ra, dec = wcs.all_pix2world(xs, ys, 0)
    n = len(x)
    ra0, dec0 = ra[:n], dec[:n]
    u, v = _tangent_offsets(np.tile(ra0, 5), np.tile(dec0, 5), ra, dec)
    u, v = u.reshape(5, n), v.reshape(5, n)
    jacobian = np.empty((n, 2, 2))
    jacobian[:, 0, 0] = (u[1] - u[2]) / (2 * h)
    jacobian[:, 0, 1] = (u[3] - u[4]) / (2 * h)
    jacobian[:, 1, 0] = (v[1] - v[2]) / (2 * h)
    jacobian[:, 1, 1] = (v[3] - v[4]) / (2 * h)
    return jacobian


def draw_model(
    shape: tuple[int, int],
    wcs: WCS,
    sources: SourceTable,
    psf: PsfModel,
    noise: NoiseModel,
    *,
    positions: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
    """Draw the noiseless sources, in nJy, and say which were drawn.

    Each source is drawn on its own stamp at its exact position and
    added to the array, clipped at the edges. The noise model sets only
    the stamp sizes (a stamp ends where the wings sink into the noise).

    Parameters
    ----------
    shape
        Array shape ``(height, width)``.
    wcs
        Celestial WCS of the array pixels (0-based).
    sources
        What to draw.
    psf
        The PSF model.
    noise
        The noise model the image will get.
    positions
        Array positions of the sources, as `source_positions` returns
        them; computed here when not given.

    Returns
    -------
    model, drawn
        The model in nJy and whether each source touched the array
        (sources of zero flux are never drawn).

    Raises
    ------
    ValueError
        If the PSF model gives a non-positive width at a source, or the
        WCS cannot place a source near the image.
    """
    if positions is None:
        positions = source_positions(wcs, shape, sources)
    x, y = positions
    model = np.zeros(shape, dtype=np.float32)
    drawn = np.zeros(len(sources), dtype=np.bool_)
    candidates = np.flatnonzero(np.isfinite(x) & (sources.flux > 0))
    if len(candidates) == 0:
        return model, drawn
    cx, cy = x[candidates], y[candidates]
    jacobians = local_jacobians(wcs, cx, cy)
    # The PSF model (like a PsfGrid) holds only over the array: a source
    # centred off it takes the PSF of the nearest edge.
    height, width = shape
    fwhms = psf.fwhm_at_positions(
        np.clip(cx, 0, width - 1), np.clip(cy, 0, height - 1), shape
    )
    radii = _stamp_radii(
        sources,
        candidates,
        scales=np.sqrt(np.abs(np.linalg.det(jacobians))),
        fwhms=fwhms,
        psf=psf,
        threshold=_wing_threshold(noise),
    )
    for k, index in enumerate(candidates):
        window = _stamp_window(cx[k], cy[k], int(radii[k]), shape)
        if window is None:
            continue
        profile = _source_profile(sources, int(index), psf, float(fwhms[k]))
        stamp = _draw_stamp(profile, cx[k], cy[k], jacobians[k], window)
        _add_stamp(model, stamp, window)
        drawn[index] = True
    return model, drawn


def draw_psf_grid(
    shape: tuple[int, int],
    wcs: WCS,
    psf: PsfModel,
    size: int = 5,
    stamp: int = 41,
) -> PsfGrid:
    """Draw the PSF, with pixel response, on a grid spanning the array.

    Nodes are evenly spaced from the first to the last pixel along each
    axis (a single node sits at the centre). Each image is centred on
    its middle pixel, drawn exactly as a star at that node would be,
    and normalised to unit sum.

    Raises
    ------
    ValueError
        If ``size`` < 1, ``stamp`` is not an odd number >= 3, or the PSF
        model gives a non-positive width at a node.
    """
    _check_shape(shape)
    if size < 1:
        raise ValueError(f"PSF grid size {size} must be >= 1")
    if stamp < 3 or stamp % 2 == 0:
        raise ValueError(f"PSF stamp side {stamp} must be odd and >= 3")
    height, width = shape
    xs = _grid_nodes(width, size)
    ys = _grid_nodes(height, size)
    gx, gy = np.meshgrid(xs, ys)
    jacobians = local_jacobians(wcs, gx.ravel(), gy.ravel())
    fwhms = psf.fwhm_at_positions(gx.ravel(), gy.ravel(), shape)
    images = np.empty((size, size, stamp, stamp), dtype=np.float32)
    # The local Jacobian is uniform, so the stamp can sit anywhere: put
    # its middle pixel at (0, 0) and the PSF centre there.
    window = _Window(x0=-(stamp // 2), y0=-(stamp // 2), side=stamp)
    for k in range(size * size):
        profile = psf.profile_of_width(float(fwhms[k]))
        array = _draw_stamp(profile, 0.0, 0.0, jacobians[k], window)
        images.reshape(size * size, stamp, stamp)[k] = array / array.sum()
    return PsfGrid(xs=xs, ys=ys, images=images)


def expose(
    model: npt.NDArray[np.float32],
    noise: NoiseModel,
    rng: np.random.Generator,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int32],
    MaskPlanes,
]:
    """Add sky, Poisson and read noise and saturation to a model.

    Pixels whose expected charge (sky + model) exceeds the full well
    spill the excess up and down their column (a bleed trail); every
    pixel at full well reads exactly ``full_well - sky`` (no noise) and
    is masked SAT. Other pixels read ``Poisson(sky + model) - sky`` plus
    Gaussian read noise, in nJy. The variance uses the expected charge
    after bleeding, so it is smooth.

    Parameters
    ----------
    model
        Noiseless image in nJy above the sky.
    noise
        The noise model.
    rng
        Source of the noise draws; its state advances.

    Returns
    -------
    image, variance, mask, planes
        The noisy image (nJy), its variance (nJy^2), the mask and its
        planes (afw defaults).

    Raises
    ------
    ValueError
        If the model is not 2-D.
    """
    if model.ndim != 2:
        raise ValueError(f"model must be 2-D, got shape {model.shape}")
    planes = MaskPlanes.afw_default()
    charge, full = _bleed(model, noise)
    image = np.empty(model.shape, dtype=np.float32)
    variance = np.empty(model.shape, dtype=np.float32)
    mask = np.zeros(model.shape, dtype=np.int32)
    sat_bit = planes.value("SAT")
    for start in range(0, model.shape[0], _NOISE_BLOCK_ROWS):
        rows = slice(start, start + _NOISE_BLOCK_ROWS)
        block_full = None if full is None else full[rows]
        image[rows], variance[rows], saturated = _expose_block(
            charge[rows], block_full, noise, rng
        )
        mask[rows][saturated] |= sat_bit
    return image, variance, mask, planes


def _expose_block(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_] | None,
    noise: NoiseModel,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Return image, variance and SAT flags of one block of rows."""
    gain = noise.njy_per_electron
    expected = charge.astype(np.float64) / gain + noise.sky_electrons
    # FFT ringing leaves tiny negative model values; no charge is < 0.
    np.maximum(expected, 0.0, out=expected)
    counts = rng.poisson(expected).astype(np.float64)
    read = rng.standard_normal(expected.shape, dtype=np.float32)
    electrons = counts - noise.sky_electrons + noise.read_noise * read
    saturated = np.zeros(expected.shape, dtype=np.bool_)
    well = noise.saturation_electrons
    if well is not None and full is not None:
        # A pixel is read as saturated when its charge reaches the well,
        # whether through the model (``full``) or a noise upswing.
        saturated = full | (counts >= well)
        electrons[saturated] = well - noise.sky_electrons
        np.minimum(expected, well, out=expected)
    variance = (expected + noise.read_noise**2) * gain**2
    return electrons * gain, variance, saturated


def _bleed(
    model: npt.NDArray[np.float32], noise: NoiseModel
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_] | None]:
    """Move charge above the full well along columns (bleed trails).

    Returns
    -------
    charge, full
        The model after bleeding (the input itself when nothing
        saturates) and where pixels are at full well (``None`` when the
        noise model has no full well).
    """
    well = noise.full_well_njy
    if well is None:
        return model, None
    over = model > well
    if not np.any(over):
        return model, over
    charge = model.copy()
    full = over.copy()
    for column in np.unique(np.nonzero(over)[1]):
        _bleed_column(charge[:, column], full[:, column], well)
    return charge, full


def _bleed_column(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_],
    well: float,
) -> None:
    """Bleed one column in place: fill neighbours of each over-full run.

    Half the excess of a run goes up the column and half down, filling
    pixels to the well one after another (charge is conserved until it
    runs off the array, as a real bleed trail would).
    """
    for start, stop in _runs(charge > well):
        excess = float(np.sum(charge[start:stop] - well, dtype=np.float64))
        charge[start:stop] = well
        full[start:stop] = True
        _fill_towards(
            charge, full, np.arange(stop, len(charge)), excess / 2, well
        )
        _fill_towards(
            charge, full, np.arange(start - 1, -1, -1), excess / 2, well
        )


def _fill_towards(
    charge: npt.NDArray[np.float32],
    full: npt.NDArray[np.bool_],
    path: npt.NDArray[np.intp],
    excess: float,
    well: float,
) -> None:
    """Pour ``excess`` into the pixels of ``path`` in order, to the well."""
    room = np.maximum(well - charge[path].astype(np.float64), 0.0)
    poured = np.cumsum(room)
    filled = path[poured <= excess]
    charge[filled] = well
    full[filled] = True
    rest = np.flatnonzero(poured > excess)
    if len(rest):
        first = rest[0]
        before = poured[first - 1] if first > 0 else 0.0
        charge[path[first]] += np.float32(excess - before)


def _runs(flags: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """Return ``(start, stop)`` of each run of True values."""
    padded = np.concatenate([[False], flags, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [
        (int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)
    ]


@dataclass(frozen=True)
class _Window:
    """A square stamp: its lower-left array pixel and side length."""

    x0: int
    y0: int
    side: int


def _stamp_window(
    x: float, y: float, radius: int, shape: tuple[int, int]
) -> _Window | None:
    """Return the stamp around ``(x, y)``, or None if it misses the array."""
    ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
    window = _Window(x0=ix - radius, y0=iy - radius, side=2 * radius + 1)
    height, width = shape
    misses = (
        window.x0 + window.side <= 0
        or window.y0 + window.side <= 0
        or window.x0 >= width
        or window.y0 >= height
    )
    return None if misses else window


def _draw_stamp(
    profile: galsim.GSObject,
    x: float,
    y: float,
    jacobian: FloatArray,
    window: _Window,
) -> npt.NDArray[np.float32]:
    """Draw ``profile`` centred at array position ``(x, y)`` on a stamp."""
    local_wcs = galsim.JacobianWCS(
        float(jacobian[0, 0]),
        float(jacobian[0, 1]),
        float(jacobian[1, 0]),
        float(jacobian[1, 1]),
    )
    # The stamp's GalSim bounds are its array coordinates, so the
    # object's GalSim centre is its array position, with no 1-offset.
    stamp = galsim.ImageF(
        window.side, window.side, xmin=window.x0, ymin=window.y0, wcs=local_wcs
    )
    profile.drawImage(
        image=stamp, center=galsim.PositionD(x, y), method="auto"
    )
    return np.asarray(stamp.array)


def _add_stamp(
    model: npt.NDArray[np.float32],
    stamp: npt.NDArray[np.float32],
    window: _Window,
) -> None:
    """Add the part of a stamp that overlaps the array."""
    height, width = model.shape
    x_lo, y_lo = max(window.x0, 0), max(window.y0, 0)
    x_hi = min(window.x0 + window.side, width)
    y_hi = min(window.y0 + window.side, height)
    model[y_lo:y_hi, x_lo:x_hi] += stamp[
        y_lo - window.y0 : y_hi - window.y0,
        x_lo - window.x0 : x_hi - window.x0,
    ]


def _source_profile(
    sources: SourceTable, index: int, psf: PsfModel, fwhm: float
) -> galsim.GSObject:
    """Return the PSF-convolved profile of one source, in arcsec."""
    flux = float(sources.flux[index])
    local_psf = psf.profile_of_width(fwhm)
    if not sources.is_galaxy[index]:
        return local_psf.withFlux(flux)
    hlr = float(sources.half_light_radius[index])
    galaxy = galsim.Sersic(
        n=float(sources.sersic_n[index]),
        half_light_radius=hlr,
        trunc=GALAXY_TRUNCATION_HLR * hlr,
        flux=flux,
    )
    g1, g2 = float(sources.g1[index]), float(sources.g2[index])
    if g1 != 0.0 or g2 != 0.0:
        galaxy = galaxy.shear(g1=g1, g2=g2)
    return galsim.Convolve(galaxy, local_psf)


def _wing_threshold(noise: NoiseModel) -> float:
    """Return the per-pixel level (nJy) at which a stamp may end."""
    # The floor keeps stamps finite for a noiseless model.
    return max(WING_THRESHOLD_SKY_SIGMA * noise.sky_sigma_njy, 1e-6)


def _stamp_radii(
    sources: SourceTable,
    indices: npt.NDArray[np.intp],
    *,
    scales: FloatArray,
    fwhms: FloatArray,
    psf: PsfModel,
    threshold: float,
) -> npt.NDArray[np.int64]:
    """Return each source's stamp half-width in pixels.

    The half-width is where the PSF wing of the source's whole flux
    falls below ``threshold`` nJy per pixel (at least
    `MIN_STAMP_RADIUS_FWHM` FWHMs), plus the extent of a galaxy's
    truncated, sheared profile, capped at `MAX_STAMP_RADIUS`. ``scales``
    are the local pixel scales (arcsec) and ``fwhms`` the PSF FWHMs
    (arcsec) at the sources.
    """
    flux = sources.flux[indices]
    # Per-pixel value of the wing at radius r: flux * I1(r/f) / f^2 * A,
    # with I1 the surface brightness of a unit-flux, unit-FWHM PSF.
    wanted = threshold * fwhms**2 / (flux * scales**2)
    reach = _unit_psf_radius_below(psf, wanted) * fwhms
    reach = np.maximum(reach, MIN_STAMP_RADIUS_FWHM * fwhms)
    galaxy = sources.is_galaxy[indices]
    shear = np.hypot(sources.g1[indices], sources.g2[indices])
    major = np.sqrt((1 + shear) / (1 - np.minimum(shear, 0.99)))
    extent = GALAXY_TRUNCATION_HLR * sources.half_light_radius[indices] * major
    reach = reach + np.where(galaxy, extent, 0.0)
    radii = np.ceil(reach / scales).astype(np.int64)
    return np.minimum(radii, MAX_STAMP_RADIUS)


def _unit_psf_radius_below(psf: PsfModel, level: FloatArray) -> FloatArray:
    """Return radii (in FWHMs) where the unit PSF drops below ``level``.

    ``level`` is a surface brightness of the unit-flux, unit-FWHM PSF in
    arcsec^-2; the profile is sampled once, log-spaced to 300 FWHMs.
    """
    rho = np.geomspace(0.05, 300.0, 160)
    unit = psf.profile_of_width(1.0)
    brightness = np.array(
        [unit.xValue(galsim.PositionD(float(r), 0.0)) for r in rho]
    )
    # GalSim returns 0 beyond the radius it would ever draw; stop there.
    kept = brightness > 0
    rho, brightness = rho[kept], np.minimum.accumulate(brightness[kept])
    # The profile now never rises: interpolate log(rho) on
    # -log(brightness), which never falls, as np.interp needs.
    log_level = np.log(np.maximum(level, 1e-300))
    return np.exp(np.interp(-log_level, -np.log(brightness), np.log(rho)))


def _near_image(
    wcs: WCS,
    shape: tuple[int, int],
    ra: FloatArray,
    dec: FloatArray,
) -> npt.NDArray[np.bool_]:
    """Flag sources within reach of the array (its stamps could touch)."""
    height, width = shape
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    jacobian = local_jacobians(wcs, np.array([cx]), np.array([cy]))[0]
    scale = math.sqrt(abs(float(np.linalg.det(jacobian))))
    centre_ra, centre_dec = wcs.all_pix2world([cx], [cy], 0)
    # 1.5: slack for distortion and for a non-square pixel grid.
    reach = 1.5 * (0.5 * math.hypot(width, height) + MAX_STAMP_RADIUS) * scale
    separation = _separation_arcsec(centre_ra[0], centre_dec[0], ra, dec)
    return np.asarray(separation < reach)


def _tangent_offsets(
    ra0: FloatArray, dec0: FloatArray, ra: FloatArray, dec: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Project ``(ra, dec)`` on the tangent plane at ``(ra0, dec0)``.

    Returns GalSim's ``(u, v)`` in arcsec: ``+u`` West, ``+v`` North.
    """
    a0, d0 = np.radians(ra0), np.radians(dec0)
    a, d = np.radians(ra), np.radians(dec)
    cos_c = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cos_c
    eta = (
        np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)
    ) / cos_c
    return -xi * _ARCSEC_PER_RADIAN, eta * _ARCSEC_PER_RADIAN


def _separation_arcsec(
    ra1: FloatArray | float,
    dec1: FloatArray | float,
    ra2: FloatArray,
    dec2: FloatArray,
) -> FloatArray:
    """Return angular separations in arcsec (haversine, small-angle safe)."""
    a1, d1 = np.radians(ra1), np.radians(dec1)
    a2, d2 = np.radians(ra2), np.radians(dec2)
    term = (
        np.sin((d2 - d1) / 2) ** 2
        + np.cos(d1) * np.cos(d2) * np.sin((a2 - a1) / 2) ** 2
    )
    angle = 2 * np.arcsin(np.sqrt(np.clip(term, 0.0, 1.0)))
    return np.asarray(angle * _ARCSEC_PER_RADIAN, dtype=np.float64)


def _unit_coordinates(
    x: FloatArray, y: FloatArray, shape: tuple[int, int]
) -> tuple[FloatArray, FloatArray]:
    """Map array positions to ``(u, v)`` in [-1, 1] across the array."""
    height, width = shape
    u = 2.0 * x / max(width - 1, 1) - 1.0
    v = 2.0 * y / max(height - 1, 1) - 1.0
    return u, v


def _grid_nodes(length: int, size: int) -> FloatArray:
    """Return ``size`` evenly spaced pixel positions spanning ``length``."""
    if size == 1:
        return np.array([(length - 1) / 2.0])
    return np.linspace(0.0, length - 1.0, size)


def _check_shape(shape: tuple[int, int]) -> None:
    """Reject shapes that are not two positive integers."""
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image shape {shape} must be two positive sizes")
