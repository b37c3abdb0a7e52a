"""Binned backgrounds kept as bins and evaluated on any box of pixels.

`recreate.pipeline.match.background.binned_background` computes a
background over a whole image. A render of a few pixels needs the same
values there and nowhere else, so this module splits it in two:

* `BackgroundGrid`: the bins of a whole image (after the super-pixel
  filter) and the one number of the x pass that depends on every row,
  the scale of scipy's Akima cutoff (`akima_scale`). A solution stores
  one (DP2's bin-40 background of the difference);
* `BackgroundGrid.evaluate`: the background on a box, by the very calls
  the whole-image path makes, on the box's rows and columns only. Every
  value depends on its own pixel alone, so it is bit-identical to the
  whole image's value there;
* `window_background`: a piecewise-linear background (the template's
  HIGH_VARIANCE) from the bins around a box alone, the empty-bin fill of
  the whole grid given (`empty_bin_fill`): a median-filtered bin needs
  its 3x3 raw neighbours, and a pixel the two bins on each side of it.

Where an axis has too few bins for the windowed rules (fewer than five
Akima nodes), the whole axis is evaluated and the box cut from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from recreate.numerics.box import PixelBox
from recreate.pipeline.config import BackgroundConfig
from recreate.pipeline.match.background import (
    _bin_means,
    bin_centres,
    bin_edges,
    filter_super_pixels,
    filtered_bins,
    interpolate_columns,
)
from recreate.pipeline.match.interpolation import (
    MIN_AKIMA,
    MIN_CUBIC,
    akima_scale,
    interpolate,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class BackgroundGrid:
    """The bins of a whole image's background, ready to evaluate anywhere.

    Parameters
    ----------
    shape
        ``(height, width)`` of the image.
    values
        The bins after the super-pixel filter, ``(n_bin_rows,
        n_bin_columns)``, float64; NaN for a bin without value.
    config
        Bin size and count rule, interpolation.
    largest
        The Akima cutoff scale of the x pass over every image row
        (`akima_scale`); 0 for linear interpolation.
    """

    shape: tuple[int, int]
    values: FloatArray
    config: BackgroundConfig
    largest: float

    @property
    def linear(self) -> bool:
        """Say whether the bins are interpolated piecewise linearly."""
        return self.config.interpolation == "LINEAR"

    def nodes(self) -> tuple[FloatArray, FloatArray]:
        """Return the bin centres along y and along x."""
        height, width = self.shape
        return (
            bin_centres(bin_edges(height, self.config)),
            bin_centres(bin_edges(width, self.config)),
        )

    def evaluate(self, box: PixelBox) -> FloatArray:
        """Return the background on ``box`` (array pixels of the image).

        Bit-identical to `binned_background` of the whole image at those
        pixels (for the same bins).
        """
        y_nodes, x_nodes = self.nodes()
        kept = np.flatnonzero(np.any(np.isfinite(self.values), axis=0))
        if len(kept) == 0:
            return np.zeros((box.height, box.width))
        rows = np.arange(box.y0, box.y0 + box.height, dtype=np.float64)
        cols = np.arange(box.x0, box.x0 + box.width, dtype=np.float64)
        # A natural cubic spline over all rows at once (3-4 columns of
        # bins) is one LAPACK solve: evaluate every row, as the whole
        # image does, and keep the box's.
        every_row = not self.linear and len(kept) in range(
            MIN_CUBIC, MIN_AKIMA
        )
        at_rows = np.arange(self.shape[0], dtype=np.float64)
        by_column = interpolate_columns(
            self.values[:, kept],
            y_nodes,
            at_rows if every_row else rows,
            linear=self.linear,
        )
        out = interpolate(
            x_nodes[kept],
            by_column,
            cols,
            per_curve=False,
            linear=self.linear,
            largest=self.largest,
        )
        return out[box.y0 : box.y0 + box.height] if every_row else out


def background_grid(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
    *,
    float32_bins: bool = False,
) -> BackgroundGrid:
    """Return the bins of an image's background (`binned_background`).

    Parameters
    ----------
    image, good, config
        As for `binned_background`.
    float32_bins
        Round the filtered bins to float32, as afw's statistics image
        holds them: a solution then stores them exactly in 4 bytes.
    """
    height, width = image.shape
    values = filtered_bins(image, good, config)
    if float32_bins:
        values = values.astype(np.float32).astype(np.float64)
    grid = BackgroundGrid((height, width), values, config, 0.0)
    kept = np.flatnonzero(np.any(np.isfinite(values), axis=0))
    if grid.linear or len(kept) < MIN_AKIMA:
        return grid
    y_nodes, x_nodes = grid.nodes()
    rows = np.arange(height, dtype=np.float64)
    by_column = interpolate_columns(
        values[:, kept], y_nodes, rows, linear=False
    )
    largest = akima_scale(x_nodes[kept], by_column)
    return BackgroundGrid((height, width), values, config, largest)


def window_background(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    origin: tuple[int, int],
    shape: tuple[int, int],
    config: BackgroundConfig,
    fill: float,
    box: PixelBox,
) -> FloatArray:
    """Return a piecewise-linear background on ``box`` from nearby bins.

    Parameters
    ----------
    image, good
        A window of the whole image's planes, its first pixel at array
        pixel ``origin = (x, y)`` of the whole image; it must hold the
        pixels of `window_bins_box` of ``box``.
    shape
        ``(height, width)`` of the whole image.
    config
        A LINEAR background's configuration.
    fill
        `empty_bin_fill` of the whole image's raw bins.
    box
        Where to evaluate, in the whole image's array pixels.

    Returns
    -------
    background
        ``(box.height, box.width)`` float64, bit-identical to
        `binned_background` of the whole image there.

    Raises
    ------
    ValueError
        If the configuration is not LINEAR or the window is too small.
    """
    if config.interpolation != "LINEAR" or not config.filter_super_pixels:
        raise ValueError(
            "only a LINEAR, super-pixel filtered background is evaluated "
            "by window"
        )
    if not math.isfinite(fill):
        # Every bin of the whole image is empty: its background is 0.
        return np.zeros((box.height, box.width))
    y_edges = bin_edges(shape[0], config)
    x_edges = bin_edges(shape[1], config)
    y_raw, _ = _bins_needed(y_edges, box.y0, box.y0 + box.height)
    x_raw, _ = _bins_needed(x_edges, box.x0, box.x0 + box.width)
    raw = _raw_bins(
        image, good, origin, (y_edges, x_edges), (y_raw, x_raw), config
    )
    return background_from_bins(
        raw, (y_raw.start, x_raw.start), shape, config, fill, box
    )


def background_from_bins(
    raw: FloatArray,
    first: tuple[int, int],
    shape: tuple[int, int],
    config: BackgroundConfig,
    fill: float,
    box: PixelBox,
) -> FloatArray:
    """Return `window_background` from raw bins already measured.

    ``raw`` holds the unfiltered statistics of the bins from bin row and
    column ``first = (row, column)`` on: at least those `window_bins_box`
    names for ``box`` (the whole grid will do).
    """
    y_edges = bin_edges(shape[0], config)
    x_edges = bin_edges(shape[1], config)
    y_raw, y_inner = _bins_needed(y_edges, box.y0, box.y0 + box.height)
    x_raw, x_inner = _bins_needed(x_edges, box.x0, box.x0 + box.width)
    raw = raw[
        y_raw.start - first[0] : y_raw.stop - first[0],
        x_raw.start - first[1] : x_raw.stop - first[1],
    ]
    filtered = filter_super_pixels(raw, fill)
    values = np.full((len(y_edges) - 1, len(x_edges) - 1), np.nan)
    inner = (
        slice(y_inner.start - y_raw.start, y_inner.stop - y_raw.start),
        slice(x_inner.start - x_raw.start, x_inner.stop - x_raw.start),
    )
    values[y_inner, x_inner] = filtered[inner]
    grid = BackgroundGrid(shape, values, config, 0.0)
    y_nodes, x_nodes = grid.nodes()
    rows = np.arange(box.y0, box.y0 + box.height, dtype=np.float64)
    cols = np.arange(box.x0, box.x0 + box.width, dtype=np.float64)
    # Bins outside the window hold NaN; a linear piece reads only the
    # two bins around its pixel, all inside.
    by_column = interpolate(
        y_nodes, values[:, x_inner], rows, per_curve=True, linear=True
    )
    columns = np.full((len(x_nodes), box.height), np.nan)
    columns[x_inner] = by_column
    return interpolate(x_nodes, columns, cols, per_curve=False, linear=True)


def raw_bins(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    config: BackgroundConfig,
) -> FloatArray:
    """Return the unfiltered statistic of every bin of a whole image."""
    y_edges = bin_edges(image.shape[0], config)
    x_edges = bin_edges(image.shape[1], config)
    bins = (slice(0, len(y_edges) - 1), slice(0, len(x_edges) - 1))
    return _raw_bins(image, good, (0, 0), (y_edges, x_edges), bins, config)


def window_bins_box(
    shape: tuple[int, int], config: BackgroundConfig, box: PixelBox
) -> PixelBox:
    """Return the pixels `window_background` needs to evaluate ``box``."""
    y_edges = bin_edges(shape[0], config)
    x_edges = bin_edges(shape[1], config)
    y_raw, _ = _bins_needed(y_edges, box.y0, box.y0 + box.height)
    x_raw, _ = _bins_needed(x_edges, box.x0, box.x0 + box.width)
    x0, x1 = int(x_edges[x_raw.start]), int(x_edges[x_raw.stop])
    y0, y1 = int(y_edges[y_raw.start]), int(y_edges[y_raw.stop])
    return PixelBox(x0, y0, x1 - x0, y1 - y0)


def _bins_needed(
    edges: npt.NDArray[np.intp], first: int, stop: int
) -> tuple[slice, slice]:
    """Return the raw bins and the filtered bins pixels ``first:stop`` use.

    A pixel is interpolated from the two bin centres around it (the end
    pieces extend the first and last); a filtered bin needs its
    neighbours. With fewer than 5 bins every bin is taken.
    """
    count = len(edges) - 1
    if count < MIN_AKIMA:
        return slice(0, count), slice(0, count)
    centres = bin_centres(edges)
    at = np.array([first, stop - 1], dtype=np.float64)
    pieces = np.clip(
        np.searchsorted(centres, at, side="right") - 1, 0, count - 2
    )
    inner = slice(int(pieces[0]), int(pieces[1]) + 2)
    raw = slice(max(inner.start - 1, 0), min(inner.stop + 1, count))
    return raw, inner


def _raw_bins(
    image: npt.NDArray[np.floating],
    good: BoolArray,
    origin: tuple[int, int],
    edges: tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]],
    bins: tuple[slice, slice],
    config: BackgroundConfig,
) -> FloatArray:
    """Return the statistic of each of the chosen bins (NaN when empty).

    The bins' pixels are read from the window at ``origin``; `_bin_means`
    on the window's part gives each bin's value from its pixels alone.
    """
    y_edges, x_edges = edges
    y_bins, x_bins = bins
    rows = y_edges[y_bins.start : y_bins.stop + 1] - origin[1]
    cols = x_edges[x_bins.start : x_bins.stop + 1] - origin[0]
    if rows[0] < 0 or cols[0] < 0:
        raise ValueError("the window does not hold the bins it needs")
    if rows[-1] > image.shape[0] or cols[-1] > image.shape[1]:
        raise ValueError("the window does not hold the bins it needs")
    median = config.statistic == "MEDIAN"
    return _bin_means(image, good, rows, cols, median=median)
