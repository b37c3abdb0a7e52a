"""End to end: recreate difference images from a real simulated repo."""

import math
import os
import subprocess
import sys
from dataclasses import fields

import lsst.images as li
import numpy as np
import pytest

from recreate import inputs
from recreate.butler import open_butler
from recreate.errors import NoOverlapError
from recreate.io import read_dp1
from recreate.io.difference import read_kernel
from recreate.pipeline.provenance import canonical_hash
from recreate.pipeline.template.patches import PatchCutout
from recreate.recreation import (
    load_kernel,
    recreate_from_butler,
    recreate_from_files,
    write_result,
)
from recreate.writers import template_provenance
from tests.support.service import key_with_coverage
from workers.cli import main


def _key(ci_repo, low, high, detector=None):
    try:
        return key_with_coverage(ci_repo, low, high, detector)
    except LookupError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def butler(ci_repo):
    return open_butler(str(ci_repo.root))


@pytest.fixture(scope="module")
def full(ci_repo, butler):
    visit, detector = _key(ci_repo, 1.0, 2.0, detector=4)
    return recreate_from_butler(butler, visit, detector)


def test_difference_keeps_the_science_metadata(full, butler):
    diff = full.exposure
    obs = diff.observation
    (ref,) = butler.query_datasets(
        "visit_image", visit=obs.visit, detector=obs.detector, explain=False
    )
    science = read_dp1(butler.getURI(ref).ospath)
    assert diff.shape == science.shape
    assert diff.wcs.to_header_string(
        relax=True
    ) == science.wcs.to_header_string(relax=True)
    assert diff.psf.fwhm == science.psf.fwhm
    assert diff.photo_calib == science.photo_calib
    assert obs == science.observation
    for plane in ("SAT_TEMPLATE", "DETECTED", "DETECTED_NEGATIVE", "NO_DATA"):
        assert plane in diff.mask_planes


def test_provenance_names_inputs_config_and_planes(full):
    cards = full.exposure.metadata
    assert cards["RECREATE PLANES SHA256"] == full.exposure.plane_hash()
    assert cards["RECREATE CONFIG HASH"] == full.provenance.config_hash
    assert cards["RECREATE INPUT 0 TYPE"] == "visit_image"
    assert cards["RECREATE INPUT 1 TYPE"] == "template_coadd"
    n_inputs = cards["RECREATE N INPUTS"]
    assert n_inputs == 1 + len(full.template.patch_bounds)
    assert cards["RECREATE TEMPLATE COVERAGE"] == pytest.approx(1.0)
    assert 21 <= cards["RECREATE KERNEL SIZE"] <= 35
    assert cards["RECREATE KERNEL SUM"] == pytest.approx(1.0, abs=0.05)
    assert cards["RECREATE KERNEL SHA256"] == canonical_hash(
        full.kernel.to_dict()
    )


def test_noise_is_as_the_variance_says(full):
    diff = full.exposure
    planes = diff.mask_planes
    bad = planes.value(
        "BAD",
        "SAT",
        "CR",
        "INTRP",
        "NO_DATA",
        "DETECTED",
        "DETECTED_NEGATIVE",
        "SAT_TEMPLATE",
        "EDGE",
    )
    ok = ((diff.mask & bad) == 0) & np.isfinite(diff.image)
    z = diff.image[ok] / np.sqrt(diff.variance[ok])
    q25, q75 = np.percentile(z, [25, 75])
    # Sources still add tails in a dense ci field: within 10%.
    assert (q75 - q25) / 1.349 == pytest.approx(1.0, abs=0.1)
    assert abs(np.median(z)) < 0.1


def test_injected_transients_stand_out(full, butler):
    obs = full.exposure.observation
    truth = butler.get("injection_truth", visit=obs.visit)
    rows = truth[
        (truth["detector"] == obs.detector)
        & (truth["kind"] != "variable")
        & (truth["flux"] > 3e3)
    ]
    diff = full.exposure
    detected = diff.mask_planes.value("DETECTED")
    height, width = diff.shape
    found = 0
    for row in rows:
        x, y = round(row["x"]), round(row["y"])
        if 3 <= x < width - 3 and 3 <= y < height - 3:
            found += bool(diff.mask[y, x] & detected)
    assert found >= 1


