"""Any-survey benchmark: ``recreate subtract`` on files of other surveys.

A seeded 2048x2048 science image and its deeper template are written as
plain FITS files with true VARIANCE planes, no DETECTED plane, and a PSF
image extension (`recreate.simulate.pair`). Printed:

* variance: ScaleVariance's factors (true variance planes: 1 is right)
  and z, the robust std of difference / sqrt(variance) in blank sky (the
  noiseless model under 2% of the sky noise), without and with the
  DETECTED pass before ScaleVariance; target z 1.00 +/- 0.03;
* z on every real pair in ``../shared/realdata`` (unflagged, undetected
  pixels of the difference);
* command-line cost (`cli_cost`): ``recreate subtract`` in a fresh
  process, its imports alone, and with ``--format dp1-compressed``,
  medians of interleaved runs; target <= 3 s wall;
* cold start: the first ``recreate subtract`` of a fresh install (empty
  numba cache) against one after set-up (``make init`` compiles it); a
  worker's first request after its warm-up is ``bench/diffim.py``'s.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from cli_cost import cold_start, command_costs, print_costs
from scipy import ndimage

from recreate.anysurvey.options import AnySurveyOptions
from recreate.anysurvey.prepare import prepare_input
from recreate.anysurvey.read import read_file_inputs
from recreate.anysurvey.subtract import subtract_files
from recreate.decorrelated_psf import decorrelated_psf_grid, gaussian_psf_grid
from recreate.exposure import Exposure
from recreate.pipeline.config import DEFAULT_CONFIG
from recreate.pipeline.match import scale_variance
from recreate.pipeline.subtract import DifferenceResult
from recreate.pipeline.template import build_template
from recreate.simulate.pair import simulate_pair, write_pair

SIDE = 2048
REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"
REAL_PAIRS = {
    "decam_sfft (DECam, TPV WCS, no variance)": (
        "decam_sfft/DEC-OBS04a.mini.fits",
        "decam_sfft/DEC-OBS18a.mini.fits",
        [],
    ),
    "lsst_ip_diffim (aligned, model template)": (
        "lsst_ip_diffim/scienceMI.fits",
        "lsst_ip_diffim/templateMI.fits",
        ["--aligned"],
    ),
}
FLAGGED = ("BAD", "SAT", "CR", "INTRP", "NO_DATA", "EDGE", "SAT_TEMPLATE")
DETECTED = ("DETECTED", "DETECTED_NEGATIVE")
CLI_TARGET_S = 3.0
#: Template depths (visits) and image side of the PSF-bias pairs.
DEPTHS = (1, 3, 12)
DEPTH_SIDE = 1024


def variance_figures(
    science: Path, template: Path, model: np.ndarray
) -> list[tuple[str, float, float, float]]:
    """Return (detect, science factor, template factor, z) per setting."""
    inputs = read_file_inputs(science, [template])
    rows = []
    for detect in ("off", "auto"):
        options = AnySurveyOptions(detect=detect)
        patch, _ = prepare_input(
            inputs.templates[0], "template 0", options, template=True
        )
        visit, _ = prepare_input(inputs.science, "science", options)
        warped = build_template(visit, [patch], DEFAULT_CONFIG.template)
        factors = [
            scale_variance(
                e.image,
                e.variance,
                e.mask,
                e.mask_planes,
                DEFAULT_CONFIG.subtract,
            )[1]
            for e in (visit, warped.exposure)
        ]
        result = subtract_files(science, [template], options=options)
        rows.append((detect, *factors, blank_sky_z(result.exposure, model)))
    return rows


def attached_psf_bias(result: DifferenceResult) -> float:
    """Return the flux a fit of the attached PSF reads, over the truth.

    On a decorrelated difference a point source has the decorrelated PSF
    P_D; fitting the attached science PSF P (unit sums, flat noise)
    reads sum(P P_D) / sum(P P) of its flux. At the image centre.
    """
    filtered = decorrelated_psf_grid(result)
    psf = result.exposure.psf
    if filtered is None or psf is None:
        return float("nan")
    grid = psf.grid or gaussian_psf_grid(psf.fwhm, result.exposure.shape)
    j, i = len(grid.ys) // 2, len(grid.xs) // 2
    science = grid.images[j, i].astype(np.float64)
    actual = filtered.images[j, i].astype(np.float64)
    return float((science * actual).sum() / (science * science).sum())


def bias_by_depth(work: Path) -> list[tuple[int, float]]:
    """Return the attached-PSF flux bias for templates of several depths."""
    rows = []
    for depth in DEPTHS:
        pair = simulate_pair(DEPTH_SIDE, seed=4, template_depth=depth)
        folder = work / f"depth{depth}"
        folder.mkdir()
        science, template = write_pair(pair, folder)
        rows.append(
            (depth, attached_psf_bias(subtract_files(science, [template])))
        )
    return rows


def blank_sky_z(diff: Exposure, model: np.ndarray) -> float:
    """Robust std of difference / sqrt(variance) where the sky is blank."""
    flagged = (diff.mask & diff.mask_planes.value_of_present(FLAGGED)) != 0
    sky = float(np.sqrt(np.median(diff.variance)))
    blank = (model < 0.02 * sky) & ~flagged & np.isfinite(diff.image)
    blank &= ~ndimage.binary_dilation(~blank, iterations=3)
    return robust_std(diff.image[blank] / np.sqrt(diff.variance[blank]))


def robust_std(values: np.ndarray) -> float:
    """Interquartile range / 1.349."""
    q1, q3 = np.percentile(values, [25, 75])
    return float((q3 - q1) / 1.349)


def real_pair_z(out: Path) -> dict[str, tuple[float, float]]:
    """Return z and the attached-PSF flux bias of each real pair."""
    from recreate.io import read_dp1

    figures = {}
    for name, (science, template, extra) in REAL_PAIRS.items():
        path = out / "real.fits"
        done = _cli(
            [
                REALDATA / science,
                REALDATA / template,
                "-o",
                path,
                "--decorrelated-psf",
                *extra,
            ]
        )
        if done.returncode != 0:
            figures[name] = (float("nan"), float("nan"))
            continue
        diff = read_dp1(path)
        bias = _bias_of_file(path)
        planes = diff.mask_planes
        bad = planes.value_of_present(FLAGGED + DETECTED)
        good = ((diff.mask & bad) == 0) & np.isfinite(diff.image)
        good &= diff.variance > 0
        figures[name] = (
            robust_std(diff.image[good] / np.sqrt(diff.variance[good])),
            bias,
        )
    return figures


def _bias_of_file(path: Path) -> float:
    """Return the attached-PSF flux bias of a written difference."""
    from astropy.io import fits

    with fits.open(path) as hdulist:
        if "DECORRELATED_PSF" not in hdulist:
            return float("nan")
        actual = np.asarray(hdulist["DECORRELATED_PSF"].data, np.float64)
        if "PSF_GRID" in hdulist:
            science = np.asarray(hdulist["PSF_GRID"].data, np.float64)
        else:
            from recreate.io import read_dp1

            psf = read_dp1(path).psf
            if psf is None:
                return float("nan")
            science = gaussian_psf_grid(psf.fwhm, (1, 1)).images.astype(float)
    j, i = actual.shape[0] // 2, actual.shape[1] // 2
    a, b = science[j, i], actual[j, i]
    return float((a * b).sum() / (a * a).sum())


def _cli(
    args: list[object], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``recreate subtract ARGS --overwrite`` in a fresh process."""
    command = [sys.executable, "-m", "workers.cli", "subtract"]
    command += [str(a) for a in args] + ["--overwrite"]
    return subprocess.run(
        command, capture_output=True, text=True, check=False, env=env
    )


