"""The solution of a (visit, detector) under a recipe.

A `Solution` holds everything a render needs that depends on the whole
detector (`recreate.solution.solve`): the matching kernel and fitted
background, the ScaleVariance factors, the decorrelation kernel and
its variance levels, DP2's HIGH_VARIANCE levels and bin-40 background
of the difference, and what names it: the recipe, its configuration
hash, the code version, the input datasets and the detector. Detection
thresholds need nothing global (``pixel_stdev``: each pixel against its
own smoothed variance). `content_hash` is its checksum; the FITS layout
is in `recreate.solution.fits`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from recreate.errors import SolutionMismatchError
from recreate.exposure import Exposure
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.match.background_grid import BackgroundGrid
from recreate.pipeline.match.decorrelate import DecorrelationKernel
from recreate.pipeline.provenance import InputRef, Provenance, canonical_hash
from recreate.pipeline.recipes import get_recipe
from recreate.pipeline.sources.detection import detection_halo
from recreate.pipeline.template.high_variance import HighVarianceLevels
from recreate.solution.layout import Halos
from recreate.solution.tiles import TileEngine

#: Version of the solution's content and file layout.
SOLUTION_VERSION = 1


@dataclass(frozen=True)
class DetectorFrame:
    """Which detector a solution is of, and its pixel frame.

    Attributes
    ----------
    instrument, visit, detector
        The data ID (None where the image does not say).
    xy0
        The parent pixel of the detector's first pixel.
    shape
        ``(height, width)``.
    """

    instrument: str | None
    visit: int | None
    detector: int | None
    xy0: tuple[int, int]
    shape: tuple[int, int]

    @classmethod
    def of(cls, science: Exposure) -> DetectorFrame:
        """Return the frame of a whole visit image."""
        obs = science.observation
        return cls(
            instrument=None if obs is None else obs.instrument,
            visit=None if obs is None else obs.visit,
            detector=None if obs is None else obs.detector,
            xy0=(int(science.xy0[0]), int(science.xy0[1])),
            shape=(int(science.shape[0]), int(science.shape[1])),
        )

    @property
    def box(self) -> PixelBox:
        """The detector's box of parent pixels."""
        return PixelBox(*self.xy0, self.shape[1], self.shape[0])

    def describe(self) -> str:
        """Name the detector for messages."""
        if self.visit is not None and self.detector is not None:
            return f"visit {self.visit} detector {self.detector}"
        return "the science image"


