"""What the product service answers a face: a 304, the product, a job.

`workers.products.ProductService` hands back one of these; the routes
turn them into responses (`workers.responses`), the campaign runner
reads `Ensured`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from recreate.formats import OutputFormat
from workers.streams import ChunkStream

__all__ = [
    "Answer",
    "Ensured",
    "NotModified",
    "Pending",
    "ProductInfo",
    "Served",
]


@dataclass(frozen=True)
class ProductInfo:
    """What the response says of a product besides its bytes."""

    sha256: str
    size: int
    meta: Mapping[str, Any]
    output_format: OutputFormat


class Answer:
    """What the product service hands a face: one of the classes below."""


@dataclass(frozen=True)
class NotModified(Answer):
    """The client's copy (If-None-Match) is the product: a 304."""

    sha256: str


@dataclass(frozen=True)
class Served(Answer):
    """The product: streamed from the cache, or bytes when degraded.

    ``body`` is None when only the headers were asked for (HEAD).
    """

    info: ProductInfo
    cache_state: Literal["hit", "miss"]
    body: ChunkStream | bytes | None
    degraded: bool = False


@dataclass(frozen=True)
class Ensured:
    """A product a campaign made sure of: its key, and who made it."""

    product_key: str
    computed: bool


@dataclass(frozen=True)
class Pending(Answer):
    """Still being recreated after the sync timeout: a job to follow."""

    job_id: str
    record: dict[str, Any]
