"""The any-survey recreation: `recreate subtract`'s way through the recipe.

`subtract_files` reads a science image and templates of any survey
(`recreate.anysurvey.read`), prepares them (`recreate.anysurvey.prepare`:
template variance, sky, PSF, DETECTED), builds the template (warped, or
placed for pixel-aligned inputs), and runs the v29 recipe
(`recreate.pipeline.subtract.subtract`) with two documented fallbacks:

* *Candidates*: when fewer stars than the recipe's minimum pass v29's
  cuts (often the S/N < 500 cap on a deep stack, whose few stars are
  all bright), it retries without the cap: the brightest unsaturated,
  isolated, unresolved stars.
* *Spatial orders*: when the spatial kernel solution is ill-conditioned
  or singular, or too thin (no more stars than spatial terms: v29's
  kernel order 1 and background order 2, six terms, need seven
  well-spread stars), it steps the orders down, kernel 1 -> 0 and
  background 2 -> 1 -> 0, until it is not.

What remains ill-conditioned or too thin is an `UnreliableKernelError`
(exit status 2, one line) unless ``allow_ill_conditioned``. Every step
and fallback taken is a provenance note, and the cards of `record_cards`
say what was done. Butler recreations never come here.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from recreate.anysurvey.aligned import aligned_template
from recreate.anysurvey.options import AnySurveyOptions, TemplateVariance
from recreate.anysurvey.prepare import looks_noiseless, prepare_input
from recreate.anysurvey.read import PlaneSources, read_file_inputs
from recreate.errors import ProcessingError, UnreliableKernelError
from recreate.exposure import Exposure
from recreate.io.auxiliary import Source
from recreate.pipeline.config import DEFAULT_CONFIG, PipelineConfig
from recreate.pipeline.kernel import SolvedKernel
from recreate.pipeline.kernel.spatial import n_terms
from recreate.pipeline.match import scale_variance
from recreate.pipeline.provenance import PREFIX, InputRef
from recreate.pipeline.subtract import DifferenceResult, subtract
from recreate.pipeline.template import WarpedTemplate, build_template

#: The logger of v29's spatial-fit conditioning warning.
_SPATIAL_FIT_LOGGER = "recreate.pipeline.kernel.spatial_fit"
#: Words of a ProcessingError that mean "too few kernel candidates" (the
#: selection's and the fit's messages both say it).
_TOO_FEW_CANDIDATES = "kernel candidates"


@dataclass
class _Run:
    """What one any-survey recreation has decided so far."""

    config: PipelineConfig
    notes: list[str]
    fallbacks: list[str]


def subtract_files(
    science_path: str | os.PathLike[str],
    template_paths: Sequence[str | os.PathLike[str]],
    *,
    science: PlaneSources = PlaneSources(),  # noqa: B008 - frozen
    template_psf: Source | None = None,
    options: AnySurveyOptions = AnySurveyOptions(),  # noqa: B008 - frozen
    config: PipelineConfig = DEFAULT_CONFIG,
    kernel: SolvedKernel | None = None,
    whole_patches: bool = False,
) -> DifferenceResult:
    """Recreate a difference image from files of any survey.

    Parameters
    ----------
    science_path, template_paths
        The science image and its template(s).
    science
        Where the science image's variance, mask and PSF are, and its
        gain (`recreate.anysurvey.read`).
    template_psf
        Where the templates' PSF image is, if not in their files.
    options
        How to adapt the recipe (`AnySurveyOptions`).
    config
        The recipe (v29's, DP1's, by default).
    kernel
        A stored kernel to reuse instead of fitting one.
    whole_patches
        Read Rubin-layout templates whole rather than by region.

    Raises
    ------
    InvalidRequestError
        If no template is given, or the options do not fit the inputs.
    FormatError
        If a file cannot be read, or has no WCS (unless aligned).
    NoOverlapError
        If the template covers too little of the science image.
    ProcessingError
        If the kernel cannot be fitted, even with the fallbacks.
    UnreliableKernelError
        If the kernel solution is ill-conditioned or too thin, and
        ``options.allow_ill_conditioned`` is False.
    """
    template_variance = options.template_variance
    inputs = read_file_inputs(
        science_path,
        template_paths,
        science=science,
        template_psf=template_psf,
        estimate_template_variance=isinstance(template_variance, str),
        aligned=options.aligned,
        config=config,
        whole_patches=whole_patches,
    )
    return subtract_any(
        inputs.science,
        inputs.templates,
        options=options,
        config=config,
        refs=inputs.refs,
        notes=inputs.notes,
        kernel=kernel,
    )


def subtract_any(
    science: Exposure,
    templates: Sequence[Exposure],
    *,
    options: AnySurveyOptions = AnySurveyOptions(),  # noqa: B008 - frozen
    config: PipelineConfig = DEFAULT_CONFIG,
    refs: Sequence[InputRef] = (),
    notes: Sequence[str] = (),
    kernel: SolvedKernel | None = None,
) -> DifferenceResult:
    """Prepare any-survey exposures and recreate their difference image.

    Parameters and errors are those of `subtract_files`, with the
    exposures already read and ``refs`` naming them.
    """
    start = time.perf_counter()
    run = _Run(config, list(notes), [])
    run.notes.append(f"any-survey mode: {options.describe()}")
    mode = _template_variance_mode(templates, options, run)
    scale_template = mode == "scale"
    templates = [
        _prepared(
            t,
            f"template {i}",
            options,
            run,
            template=True,
            scale=scale_template,
        )
        for i, t in enumerate(templates)
    ]
    science = _prepared(science, "science", options, run, scale=True)
    if not scale_template:
        science = _scale_science_alone(science, run)
    prepared = time.perf_counter()
    warped = _template(science, templates, run.config, options)
    built = time.perf_counter()
    result = _subtract_with_fallbacks(
        science, templates, warped, refs, kernel, options, run
    )
    # The template is built once, outside the recipe's own timings.
    result.timings.update(prepare=prepared - start, template=built - prepared)
    result.exposure.metadata.update(
        record_cards(options, mode, run, result.kernel)
    )
    return result


def _template_variance_mode(
    templates: Sequence[Exposure], options: AnySurveyOptions, run: _Run
) -> TemplateVariance:
    """Resolve ``template_variance=auto`` and say what was chosen."""
    choice = options.template_variance
    if choice != "auto":
        return choice
    if any(looks_noiseless(t) for t in templates):
        run.notes.append(
            "template looks noiseless (a model: most pixels equal, or "
            "variance ~0): its variance is kept as given, not rescaled"
        )
        return "keep"
    return "scale"


def _prepared(
    exposure: Exposure,
    label: str,
    options: AnySurveyOptions,
    run: _Run,
    *,
    scale: bool,
    template: bool = False,
) -> Exposure:
    """Prepare one input (`prepare_input`) and keep its notes."""
    prepared, notes = prepare_input(
        exposure, label, options, template=template, scale_variance=scale
    )
    run.notes.extend(notes)
    return prepared


def _scale_science_alone(science: Exposure, run: _Run) -> Exposure:
    """ScaleVariance on the science image only; the recipe then skips it.

    v29 rescales the template, then the science image, each on its own;
    a template whose variance is kept skips the first, and this is the
    second, done here so the recipe can skip both.
    """
    subtract_config = run.config.subtract
    if not subtract_config.do_scale_variance:
        return science
    variance, factor = scale_variance(
        science.image,
        science.variance,
        science.mask,
        science.mask_planes,
        subtract_config,
    )
    run.config = replace(
        run.config, subtract=replace(subtract_config, do_scale_variance=False)
    )
    run.notes.append(
        f"science variance rescaled by ScaleVariance ({factor:.4f}); the "
        "template's is not"
    )
    return replace(science, variance=variance)


def _template(
    science: Exposure,
    templates: Sequence[Exposure],
    config: PipelineConfig,
    options: AnySurveyOptions,
) -> WarpedTemplate:
    """Return the template on the science grid: placed if aligned."""
    if options.aligned:
        return aligned_template(science, templates, config.template)
    return build_template(science, templates, config.template)


def _subtract_with_fallbacks(
    science: Exposure,
    templates: Sequence[Exposure],
    warped: WarpedTemplate,
    refs: Sequence[InputRef],
    kernel: SolvedKernel | None,
    options: AnySurveyOptions,
    run: _Run,
) -> DifferenceResult:
    """Run the recipe, with the fallbacks of the module notes."""
    while True:
        try:
            with _conditioning_warnings_recorded_instead():
                result = subtract(
                    science,
                    templates,
                    config=run.config,
                    inputs=refs,
                    kernel=kernel,
                    notes=run.notes,
                    warped=warped,
                )
        except ProcessingError as error:
            if not _relax_candidates(error, options, run):
                raise
            continue
        if kernel is not None:
            return result
        problem = kernel_problem(result.kernel, run.config)
        if problem is None:
            return result
        if options.spatial_fallback and _lower_orders(problem, run):
            continue
        if options.allow_ill_conditioned:
            return _noted(result, f"{problem}; written on request", run)
        raise UnreliableKernelError(
            f"{problem}; pass --allow-ill-conditioned to write it anyway"
        )


@contextmanager
def _conditioning_warnings_recorded_instead() -> Iterator[None]:
    """Drop v29's conditioning warning while this mode handles it.

    The spatial fit logs "singular" or "exceeds the condition number
    limit" as v29 does; here `kernel_problem` judges the same numbers,
    falls back or fails, and records what it did, so the warning of an
    attempt that was then refitted would only mislead.
    """
    logger = logging.getLogger(_SPATIAL_FIT_LOGGER)
    dropped = logging.Filter(f"{_SPATIAL_FIT_LOGGER}.none")
    logger.addFilter(dropped)
    try:
        yield
    finally:
        logger.removeFilter(dropped)


def _relax_candidates(
    error: ProcessingError, options: AnySurveyOptions, run: _Run
) -> bool:
    """Drop the S/N cap after a too-few-candidates failure, once."""
    sources = run.config.sources
    if (
        not options.candidate_fallback
        or _TOO_FEW_CANDIDATES not in str(error)
        or math.isinf(sources.detection_threshold_max)
    ):
        return False
    run.config = replace(
        run.config,
        sources=replace(sources, detection_threshold_max=math.inf),
    )
    fallback = (
        f"too few kernel candidates under v29's cuts ({error}): retried "
        f"without the S/N {sources.detection_threshold_max:g} cap (the "
        "brightest unsaturated, isolated, unresolved stars)"
    )
    run.fallbacks.append("no S/N cap")
    run.notes.append(fallback)
    return True


def kernel_problem(kernel: SolvedKernel, config: PipelineConfig) -> str | None:
    """Say why a solved kernel cannot be trusted, or None if it can.

    A solution is *too thin* when no more stars went into it than its
    spatial model has terms to constrain: with exactly as many, the
    model passes through each star's own kernel, noise and all, and
    extrapolates that to the corners, where the variance plane (made
    with the centre's kernel, as v29 makes it) no longer describes the
    noise. It is *ill-conditioned* when its condition number exceeds
    ``max_spatial_condition_number`` (a singular system's is infinite).
    """
    orders = (kernel.spatial_kernel_order, kernel.spatial_bg_order)
    needed = max(n_terms(orders[0]), n_terms(orders[1])) + 1
    if kernel.n_used < needed:
        return (
            f"kernel solution too thin: {kernel.n_used} stars for spatial "
            f"orders {orders[0]} (kernel) and {orders[1]} (background), "
            f"which need {needed} (one more than their {needed - 1} terms)"
        )
    limit = config.kernel.max_spatial_condition_number
    condition = kernel.condition_number
    if not condition <= limit:
        what = (
            "singular"
            if math.isinf(condition)
            else f"condition number {condition:.3e} > {limit:.1e}"
        )
        return (
            f"kernel solution ill-conditioned ({what}) with {kernel.n_used} "
            f"stars at spatial orders {orders[0]}/{orders[1]}"
        )
    return None


def _lower_orders(problem: str, run: _Run) -> bool:
    """Step the spatial orders down once; False when both are 0."""
    kernel_config = run.config.kernel
    k, b = kernel_config.spatial_kernel_order, kernel_config.spatial_bg_order
    if b > k:
        b -= 1
    elif k > 0:
        k -= 1
    elif b > 0:
        b -= 1
    else:
        return False
    run.config = replace(
        run.config,
        kernel=replace(
            kernel_config, spatial_kernel_order=k, spatial_bg_order=b
        ),
    )
    run.fallbacks.append(f"spatial orders {k}/{b}")
    run.notes.append(f"{problem}: refitted at spatial orders {k}/{b}")
    return True


def _noted(result: DifferenceResult, note: str, run: _Run) -> DifferenceResult:
    """Add a last note to a result's provenance cards."""
    run.notes.append(note)
    index = len(result.provenance.notes)
    result.exposure.metadata[f"{PREFIX} NOTE {index}"] = note
    provenance = replace(
        result.provenance, notes=(*result.provenance.notes, note)
    )
    return replace(result, provenance=provenance)


def record_cards(
    options: AnySurveyOptions,
    template_variance: TemplateVariance,
    run: _Run,
    kernel: SolvedKernel,
) -> dict[str, Any]:
    """Return the cards that say what the any-survey mode did.

    ``RECREATE ANYSURVEY`` marks the product; the others name the inputs
    that were sky-subtracted or given a DETECTED plane before
    ScaleVariance, how the template variance was set, the fallbacks
    taken, and the kernel's condition number.
    """

    def inputs_where(words: str) -> str:
        hits = [n.split(" ", 2) for n in run.notes if words in n]
        labels = [
            " ".join(h[:2]) if h[0] == "template" else h[0] for h in hits
        ]
        return ", ".join(labels) or "none"

    condition = kernel.condition_number
    return {
        f"{PREFIX} ANYSURVEY": True,
        f"{PREFIX} ANYSURVEY OPTIONS": options.describe(),
        f"{PREFIX} DETECTED BEFORE SCALEVAR": inputs_where("no DETECTED"),
        f"{PREFIX} SKY SUBTRACTED": inputs_where("sky fitted"),
        f"{PREFIX} TEMPLATE VARIANCE": str(template_variance),
        f"{PREFIX} FALLBACKS": ", ".join(run.fallbacks) or "none",
        f"{PREFIX} KERNEL CONDITION": (
            f"{condition:.6g}" if math.isfinite(condition) else "inf"
        ),
    }
