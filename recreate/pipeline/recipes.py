"""The named recipes: one frozen configuration per Rubin release.

``dp1``
    LSST Science Pipelines v29.0.0, which made DP1's difference images:
    the task defaults plus ``allowKernelSourceDetection``
    (`recreate.pipeline.config`, ``shared/rubin-recipe.md``).
``dp2``
    v30.0.6-30.0.10 (one ip_diffim commit), DP2's pipelines: the same
    task defaults plus what v30 changed in the pixels and masks
    (``shared/rubin-recipe-dp2.md`` sections 2-4): no fitted background
    subtracted by the subtraction; detectAndMeasure's bin-8 and bin-40
    median backgrounds (the second subtracted from the published image);
    NO_DATA pixels set to 0; the template's HIGH_VARIANCE plane (kept,
    grown, in the difference and excluded from kernel stars); the
    stricter kernel-star selection (whole-box mask checks in each image,
    the edge restriction, mask cuts before the 1000-star trim, the
    fallback selector only when fewer than 3 remain); science NO_DATA
    counted in the coverage check; ``ceil(W / bin)`` background bins; no
    plane excluded from the final detection. Bugs fixed only after DP2
    (the ``getPsfFwhm`` factor, the first-sigma rule) are kept, as in
    ``dp1``.

A recipe is a `PipelineConfig` whose ``recipe`` field is its name: its
hash, and so the cache key and the provenance, differ between recipes.
A repository's default recipe follows its release (`release_recipe`).
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

from recreate.errors import InvalidRequestError
from recreate.pipeline.config import (
    DifferenceBackgroundConfig,
    HighVarianceConfig,
    PipelineConfig,
    SourceConfig,
    SubtractConfig,
    TemplateConfig,
)

#: The recipe of DP1: v29.0.0 defaults (today's behaviour).
DP1 = PipelineConfig()

_V29_SOURCES = SourceConfig()
_V29_SUBTRACT = SubtractConfig()

#: The recipe of DP2: v30.0.6 (code identical to 30.0.10).
DP2 = PipelineConfig(
    recipe="dp2",
    pipelines_version="v30.0.6",
    template=replace(
        TemplateConfig(),
        high_variance=HighVarianceConfig(),
        coverage_counts_science_no_data=True,
    ),
    sources=replace(
        _V29_SOURCES,
        exclude_mask_planes=(
            *_V29_SOURCES.exclude_mask_planes,
            "HIGH_VARIANCE",
        ),
        mask_check="box",
        restrict_edge_sources=True,
        fallback_selector=True,
    ),
    subtract=replace(
        _V29_SUBTRACT,
        do_subtract_background=False,
        preserve_template_mask=(
            *_V29_SUBTRACT.preserve_template_mask,
            "HIGH_VARIANCE",
        ),
        scale_variance_bin_count="ceil",
        detection_exclude_planes=(),
        difference_background=DifferenceBackgroundConfig(),
        no_data_image_value=0.0,
    ),
)

#: Every recipe by name.
RECIPES: MappingProxyType[str, PipelineConfig] = MappingProxyType(
    {config.recipe: config for config in (DP1, DP2)}
)

#: The recipe of a repository whose release is not recognised.
DEFAULT_RECIPE = "dp1"

#: Storage class of ``visit_image`` in each release's repository: DP1
#: stores afw ``ExposureF``, DP2 ``lsst.images`` ``VisitImage``.
_RECIPE_OF_STORAGE_CLASS = MappingProxyType(
    {"ExposureF": "dp1", "VisitImage": "dp2"}
)


def get_recipe(name: str) -> PipelineConfig:
    """Return the configuration of a named recipe.

    Parameters
    ----------
    name
        ``dp1`` or ``dp2``.

    Raises
    ------
    InvalidRequestError
        If there is no recipe of that name (the message lists them).
    """
    try:
        return RECIPES[name]
    except KeyError:
        raise InvalidRequestError(
            f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}"
        ) from None


def release_recipe(visit_image_storage_class: str | None) -> str:
    """Return the recipe of a repository's release, from its visit images.

    A repository whose ``visit_image`` datasets are ``lsst.images``
    VisitImages is DP2-like; afw ExposureF ones (or anything else) are
    DP1-like.

    Parameters
    ----------
    visit_image_storage_class
        The storage class of the ``visit_image`` dataset type, if known.
    """
    return _RECIPE_OF_STORAGE_CLASS.get(
        visit_image_storage_class or "", DEFAULT_RECIPE
    )


#: The recipes' names, for command-line choices.
RECIPE_NAMES: tuple[str, ...] = tuple(RECIPES)
