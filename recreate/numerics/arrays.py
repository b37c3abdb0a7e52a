"""Array layouts the compiled (numba) kernels need.

Shared by the modules whose numba kernels take image planes: the
kernels are compiled for C-ordered, native-endian arrays, so planes read
from FITS (big-endian) or sliced views are converted first.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def native_float_plane(
    plane: npt.NDArray[np.floating],
) -> npt.NDArray[np.floating]:
    """Return ``plane`` as C-ordered, native-endian float32 or float64.

    Other types (integers, float16) become float64, as numpy's float64
    arithmetic would take them; the compiled kernels need native data.
    """
    array = np.asarray(plane)
    if array.dtype.kind == "f" and array.dtype.itemsize in {4, 8}:
        dtype = array.dtype.newbyteorder("=")
    else:
        dtype = np.dtype(np.float64)
    return np.ascontiguousarray(array, dtype=dtype)


def native_mask(mask: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """Return an integer mask as C-ordered and native-endian."""
    array = np.asarray(mask)
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
