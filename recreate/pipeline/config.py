"""Every parameter of difference imaging, at its v29 (DP1) default.

DP1's difference images were made by LSST Science Pipelines v29 with the
task defaults plus ``allowKernelSourceDetection = True``. This module
holds those defaults as one frozen, versioned configuration; its hash
goes into the provenance and the cache key, so a change of any value is
a different recipe. Sources: ``shared/rubin-recipe.md`` section 1.

Every field that DP2's pipelines (v30.0.6-30.0.10) set differently is a
field here too, at its v29 value: `recreate.pipeline.recipes` names the
two configurations (``dp1``, ``dp2``). The stages read fields, never a
recipe name, so a recipe is plain data that flows through them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal

from recreate.pipeline.provenance import canonical_hash

#: Bumped whenever the meaning of a field changes (3: the
#: decorrelation is a real-space kernel applied on the render's tiles).
CONFIG_VERSION = 3

#: ``getPsfFwhm``'s sigma-to-"FWHM" factor in v29 and v30.0.x:
#: ``2 ln(2 sqrt 2)`` = 2.0794 instead of ``2 sqrt(2 ln 2)`` = 2.3548. A
#: bug (fixed upstream in w.2026.17, after DP2) that both releases have:
#: the kernel basis is sized from it (`KernelConfig.psf_fwhm_per_sigma`).
GET_PSF_FWHM_PER_SIGMA = 2.0 * math.log(2.0 * math.sqrt(2.0))

#: How SubtractBackgroundTask counts its bins: meas_algorithms v29 uses
#: ``W // bin + 1``, v30 ``ceil(W / bin)``.
BinCount = Literal["floor_plus_one", "ceil"]


@dataclass(frozen=True)
class BackgroundConfig:
    """SubtractBackgroundTask as a caller configures it (useApprox off).

    The defaults are ScaleVarianceTask's (v29): bin 32, MEANCLIP,
    AKIMA_SPLINE (REDUCE_INTERP_ORDER), no super-pixel filter.
    """

    bin_size: int = 32
    statistic: Literal["MEANCLIP", "MEDIAN"] = "MEANCLIP"
    interpolation: Literal["AKIMA_SPLINE", "LINEAR"] = "AKIMA_SPLINE"
    filter_super_pixels: bool = False  # doFilterSuperPixels: 3x3 median
    bin_count: BinCount = "floor_plus_one"
    ignored_planes: tuple[str, ...] = (
        "BAD",
        "EDGE",
        "DETECTED",
        "DETECTED_NEGATIVE",
        "NO_DATA",
    )


@dataclass(frozen=True)
class HighVarianceConfig:
    """GetTemplateTask's HIGH_VARIANCE plane (v30; absent in v29)."""

    threshold: float = 4.0  # highVarianceThreshold, times the median
    min_unmasked_fraction: float = 0.1  # highVarianceMaskFraction
    background: BackgroundConfig = field(
        default_factory=lambda: BackgroundConfig(
            bin_size=32,
            statistic="MEDIAN",
            interpolation="LINEAR",
            filter_super_pixels=True,
            bin_count="ceil",
        )
    )


@dataclass(frozen=True)
class DifferenceBackgroundConfig:
    """DetectAndMeasureTask's two background passes (v30; none in v29).

    The first (bin 8) is subtracted from a copy for the first detection
    only; the second (bin 40) from the published image.
    """

    initial: BackgroundConfig = field(
        default_factory=lambda: BackgroundConfig(
            bin_size=8,
            statistic="MEDIAN",
            filter_super_pixels=True,
            bin_count="ceil",
        )
    )
    final: BackgroundConfig = field(
        default_factory=lambda: BackgroundConfig(
            bin_size=40,
            statistic="MEDIAN",
            filter_super_pixels=True,
            bin_count="ceil",
        )
    )
    #: detectAndMeasure's clearMaskPlanes, cleared before detecting.
    cleared_planes: tuple[str, ...] = (
        "DETECTED",
        "DETECTED_NEGATIVE",
        "NOT_DEBLENDED",
        "STREAK",
    )


@dataclass(frozen=True)
class TemplateConfig:
    """GetTemplateTask: warp and stitch the template patches."""

    border: int = 20  # templateBorderSize, px
    warping_kernel: str = "lanczos3"
    interp_length: int = 100  # WCS evaluated every this many pixels
    required_fraction: float = 0.1  # requiredTemplateFraction
    expected_success_fraction: float = 0.2  # minTemplateFraction...
    high_variance: HighVarianceConfig | None = None  # v30 only
    # The coverage check also counts science NO_DATA (v30).
    coverage_counts_science_no_data: bool = False


