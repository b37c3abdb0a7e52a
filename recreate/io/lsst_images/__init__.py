"""Write a difference image as Rubin's DP2-style ``lsst.images`` file.

DP2 publishes difference images as `lsst.images.DifferenceImage`: a
`~lsst.images.VisitImage` (pixels, mask, sky projection, PSF, detector,
observation info) plus the matching kernel and one
`~lsst.images.DifferenceImageTemplateInfo` per template coadd patch.
This package builds one from an `Exposure`, the solved kernel in a neutral
form (`KernelModel`) and the template provenance (`TemplateProvenance`),
without the LSST stack, and writes it in the ``lsst.images`` FITS
container. Read it back with ``lsst.images.DifferenceImage.read(path)``
(the name must end in ``.fits`` for ``read`` to pick the backend;
reading imports ``requests``).

How each component is made
--------------------------
image, variance
    Copied; unit ``nJy`` (``nJy**2``) unless ``metadata["BUNIT"]`` names
    another one, as in `recreate.io.dp1`.
mask
    One `~lsst.images.MaskPlane` per plane of ours, renamed and described
    as ``lsst.images`` does for legacy afw masks
    (`~lsst.images.get_legacy_difference_image_mask_planes`, then the
    optional and template maps): ``SAT`` becomes ``SATURATED``, ``INTRP``
    ``INTERPOLATED``, ``CR`` ``COSMIC_RAY``, ``EDGE`` ``DETECTION_EDGE``,
    ``UNMASKEDNAN`` ``UNMASKED_NAN``. Unknown planes keep their names.
sky projection
    Our TAN-SIP FITS WCS, through AST, offset by ``xy0`` so it maps
    detector (parent) pixels, the frame ``lsst.images`` uses.
psf
    A `~lsst.images.psfs.GaussianPointSpreadFunction` of sigma
    ``fwhm / 2.3548``: ``lsst.images`` serializes only Piff, PSFEx and
    Gaussian PSFs, so a PSF grid is *not* carried.
detector
    A nominal LSSTComCam ITL detector (4072x4000 pixels of 10 um,
    0.2"/px) on a 3x3 raft, with a linear pixel -> focal plane -> field
    angle chain and *one amplifier covering the whole detector*: the
    per-amplifier layout and the sensor serial are not known here.
obs_info
    An `astro_metadata_translator.ObservationInfo` with what
    `recreate.exposure.ObservationInfo` holds; the exposure id is the
    visit id (one exposure per visit, as in DP1).
photometric scaling
    ``nJy`` per post-ISR electron where known (the scaling already
    applied to an nJy image), the calibration to nJy for an image in
    another unit, else none.
kernel
    An `~lsst.images.convolution_kernels.ImageBasisConvolutionKernel`
    whose `~lsst.images.fields.ChebyshevField` weights equal
    `KernelModel.kernel_image` exactly (see `KernelModel`).
templates
    From `TemplateProvenance`, each polygon moved to the parent frame
    and clipped to the image: DP2 records the overlap only.
metadata
    ``Exposure.metadata`` but ``BUNIT``. Summary statistics are left
    unset (NaN): Rubin's pipeline measures them on the science image.

Writes are not byte-reproducible: the container stamps every HDU with
the write time (``DATE``) and astropy's GZIP codec stamps every
compressed tile with the current second. The decoded content is the same.
"""

from recreate.io.lsst_images.components import (
    FWHM_PER_SIGMA,
    PSF_STAMP_SIGMAS,
)
from recreate.io.lsst_images.detector import (
    COMCAM,
    COMCAM_HEIGHT,
    COMCAM_PIXEL_SCALE,
    COMCAM_PIXEL_SIZE,
    COMCAM_RAFT,
    COMCAM_SENSOR_PITCH,
    COMCAM_WIDTH,
    WHOLE_DETECTOR_AMPLIFIER,
    comcam_detector_name,
)
from recreate.io.lsst_images.mask import lsst_mask_plane
from recreate.io.lsst_images.model import (
    KernelModel,
    TemplateProvenance,
    chebyshev_terms,
    chebyshev_values,
)
from recreate.io.lsst_images.write import (
    difference_image_bytes,
    to_difference_image,
    to_visit_image,
    write_lsst_images,
    write_visit_image,
)

__all__ = [
    "COMCAM",
    "COMCAM_HEIGHT",
    "COMCAM_PIXEL_SCALE",
    "COMCAM_PIXEL_SIZE",
    "COMCAM_RAFT",
    "COMCAM_SENSOR_PITCH",
    "COMCAM_WIDTH",
    "FWHM_PER_SIGMA",
    "PSF_STAMP_SIGMAS",
    "WHOLE_DETECTOR_AMPLIFIER",
    "KernelModel",
    "TemplateProvenance",
    "chebyshev_terms",
    "chebyshev_values",
    "comcam_detector_name",
    "difference_image_bytes",
    "lsst_mask_plane",
    "to_difference_image",
    "to_visit_image",
    "write_lsst_images",
    "write_visit_image",
]
