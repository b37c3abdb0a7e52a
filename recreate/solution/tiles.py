"""One tile of a render: convolve, subtract, decorrelate.

A tile (`recreate.solution.layout`) of the decorrelated difference is
computed from fixed inputs by fixed operations, whatever else is being
rendered:

1. the warped template over the tile grown by both kernels' half-widths
   (non-finite pixels as 0, nothing beyond the grown grid), one forward
   FFT of a fixed size, times each spatial kernel's spectrum, back
   along y, weighted by the Chebyshev row terms, back along x per
   column term (`recreate.pipeline.match.tiled_correlation`): the
   matched template over the tile grown by the decorrelation
   half-width, rounded to float32 as afw's image is;
2. science minus (DP1) the fitted background minus the matched
   template, in float64, rounded to float32, NaN where the template has
   no data; 0 beyond the detector;
3. the decorrelation kernel applied by one FFT of a fixed size, non-
   finite pixels held at 0 and put back after.

The sizes of both FFTs come from the tile side and the kernels alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.fft

from recreate.numerics.box import PixelBox
from recreate.pipeline.kernel.solved import SolvedKernel
from recreate.pipeline.kernel.spatial import (
    _subtract_rows,
    chebyshev_series,
    monomial_powers,
    normalise_positions,
)
from recreate.pipeline.match.tiled_correlation import (
    SeparableWeights,
    _weighted_inverse,
)
from recreate.solution.layout import grow

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Window:
    """A window of a plane: its pixels and where its first one lies.

    Attributes
    ----------
    array
        The pixels.
    box
        Where they lie (``x0, y0``; ``width, height`` the array's).
    """

    array: npt.NDArray[Any]
    box: PixelBox

    @classmethod
    def at(cls, array: npt.NDArray[Any], x0: int, y0: int) -> Window:
        """Return the window of ``array`` whose first pixel is ``(x0, y0)``."""
        height, width = array.shape
        return cls(array, PixelBox(x0, y0, width, height))

    def cut(self, box: PixelBox) -> npt.NDArray[Any]:
        """Return a view of ``box``, which must lie inside the window."""
        inside = box.intersection(self.box)
        if inside != box:
            raise ValueError(
                f"box {tuple(box)} leaves the window {tuple(self.box)}"
            )
        rows = slice(box.y0 - self.box.y0, box.y0 - self.box.y0 + box.height)
        cols = slice(box.x0 - self.box.x0, box.x0 - self.box.x0 + box.width)
        return self.array[rows, cols]

    def padded(self, box: PixelBox, fill: float = 0.0) -> FloatArray:
        """Return ``box`` as float64, ``fill`` where the window has none."""
        out = np.full((box.height, box.width), fill, dtype=np.float64)
        inside = box.intersection(self.box)
        if not inside.empty:
            rows = slice(
                inside.y0 - box.y0, inside.y0 - box.y0 + inside.height
            )
            cols = slice(inside.x0 - box.x0, inside.x0 - box.x0 + inside.width)
            out[rows, cols] = self.cut(inside)
        return out


@dataclass(frozen=True, eq=False)
class TileEngine:
    """What every tile of one solution shares: kernels, spectra, weights.

    Build it with `TileEngine.build`; `TileEngine.tile` computes a tile.
    """

    shape: tuple[int, int]
    tile_size: int
    kernel: SolvedKernel
    subtract_background: bool
    decorrelation: FloatArray
    conv_size: int
    conv_spectra: npt.NDArray[np.complex128]
    decorrelation_size: int
    decorrelation_spectrum: npt.NDArray[np.complex128]
    weights: SeparableWeights
    groups: list[list[int]]

    @classmethod
    def build(
        cls,
        shape: tuple[int, int],
        tile_size: int,
        kernel: SolvedKernel,
        decorrelation: FloatArray,
        *,
        subtract_background: bool,
    ) -> TileEngine:
        """Return the engine of a detector of ``shape`` and its solution.

        Parameters
        ----------
        shape
            The detector's ``(height, width)``.
        tile_size
            The tile side.
        kernel
            The matching kernel.
        decorrelation
            The decorrelation kernel (odd square).
        subtract_background
            Subtract the kernel's fitted background (DP1).
        """
        half = kernel.basis.half_width
        dec_half = decorrelation.shape[0] // 2
        reach = half + dec_half
        conv_size = int(
            scipy.fft.next_fast_len(tile_size + 2 * reach, real=True)
        )
        dec_size = int(
            scipy.fft.next_fast_len(tile_size + 2 * dec_half, real=True)
        )
        kernels = kernel.spatial_kernels()
        conv_spectra = scipy.fft.rfft2(
            kernels[:, ::-1, ::-1], s=(conv_size, conv_size), workers=1
        )
        dec_spectrum = scipy.fft.rfft2(
            decorrelation[::-1, ::-1], s=(dec_size, dec_size), workers=1
        )
        weights = _extended_weights(kernel, shape, dec_half)
        return cls(
            shape=shape,
            tile_size=tile_size,
            kernel=kernel,
            subtract_background=subtract_background,
            decorrelation=decorrelation,
            conv_size=conv_size,
            conv_spectra=conv_spectra,
            decorrelation_size=dec_size,
            decorrelation_spectrum=dec_spectrum,
            weights=weights,
            groups=weights.column_groups(),
        )

    @property
    def kernel_half(self) -> int:
        """The matching kernel's half-width."""
        return self.kernel.basis.half_width

    @property
    def decorrelation_half(self) -> int:
        """The decorrelation kernel's half-width."""
        return self.decorrelation.shape[0] // 2

    def tile(
        self,
        tile: PixelBox,
        template: Window,
        science: Window,
        no_data: Window,
    ) -> npt.NDArray[np.float32]:
        """Return the decorrelated difference on one tile.

        Parameters
        ----------
        tile
            A tile of the grid (science array pixels).
        template
            The warped template image, in science array pixels (the
            grown grid shifted by the border), holding the tile grown by
            both half-widths where the grown grid has it.
        science
            The science image, holding the tile grown by the
            decorrelation half-width inside the detector.
        no_data
            Where the template has no data (bool), over the same.
        """
        dec_half = self.decorrelation_half
        reach = self.kernel_half + dec_half
        block = template.padded(grow(tile, reach))
        block[~np.isfinite(block)] = 0.0
        around = grow(tile, dec_half)
        matched = self._matched(block, around)
        difference = self._difference(around, matched, science, no_data)
        bad = ~np.isfinite(difference)
        filled = np.where(bad, 0.0, difference)
        spectrum = scipy.fft.rfft2(
            filled, s=(self.decorrelation_size,) * 2, workers=1
        )
        spectrum *= self.decorrelation_spectrum
        margin = 2 * dec_half
        out = scipy.fft.irfft2(
            spectrum, s=(self.decorrelation_size,) * 2, workers=1
        )[margin : margin + tile.height, margin : margin + tile.width]
        result = out.astype(np.float32)
        inner = bad[dec_half : dec_half + tile.height, dec_half:][
            :, : tile.width
        ]
        result[inner] = difference[dec_half:, dec_half:][
            : tile.height, : tile.width
        ][inner]
        return result

    def _matched(self, block: FloatArray, around: PixelBox) -> FloatArray:
        """Return the matched template on ``around`` (float32 values)."""
        size = (self.conv_size, self.conv_size)
        spectrum = scipy.fft.rfft2(block, s=size, workers=1)
        dec_half = self.decorrelation_half
        rows = slice(
            around.y0 + dec_half, around.y0 + dec_half + around.height
        )
        cols = slice(around.x0 + dec_half, around.x0 + dec_half + around.width)
        matched = _weighted_inverse(
            spectrum[None] * self.conv_spectra,
            self.weights,
            self.groups,
            (rows, cols),
            2 * self.kernel_half,
        )
        return matched.astype(np.float32).astype(np.float64)

    def _difference(
        self,
        around: PixelBox,
        matched: FloatArray,
        science: Window,
        no_data: Window,
    ) -> FloatArray:
        """Return science - background - matched on ``around`` (float32).

        0 beyond the detector, NaN where the template has no data.
        """
        height, width = self.shape
        inside = around.intersection(PixelBox(0, 0, width, height))
        out = np.zeros((around.height, around.width))
        rows = slice(
            inside.y0 - around.y0, inside.y0 - around.y0 + inside.height
        )
        cols = slice(
            inside.x0 - around.x0, inside.x0 - around.x0 + inside.width
        )
        image = np.ascontiguousarray(science.cut(inside), dtype=np.float32)
        other = np.ascontiguousarray(matched[rows, cols], dtype=np.float32)
        values = self._subtract(image, other, inside)
        values[no_data.cut(inside).astype(bool)] = np.nan
        out[rows, cols] = values
        return out

    def _subtract(
        self,
        image: npt.NDArray[np.float32],
        other: npt.NDArray[np.float32],
        box: PixelBox,
    ) -> npt.NDArray[np.float32]:
        """Return ``image - background - other`` as the whole image does."""
        kernel = self.kernel
        if not self.subtract_background or kernel.background.size == 0:
            difference = image.astype(np.float64) - other
            return difference.astype(np.float32)
        columns, rows = _polynomial_window(
            kernel.background, kernel.bbox, kernel.spatial_bg_order, box
        )
        out = np.empty(image.shape, dtype=np.float32)
        _subtract_rows(image, other, columns, rows, 0, box.height, out)
        return out


def _polynomial_window(
    coefficients: FloatArray,
    bbox: tuple[int, int, int, int],
    order: int,
    box: PixelBox,
) -> tuple[FloatArray, FloatArray]:
    """Return `polynomial_factors` of a box of the bbox's frame.

    Each factor is computed from its own pixel position, so a box's are
    the whole grid's there.
    """
    x_cheb = chebyshev_series(
        normalise_positions(
            np.arange(box.x0, box.x0 + box.width, dtype=np.float64),
            bbox[0],
            bbox[2],
        ),
        order,
    )
    y_cheb = chebyshev_series(
        normalise_positions(
            np.arange(box.y0, box.y0 + box.height, dtype=np.float64),
            bbox[1],
            bbox[3],
        ),
        order,
    )
    rows = np.zeros((order + 1, box.width), dtype=np.float64)
    for value, (p, q) in zip(
        coefficients, monomial_powers(order), strict=True
    ):
        rows[q] += value * x_cheb[p]
    return np.ascontiguousarray(y_cheb), rows


def _extended_weights(
    kernel: SolvedKernel, shape: tuple[int, int], margin: int
) -> SeparableWeights:
    """Return the kernel's Chebyshev terms on the grid grown by ``margin``.

    Row ``i`` of a factor is science row (or column) ``i - margin``; the
    values inside the detector are the whole grid's.
    """
    height, width = shape
    x0, y0, bbox_width, bbox_height = kernel.bbox
    order = kernel.spatial_kernel_order
    x_series = chebyshev_series(
        normalise_positions(
            np.arange(-margin, width + margin, dtype=np.float64),
            x0,
            bbox_width,
        ),
        order,
    )
    y_series = chebyshev_series(
        normalise_positions(
            np.arange(-margin, height + margin, dtype=np.float64),
            y0,
            bbox_height,
        ),
        order,
    )
    powers = monomial_powers(order)
    return SeparableWeights(
        rows=np.array([y_series[q] for _, q in powers]),
        cols=np.array([x_series[p] for p, _ in powers]),
    )
