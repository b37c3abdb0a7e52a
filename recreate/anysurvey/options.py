"""The options of the any-survey mode (`recreate subtract`).

A Butler recreation runs the release's recipe exactly. Files from other
surveys rarely meet that recipe's assumptions (sky subtracted, DETECTED
planes from a calibration step, a noisy template with a true variance
plane, hundreds of stars of S/N 10-500, a sky WCS); `AnySurveyOptions`
says how to meet them, and each step that changes anything is recorded
in the output's provenance (`recreate.anysurvey.record`).

Only `recreate.anysurvey` reads these options; the pipeline itself
never sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from recreate.errors import InvalidRequestError

Switch = Literal["auto", "on", "off"]
#: How the template's variance is set: v29's ScaleVariance, as given,
#: or a constant (image units squared).
TemplateVariance = Literal["auto", "scale", "keep"] | float

SWITCHES: tuple[str, ...] = ("auto", "on", "off")
TEMPLATE_VARIANCE_WORDS: tuple[str, ...] = ("auto", "scale", "keep")


@dataclass(frozen=True)
class AnySurveyOptions:
    """How `recreate subtract` adapts the v29 recipe to other surveys.

    Attributes
    ----------
    background
        Fit and subtract a smooth sky from each input: ``auto`` does so
        for an input whose sky level is more than `UNSUBTRACTED_SIGMAS`
        robust sigmas from zero, ``on`` always, ``off`` never.
    detect
        Flag DETECTED on inputs that come without it before ScaleVariance
        (as DP1's calibration step leaves them): ``auto`` for inputs
        with no DETECTED pixel, ``on`` always (replacing theirs),
        ``off`` never.
    aligned
        The template's array pixel (i, j) is the science's (i, j): no
        WCS is needed or used, and the template is not warped.
    template_variance
        ``scale`` (v29's ScaleVariance), ``keep`` (as given, not
        rescaled), a number (that constant variance, not rescaled), or
        ``auto``: ``scale``, unless the template looks noiseless (a
        model), then ``keep``.
    variance_floor
        Lowest template variance, image units squared (after
        ``template_variance``); None for none.
    candidate_fallback
        When fewer kernel candidates than the recipe needs pass v29's
        cuts, retry without the S/N 500 cap (the brightest unsaturated,
        isolated, unresolved stars); recorded.
    spatial_fallback
        When the spatial kernel solution is ill-conditioned, step the
        spatial orders down (kernel 1 -> 0, background 2 -> 1 -> 0)
        until it is not; recorded.
    allow_ill_conditioned
        Write a difference whose kernel solution is still ill-conditioned
        (or singular) instead of failing.
    """

    background: Switch = "auto"
    detect: Switch = "auto"
    aligned: bool = False
    template_variance: TemplateVariance = "auto"
    variance_floor: float | None = None
    candidate_fallback: bool = True
    spatial_fallback: bool = True
    allow_ill_conditioned: bool = False

    def __post_init__(self) -> None:
        """Reject values no step can use, naming them."""
        for name in ("background", "detect"):
            value = getattr(self, name)
            if value not in SWITCHES:
                raise InvalidRequestError(
                    f"{name} {value!r}: choose one of {', '.join(SWITCHES)}"
                )
        check_template_variance(self.template_variance)
        if self.variance_floor is not None and not (
            math.isfinite(self.variance_floor) and self.variance_floor >= 0
        ):
            raise InvalidRequestError(
                f"variance floor {self.variance_floor} is not a finite "
                "number >= 0"
            )

    def describe(self) -> str:
        """Return the options as one line, for the provenance."""
        return (
            f"background={self.background} detect={self.detect} "
            f"aligned={self.aligned} "
            f"template_variance={self.template_variance} "
            f"variance_floor={self.variance_floor} "
            f"candidate_fallback={self.candidate_fallback} "
            f"spatial_fallback={self.spatial_fallback} "
            f"allow_ill_conditioned={self.allow_ill_conditioned}"
        )


#: Sky level, in robust sigmas of the sky, above which ``background=auto``
#: calls an input unsubtracted. A sky-subtracted image sits within a
#: small fraction of a sigma of zero; an unsubtracted one is many sigmas
#: above it (sky / sigma = sqrt(sky in electrons)).
UNSUBTRACTED_SIGMAS = 1.0


def check_template_variance(value: object) -> None:
    """Raise unless ``value`` is a template-variance word or a number >= 0.

    Raises
    ------
    InvalidRequestError
        Naming the bad value.
    """
    if isinstance(value, str):
        if value not in TEMPLATE_VARIANCE_WORDS:
            raise InvalidRequestError(
                f"template variance {value!r}: choose one of "
                f"{', '.join(TEMPLATE_VARIANCE_WORDS)} or a number >= 0"
            )
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and value >= 0)
    ):
        raise InvalidRequestError(
            f"template variance {value!r} is not a finite number >= 0"
        )


def parse_template_variance(text: str) -> TemplateVariance:
    """Return a template-variance option from command-line text.

    Raises
    ------
    InvalidRequestError
        If the text is neither a known word nor a number >= 0.
    """
    word = text.strip().lower()
    if word in TEMPLATE_VARIANCE_WORDS:
        return word  # type: ignore[return-value]
    try:
        value = float(word)
    except ValueError:
        check_template_variance(text)
        raise  # pragma: no cover - check_template_variance raised
    check_template_variance(value)
    return value
