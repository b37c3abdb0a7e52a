"""Benchmarks: ``make bench`` prints a table of times and peak memory.

Each case runs in a fresh subprocess so that its peak resident memory is
its own. Cases:

* ``visit``: simulate one full-size (``comcam``) visit-detector, 4072x4000
  px, and write it in the DP1 layout (lossless tile compression);
* ``patch``: simulate one full-size template patch, 3400x3400 px;
* ``repo-ci``: build the whole ``ci`` repository through the Butler.

Targets live here, never in unit tests.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _case_visit(workdir: Path) -> dict[str, Any]:
    from recreate.io import write_dp1
    from recreate.simulate.catalog import draw_static_sky, draw_transients
    from recreate.simulate.presets import get_preset
    from recreate.simulate.scene import render_visit_detector
    from recreate.simulate.survey import plan_survey

    plan = plan_survey(get_preset("comcam"), 1)
    sky, transients = draw_static_sky(plan), draw_transients(plan)
    visit = plan.visits[0]
    start = time.perf_counter()
    rendered = render_visit_detector(plan, sky, transients, visit, 4)
    render_s = time.perf_counter() - start
    start = time.perf_counter()
    path = workdir / "visit.fits"
    write_dp1(rendered.exposure, path, compress=True)
    write_s = time.perf_counter() - start
    return {
        "pixels": rendered.exposure.image.size,
        "render_s": render_s,
        "write_s": write_s,
        "file_mb": path.stat().st_size / 1e6,
    }


def _case_patch(workdir: Path) -> dict[str, Any]:
    from recreate.io import write_dp1
    from recreate.simulate.catalog import draw_static_sky
    from recreate.simulate.presets import get_preset
    from recreate.simulate.scene import (
        render_template_patch,
        template_footprints,
    )
    from recreate.simulate.survey import plan_survey

    plan = plan_survey(get_preset("comcam"), 1)
    sky = draw_static_sky(plan)
    footprints = template_footprints(plan, "r")
    # The patch at the field centre: covered, like most patches.
    tract = next(
        t for t in plan.skymap if t.contains(plan.field_ra, plan.field_dec)
    )
    patch = tract.patches_overlapping([plan.field_ra], [plan.field_dec])[0]
    start = time.perf_counter()
    exposure = render_template_patch(plan, sky, "r", tract, patch, footprints)
    render_s = time.perf_counter() - start
    if exposure is None:
        msg = "the benchmark patch has no coverage"
        raise RuntimeError(msg)
    start = time.perf_counter()
    path = workdir / "patch.fits"
    write_dp1(exposure, path, compress=True)
    write_s = time.perf_counter() - start
    return {
        "pixels": exposure.image.size,
        "render_s": render_s,
        "write_s": write_s,
        "file_mb": path.stat().st_size / 1e6,
    }


def _case_repo_ci(workdir: Path) -> dict[str, Any]:
    from recreate.simulate.repository import simulate_repository

    start = time.perf_counter()
    result = simulate_repository(workdir / "repo", "ci", 1, jobs=2)
    total = time.perf_counter() - start
    return {
        "pixels": result.visit_images * 400 * 392,
        "render_s": total,
        "write_s": float("nan"),
        "file_mb": sum(
            p.stat().st_size for p in (workdir / "repo").rglob("*.fits")
        )
        / 1e6,
    }


CASES = {
    "visit": ("comcam visit-detector 4072x4000", _case_visit),
    "patch": ("comcam template patch 3400x3400", _case_patch),
    "repo-ci": ("ci repository, whole (72 visit images)", _case_repo_ci),
}


def _run_case(name: str) -> None:
    """Run one case here and print its figures as JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        figures = CASES[name][1](Path(tmp))
    # ru_maxrss is in KiB on Linux; children (render pools) counted too.
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    figures["peak_mb"] = max(own, kids) / 1024
    print(json.dumps(figures))


def main() -> int:
    """Run every case in its own process and print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--case", choices=sorted(CASES))
    parser.add_argument(
        "--only", nargs="*", choices=sorted(CASES), default=list(CASES)
    )
    args = parser.parse_args()
    if args.case:
        _run_case(args.case)
        return 0
    header = (
        f"{'case':<36} {'pixels':>11} {'time s':>8} {'write s':>8} "
        f"{'file MB':>8} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for name in args.only:
        done = subprocess.run(
            [sys.executable, __file__, "--case", name],
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            print(f"{name}: failed\n{done.stderr}", file=sys.stderr)
            return 1
        out = done.stdout
        fig = json.loads(out.strip().splitlines()[-1])
        print(
            f"{CASES[name][0]:<36} {fig['pixels']:>11} "
            f"{fig['render_s']:>8.2f} {fig['write_s']:>8.2f} "
            f"{fig['file_mb']:>8.1f} {fig['peak_mb']:>8.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
