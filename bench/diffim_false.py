"""False detections over several detectors, against the noiseless floor.

One detector's counts are small numbers: the noise adds about 16 +/- 6
false detections to a floor of 40-170 (the floor depends on the scene:
how many bright stars leave a residual), so the ratio of one detector
scatters by about 0.14 from detector to detector. The benchmark
therefore counts on several detectors of its survey and prints each,
the pooled ratio (all noisy counts over all floors) that the target is
judged on, and the spread of the per-detector ratios.

Beside each count: how many of the noisy false detections sit on a
cosmic ray the simulator's repair missed (no noise made them; the
noiseless inputs have none), and the floor plus Gaussian noise of the
variance plane (`diffim_detections.with_gaussian_noise`): what the
noisy count would be if the product's noise were exactly what its
variance plane says. Most of what the noise adds to the floor is in
that reference too: sub-threshold star residuals pushed over 5 sigma,
and about 3 pure-noise excursions per detector.
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from diffim_case import FLAGGED, Case, build_case
from diffim_detections import NOISE_DRAWS, false_detections
from diffim_quality import noise_free_floor

from recreate.inputs import read_butler_inputs
from recreate.io import read_dp1
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.subtract import DifferenceResult, subtract

#: Detectors of the benchmark's survey (seed 1) counted besides its own
#: (detector 4): the comcam raft's corners, whose skies do not overlap.
EXTRA_DETECTORS = (0, 2, 6, 8)


@dataclass(frozen=True)
class Counts:
    """A detector's false detections, noisy and on noiseless inputs."""

    detector: int
    noisy: float
    floor: float
    at_cosmic_rays: float
    floor_plus_noise: float

    @property
    def ratio(self) -> float:
        """The noisy count over the floor."""
        return self.noisy / max(self.floor, 1.0)


def counts_of(
    case: Case, result: DifferenceResult, config: PipelineConfig
) -> Counts:
    """Return the false detections of a recreation and the recipe's floor."""
    diff = result.exposure
    flagged = (diff.mask & diff.mask_planes.value_of_present(FLAGGED)) != 0
    noisy = false_detections(case, diff, flagged)
    science = read_dp1(case.science_path)
    patches = [read_dp1(p) for p in case.patch_paths]
    floor = noise_free_floor(case, science, patches, result, config)
    return counts_from(case, noisy, floor)


def counts_from(
    case: Case, noisy: dict[str, float], floor: dict[str, float]
) -> Counts:
    """Return a detector's counts from its scores and its floor's."""
    return Counts(
        case.detector,
        noisy["false_detections"],
        floor["floor_false_detections"],
        noisy["false_at_cosmic_rays"],
        floor["floor_plus_noise_false"],
    )


def counts_of_detector(detector: int, config: PipelineConfig) -> Counts:
    """Render another detector of the survey, recreate it, and count."""
    with tempfile.TemporaryDirectory() as tmp:
        case = build_case(Path(tmp), detector=detector)
        inputs = read_butler_inputs(case.found)
        result = subtract(
            inputs.science,
            inputs.templates,
            config=config,
            inputs=inputs.refs,
            notes=inputs.notes,
        )
        return counts_of(case, result, config)


def print_false_detections(counts: list[Counts], factor: float) -> None:
    """Print each detector's counts, the pooled ratio and the spread."""
    print(
        "\nfalse detections: noisy / noiseless floor, per detector "
        "(on unrepaired cosmic rays; floor + Gaussian noise of the "
        f"variance plane, mean of {NOISE_DRAWS} draws)"
    )
    for c in counts:
        print(
            f"  detector {c.detector}: {c.noisy:4.0f} / {c.floor:4.0f} = "
            f"{c.ratio:.2f} ({c.at_cosmic_rays:.0f} on cosmic rays; "
            f"floor + noise {c.floor_plus_noise:5.1f})"
        )
    noisy = sum(c.noisy for c in counts)
    floor = sum(c.floor for c in counts)
    ratios = [c.ratio for c in counts]
    spread = statistics.stdev(ratios) if len(ratios) > 1 else float("nan")
    print(
        f"  pooled over {len(counts)} detectors: {noisy:.0f} / {floor:.0f} "
        f"= {noisy / max(floor, 1.0):.2f} (target <= {factor}); "
        f"per-detector ratios {min(ratios):.2f}-{max(ratios):.2f}, "
        f"std {spread:.2f}"
    )
    reference = sum(c.floor_plus_noise for c in counts)
    rays = sum(c.at_cosmic_rays for c in counts)
    print(
        f"  floor + Gaussian noise: {reference:.0f} = "
        f"{reference / max(floor, 1.0):.2f} x the floor; noisy / that = "
        f"{noisy / max(reference, 1.0):.2f}; {rays:.0f} of the noisy on "
        "unrepaired cosmic rays"
    )
