"""recreate: on-the-fly recreation of Rubin LSST difference images.

The ``recreate`` package holds the science and the data: the exposure
model, FITS I/O, Butler input lookup, the difference-imaging pipeline,
the registry of output formats, the simulator and the HTTP client. It
never imports Redis, Dask, the cache or the service.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recreate")
except PackageNotFoundError:  # pragma: no cover - source tree without install
    __version__ = "0.0.0"

__all__ = ["__version__"]
