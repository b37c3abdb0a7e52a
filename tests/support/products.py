"""Cached products as Redis holds them, by format.

A recreated FITS product has its zscale PNG preview cached beside it
(`recreate.formats.companions`), so a test that counts or breaks "the"
cached product names the format it means.
"""

from __future__ import annotations

import json

import redis


def manifest_keys(client: redis.Redis, *formats: str) -> list[bytes]:
    """Return the manifest keys of cached products of these formats.

    Every product when no format is named.
    """
    keys = []
    for key in client.scan_iter(match="recreate:result:*"):
        raw = client.get(key)
        if raw is None:
            continue
        meta = json.loads(raw).get("meta") or {}
        if not formats or meta.get("format") in formats:
            keys.append(key)
    return sorted(keys)


def chunk_keys(client: redis.Redis, fmt: str) -> list[str]:
    """Return the chunk keys of the one cached product of ``fmt``, in order."""
    (manifest_key,) = manifest_keys(client, fmt)
    document = json.loads(client.get(manifest_key))
    key = manifest_key.decode().rsplit(":", 1)[1]
    return [
        f"recreate:blob:{key}:{document['token']}:{index}"
        for index in range(document["nchunks"])
    ]
