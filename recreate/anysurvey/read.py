"""Read the files of a `recreate subtract`: any survey, any layout.

A science image and its templates come in Rubin's (afw) layout or as
plain FITS images. What is read, and what is recorded:

* Every plane the file has is kept. A Rubin-layout file keeps its MASK,
  VARIANCE, WCS and PSF whatever is given beside it: ``--science-variance``
  replaces only the variance, ``--science-mask`` only the mask, and
  ``--gain`` (which feeds an *estimated* variance) changes nothing when
  the file has a variance plane (a note says so). A plain file's
  extensions named ``VARIANCE`` and ``MASK`` are used when no other is
  named.
* A PSF image is used when the input has one: a ``PSF`` extension, or
  what ``--science-psf`` / ``--template-psf`` name (an HDU or a file).
  Its width then comes from the image, not from the stars.
* Without a variance, the variance is estimated from the image's noise
  (and the gain); with a constant template variance asked for, it is
  not estimated at all.
* Pixel-aligned inputs (``aligned``) need no sky WCS.

Templates in Rubin's layout with a WCS are read by region, only where
the warped template can depend on them (`recreate.inputs._read_patch`).
Every input is named in the provenance by SHA-256.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from astropy.io import fits

from recreate.anysurvey.psf import psf_from_image
from recreate.errors import FormatError, InvalidRequestError
from recreate.exposure import Exposure
from recreate.inputs import ReadInputs, _read_patch
from recreate.io import read_dp1, read_plain
from recreate.io.afwplanes import is_afw_layout
from recreate.io.auxiliary import Source, read_mask, read_variance
from recreate.io.fitsfile import hdu_label, open_fits
from recreate.io.plain import (
    SATURATION_KEY,
    VARIANCE_ESTIMATED_KEY,
    VARIANCE_METHOD_KEY,
    XY0_ROUNDED_KEY,
)
from recreate.io.psfimage import find_psf_hdu, read_psf_image
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.provenance import InputRef

#: Metadata key of notes made while reading (one string per note).
READ_NOTES_KEY = "ANYSURVEY_READ_NOTES"


@dataclass(frozen=True)
class PlaneSources:
    """Where an input's extra planes are, when not in the image's HDUs.

    Attributes
    ----------
    variance, mask, psf
        An HDU index or name of the image's file, or another file; None
        to use the file's own (a ``VARIANCE``/``MASK``/``PSF`` extension,
        or Rubin's planes).
    gain
        Electrons per image unit, for an estimated variance.
    """

    variance: Source | None = None
    mask: Source | None = None
    psf: Source | None = None
    gain: float | None = None


def read_file_inputs(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
    *,
    science: PlaneSources = PlaneSources(),
    template_psf: Source | None = None,
    estimate_template_variance: bool = True,
    aligned: bool = False,
    config: PipelineConfig = DEFAULT_CONFIG,
    whole_patches: bool = False,
) -> ReadInputs:
    """Read a science image and its templates from files of any survey.

    Parameters
    ----------
    science_path, template_paths
        The files.
    science
        Where the science image's variance, mask and PSF are, and its
        gain (module notes).
    template_psf
        Where the templates' PSF image is (each template's own file is
        searched when it is an HDU name).
    estimate_template_variance
        Estimate a plain template's missing variance from its noise;
        False leaves it NaN (the caller sets it).
    aligned
        The inputs are pixel-aligned: no sky WCS is required (without
        it, an input with none is refused, naming ``--aligned``).
    config
        The recipe (its template border sets the regions read).
    whole_patches
        Read Rubin-layout templates whole rather than by region.

    Returns
    -------
    inputs
        The exposures, their provenance names, and the reading notes.

    Raises
    ------
    InvalidRequestError
        If no template is given.
    FileNotFoundError
        If a file does not exist.
    FormatError
        If a file cannot be read, or (unless ``aligned``) has no
        celestial WCS.
    """
    if not template_paths:
        raise InvalidRequestError("give at least one template image")
    # Hashing the files for the provenance overlaps the reading (hashlib
    # releases the GIL): a quarter of a second on a 2k x 2k pair.
    with ThreadPoolExecutor(max_workers=1) as hasher:
        named = hasher.submit(_file_refs, science_path, template_paths)
        science_exposure, templates = _read_all(
            science_path,
            template_paths,
            science,
            template_psf,
            estimate_template_variance=estimate_template_variance,
            aligned=aligned,
            config=config,
            whole_patches=whole_patches,
        )
        refs = named.result()
    labelled = [("science", science_exposure)] + [
        (f"template {i}", t) for i, t in enumerate(templates)
    ]
    notes = [
        f"{label} {note}"
        for label, exposure in labelled
        for note in reading_notes(exposure)
    ]
    return ReadInputs(science_exposure, templates, refs, notes)


def _file_refs(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
) -> list[InputRef]:
    """Name the science file and the templates, in that order."""
    return [file_ref("science", science_path)] + [
        file_ref("template", path) for path in template_paths
    ]


def _read_all(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
    science: PlaneSources,
    template_psf: Source | None,
    *,
    estimate_template_variance: bool,
    aligned: bool,
    config: PipelineConfig,
    whole_patches: bool,
) -> tuple[Exposure, list[Exposure]]:
    """Read the science image and the templates (see `read_file_inputs`)."""
    science_exposure = read_science(science_path, science)
    templates = [
        read_template(
            path,
            science_exposure,
            template_psf,
            estimate_variance=estimate_template_variance,
            aligned=aligned,
            config=config,
            whole=whole_patches,
        )
        for path in template_paths
    ]
    if not aligned:
        for path, exposure in zip(
            [science_path, *template_paths],
            [science_exposure, *templates],
            strict=True,
        ):
            _require_wcs(exposure, path)
    return science_exposure, templates


def _require_wcs(exposure: Exposure, path: str | os.PathLike[str]) -> None:
    """Refuse an input without a sky WCS, unless the pair is aligned.

    Raises
    ------
    FormatError
        Naming the file, and the option for pixel-aligned inputs.
    """
    if exposure.wcs is None:
        raise FormatError(
            f"{path}: no celestial WCS (CTYPE RA---/DEC--...); if the "
            "images share one pixel grid, pass --aligned"
        )


def read_science(
    path: str | os.PathLike[str], sources: PlaneSources
) -> Exposure:
    """Read the science image with every plane its file has (module notes).

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    FormatError
        If a file cannot be read, or a plane's shape differs.
    """
    with open_fits(path) as hdulist:
        if is_afw_layout(hdulist):
            exposure = _rubin_with_overrides(hdulist, str(path), sources)
            psf_spec = sources.psf
        else:
            exposure, psf_spec = None, sources.psf
            plain_sources = _plain_sources(hdulist, sources)
    if exposure is None:
        exposure = read_plain(
            path,
            variance=plain_sources.variance,
            mask=plain_sources.mask,
            gain=sources.gain,
            require_wcs=False,
        )
        psf_spec = plain_sources.psf
    return _with_psf(exposure, path, psf_spec)


def read_template(
    path: str | os.PathLike[str],
    science: Exposure,
    psf: Source | None,
    *,
    estimate_variance: bool,
    aligned: bool,
    config: PipelineConfig,
    whole: bool,
) -> Exposure:
    """Read one template: Rubin's layout by region, else as a plain image.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    FormatError
        If the file cannot be read.
    """
    with open_fits(path) as hdulist:
        if is_afw_layout(hdulist):
            if aligned:
                exposure = read_dp1(hdulist)
            else:
                exposure = _read_patch(hdulist, science, config, whole=whole)
            return _with_psf(exposure, path, psf)
        plain_sources = _plain_sources(hdulist, PlaneSources(psf=psf))
    exposure = read_plain(
        path,
        variance=plain_sources.variance,
        mask=plain_sources.mask,
        fill_variance="estimate" if estimate_variance else "nan",
        require_wcs=False,
    )
    return _with_psf(exposure, path, plain_sources.psf)


def _rubin_with_overrides(
    hdulist: fits.HDUList, source: str, sources: PlaneSources
) -> Exposure:
    """Read a Rubin-layout file, then replace only the planes named."""
    exposure = read_dp1(hdulist)
    notes = []
    if sources.variance is not None:
        variance, unusable, method = read_variance(
            sources.variance, None, hdulist, source, exposure.shape
        )
        if variance is not None:
            mask = exposure.mask.copy()
            no_data = exposure.mask_planes.with_planes("NO_DATA")
            mask[unusable] |= no_data.value("NO_DATA")
            exposure = replace(
                exposure, variance=variance, mask=mask, mask_planes=no_data
            )
            notes.append(f"variance {method}")
    elif sources.gain is not None:
        notes.append(
            f"gain {sources.gain:g} not used: the file has a variance plane"
        )
    if sources.mask is not None:
        mask, planes = read_mask(
            sources.mask, hdulist, source, exposure.shape, None
        )
        exposure = replace(exposure, mask=mask, mask_planes=planes)
        notes.append(f"mask from {sources.mask}")
    return _with_notes(exposure, notes)


def _plain_sources(
    hdulist: fits.HDUList, sources: PlaneSources
) -> PlaneSources:
    """Fill in a plain file's own VARIANCE, MASK and PSF extensions."""
    labels = [hdu_label(hdu) for hdu in hdulist]

    def own(name: str) -> int | None:
        return labels.index(name) if name in labels[1:] else None

    return PlaneSources(
        variance=(
            sources.variance
            if sources.variance is not None
            else own("VARIANCE")
        ),
        mask=sources.mask if sources.mask is not None else own("MASK"),
        psf=sources.psf if sources.psf is not None else find_psf_hdu(hdulist),
        gain=sources.gain,
    )


