import numpy as np
import pytest

from recreate.numerics.fft import centred_rfft2


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
