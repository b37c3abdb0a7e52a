import numpy as np
import pytest

from recreate.numerics.fft import centred_rfft2, irfft2, rfft2


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


@pytest.mark.parametrize(
    ("kernel_shape", "grid"), [((35, 35), (300, 530)), ((3, 5), (8, 9))]
)
def test_centred_kernel_transform_is_the_full_grid_transform(
    kernel_shape, grid
):
    kernel = np.random.default_rng(3).random(kernel_shape)
    padded = np.zeros(grid)
    padded[: kernel_shape[0], : kernel_shape[1]] = kernel
    padded = np.roll(
        padded, (-(kernel_shape[0] // 2), -(kernel_shape[1] // 2)), (0, 1)
    )
    spectrum = centred_rfft2(kernel, grid, workers=2)
    np.testing.assert_allclose(
        spectrum, np.fft.rfft2(padded), rtol=1e-12, atol=1e-12
    )
    assert spectrum.tobytes() == centred_rfft2(kernel, grid).tobytes()


@pytest.mark.parametrize("shape", [(4, 5), (5, 5, 1), (41, 5)])
def test_centred_kernel_transform_rejects_bad_kernels(shape):
    with pytest.raises(ValueError, match="odd sides"):
        centred_rfft2(np.ones(shape), (40, 40))


def test_padded_transform_and_cropped_inverse():
    data = np.random.default_rng(4).normal(size=(70, 90)).astype(np.float32)
    grid = (96, 100)
    spectrum = rfft2(data, workers=2, shape=grid)
    np.testing.assert_allclose(
        spectrum, np.fft.rfft2(data, s=grid), rtol=1e-4, atol=1e-3
    )
    assert spectrum.tobytes() == rfft2(data, shape=grid).tobytes()
    back = irfft2(spectrum, grid, workers=2, keep=data.shape)
    assert back.shape == data.shape
    np.testing.assert_allclose(back, data, atol=1e-4)
    with pytest.raises(ValueError, match="smaller"):
        rfft2(data, shape=(60, 100))