def _with_psf(
    exposure: Exposure, path: str | os.PathLike[str], spec: Source | None
) -> Exposure:
    """Attach the PSF image ``spec`` names (or the file's ``PSF`` HDU)."""
    with open_fits(path) as hdulist:
        if spec is None:
            spec = find_psf_hdu(hdulist)
            if spec is None:
                return exposure
        image = read_psf_image(spec, hdulist, str(path))
    full_shape = _full_shape(exposure)
    psf = psf_from_image(image, full_shape, str(path))
    note = f"PSF from PSF image ({psf.fwhm:.3f} px FWHM)"
    return _with_notes(replace(exposure, psf=psf), [note])


def _full_shape(exposure: Exposure) -> tuple[int, int]:
    """Return the shape the PSF is centred on: the whole patch's if cut."""
    frame = getattr(exposure, "frame", None)
    return exposure.shape if frame is None else frame.shape


def _with_notes(exposure: Exposure, notes: list[str]) -> Exposure:
    """Return the exposure with reading notes added to its metadata."""
    if not notes:
        return exposure
    metadata = dict(exposure.metadata)
    metadata[READ_NOTES_KEY] = [*metadata.get(READ_NOTES_KEY, []), *notes]
    return replace(exposure, metadata=metadata)


def reading_notes(exposure: Exposure) -> list[str]:
    """Return what reading an input did that the provenance must say."""
    metadata = exposure.metadata
    notes = []
    if metadata.get(VARIANCE_ESTIMATED_KEY):
        notes.append(f"variance estimated: {metadata[VARIANCE_METHOD_KEY]}")
    if SATURATION_KEY in metadata:
        notes.append(
            f"SAT set at or above SATURATE = {metadata[SATURATION_KEY]:g}"
        )
    if XY0_ROUNDED_KEY in metadata:
        notes.append(
            f"offset cards not whole pixels ({metadata[XY0_ROUNDED_KEY]}): "
            f"xy0 rounded to {exposure.xy0}"
        )
    notes.extend(metadata.get(READ_NOTES_KEY, []))
    return notes


def file_ref(role: str, path: str | os.PathLike[str]) -> InputRef:
    """Name a file in the provenance by its SHA-256 and name."""
    with Path(path).open("rb") as stream:
        digest = hashlib.file_digest(stream, "sha256").hexdigest()
    return InputRef(
        role=role, dataset_type="file", dataset_id=digest, run=Path(path).name
    )
