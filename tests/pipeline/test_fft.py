import numpy as np
import pytest

from recreate.pipeline.fft import irfft2, rfft2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_numpy(dtype):
    data = np.random.default_rng(1).normal(size=(300, 530)).astype(dtype)
    spectrum = rfft2(data)
    np.testing.assert_allclose(
        spectrum, np.fft.rfft2(data), rtol=1e-4, atol=1e-3
    )
    back = irfft2(spectrum, data.shape)
    np.testing.assert_allclose(back, data, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_for_any_thread_count(dtype):
    data = np.random.default_rng(2).normal(size=(1030, 770)).astype(dtype)
    one = rfft2(data, workers=1)
    for workers in (2, 3):
        assert rfft2(data, workers=workers).tobytes() == one.tobytes()
        assert (
            irfft2(one, data.shape, workers=workers).tobytes()
            == irfft2(one, data.shape, workers=1).tobytes()
        )
