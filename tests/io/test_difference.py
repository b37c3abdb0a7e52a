import time

import numpy as np
import pytest
from astropy.io import fits

from recreate.errors import FormatError
from recreate.exposure import Exposure
from recreate.io import read_dp1, write_dp1
from recreate.io.difference import (
    difference_bytes,
    read_kernel,
    write_difference,
)

KERNEL = {
    "basis": {"size": 21, "sigmas": [0.7, 1.4, 2.8], "degrees": [4, 2, 2]},
    "coefficients": [[1.0, 0.0, 0.0], [0.125, -3e-5, 1e-17]],
    "background": [0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
}


def _exposure():
    rng = np.random.default_rng(1)
    return Exposure(
        rng.normal(size=(20, 30)).astype(np.float32),
        np.ones((20, 30), np.float32),
        np.zeros((20, 30), np.int32),
        metadata={"RECREATE PLANES SHA256": "0" * 64},
    )


def test_kernel_round_trips_exactly(tmp_path):
    path = tmp_path / "diff.fits"
    write_difference(_exposure(), KERNEL, path)
    assert read_kernel(path) == KERNEL
    # The planes read back as a normal DP1-layout exposure.
    back = read_dp1(path)
    assert back.plane_hash() == _exposure().plane_hash()


def test_bytes_equal_the_file(tmp_path):
    path = tmp_path / "diff.fits"
    write_difference(_exposure(), KERNEL, path)
    data = difference_bytes(_exposure(), KERNEL)
    assert data == path.read_bytes()
    assert data == difference_bytes(_exposure(), KERNEL)


def test_a_file_without_kernel_says_so(tmp_path):
    path = tmp_path / "plain.fits"
    write_dp1(_exposure(), path)
    with pytest.raises(FormatError, match="no DIFFIM_KERNEL"):
        read_kernel(path)


def test_a_broken_kernel_extension_says_so(tmp_path):
    path = tmp_path / "diff.fits"
    write_difference(_exposure(), KERNEL, path)
    with fits.open(path, mode="update") as hdulist:
        hdulist["DIFFIM_KERNEL"].data["JSON"][0] = "{not json"
    with pytest.raises(FormatError, match="does not hold a kernel"):
        read_kernel(path)


def test_compressed_bytes_do_not_depend_on_the_clock(monkeypatch):
    first = difference_bytes(_exposure(), KERNEL)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 86400.0)
    assert difference_bytes(_exposure(), KERNEL) == first
