"""The recipe: every parameter of difference imaging, at its v29 default.

DP1's difference images were made by LSST Science Pipelines v29 with the
task defaults plus ``allowKernelSourceDetection = True``. This module
holds those defaults as one frozen, versioned configuration; its hash
goes into the provenance and the cache key, so a change of any value is
a different recipe. Sources: ``shared/rubin-recipe.md`` section 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recreate.pipeline.provenance import canonical_hash

#: Bumped whenever the meaning of a field changes.
CONFIG_VERSION = 1


@dataclass(frozen=True)
class TemplateConfig:
    """GetTemplateTask: warp and stitch the template patches."""

    border: int = 20  # templateBorderSize, px
    warping_kernel: str = "lanczos3"
    interp_length: int = 100  # WCS evaluated every this many pixels
    required_fraction: float = 0.1  # requiredTemplateFraction
    expected_success_fraction: float = 0.2  # minTemplateFraction...


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


@dataclass(frozen=True)
class KernelConfig:
    """MakeKernelTask with PsfMatchConfigAL (v29 AlardLuptonSubtract)."""

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


@dataclass(frozen=True)
class PipelineConfig:
    """The whole recipe."""

    template: TemplateConfig = field(default_factory=TemplateConfig)
    sources: SourceConfig = field(default_factory=SourceConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    subtract: SubtractConfig = field(default_factory=SubtractConfig)
    version: int = CONFIG_VERSION

    def to_dict(self) -> dict[str, object]:
        """Return the configuration as plain JSON-able values."""
        return asdict(self)

    def config_hash(self) -> str:
        """Return a SHA-256 of the canonical JSON of every value."""
        return canonical_hash(self.to_dict())


DEFAULT_CONFIG = PipelineConfig()
