"""The synthetic pair a worker warms its pipeline up with."""

from __future__ import annotations

import hashlib

import numpy as np

from recreate.pipeline.warmup import warm_up


def _planes_hash(result) -> str:
    exposure = result.exposure
    digest = hashlib.sha256()
    for plane in (exposure.image, exposure.variance, exposure.mask):
        digest.update(plane.tobytes())
    return digest.hexdigest()


def test_the_warm_up_pair_subtracts_to_noise():
    result = warm_up()
    assert result.kernel.n_used >= 30
    assert abs(result.kernel.kernel_sum() - 1.0) < 0.01
    z = result.exposure.image / np.sqrt(result.exposure.variance)
    assert 0.9 < float(np.nanstd(z)) < 1.1
    assert _planes_hash(warm_up()) == _planes_hash(result)
