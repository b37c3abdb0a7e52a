"""Provenance: what a difference image was made from, and how.

The *recipe* of a difference image is everything its pixels depend on:
the input datasets (ids and runs), the configuration hash and the code
version. Its SHA-256 names the product (the cache key of the service);
the output's own SHA-256 of the pixel planes lets anyone check that a
recreation is bit-identical. Both go into the primary header, with the
template coverage, the kernel size and sum, and any warnings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from recreate import __version__

#: Header keyword prefix of every provenance card (written as HIERARCH).
PREFIX = "RECREATE"


@dataclass(frozen=True)
class InputRef:
    """One input of a recreation, as provenance names it.

    Parameters
    ----------
    role
        ``"science"`` or ``"template"``.
    dataset_type
        Butler dataset type (``visit_image``, ``template_coadd``), or
        ``"file"`` for a file given on the command line.
    dataset_id
        Butler dataset UUID, or the SHA-256 of a file's bytes.
    run
        Butler RUN collection, or the file's name.
    data_id
        Butler data ID values (empty for files).
    """

    role: str
    dataset_type: str
    dataset_id: str
    run: str
    data_id: dict[str, int | str] = field(default_factory=dict)


def recipe(
    inputs: list[InputRef],
    config_hash: str,
    code_version: str = __version__,
    recipe_name: str = "dp1",
) -> dict[str, Any]:
    """Return the recipe: the inputs, recipe name, config hash, code version.

    Each input is named by its dataset id and run, and by its data id
    (instrument, visit, detector or skymap, tract, patch), so the recipe
    says which product it makes as well as from what.

    Parameters
    ----------
    inputs
        The science input first, then the templates in a fixed order.
    config_hash
        `PipelineConfig.config_hash` of the configuration used.
    code_version
        Version of this package.
    recipe_name
        The named configuration (``dp1``, ``dp2``).
    """
    return {
        "recipe": recipe_name,
        "inputs": [
            {
                "role": i.role,
                "id": i.dataset_id,
                "run": i.run,
                "data_id": dict(sorted(i.data_id.items())),
            }
            for i in inputs
        ],
        "config_hash": config_hash,
        "code_version": code_version,
    }


def recipe_hash(recipe_dict: dict[str, Any]) -> str:
    """Return the SHA-256 of a recipe's canonical JSON."""
    return canonical_hash(recipe_dict)


def canonical_hash(document: dict[str, Any]) -> str:
    """Return the SHA-256 of a JSON-able dict's canonical JSON."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Provenance:
    """Everything recorded about how a difference image was made."""

    recipe: str
    pipelines_version: str
    inputs: list[InputRef]
    config_hash: str
    code_version: str
    template_coverage: float
    kernel_size: int
    kernel_sum: float
    n_kernel_candidates: int
    n_kernel_used: int
    kernel_from_storage: bool
    kernel_sha256: str
    science_fwhm: float
    template_fwhm: float
    notes: tuple[str, ...] = ()

    @property
    def recipe_hash(self) -> str:
        """SHA-256 of the recipe (inputs, config hash, code version)."""
        return recipe_hash(
            recipe(
                self.inputs, self.config_hash, self.code_version, self.recipe
            )
        )

    def cards(self, planes_sha256: str) -> dict[str, Any]:
        """Return the provenance as header cards (keyword: value).

        Parameters
        ----------
        planes_sha256
            `Exposure.plane_hash` of the finished difference image.
        """
        cards: dict[str, Any] = {
            f"{PREFIX} RECIPE": self.recipe,
            f"{PREFIX} PIPELINES VERSION": self.pipelines_version,
            f"{PREFIX} CODE VERSION": self.code_version,
            f"{PREFIX} CONFIG HASH": self.config_hash,
            f"{PREFIX} RECIPE HASH": self.recipe_hash,
            f"{PREFIX} PLANES SHA256": planes_sha256,
            f"{PREFIX} TEMPLATE COVERAGE": round(self.template_coverage, 6),
            f"{PREFIX} KERNEL SIZE": self.kernel_size,
            f"{PREFIX} KERNEL SUM": self.kernel_sum,
            f"{PREFIX} KERNEL NCAND": self.n_kernel_candidates,
            f"{PREFIX} KERNEL NUSED": self.n_kernel_used,
            # The kernel's hash, not whether it was fitted or loaded: a
            # stored kernel gives the same planes, so it must give the
            # same bytes too.
            f"{PREFIX} KERNEL SHA256": self.kernel_sha256,
            f"{PREFIX} SCIENCE FWHM": round(self.science_fwhm, 6),
            f"{PREFIX} TEMPLATE FWHM": round(self.template_fwhm, 6),
            f"{PREFIX} N INPUTS": len(self.inputs),
        }
        for index, ref in enumerate(self.inputs):
            cards[f"{PREFIX} INPUT {index} ROLE"] = ref.role
            cards[f"{PREFIX} INPUT {index} TYPE"] = ref.dataset_type
            cards[f"{PREFIX} INPUT {index} ID"] = ref.dataset_id
            cards[f"{PREFIX} INPUT {index} RUN"] = ref.run
        for index, note in enumerate(self.notes):
            cards[f"{PREFIX} NOTE {index}"] = note
        return cards
