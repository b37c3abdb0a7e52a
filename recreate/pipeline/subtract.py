"""The whole recipe: from a visit image and its patches to a difference.

`subtract` runs the AlardLuptonSubtractTask in convolveTemplate mode, as
DP1 (v29) and DP2 (v30) did, with the GetTemplateTask before it and what
DetectAndMeasureTask does to the pixels after it; the recipe
(`recreate.pipeline.recipes`) sets every parameter:

1. warp and stitch the template patches onto the science grid (+20 px),
   with DP2's HIGH_VARIANCE plane where the recipe asks for it;
2. ScaleVariance on the template, then on the science image;
3. masks: clear the science detection planes; in the template keep only
   the preserved planes (NO_DATA, BAD; DP2 also HIGH_VARIANCE), and copy
   SAT to SAT_TEMPLATE (`recreate.pipeline.prepare`);
4. PSF sizes (from the PSF models, or measured from the stars);
5. kernel candidates and the spatially varying Alard-Lupton kernel fit,
   or a stored kernel fed back in (then the fit is skipped);
6. convolve the template, subtract it and (DP1) the fitted differential
   background;
7. DMTN-021 decorrelation;
8. the 5-sigma two-sided detection planes; for DP2 also the bin-8 and
   bin-40 backgrounds and NO_DATA pixels set to 0
   (`recreate.pipeline.sources.detect_and_measure`).

The result carries the science image's WCS, PSF, calibration and
metadata, and the provenance cards of `recreate.pipeline.provenance`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from recreate import __version__
from recreate.errors import NoOverlapError, ProcessingError
from recreate.exposure import Exposure
from recreate.numerics.threads import thread_count
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel, fit_kernel, make_basis
from recreate.pipeline.kernel.spatial import subtract_polynomial_and_image
from recreate.pipeline.match.convolve import convolve_template
from recreate.pipeline.match.decorrelate import decorrelate
from recreate.pipeline.prepare import (
    difference_planes,
    grown_template_planes,
    prepared_science_mask,
    prepared_template_mask,
    psf_sizes,
    scaled_variances,
)
from recreate.pipeline.provenance import InputRef, Provenance, canonical_hash
from recreate.pipeline.sources import select_kernel_candidates
from recreate.pipeline.sources.detect_and_measure import detect_and_measure
from recreate.pipeline.template import WarpedTemplate, build_template


@dataclass(frozen=True, eq=False)
class DifferenceResult:
    """A difference image with what made it.

    Attributes
    ----------
    exposure
        The difference image on the science grid, with the science
        image's WCS, PSF, calibration and observation metadata, and the
        provenance cards in ``metadata``.
    kernel
        The solved (or reused) matching kernel.
    template
        The warped template, for coverage and per-patch bounds.
    provenance
        Inputs, config hash, code version, kernel summary, notes.
    timings
        Seconds spent in each stage.
    variance_levels
        The science and template variance levels the decorrelation used
        (NaN when it did not run): with the kernel they give the
        difference image's true PSF (`decorrelated_psf`).
    science
        The science image as it came in, for the previews that show it
        beside the template and the difference (a reference, no copy).
    """

    exposure: Exposure
    kernel: SolvedKernel
    template: WarpedTemplate
    provenance: Provenance
    timings: dict[str, float] = field(default_factory=dict)
    variance_levels: tuple[float, float] = (float("nan"), float("nan"))
    science: Exposure | None = None


def subtract(
    science: Exposure,
    patches: Sequence[Exposure],
    *,
    config: PipelineConfig = DEFAULT_CONFIG,
    inputs: Sequence[InputRef] = (),
    kernel: SolvedKernel | None = None,
    notes: Sequence[str] = (),
    warped: WarpedTemplate | None = None,
) -> DifferenceResult:
    """Recreate the difference image of a science exposure.

    Parameters
    ----------
    science
        The visit image (nJy, with WCS).
    patches
        The template coadd patches that overlap it.
    config
        The recipe; DP1's v29 defaults unless told otherwise.
    inputs
        Provenance names of the science image and patches, in order.
    kernel
        A stored kernel to reuse: the fit is skipped and the same kernel
        gives the same planes.
    notes
        Provenance notes from the caller (e.g. "variance estimated").
    warped
        The template already on the science grid (``patches`` unused):
        for pixel-aligned inputs, or a retry that reuses its template.

    Returns
    -------
    result
        The difference image, its kernel, template and provenance.

    Raises
    ------
    NoOverlapError
        If the template covers less than 10% of the science image.
    ProcessingError
        If too few kernel candidates are found, or the kernel solution is
        ill-conditioned.
    """
    timings: dict[str, float] = {}
    notes = list(notes)
    with _timed(timings, "template"):
        template = warped or build_template(science, patches, config.template)
    notes.extend(template.warnings)
    border = config.template.border
    planes = difference_planes(science.mask_planes, config)
    with _timed(timings, "scale_variance"):
        science_variance, template_variance = scaled_variances(
            science, template.exposure, config
        )
    science_mask = prepared_science_mask(science.mask, planes)
    template_mask = prepared_template_mask(template.exposure, planes, config)
    with _timed(timings, "psf"):
        science_fwhm, template_fwhm = psf_sizes(science, template, notes)
    prepared = replace(
        science,
        variance=science_variance,
        mask=science_mask,
        mask_planes=planes,
    )
    reused = kernel is not None
    if kernel is None:
        try:
            kernel = _fit(
                prepared,
                template,
                template_variance,
                template_mask,
                (science_fwhm, template_fwhm),
                config,
                timings,
            )
        except ProcessingError as error:
            _raise_if_failure_expected(template.coverage, config, error)
            raise
    with _timed(timings, "convolve"):
        matched, matched_variance, matched_mask = convolve_template(
            np.nan_to_num(template.exposure.image, nan=0.0),
            _finite_or_zero(template_variance),
            template_mask,
            planes,
            kernel,
            border=border,
            grow_planes=grown_template_planes(config),
            workers=thread_count(),
        )
    with _timed(timings, "subtract"):
        image = _difference(science.image, matched, kernel, config)
        variance = science_variance + matched_variance
        mask = science_mask | matched_mask
        # Where the template had no data, the difference has none either.
        no_data = (
            template_mask[border:-border, border:-border]
            & planes.value("NO_DATA")
        ) != 0
        image[no_data] = np.nan
    levels = (float("nan"), float("nan"))
    if config.subtract.do_decorrelation:
        with _timed(timings, "decorrelate"):
            height, width = science.shape
            result = decorrelate(
                image,
                science_variance,
                template_variance[border:-border, border:-border],
                mask,
                planes,
                kernel.kernel_image(width / 2.0, height / 2.0),
                config.subtract.decorrelation_ignore_planes,
            )
            image, variance = result.image, result.variance
            levels = (result.science_variance, result.template_variance)
    if config.subtract.do_detection:
        with _timed(timings, "detect"):
            measured = detect_and_measure(
                image, variance, mask, planes, science_fwhm, config.subtract
            )
            image, mask, planes = (
                measured.image,
                measured.mask,
                measured.planes,
            )
    provenance = Provenance(
        recipe=config.recipe,
        pipelines_version=config.pipelines_version,
        inputs=list(inputs),
        config_hash=config.config_hash(),
        code_version=__version__,
        template_coverage=template.coverage,
        kernel_size=kernel.basis.size,
        kernel_sum=kernel.kernel_sum(),
        n_kernel_candidates=kernel.n_candidates,
        n_kernel_used=kernel.n_used,
        kernel_from_storage=reused,
        kernel_sha256=canonical_hash(kernel.to_dict()),
        science_fwhm=science_fwhm,
        template_fwhm=template_fwhm,
        notes=tuple(notes),
    )
    exposure = Exposure(
        image=image,
        variance=variance,
        mask=mask,
        mask_planes=planes,
        wcs=science.wcs,
        xy0=science.xy0,
        psf=science.psf,
        photo_calib=science.photo_calib,
        observation=science.observation,
    )
    exposure.metadata = provenance.cards(exposure.plane_hash())
    return DifferenceResult(
        exposure, kernel, template, provenance, timings, levels, science
    )


def _raise_if_failure_expected(
    coverage: float, config: PipelineConfig, error: ProcessingError
) -> None:
    """Turn a failed fit into "no work" when coverage made it expected.

    v29 tolerates a PSF-matching failure when the template covers less
    than ``minTemplateFractionForExpectedSuccess`` (20%): the task ends
    with NoWorkFound and no difference image is made. Here that is a
    NoOverlapError, so the user hears "not enough template", not "bug".
    """
    expected = config.template.expected_success_fraction
    if coverage < expected:
        raise NoOverlapError(
            f"template covers only {100.0 * coverage:.1f}% of the "
            f"detector (< {100.0 * expected:g}%) and the kernel fit "
            f"failed ({error}); as in v29, no difference image is made"
        ) from error


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _fit(
    science: Exposure,
    template: WarpedTemplate,
    template_variance: npt.NDArray[np.float32],
    template_mask: npt.NDArray[np.int32],
    fwhms: tuple[float, float],
    config: PipelineConfig,
    timings: dict[str, float],
) -> SolvedKernel:
    """Select kernel candidates and fit the spatially varying kernel.

    ``science`` carries the scaled variance and the prepared mask, in
    the difference image's planes.
    """
    science_fwhm, template_fwhm = fwhms
    basis = make_basis(science_fwhm, template_fwhm, config.kernel)
    with _timed(timings, "kernel_candidates"):
        candidates = select_kernel_candidates(
            science,
            template.exposure.image,
            template_mask,
            science.mask_planes,
            border=config.template.border,
            kernel_size=basis.size,
            science_fwhm=science_fwhm,
            config=config.sources,
        )
    with _timed(timings, "kernel_fit"):
        return fit_kernel(
            template.exposure.image,
            template_variance,
            science.image,
            science.variance,
            np.column_stack([candidates.x, candidates.y]),
            basis,
            config.kernel,
            border=config.template.border,
            science_mask=science.mask,
            template_mask=template_mask,
            mask_planes=science.mask_planes,
            ratings=candidates.flux,
            min_candidates=config.sources.min_sources,
        )


def _difference(
    science: npt.NDArray[np.float32],
    matched: npt.NDArray[np.float32],
    kernel: SolvedKernel,
    config: PipelineConfig,
) -> npt.NDArray[np.float32]:
    """Return science - background - matched template, float32.

    The background is subtracted in float64 before the cast, as afw's
    MaskedImage arithmetic with a double-precision model rounds once.
    """
    if (
        not config.subtract.do_subtract_background
        or kernel.background.size == 0
    ):
        return (science.astype(np.float64) - matched).astype(np.float32)
    return subtract_polynomial_and_image(
        science,
        kernel.background,
        kernel.bbox,
        kernel.spatial_bg_order,
        matched,
    )


def _finite_or_zero(
    values: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """Return a copy with non-finite values set to 0 (masked NO_DATA)."""
    out = np.array(values, dtype=np.float32, copy=True)
    out[~np.isfinite(out)] = 0.0
    return out
