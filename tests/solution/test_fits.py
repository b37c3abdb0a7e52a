"""The solution file: deterministic, small, checked, readable by anyone."""

from __future__ import annotations

import io
import math
from dataclasses import replace

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError, SolutionMismatchError
from recreate.inputs import butler_refs
from recreate.pipeline.recipes import get_recipe
from recreate.solution import (
    read_solution,
    solution_bytes,
    solution_from_bytes,
    write_solution,
)


@pytest.mark.parametrize("case", ["dp1-edge", "dp2-release-edge"])
def test_the_same_solution_gives_the_same_bytes(products, case):
    product = products[case]
    again = solution_bytes(product.solution)
    assert again == product.data
    assert len(product.data) <= 64 * 1024
    back = solution_from_bytes(again)
    assert back.content_hash() == product.solution.content_hash()


@pytest.mark.parametrize("case", ["dp1-full", "dp2-release-edge"])
def test_bytes_read_with_numpy_are_the_file_read_with_astropy(
    products, case, tmp_path
):
    # Bytes are read with numpy (recreate.io.raw_tables), a file with
    # astropy's tables: the same solution.
    product = products[case]
    path = tmp_path / "solution.fits"
    path.write_bytes(product.data)
    from_bytes = solution_from_bytes(product.data)
    from_file = read_solution(path)
    assert from_bytes.inputs == from_file.inputs
    assert from_bytes.notes == from_file.notes
    assert (
        from_bytes.kernel.coefficients.tobytes()
        == from_file.kernel.coefficients.tobytes()
    )
    assert solution_bytes(from_bytes) == solution_bytes(from_file)
    assert solution_bytes(from_bytes) == product.data


def test_write_and_read_a_file(products, tmp_path):
    product = products["dp1-full"]
    path = tmp_path / "solution.fits"
    write_solution(product.solution, path)
    assert path.read_bytes() == product.data
    assert (
        read_solution(path).content_hash() == product.solution.content_hash()
    )
    with pytest.raises(FileExistsError):
        write_solution(product.solution, path)


def test_plain_astropy_reads_what_a_render_needs(products):
    solution = products["dp2-release-edge"].solution
    with fits.open(io.BytesIO(products["dp2-release-edge"].data)) as hdus:
        primary = hdus[0].header
        assert primary["RECIPE"] == "dp2"
        assert primary["SOLSUM"] == solution.content_hash()
        assert (primary["DETNY"], primary["DETNX"]) == solution.frame.shape
        table = hdus["PARAMS"].data
        params = dict(zip(table["NAME"], table["VALUE"], strict=True))
        assert params["science_variance_factor"] == (
            solution.science_variance_factor
        )
        kernel = hdus["KERNEL"]
        assert len(kernel.data) == 27
        assert kernel.header["KSIZE"] == solution.kernel.basis.size
        np.testing.assert_array_equal(
            kernel.data["COEFF"], solution.kernel.coefficients
        )
        decorrelation = hdus["DECORRELATION"].data
        assert decorrelation.sum() == pytest.approx(1.0, abs=1e-5)
        bins = hdus["BACKGROUND"].data
        height, width = solution.frame.shape
        assert bins.shape == (math.ceil(height / 40), math.ceil(width / 40))
        inputs = hdus["INPUTS"].data
        assert list(inputs["ROLE"][:2]) == ["science", "template"]


def test_dp1_has_no_dp2_parts(products):
    with fits.open(io.BytesIO(products["dp1-edge"].data)) as hdus:
        assert "BACKGROUND" not in hdus
        names = list(hdus["PARAMS"].data["NAME"])
        values = hdus["PARAMS"].data["VALUE"]
        assert math.isnan(values[names.index("high_variance_threshold")])


@pytest.mark.parametrize("extension", ["PARAMS", "DECORRELATION", "KERNEL"])
def test_a_changed_byte_is_a_checksum_mismatch(products, extension):
    # Anywhere in an HDU: the FITS checksums catch it before any parsing.
    data = bytearray(products["dp1-edge"].data)
    with fits.open(io.BytesIO(bytes(data))) as hdus:
        start = hdus[extension].fileinfo()["datLoc"]
    data[start + 9] ^= 0x10
    with pytest.raises(FormatError, match="checksum mismatch"):
        solution_from_bytes(bytes(data), "corrupt.fits")


def test_an_unknown_layout_or_no_fits_is_named(products):
    with fits.open(io.BytesIO(products["dp1-edge"].data)) as hdus:
        hdus[0].header["SOLUTION"] = 99
        del hdus[0].header["CHECKSUM"]  # a well-formed file of version 99
        buffer = io.BytesIO()
        hdus.writeto(buffer)
    with pytest.raises(FormatError, match="layout version 99"):
        solution_from_bytes(buffer.getvalue())
    with pytest.raises(FormatError, match="not a FITS file"):
        solution_from_bytes(b"definitely not FITS" * 200)
    with fits.open(io.BytesIO(products["dp1-edge"].data)) as hdus:
        del hdus["KERNEL"]
        buffer = io.BytesIO()
        hdus.writeto(buffer)
    with pytest.raises(FormatError, match="not a recreate solution"):
        solution_from_bytes(buffer.getvalue())


def test_a_foreign_solution_is_refused_naming_what_differs(products):
    product = products["dp1-edge"]
    solution = product.solution
    refs = butler_refs(product.found)
    solution.check_inputs(get_recipe("dp1"), refs)
    with pytest.raises(SolutionMismatchError, match="recipe 'dp1', not 'dp2'"):
        solution.check_inputs(get_recipe("dp2"), refs)
    other = products["dp1-full"].found
    with pytest.raises(SolutionMismatchError, match=r"input 0 .* dataset id"):
        solution.check_inputs(get_recipe("dp1"), butler_refs(other))
    older = replace(solution, code_version="0.0.1")
    with pytest.raises(SolutionMismatchError, match=r"recreate 0\.0\.1"):
        older.check_inputs(get_recipe("dp1"), refs)
    changed = replace(solution, config_hash="0" * 64)
    with pytest.raises(SolutionMismatchError, match="configuration hash"):
        changed.config()


def test_changed_background_bins_are_a_content_mismatch(products):
    # The compressed HDU has no FITS checksum: SOLSUM covers its values.
    product = products["dp2-release-edge"]
    grid = product.solution.background
    values = grid.values.copy()
    values[3, 4] += 1.0
    changed = replace(
        product.solution, background=replace(grid, values=values)
    )
    data = bytearray(solution_bytes(changed))
    stored = product.solution.content_hash().encode()
    at = data.index(changed.content_hash().encode())
    data[at : at + len(stored)] = stored
    with fits.open(io.BytesIO(bytes(data))) as hdus:
        del hdus[0].header["CHECKSUM"]
        buffer = io.BytesIO()
        hdus.writeto(buffer)
    with pytest.raises(FormatError, match="checksum mismatch: SOLSUM"):
        solution_from_bytes(buffer.getvalue())
