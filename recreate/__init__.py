"""recreate: on-the-fly recreation of Rubin LSST difference images.

The ``recreate`` package holds the science and the data: the exposure
model, FITS I/O, Butler input lookup, the simulator and (later) the
difference-imaging pipeline. It never imports Redis, Dask or web code.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recreate")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
