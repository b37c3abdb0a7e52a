"""A Butler formatter for DP1 ``ExposureF`` files without the LSST stack.

DP1 declares ``visit_image`` and ``template_coadd`` with the storage
class ``ExposureF``, whose own formatter lives in ``lsst.obs.base`` and
needs afw, which cannot be installed from PyPI. This formatter writes
the same files with `recreate.io.dp1` and reads them with
`recreate.io.dp1_read`, so a repository written by our simulator keeps
DP1's dataset types and storage classes. The service
itself reads files through ``Butler.getURI`` and `recreate.io.read_dp1`,
which works the same on our repositories and on Rubin's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lsst.daf.butler import FormatterV2
from lsst.resources import ResourcePath

from recreate.io.dp1 import write_dp1
from recreate.io.dp1_read import read_dp1


class ExposureFormatter(FormatterV2):
    """Read and write DP1-layout FITS files as `recreate.exposure.Exposure`."""

    default_extension = ".fits"
    supported_extensions: ClassVar[frozenset[str]] = frozenset(
        {".fits", ".fits.gz", ".fit"}
    )
    can_read_from_local_file = True

    def read_from_local_file(
        self,
        path: str,
        component: str | None = None,  # noqa: ARG002 - no components
        expected_size: int = -1,  # noqa: ARG002 - FITS knows its size
    ) -> Any:
        """Read a DP1-layout file into an `Exposure`."""
        return read_dp1(path)

    def write_local_file(
        self,
        in_memory_dataset: Any,
        uri: ResourcePath,
    ) -> None:
        """Write an `Exposure` in the DP1 layout."""
        write_dp1(in_memory_dataset, uri.ospath, overwrite=True)