def test_stored_kernel_gives_the_same_planes(full, butler, tmp_path):
    path = tmp_path / "diff.fits"
    write_result(full, path)
    assert read_kernel(path) == full.kernel.to_dict()
    obs = full.exposure.observation
    again = recreate_from_butler(
        butler, obs.visit, obs.detector, kernel=load_kernel(path)
    )
    assert again.exposure.plane_hash() == full.exposure.plane_hash()
    assert again.provenance.kernel_from_storage
    # A stored kernel changes nothing in the output, headers included.
    assert again.exposure.metadata == full.exposure.metadata


def test_lsst_images_output_reads_back(full, tmp_path):
    path = tmp_path / "diff.fits"
    write_result(full, path, output_format="lsst-images")
    back = li.DifferenceImage.read(str(path))
    np.testing.assert_array_equal(back.image.array, full.exposure.image)
    assert len(back.templates) == len(full.template.patch_bounds)
    assert back.kernel is not None


def test_under_ten_percent_is_no_work(ci_repo, butler):
    visit, detector = _key(ci_repo, 0.0, 0.08)
    with pytest.raises(NoOverlapError, match="need >= 10%"):
        recreate_from_butler(butler, visit, detector)


def test_under_twenty_percent_failure_is_no_work(ci_repo, butler):
    # v29 expects the fit may fail below 20% coverage and then makes no
    # difference image (NoWorkFound): a clear 4xx-style error, not a bug.
    visit, detector = _key(ci_repo, 0.11, 0.19)
    with pytest.raises(NoOverlapError, match="kernel fit failed"):
        recreate_from_butler(butler, visit, detector)


def test_a_failed_kernel_fit_on_a_covered_detector_is_the_datas(
    full, ci_repo, butler
):
    from dataclasses import replace

    from recreate.errors import KernelFitError, ProcessingError
    from recreate.pipeline.config import DEFAULT_CONFIG

    # More stars than the detector holds: the fit cannot be made, the
    # same way every time (a 422 the service remembers, not a 500).
    demanding = replace(
        DEFAULT_CONFIG,
        sources=replace(DEFAULT_CONFIG.sources, min_sources=10_000),
    )
    visit, detector = _key(ci_repo, 1.0, 2.0)
    with pytest.raises(KernelFitError, match="kernel candidates") as caught:
        recreate_from_butler(butler, visit, detector, config=demanding)
    assert isinstance(caught.value, ProcessingError)
    assert (caught.value.status, caught.value.code) == (
        422,
        "kernel_fit_failed",
    )


def test_template_warning_below_twenty_percent():
    from recreate.exposure import Exposure
    from recreate.pipeline.config import TemplateConfig
    from recreate.pipeline.template.build import _check_coverage

    science = Exposure(
        np.zeros((4, 4)), np.ones((4, 4)), np.zeros((4, 4), np.int32)
    )
    (warning,) = _check_coverage(0.15, science, TemplateConfig())
    assert "15" in warning and "20%" in warning


HASH_SCRIPT = """
import sys
from recreate.butler import open_butler
from recreate.recreation import recreate_from_butler
result = recreate_from_butler(
    open_butler(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
)
print(result.exposure.plane_hash())
"""


@pytest.mark.parametrize("threads", ["1", "2"])
def test_bit_identical_in_other_processes_and_thread_counts(
    full, ci_repo, threads
):
    obs = full.exposure.observation
    env = {**os.environ, "RECREATE_THREADS": threads}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            HASH_SCRIPT,
            str(ci_repo.root),
            str(obs.visit),
            str(obs.detector),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.stdout.strip() == full.exposure.plane_hash()


def test_subtract_two_plain_files(full, butler, tmp_path):
    """Any survey: plain images with a WCS, no variance, no mask."""
    from astropy.io import fits

    obs = full.exposure.observation
    (ref,) = butler.query_datasets(
        "visit_image", visit=obs.visit, detector=obs.detector, explain=False
    )
    science = read_dp1(butler.getURI(ref).ospath)
    plain = tmp_path / "science.fits"
    fits.PrimaryHDU(science.image, science.wcs.to_header(relax=True)).writeto(
        plain
    )
    templates = [
        butler.getURI(r).ospath
        for r in butler.query_datasets("template_coadd", band="r")
    ]
    result = recreate_from_files(plain, templates[:4] + templates[4:])
    notes = " ".join(result.provenance.notes)
    assert "science variance estimated" in notes
    assert "science PSF FWHM measured" in notes
    assert result.provenance.inputs[0].dataset_type == "file"
    assert result.exposure.shape == science.shape
    # Rubin-layout templates are read by region: the same planes.
    whole = recreate_from_files(plain, templates, whole_patches=True)
    _assert_same_result(result, whole)


