"""Difference-imaging benchmark: speed and quality on a simulated detector.

One full-size (``comcam``) visit-detector and the template patches that
overlap it are rendered in memory with the simulator, written to and
read back from disk as files in the DP1 layout (so "inputs read" is
real I/O), recreated, and scored against the simulator's truth:

* robust std of difference / sqrt(variance) in source-free sky;
* residual flux of bright isolated steady stars (fraction, and chi =
  residual / error: pure noise gives a 95th percentile of about 2);
* injected transients' measured / true flux and pull width at S/N > 20
  (and what a fit of the attached science PSF reads);
* 5-sigma detections that match no injected source, against the
  recipe's own floor on noiseless inputs (target: at most 1.3 times
  it), on this detector and on others of the survey (``--detectors``:
  one detector's ratio scatters by about 0.14; `diffim_false`);
* a fresh worker's first request after its warm-up against a warm one.

The same figures for a PSF-only baseline (the kernel fitted to the known
PSF images instead of the stars) show what fitting the stars buys.

``--recipe dp1`` (the default) or ``--recipe dp2`` picks the recipe;
``make bench`` runs each in its own process, so each peak RSS is its
own. The case and the scores live in ``diffim_case.py``,
``diffim_quality.py`` and ``diffim_false.py``.
"""

from __future__ import annotations

import argparse
import math
import resource
import tempfile
import time
from pathlib import Path

from diffim_case import Case, build_case
from diffim_false import (
    EXTRA_DETECTORS,
    counts_from,
    counts_of_detector,
    print_false_detections,
)
from diffim_quality import noise_free_floor, psf_only_kernel, score

from recreate.inputs import read_butler_inputs
from recreate.io import read_dp1
from recreate.memory import retain_freed_memory
from recreate.pipeline.config import PipelineConfig
from recreate.pipeline.recipes import RECIPES, get_recipe
from recreate.pipeline.subtract import DifferenceResult, subtract
from recreate.pipeline.warmup import warm_up
from recreate.recreation import result_bytes

TARGETS = {
    "sky_std": "1.00 +/- 0.03",
    "star_residual_median": "<= 0.005",
    "star_chi_p95": "<= 3",
    "transient_ratio_median": "1.000 +/- 0.01",
    "transient_pull_std": "0.9 - 1.1",
    "transient_ratio_attached_psf": "(science PSF on the decorrelated diff)",
    "false_detections": "<= 1.3 x the noiseless floor (below)",
    "false_at_cosmic_rays": "(of those, on unrepaired cosmic rays)",
}
#: Noisy false detections may exceed the recipe's noiseless floor by this.
FALSE_DETECTION_FACTOR = 1.3
#: A fresh worker's first request, after its warm-up, against a warm one.
FIRST_TASK_FACTOR = 1.3


def run_case(
    case: Case, config: PipelineConfig
) -> tuple[DifferenceResult, dict[str, float]]:
    """Read the inputs, recreate, encode the output; time every stage.

    The inputs are read as the service reads them, through their URIs
    (the science image whole, each template patch only where the
    template can depend on it), and the output is encoded as the service
    serves it.
    """
    start = time.perf_counter()
    inputs = read_butler_inputs(case.found)
    read_s = time.perf_counter() - start
    result = subtract(
        inputs.science,
        inputs.templates,
        config=config,
        inputs=inputs.refs,
        notes=inputs.notes,
    )
    start = time.perf_counter()
    result_bytes(result, "dp1")
    encode_s = time.perf_counter() - start
    timings = {"read": read_s, **result.timings, "encode": encode_s}
    timings["total"] = sum(timings.values())
    return result, timings


def main() -> None:
    """Build the case, recreate it, and print timings and quality."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", choices=tuple(RECIPES), default="dp1")
    parser.add_argument(
        "--detectors",
        type=int,
        nargs="*",
        default=list(EXTRA_DETECTORS),
        help="other detectors whose false detections are counted too "
        "(about 40 s each)",
    )
    args = parser.parse_args()
    config = get_recipe(args.recipe)
    # As a worker process and the command line do (recreate.memory).
    tuned = retain_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        print("rendering one comcam visit-detector and its patches ...")
        case = build_case(Path(tmp))
        # A worker warms the pipeline up when it starts (the compiled
        # kernels load), then takes requests: the first one still grows
        # the process's heap, the next ones run warm.
        start = time.perf_counter()
        warm_up()
        warm_up_s = time.perf_counter() - start
        _, first = run_case(case, config)
        result, warm = run_case(case, config)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        science = read_dp1(case.science_path)
        patches = [read_dp1(p) for p in case.patch_paths]
        baseline_kernel = psf_only_kernel(science, patches, result.kernel)
        baseline = subtract(
            science, patches, kernel=baseline_kernel, config=config
        )
        fitted_scores = score(case, result)
        baseline_scores = score(case, baseline)
        floor = noise_free_floor(case, science, patches, result, config)
    counts = [counts_from(case, fitted_scores, floor)]
    counts += [counts_of_detector(d, config) for d in args.detectors]
    print(
        f"\nrecipe {config.recipe} (pipelines {config.pipelines_version}): "
        f"recreation of one 4072x4000 detector ({len(patches)} patches)"
    )
    print(f"worker warm-up at start (synthetic 512x512): {warm_up_s:.2f} s")
    print(f"{'stage':<22} {'first':>8} {'warm':>8}")
    print("-" * 40)
    for name, value in warm.items():
        print(f"{name:<22} {first[name]:8.2f} {value:8.2f}")
    print(f"{'peak RSS (MB)':<22} {peak_mb:8.0f}   (target <= 3000)")
    print(f"allocator tuned (recreate.memory): {tuned}")
    print("total target: <= 5 s per detector")
    ratio = first["total"] / warm["total"]
    print(
        f"first request after the warm-up / warm: {ratio:.2f} "
        f"(target <= {FIRST_TASK_FACTOR})"
    )
    print(f"\n{'quality':<28} {'fitted':>10} {'psf-only':>10}  target")
    print("-" * 66)
    for name in fitted_scores:
        print(
            f"{name:<28} {fitted_scores[name]:10.4f} "
            f"{baseline_scores.get(name, math.nan):10.4f}  "
            f"{TARGETS.get(name, '')}"
        )
    print("\nsystematic floor (noiseless inputs, fitted kernel)")
    for name, value in floor.items():
        print(f"{name:<28} {value:10.4f}")
    print_false_detections(counts, FALSE_DETECTION_FACTOR)


if __name__ == "__main__":
    main()
