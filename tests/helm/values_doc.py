"""The chart's values table, helm-docs style, made from values.yaml.

A key is documented by a comment starting with ``# --`` on the lines just
above it (continued by plain ``#`` lines); ``# -- (type) text`` overrides
the type shown. A documented object is one row holding its whole default.

``python -m tests.helm.values_doc`` rewrites the table in the chart's
README.md between the markers; the tests check that it is up to date.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "recreate"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.-]+):(?:\s|$)")
_DOC = re.compile(r"^ *# -- ?(?:\((?P<type>[a-z]+)\) )?(?P<text>.*)$")
_MORE = re.compile(r"^ *#(?: (?P<text>.*))?$")


@dataclass(frozen=True)
class Row:
    """One documented key."""

    key: str
    type: str
    default: str
    description: str


def documented_keys(text: str) -> dict[str, tuple[str | None, str]]:
    """Return {dotted key: (type override, description)} of ``# --`` keys.

    Keys inside lists (lines starting with ``-``) are never documented
    themselves: they belong to a documented ancestor.
    """
    found: dict[str, tuple[str | None, str]] = {}
    stack: list[tuple[int, str]] = []
    pending: tuple[str | None, list[str]] | None = None
    for line in text.splitlines():
        doc = _DOC.match(line)
        if doc:
            pending = (doc["type"], [doc["text"].strip()])
            continue
        more = _MORE.match(line)
        if more:
            if pending is not None:
                pending[1].append((more["text"] or "").strip())
            continue
        key = _KEY.match(line)
        if key is None:
            pending = None
            continue
        indent = len(key["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key["key"]))
        if pending is not None:
            path = ".".join(name for _, name in stack)
            found[path] = (pending[0], " ".join(pending[1]).strip())
        pending = None
    return found


def _lookup(values: dict[str, Any], path: str) -> Any:
    node: Any = values
    for part in path.split("."):
        node = node[part]
    return node


_TYPES = ((bool, "bool"), (int, "int"), (float, "float"), (str, "string"))


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    for python, name in _TYPES:  # bool first: it is an int too
        if isinstance(value, python):
            return name
    return "list" if isinstance(value, list) else "object"


def rows(text: str) -> list[Row]:
    """Return the table rows of a values.yaml text, in file order."""
    values = yaml.safe_load(text)
    result = []
    for key, (override, description) in documented_keys(text).items():
        value = _lookup(values, key)
        default = json.dumps(value, separators=(",", ":"))
        result.append(
            Row(
                key=key,
                type=override or _type_of(value),
                default=default,
                description=description,
            )
        )
    return result


def undocumented_leaves(text: str) -> list[str]:
    """Return the keys that neither have nor inherit a ``# --`` comment.

    A leaf (a scalar, a list, an empty object) must be documented itself or
    sit inside a documented object.
    """
    values = yaml.safe_load(text)
    documented = set(documented_keys(text))
    missing: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        for name, value in node.items():
            path = f"{prefix}{name}"
            if path in documented:
                continue
            if isinstance(value, dict) and value:
                walk(value, f"{path}.")
            else:
                missing.append(path)

    walk(values, "")
    return missing


def table(text: str) -> str:
    """Return the Markdown table of a values.yaml text."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "| Key | Type | Default | Description |",
        "| --- | --- | --- | --- |",
    ]
    lines.extend(
        f"| {row.key} | {row.type} | `{cell(row.default)}` "
        f"| {cell(row.description)} |"
        for row in rows(text)
    )
    return "\n".join(lines)


def readme_table(readme: str) -> str:
    """Return the table between the markers of a README text."""
    start = readme.index(START) + len(START)
    return readme[start : readme.index(END)].strip()


def readme_keys(readme: str) -> list[str]:
    """Return the first cell of every row of the README's values table."""
    body = readme_table(readme).splitlines()[2:]
    return [line.split("|")[1].strip() for line in body]


def main() -> None:
    """Rewrite the values table of the chart's README.md."""
    readme = README.read_text()
    start = readme.index(START) + len(START)
    end = readme.index(END)
    new = f"{readme[:start]}\n{table(VALUES.read_text())}\n{readme[end:]}"
    README.write_text(new)
    print(f"wrote the values table of {README}")


if __name__ == "__main__":
    main()
