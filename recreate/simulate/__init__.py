"""The seeded LSST-like simulator that writes our test Butler repositories.

`recreate.simulate.repository.simulate_repository` is the entry point; the
modules below it plan the survey, draw the sky, render pixels with GalSim
and write the Butler repository.
"""

#: The presets' names (`recreate.simulate.presets.PRESETS` has them all),
#: here so that the command line offers them without loading astropy.
PRESET_NAMES = ("ci", "comcam", "demo")
