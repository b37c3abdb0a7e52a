"""A small VOTable 1.4 writer: result tables, service descriptors, errors.

SIA and DataLink answer VOTables of a few columns and, at most,
thousands of rows: written here as text, in TABLEDATA, with every value
escaped. The tests parse each document with astropy in strict mode.

* `Column`: a FIELD; integer columns that may be empty declare a null.
* `Param`: a PARAM (a service descriptor's input, a table's constant).
* `results_document`: a results RESOURCE with QUERY_STATUS (and
  OVERFLOW after the table when a limit cut it), plus service
  descriptors (DataLink 1.1 section 4).
* `error_document`: QUERY_STATUS ERROR with the message (DALI 1.1).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

VOTABLE_MEDIA_TYPE = "application/x-votable+xml"

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
)
_INTEGERS = frozenset({"short", "int", "long", "unsignedByte"})


@dataclass(frozen=True)
class Column:
    """One FIELD of a table.

    Attributes
    ----------
    name, datatype
        As VOTable names them (``char``, ``double``, ``long``...).
    arraysize
        ``*`` for strings and variable arrays.
    null
        The value an empty integer cell is written as (VOTable has no
        empty integer); it is declared in the FIELD's VALUES.
    id
        An XML ID (service descriptors refer to columns by it).
    """

    name: str
    datatype: str
    arraysize: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    description: str | None = None
    null: str | None = None
    id: str | None = None

    def xml(self) -> str:
        """Return the FIELD element."""
        attributes = _attributes(
            ID=self.id,
            name=self.name,
            datatype=self.datatype,
            arraysize=self.arraysize,
            unit=self.unit,
            ucd=self.ucd,
            utype=self.utype,
            xtype=self.xtype,
        )
        inner = ""
        if self.description:
            inner += f"<DESCRIPTION>{escape(self.description)}</DESCRIPTION>"
        if self.null is not None:
            inner += f"<VALUES null={quoteattr(self.null)}/>"
        if not inner:
            return f"<FIELD {attributes}/>"
        return f"<FIELD {attributes}>{inner}</FIELD>"

    def cell(self, value: Any) -> str:
        """Return one TD with a value of this column."""
        if value is None:
            if self.datatype in _INTEGERS:
                if self.null is None:
                    msg = f"column {self.name} has no null value declared"
                    raise ValueError(msg)
                return f"<TD>{self.null}</TD>"
            return "<TD/>"
        return f"<TD>{escape(_text(value))}</TD>"


@dataclass(frozen=True)
class Param:
    """One PARAM: a name, a type, a value (and allowed options)."""

    name: str
    datatype: str = "char"
    arraysize: str | None = "*"
    value: str = ""
    ucd: str | None = None
    unit: str | None = None
    xtype: str | None = None
    ref: str | None = None
    description: str | None = None
    options: Sequence[str] = field(default_factory=tuple)

    def xml(self) -> str:
        """Return the PARAM element."""
        attributes = _attributes(
            name=self.name,
            datatype=self.datatype,
            arraysize=self.arraysize,
            ucd=self.ucd,
            unit=self.unit,
            xtype=self.xtype,
            ref=self.ref,
        )
        attributes += f" value={quoteattr(self.value)}"
        inner = ""
        if self.description:
            inner += f"<DESCRIPTION>{escape(self.description)}</DESCRIPTION>"
        if self.options:
            choices = "".join(
                f"<OPTION value={quoteattr(o)}/>" for o in self.options
            )
            inner += f"<VALUES>{choices}</VALUES>"
        if not inner:
            return f"<PARAM {attributes}/>"
        return f"<PARAM {attributes}>{inner}</PARAM>"


@dataclass(frozen=True)
class ServiceDescriptor:
    """A service a table's rows can be sent to (DataLink section 4)."""

    id: str
    standard_id: str
    access_url: str
    inputs: Sequence[Param]
    description: str = ""

    def xml(self) -> str:
        """Return the ``meta`` RESOURCE of the descriptor."""
        identifier = quoteattr(self.id)
        parts = [
            f'<RESOURCE type="meta" utype="adhoc:service" ID={identifier}>'
        ]
        if self.description:
            parts.append(
                f"<DESCRIPTION>{escape(self.description)}</DESCRIPTION>"
            )
        parts.append(Param("standardID", value=self.standard_id).xml())
        parts.append(Param("accessURL", value=self.access_url).xml())
        parts.append('<GROUP name="inputParams">')
        parts.extend(param.xml() for param in self.inputs)
        parts.append("</GROUP></RESOURCE>")
        return "".join(parts)


def results_document(
    columns: Sequence[Column],
    rows: Iterable[Mapping[str, Any]],
    *,
    overflow: bool = False,
    descriptors: Sequence[ServiceDescriptor] = (),
    params: Sequence[Param] = (),
) -> str:
    """Return a VOTable holding one results table.

    Parameters
    ----------
    columns
        The table's FIELDs.
    rows
        Mappings from column name to value (None: empty).
    overflow
        The rows were cut at a limit: say so after the table.
    descriptors
        Service descriptors to append.
    params
        PARAMs of the results RESOURCE.
    """
    body = "".join(
        "<TR>" + "".join(c.cell(row.get(c.name)) for c in columns) + "</TR>"
        for row in rows
    )
    parts = [
        _HEAD,
        '<RESOURCE type="results">',
        '<INFO name="QUERY_STATUS" value="OK"/>',
        *(param.xml() for param in params),
        "<TABLE>",
        *(column.xml() for column in columns),
        f"<DATA><TABLEDATA>{body}</TABLEDATA></DATA>",
        "</TABLE>",
    ]
    if overflow:
        parts.append('<INFO name="QUERY_STATUS" value="OVERFLOW"/>')
    parts.append("</RESOURCE>")
    parts.extend(descriptor.xml() for descriptor in descriptors)
    parts.append("</VOTABLE>\n")
    return "\n".join(parts)


def error_document(message: str) -> str:
    """Return a VOTable that reports a failed request (DALI 1.1 5.2)."""
    return (
        f'{_HEAD}<RESOURCE type="results">'
        f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>'
        "</RESOURCE></VOTABLE>\n"
    )


def _attributes(**values: str | None) -> str:
    """Return XML attributes of the values that are set."""
    return " ".join(
        f"{name}={quoteattr(value)}"
        for name, value in values.items()
        if value is not None
    )


def _text(value: Any) -> str:
    """Return a value as VOTable text (arrays space-separated)."""
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_text(v) for v in value)
    return str(value)
