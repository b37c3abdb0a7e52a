"""Shared numerics below both the readers (`recreate.io`) and the pipeline.

``box``
    `PixelBox`, a box of parent-frame pixels.
``row_blocks``, ``threads``
    Row blocks run on a fixed number of threads (results do not depend on
    the thread count).
``arrays``, ``smoothing``
    Array helpers and separable Gaussian smoothing.
``fft``
    Padded real FFTs and cropped inverses.
``order_stats``, ``robust``
    Exact order statistics and afw-style robust statistics (MEANCLIP,
    median, IQR).

Nothing here imports another part of `recreate`.
"""