@dataclass(frozen=True, eq=False)
class Solution:
    """What a render of any region of one difference image needs.

    Attributes
    ----------
    recipe, pipelines_version, config_hash, code_version
        The recipe's name, the pipelines version it reproduces, its
        configuration hash and this package's version.
    inputs
        The input datasets (science first), by id, run and data ID.
    frame
        The detector.
    template_coverage
        Fraction of the detector the template covers.
    notes
        Provenance notes (low coverage, PSF sizes measured...).
    science_fwhm, template_fwhm
        The PSF sizes (pixels) the kernel basis and detection used.
    kernel
        The matching kernel and fitted background (Alard-Lupton basis,
        Chebyshev coefficients).
    science_variance_factor, template_variance_factor
        ScaleVarianceTask's factors.
    decorrelation
        The decorrelation kernel, levels and variance weights.
    high_variance
        The template's HIGH_VARIANCE levels (DP2), else None.
    background
        The bin-40 background of the difference (DP2), else None.
    """

    recipe: str
    pipelines_version: str
    config_hash: str
    code_version: str
    inputs: tuple[InputRef, ...]
    frame: DetectorFrame
    template_coverage: float
    notes: tuple[str, ...]
    science_fwhm: float
    template_fwhm: float
    kernel: SolvedKernel
    science_variance_factor: float
    template_variance_factor: float
    decorrelation: DecorrelationKernel
    high_variance: HighVarianceLevels | None
    background: BackgroundGrid | None
    #: The configuration the solve ran with, kept in memory only: an
    #: adapted recipe (`recreate.anysurvey`) renders with it. A solution
    #: read from a file has none and names a registered recipe.
    solved_with: PipelineConfig | None = field(
        default=None, compare=False, repr=False
    )

    def config(self) -> PipelineConfig:
        """Return the recipe's configuration, checked against the hash.

        Raises
        ------
        SolutionMismatchError
            If this code's recipe of that name hashes differently.
        """
        return self._config

    @cached_property
    def _config(self) -> PipelineConfig:
        """The checked configuration (hashed once per solution)."""
        config = self.solved_with or get_recipe(self.recipe)
        if config.config_hash() != self.config_hash:
            raise SolutionMismatchError(
                f"the solution's recipe {self.recipe!r} has configuration "
                f"hash {self.config_hash[:12]}, this code's "
                f"{config.config_hash()[:12]}"
            )
        return config

    def halos(self) -> Halos:
        """Return the halos of its renders."""
        return Halos(
            kernel=self.kernel.basis.half_width,
            decorrelation=self.decorrelation.half_width,
            detection=detection_halo(self.science_fwhm),
            border=self.config().template.border,
        )

    def __getstate__(self) -> dict[str, Any]:
        """Return the fields to pickle: not what is cached of them.

        The tile engine (megabytes) and the checked configuration are
        made again where the copy is used.
        """
        state = dict(self.__dict__)
        for cached in ("engine", "_config"):
            state.pop(cached, None)
        return state

    @cached_property
    def engine(self) -> TileEngine:
        """The tile engine of its renders (built once per solution)."""
        config = self.config()
        return TileEngine.build(
            self.frame.shape,
            config.render.tile_size,
            self.kernel,
            self.decorrelation.image,
            subtract_background=config.subtract.do_subtract_background,
        )

    def content_hash(self) -> str:
        """Return the SHA-256 of the whole content (its checksum)."""
        return canonical_hash(self.document())

    def document(self) -> dict[str, Any]:
        """Return the content as canonical JSON-able values.

        Floats are hex (exact); arrays are named by the SHA-256 of their
        little-endian bytes and their shape.
        """
        dec = self.decorrelation
        return {
            "version": SOLUTION_VERSION,
            "recipe": self.recipe,
            "pipelines_version": self.pipelines_version,
            "config_hash": self.config_hash,
            "code_version": self.code_version,
            "inputs": [_input_document(ref) for ref in self.inputs],
            "frame": [
                self.frame.instrument,
                self.frame.visit,
                self.frame.detector,
                list(self.frame.xy0),
                list(self.frame.shape),
            ],
            "notes": list(self.notes),
            "numbers": {k: float(v).hex() for k, v in self.numbers().items()},
            "kernel": self.kernel.to_dict(),
            "decorrelation": _array_digest(dec.image.astype("<f4")),
            "background": None
            if self.background is None
            else _array_digest(self.background.values.astype("<f4")),
        }

    def numbers(self) -> dict[str, float]:
        """Return the scalar numbers (NaN where a recipe has none)."""
        dec, hv = self.decorrelation, self.high_variance
        nan = float("nan")
        return {
            "template_coverage": self.template_coverage,
            "science_fwhm": self.science_fwhm,
            "template_fwhm": self.template_fwhm,
            "science_variance_factor": self.science_variance_factor,
            "template_variance_factor": self.template_variance_factor,
            "decorrelation_science_variance": dec.science_variance,
            "decorrelation_template_variance": dec.template_variance,
            "decorrelation_science_weight": dec.science_weight,
            "decorrelation_template_weight": dec.template_weight,
            "decorrelation_truncation": dec.truncation,
            "high_variance_threshold": nan if hv is None else hv.threshold,
            "high_variance_fill": nan if hv is None else hv.fill,
            "background_akima_scale": nan
            if self.background is None
            else self.background.largest,
        }

    def check_inputs(
        self, config: PipelineConfig, refs: list[InputRef]
    ) -> None:
        """Check that the solution is of these inputs, recipe and code.

        Raises
        ------
        SolutionMismatchError
            Naming the first thing that differs: the recipe, the
            configuration hash, the code version, or an input.
        """
        from recreate import __version__

        if config.recipe != self.recipe:
            raise SolutionMismatchError(
                f"the solution is of recipe {self.recipe!r}, not "
                f"{config.recipe!r}"
            )
        if config.config_hash() != self.config_hash:
            raise SolutionMismatchError(
                f"the solution's configuration hash {self.config_hash[:12]} "
                f"is not recipe {config.recipe!r}'s "
                f"{config.config_hash()[:12]}"
            )
        if self.code_version != __version__:
            raise SolutionMismatchError(
                f"the solution was made by recreate {self.code_version}, "
                f"this is {__version__}"
            )
        _check_refs(self.inputs, tuple(refs))

    def provenance(self) -> Provenance:
        """Return the provenance of the products rendered from it."""
        return Provenance(
            recipe=self.recipe,
            pipelines_version=self.pipelines_version,
            inputs=list(self.inputs),
            config_hash=self.config_hash,
            code_version=self.code_version,
            template_coverage=self.template_coverage,
            kernel_size=self.kernel.basis.size,
            kernel_sum=self.kernel.kernel_sum(),
            n_kernel_candidates=self.kernel.n_candidates,
            n_kernel_used=self.kernel.n_used,
            kernel_from_storage=True,
            kernel_sha256=canonical_hash(self.kernel.to_dict()),
            science_fwhm=self.science_fwhm,
            template_fwhm=self.template_fwhm,
            notes=self.notes,
        )


def _input_document(ref: InputRef) -> dict[str, Any]:
    """Return an input's canonical form."""
    return {
        "role": ref.role,
        "dataset_type": ref.dataset_type,
        "id": ref.dataset_id,
        "run": ref.run,
        "data_id": dict(sorted(ref.data_id.items())),
    }


def _array_digest(array: npt.NDArray[Any]) -> dict[str, Any]:
    """Return an array's shape and the SHA-256 of its C-order bytes."""
    data = np.ascontiguousarray(array)
    return {
        "shape": list(data.shape),
        "dtype": data.dtype.str,
        "sha256": hashlib.sha256(data.tobytes()).hexdigest(),
    }


def _check_refs(
    have: tuple[InputRef, ...], want: tuple[InputRef, ...]
) -> None:
    """Raise naming the first input that differs between two lists.

    The science image first: a solution of another detector says so,
    whatever its templates.
    """
    for index, (a, b) in enumerate(zip(have, want, strict=False)):
        for what, x, y in (
            ("role", a.role, b.role),
            ("dataset id", a.dataset_id, b.dataset_id),
            ("run", a.run, b.run),
        ):
            if x != y:
                raise SolutionMismatchError(
                    f"input {index} ({a.role} {dict(a.data_id)}) differs: "
                    f"the solution's {what} is {x!r}, the request's {y!r}"
                )
    if len(have) != len(want):
        raise SolutionMismatchError(
            f"the solution has {len(have)} inputs, the request {len(want)}"
        )
