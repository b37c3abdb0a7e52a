"""The seeded LSST-like simulator that writes our test Butler repositories.

`recreate.simulate.repository.simulate_repository` is the entry point; the
modules below it plan the survey, draw the sky, render pixels with GalSim
and write the Butler repository.
"""