def test_cli_get_writes_and_reports(full, ci_repo, tmp_path, capsys):
    obs = full.exposure.observation
    out = tmp_path / "cli.fits"
    code = main(
        [
            "get",
            str(obs.visit),
            str(obs.detector),
            "--repo",
            str(ci_repo.root),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert "template coverage 100.0%" in capsys.readouterr().out
    assert read_dp1(out).plane_hash() == full.exposure.plane_hash()
    # An existing output is not overwritten without --overwrite.
    code = main(
        [
            "get",
            str(obs.visit),
            str(obs.detector),
            "--repo",
            str(ci_repo.root),
            "-o",
            str(out),
        ]
    )
    assert code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_subtract_names_a_missing_file(tmp_path, capsys):
    code = main(
        [
            "subtract",
            str(tmp_path / "nope.fits"),
            str(tmp_path / "t.fits"),
            "-o",
            str(tmp_path / "o.fits"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.fits" in err
    assert "Traceback" not in err


def _assert_same_result(got, want):
    """Check two recreations agree: planes, headers, kernel, provenance."""
    assert got.exposure.plane_hash() == want.exposure.plane_hash()
    assert got.exposure.metadata == want.exposure.metadata
    assert got.kernel.to_dict() == want.kernel.to_dict()
    assert got.template.exposure.plane_hash() == (
        want.template.exposure.plane_hash()
    )
    assert got.template.coverage == want.template.coverage
    assert got.template.psf_fwhm == want.template.psf_fwhm
    for mine, theirs in zip(
        template_provenance(got), template_provenance(want), strict=True
    ):
        assert mine.bounds_xy.tobytes() == theirs.bounds_xy.tobytes()
        assert _other_fields(mine) == _other_fields(theirs)


def _other_fields(record):
    """Return a dataclass's fields but its (array) ``bounds_xy``."""
    return {
        f.name: getattr(record, f.name)
        for f in fields(record)
        if f.name != "bounds_xy"
    }


@pytest.mark.parametrize(("low", "high"), [(1.0, 2.0), (0.3, 0.9)])
def test_region_reads_give_the_planes_of_whole_patches(
    ci_repo, butler, monkeypatch, low, high
):
    # Full coverage and about half (a detector at the survey's edge).
    visit, detector = _key(ci_repo, low, high)
    pixels: list[tuple[int, int]] = []  # (read, in the whole patch)
    read_patch = inputs._read_patch

    def spy(*args, **kwargs):
        patch = read_patch(*args, **kwargs)
        assert isinstance(patch, PatchCutout)
        pixels.append((patch.image.size, math.prod(patch.frame.shape)))
        return patch

    monkeypatch.setattr(inputs, "_read_patch", spy)
    regions = recreate_from_butler(butler, visit, detector)
    monkeypatch.undo()
    whole = recreate_from_butler(butler, visit, detector, whole_patches=True)
    _assert_same_result(regions, whole)
    # ... and pixels were left unread, so the comparison means something.
    assert sum(read for read, _ in pixels) < sum(all_ for _, all_ in pixels)


def test_previews_write_as_png_files(full, tmp_path):
    from recreate.preview import preview_layout
    from tests.support.png import read_png

    height, width = full.exposure.shape
    single = tmp_path / "diff.png"
    write_result(full, single, output_format="png")
    assert read_png(single.read_bytes()).shape == (height, width, 3)
    triplet = tmp_path / "triplet.png"
    write_result(full, triplet, output_format="png-triplet-asinh")
    rgb = read_png(triplet.read_bytes())
    layout = preview_layout((height, width), panels=3)
    assert rgb.shape == (layout.size[1], layout.size[0], 3)
    step = layout.panel_width + layout.gap
    science, template, difference = (
        rgb[:, i * step : i * step + layout.panel_width] for i in range(3)
    )
    # Science and template show the same stars; the difference does not.
    assert (
        np.corrcoef(science[..., 0].ravel(), template[..., 0].ravel())[0, 1]
        > 0.5
    )
    assert not np.array_equal(science, difference)
    with pytest.raises(FileExistsError):
        write_result(full, triplet, output_format="png-triplet")
