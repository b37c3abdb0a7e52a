"""``recreate subtract``: the any-survey mode on the command line.

A science image and its template(s) from any survey, in Rubin's layout
or as plain FITS, become a difference image made with DP1's recipe
(v29; ``--recipe dp2`` for v30's), adapted as
`recreate.anysurvey.options.AnySurveyOptions` allows: sky subtracted
from unsubtracted inputs, DETECTED planes before ScaleVariance, a
template variance for model templates, pixel-aligned pairs without a
sky WCS, and the recorded fallbacks for thin kernel solutions. An
ill-conditioned or too-thin kernel solution is an error (exit status
2, one line) unless ``--allow-ill-conditioned``.

Only what a file-to-file subtraction needs is imported: no Butler, and
nothing heavy until the command runs (``--help`` loads no numba).
"""

from __future__ import annotations

import argparse

from recreate.anysurvey.options import (
    SWITCHES,
    AnySurveyOptions,
    parse_template_variance,
)
from recreate.pipeline.recipes import DEFAULT_RECIPE, RECIPE_NAMES
from workers.commands import Command
from workers.recreating import (
    add_output_options,
    check_output,
    stored_kernel,
    write_output,
)


def _configure_subtract(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``recreate subtract``."""
    parser.description = __doc__.split("\n\n")[1]
    parser.add_argument("science", help="science image (FITS)")
    parser.add_argument("template", nargs="+", help="template image(s) (FITS)")
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument(
        "--science-variance", help="variance file (or HDU name) of science"
    )
    inputs.add_argument(
        "--science-mask", help="mask file (or HDU name) of the science image"
    )
    inputs.add_argument(
        "--science-psf",
        help="PSF image (file or HDU name) of the science image; default "
        "its PSF extension, if any",
    )
    inputs.add_argument(
        "--template-psf", help="PSF image (file or HDU name) of the template"
    )
    inputs.add_argument(
        "--gain",
        type=float,
        help="electrons per image unit: adds the source Poisson term to an "
        "estimated variance",
    )
    inputs.add_argument(
        "--aligned",
        action="store_true",
        help="the inputs share one pixel grid: no sky WCS needed, no warp",
    )
    _add_adapting_options(parser)
    add_output_options(parser)


def _add_adapting_options(parser: argparse.ArgumentParser) -> None:
    """Add the recipe and how the any-survey mode adapts it."""
    adapt = parser.add_argument_group("adapting the recipe")
    adapt.add_argument(
        "--recipe",
        choices=RECIPE_NAMES,
        default=DEFAULT_RECIPE,
        help="dp1 (pipelines v29, default: the cuts the fallbacks relax) "
        "or dp2 (v30.0.6)",
    )
    adapt.add_argument(
        "--background",
        choices=SWITCHES,
        default="auto",
        help="fit and subtract a smooth sky (auto: when an input's sky "
        "level is more than 1 sigma from zero)",
    )
    adapt.add_argument(
        "--detect",
        choices=SWITCHES,
        default="auto",
        help="flag DETECTED before ScaleVariance (auto: on inputs with no "
        "DETECTED pixel)",
    )
    adapt.add_argument(
        "--template-variance",
        default="auto",
        metavar="{auto,scale,keep,VALUE}",
        help="scale: v29's ScaleVariance; keep: as given; VALUE: constant "
        "(0 for a noiseless model); auto: keep for a noiseless-looking "
        "template, else scale",
    )
    adapt.add_argument(
        "--variance-floor",
        type=float,
        metavar="VALUE",
        help="lowest template variance (image units squared)",
    )
    adapt.add_argument(
        "--no-candidate-fallback",
        action="store_true",
        help="fail when too few stars pass v29's kernel-candidate cuts "
        "(default: retry without the S/N 500 cap)",
    )
    adapt.add_argument(
        "--no-spatial-fallback",
        action="store_true",
        help="keep v29's spatial orders even when the solution is "
        "ill-conditioned (default: step them down)",
    )
    adapt.add_argument(
        "--allow-ill-conditioned",
        action="store_true",
        help="write the difference even if the kernel solution is "
        "ill-conditioned or too thin (default: exit status 2)",
    )


def _subtract(args: argparse.Namespace) -> int:
    """Recreate a difference image from two or more files and write it."""
    # Every option is checked before the pipeline's imports (about 1 s of
    # numba, scipy and astropy in a fresh process): an output that cannot
    # be written as asked (``--lossy16`` on a DP1 format) or a bad value
    # is refused before any work.
    check_output(args)
    options = _options_of(args)
    from recreate.anysurvey.read import PlaneSources
    from recreate.anysurvey.subtract import subtract_files
    from recreate.memory import retain_freed_memory
    from recreate.pipeline.recipes import get_recipe

    retain_freed_memory()
    result = subtract_files(
        args.science,
        args.template,
        science=PlaneSources(
            variance=args.science_variance,
            mask=args.science_mask,
            psf=args.science_psf,
            gain=args.gain,
        ),
        template_psf=args.template_psf,
        options=options,
        config=get_recipe(args.recipe),
        kernel=stored_kernel(args),
    )
    return write_output(args, result)


def _options_of(args: argparse.Namespace) -> AnySurveyOptions:
    """Return the any-survey options the command line gives.

    Raises
    ------
    InvalidRequestError
        If ``--template-variance`` or ``--variance-floor`` is invalid.
    """
    return AnySurveyOptions(
        background=args.background,
        detect=args.detect,
        aligned=args.aligned,
        template_variance=parse_template_variance(args.template_variance),
        variance_floor=args.variance_floor,
        candidate_fallback=not args.no_candidate_fallback,
        spatial_fallback=not args.no_spatial_fallback,
        allow_ill_conditioned=args.allow_ill_conditioned,
    )


SUBTRACT = Command(
    "subtract",
    "difference of a science and template FITS image (any survey)",
    _configure_subtract,
    _subtract,
)