@dataclass(frozen=True)
class SourceConfig:
    """Kernel-candidate selection (ScienceSourceSelector + detection)."""

    detection_threshold: float = 10.0  # S/N lower bound
    detection_threshold_max: float = 500.0  # S/N upper bound
    max_sources: int = 1000  # maxKernelSources, by S/N
    min_sources: int = 3  # minKernelSources
    exclude_mask_planes: tuple[str, ...] = (
        "NO_DATA",
        "BAD",
        "SAT",
        "EDGE",
        "FAKE",
    )
    stamp_reference_mask_planes: tuple[str, ...] = ("NO_DATA", "EDGE", "SAT")
    # RequireUnresolved on base_ClassificationSizeExtendedness_value
    unresolved_max_extendedness: float = 0.1
    # v29 checks the centroid and its 8 neighbours in the OR of the two
    # masks; v30 the whole (2k+1)^2 box in each mask, before the trim.
    mask_check: Literal["centroid", "box"] = "centroid"
    restrict_edge_sources: bool = False  # v30 restrictKernelEdgeSources
    # v30: fewer than min_sources selected -> the fallback selector (no
    # isolation cut) on the detections; v29 has none.
    fallback_selector: bool = False


@dataclass(frozen=True)
class KernelConfig:
    """MakeKernelTask with PsfMatchConfigAL (v29 AlardLuptonSubtract)."""

    # getPsfFwhm's "FWHM" per sigma of the PSF (the v29/v30.0.x bug);
    # makeKernelBasisList divides it by the true 2.3548.
    psf_fwhm_per_sigma: float = GET_PSF_FWHM_PER_SIGMA
    n_gauss: int = 3  # alardNGauss
    deg_gauss: tuple[int, ...] = (4, 2, 2)  # alardDegGauss
    sig_gauss: tuple[float, ...] = (0.7, 1.5, 3.0)  # equal-FWHM fallback
    gauss_beta: float = 2.0  # alardGaussBeta
    min_sig: float = 0.7  # alardMinSig
    min_sig_deconv: float = 0.4  # alardMinSigDeconv
    kernel_size_fwhm_scaling: float = 6.0
    kernel_size_min: int = 21
    kernel_size_max: int = 35
    spatial_kernel_order: int = 1
    spatial_bg_order: int = 2
    fit_for_background: bool = True
    cell_size: int = 128  # sizeCellX / sizeCellY
    n_star_per_cell: int = 5
    max_spatial_iterations: int = 3
    single_kernel_clipping: bool = True
    kernel_sum_clipping: bool = True
    spatial_kernel_clipping: bool = True
    candidate_residual_mean_max: float = 0.25
    candidate_residual_std_max: float = 1.50
    max_ksum_sigma: float = 3.0
    max_condition_number: float = 5.0e7
    max_spatial_condition_number: float = 1.0e10
    constant_variance_weighting: bool = True
    stats_bad_mask_planes: tuple[str, ...] = ("NO_DATA", "EDGE", "SAT")


@dataclass(frozen=True)
class SubtractConfig:
    """AlardLuptonSubtractTask and the steps after it."""

    mode: str = "convolveTemplate"
    do_scale_variance: bool = True
    do_subtract_background: bool = True
    do_decorrelation: bool = True
    bad_mask_planes: tuple[str, ...] = ("NO_DATA", "BAD", "SAT", "EDGE")
    preserve_template_mask: tuple[str, ...] = ("NO_DATA", "BAD")
    rename_template_mask: tuple[str, ...] = (
        "SAT",
        "INJECTED",
        "INJECTED_CORE",
    )
    # ScaleVarianceTask
    scale_variance_bin_size: int = 32
    scale_variance_bin_count: BinCount = "floor_plus_one"
    scale_variance_limit: float = 10.0
    scale_variance_mask_planes: tuple[str, ...] = (
        "DETECTED",
        "DETECTED_NEGATIVE",
        "BAD",
        "SAT",
        "NO_DATA",
        "INTRP",
    )
    # DecorrelateALKernelTask
    decorrelation_ignore_planes: tuple[str, ...] = (
        "INTRP",
        "EDGE",
        "DETECTED",
        "SAT",
        "CR",
        "BAD",
        "NO_DATA",
        "DETECTED_NEGATIVE",
    )
    # DetectAndMeasureTask: the detection planes of the published image
    do_detection: bool = True
    detection_threshold: float = 5.0
    detection_exclude_planes: tuple[str, ...] = ("EDGE", "BAD")
    # v30 detectAndMeasure: backgrounds subtracted around the detection
    difference_background: DifferenceBackgroundConfig | None = None
    no_data_image_value: float | None = None  # v30: 0 where NO_DATA


@dataclass(frozen=True)
class RenderConfig:
    """How a difference image is rendered from its solution.

    The convolution and the decorrelation run on a fixed grid of square
    tiles anchored to the detector (`recreate.solution.layout`), so any
    region is made of the same tiles as the full product. The side is
    part of the recipe: another side is another product.
    """

    tile_size: int = 256


@dataclass(frozen=True)
class PipelineConfig:
    """The whole recipe: a name, the pipelines version, every parameter."""

    recipe: str = "dp1"
    pipelines_version: str = "v29.0.0"
    template: TemplateConfig = field(default_factory=TemplateConfig)
    sources: SourceConfig = field(default_factory=SourceConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    subtract: SubtractConfig = field(default_factory=SubtractConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, object]:
        """Return the configuration as plain JSON-able values."""
        return asdict(self)

    def config_hash(self) -> str:
        """Return a SHA-256 of the canonical JSON of every value."""
        return canonical_hash(self.to_dict())


DEFAULT_CONFIG = PipelineConfig()
