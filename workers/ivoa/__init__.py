"""The IVOA faces: SIAv2, DataLink, SODA (sync and UWS), VOSI.

Each is a router on the API's app, under the paths Rubin's science
platform uses (``/api/sia``, ``/api/datalink``, ``/api/cutout``), and
each calls the product service and the region seam; none holds
orchestration of its own. Beside them: light curves (``/api/v1/stamps``)
and the locations of virtual Butler datasets (``/api/butler``), the
other ways DP1 served its difference images.
"""

from __future__ import annotations

from fastapi import FastAPI


def add_ivoa_routes(app: FastAPI) -> None:
    """Register the IVOA routes on the API's app."""
    from workers.ivoa.butler_access import router as butler_router
    from workers.ivoa.datalink import router as datalink_router
    from workers.ivoa.sia import router as sia_router
    from workers.ivoa.soda import router as soda_router
    from workers.ivoa.stamps import router as stamps_router
    from workers.ivoa.uws import router as uws_router

    app.include_router(sia_router, tags=["IVOA"])
    app.include_router(datalink_router, tags=["IVOA"])
    app.include_router(soda_router, tags=["IVOA"])
    app.include_router(uws_router, tags=["IVOA"])
    app.include_router(stamps_router, tags=["light curves"])
    app.include_router(butler_router, tags=["Butler access"])
