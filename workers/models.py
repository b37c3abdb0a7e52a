"""What crosses the service's boundaries: requests, tasks, results, JSON.

* `ProductRequest`: what a face (an HTTP route, the campaign runner,
  later an IVOA endpoint) asks the product service for, validated once
  by the face that built it.
* `TaskSpec` and `TaskResult`: what the broker sends a Dask worker and
  what comes back (small metadata, bytes only when the cache is down).
* `JobModel`, `HealthModel`: the API's JSON bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

from recreate.butler import DiffimInputs
from recreate.errors import RecreateError
from recreate.formats import OutputFormat
from recreate.numerics.box import PixelBox
from recreate.pipeline.config import PipelineConfig

#: What a task makes (`TaskSpec.kind`): a product, the key's solution,
#: or a region of the product rendered from the solution.
PRODUCT = "product"
SOLUTION = "solution"
REGION = "region"


@dataclass(frozen=True)
class ProductRequest:
    """One product a face asks for: a key in an output format.

    The face validates what it was given (a 422 at the right place) and
    then builds this; nothing downstream validates again. Later requests
    (a pixel box, a cutout, a named recipe) extend this type, so every
    face keeps calling the same product service.

    Attributes
    ----------
    visit, detector
        The key.
    instrument
        As asked for; None means the settings' default (or the
        repository's only instrument).
    output_format
        The format, from the registry (`recreate.formats`).
    recipe
        The recipe asked for (``dp1``, ``dp2``); None means the
        settings' default, else the repository's release's.
    """

    visit: int
    detector: int
    instrument: str | None
    output_format: OutputFormat
    recipe: str | None = None

    def describe(self) -> str:
        """Name the request in messages."""
        where = f"{self.instrument} " if self.instrument else ""
        return f"{where}visit {self.visit} detector {self.detector}"


@dataclass(frozen=True, eq=False)
class TaskSpec:
    """What a Dask worker recreates: resolved inputs, recipe, key.

    Everything here was derived once, by the product service; the
    worker neither asks the Butler again nor derives the key again.

    Attributes
    ----------
    inputs
        The datasets to read (the visit image and template patches).
    output_format
        The format to encode the product in.
    recipe
        What the pixels depend on (inputs, the recipe's name and config
        hash, code version).
    config
        The recipe's configuration (the one its config hash names).
    recipe_hash
        Its SHA-256 (names the stored kernel).
    product_key
        The cache key: the recipe in this format.
    cache_id
        The fingerprint of the cache configuration the worker must use
        (its plugin holds the configuration itself, secrets included).
    kind
        `PRODUCT` (the default), `SOLUTION` (the product key then names
        the solve, `workers.solution_tasks.solution_key`) or `REGION`.
    box
        A region's box of parent pixels (`REGION` only).
    """

    inputs: DiffimInputs
    output_format: OutputFormat
    recipe: dict[str, Any]
    config: PipelineConfig
    recipe_hash: str
    product_key: str
    cache_id: str
    kind: str = PRODUCT
    box: PixelBox | None = None

    @property
    def instrument(self) -> str:
        """The instrument, as resolved by the Butler."""
        return self.inputs.instrument

    @property
    def visit(self) -> int:
        """The visit id."""
        return self.inputs.visit

    @property
    def detector(self) -> int:
        """The detector id."""
        return self.inputs.detector

    def describe(self) -> str:
        """Name the key in messages."""
        return f"{self.instrument} visit {self.visit} detector {self.detector}"


@dataclass(frozen=True)
class TaskResult:
    """What a task returns: metadata, and bytes only when uncached.

    Attributes
    ----------
    product_key
        The cache key of the product.
    sha256
        SHA-256 of the product's bytes (the HTTP ETag).
    size
        Length of the product in bytes.
    computed
        Whether this task recomputed the product (false: it was cached,
        or another holder of the lock computed it).
    seconds
        Wall time of the task.
    meta
        The cache manifest's metadata (recipe hash, inputs, timings).
    worker
        Address of the worker that ran the task.
    payload
        The product's bytes when they could not be cached (Redis down).
    failure
        Why the data admit no product (a 4xx error), instead of one.
    """

    product_key: str
    sha256: str
    size: int
    computed: bool
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    worker: str = ""
    payload: bytes | None = None
    failure: RecreateError | None = None


class JobModel(BaseModel):
    """A recreation that outlived the request that started it."""

    id: str = Field(description="Job id (derived from the product key).")
    state: str = Field(description="running, done or failed.")
    instrument: str
    visit: int
    detector: int
    format: str
    url: str = Field(description="Where to GET the difference image.")
    created: float
    updated: float
    error: dict[str, str] | None = None


class HealthModel(BaseModel):
    """Whether each part of the service answers."""

    status: str = Field(description="ok, or degraded if a part is down.")
    version: str
    components: dict[str, Any]