def main() -> None:
    """Build the pair, measure, and print the tables."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print(f"rendering a {SIDE}x{SIDE} pair ...")
        pair = simulate_pair(SIDE)
        science, template = write_pair(pair, work)
        model = pair.science.model
        out = work / "diff.fits"
        rows = variance_figures(science, template, model)
        real = real_pair_z(work) if REALDATA.is_dir() else {}
        depths = bias_by_depth(work)
        costs = command_costs(science, template, out)
        cold = cold_start(science, template, out)
    print(f"\nvariance, {SIDE}x{SIDE} pair with true variance planes")
    print(
        f"{'DETECTED pass':<16} {'factor sci':>10} {'factor tmpl':>11} "
        f"{'z blank sky':>11}  target z 1.00 +/- 0.03"
    )
    for detect, f_sci, f_tmpl, z in rows:
        print(f"{detect:<16} {f_sci:10.4f} {f_tmpl:11.4f} {z:11.4f}")
    if real:
        print("\nreal pairs (../shared/realdata): z of the difference, and")
        print("the flux a fit of the attached (science) PSF reads")
        for name, (z, bias) in real.items():
            print(f"  {name:<44} z {z:.4f}  flux x {bias:.3f}")
    print("\nflux a fit of the attached PSF reads on the decorrelated")
    print(f"difference, {DEPTH_SIDE}x{DEPTH_SIDE} pairs, by template depth")
    for depth, bias in depths:
        print(f"  template of {depth:>2} visit(s): flux x {bias:.4f}")
    print_costs(costs, CLI_TARGET_S)
    print("\ncold start")
    print(
        f"  first subtract, empty numba cache (fresh install): {cold[0]:.2f} s"
    )
    print(
        f"  first subtract after set-up (cache compiled):       "
        f"{cold[1]:.2f} s"
    )
    print(
        "  (a worker's first request after its warm-up against a warm one:"
        " bench/diffim.py)"
    )


if __name__ == "__main__":
    main()
