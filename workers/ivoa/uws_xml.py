"""UWS 1.1 documents of SODA jobs: a job, its results, its parameters.

Written as text from a job's record (`workers.ivoa.jobs`); the tests
parse them with pyvo's UWS parser.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from workers.ivoa.params import Params

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'
NAMESPACES = (
    'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
)


def field_text(record: dict[str, Any], name: str) -> str:
    """Return a job's executionduration, destruction, owner or quote."""
    if name == "executionduration":
        return str(int(record["execution_duration"]))
    if name == "destruction":
        return _iso(record["destruction"])
    return ""


def _iso(timestamp: float | None) -> str:
    """Return a UTC timestamp as ISO 8601 (empty for None)."""
    if timestamp is None:
        return ""
    moment = dt.datetime.fromtimestamp(float(timestamp), tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _timed(tag: str, timestamp: float | None) -> str:
    if timestamp is None:
        return f'<uws:{tag} xsi:nil="true"/>'
    return f"<uws:{tag}>{_iso(timestamp)}</uws:{tag}>"


def parameters_xml(parameters: Params, *, root: bool = False) -> str:
    """Return a job's parameters, each value its own element."""
    items = "".join(
        f"<uws:parameter id={quoteattr(name)}>{escape(value)}</uws:parameter>"
        for name, values in sorted(parameters.items())
        for value in values
    )
    return element("parameters", items, root=root)


def element(name: str, inner: str, *, root: bool = False) -> str:
    """Return a UWS element (with the namespaces when it is the root)."""
    opening = f"uws:{name} {NAMESPACES}" if root else f"uws:{name}"
    return f"<{opening}>{inner}</uws:{name}>"


def results_xml(
    job_url: str, record: dict[str, Any], *, root: bool = False
) -> str:
    """Return a job's results (each with its URL under the job's)."""
    base = job_url
    items = "".join(
        f"<uws:result id={quoteattr(r['id'])} "
        f"xlink:href={quoteattr(f'{base}/results/{r["id"]}')} "
        f'mime-type={quoteattr(r["media_type"])} size="{r["size"]}"/>'
        for r in record.get("results", [])
    )
    return element("results", items, root=root)


def job_document(job_url: str, record: dict[str, Any]) -> str:
    """Return a job's UWS 1.1 document."""
    run_id = record.get("run_id")
    error = record.get("error")
    parts = [
        f'{XML_HEAD}<uws:job {NAMESPACES} version="1.1">',
        f"<uws:jobId>{escape(record['id'])}</uws:jobId>",
        f"<uws:runId>{escape(run_id)}</uws:runId>" if run_id else "",
        '<uws:ownerId xsi:nil="true"/>',
        f"<uws:phase>{record['phase']}</uws:phase>",
        '<uws:quote xsi:nil="true"/>',
        _timed("creationTime", record.get("creation_time")),
        _timed("startTime", record.get("start_time")),
        _timed("endTime", record.get("end_time")),
        element(
            "executionDuration",
            str(int(record["execution_duration"])),
            root=False,
        ),
        _timed("destruction", record.get("destruction")),
        parameters_xml(record["parameters"]),
        results_xml(job_url, record),
    ]
    if error:
        kind = "transient" if error["prefix"] == "TransientFault" else "fatal"
        parts.append(
            f'<uws:errorSummary type="{kind}" hasDetail="true"><uws:message>'
            f"{escape(error['prefix'] + ': ' + error['message'])}"
            "</uws:message></uws:errorSummary>"
        )
    parts.append("</uws:job>\n")
    return "".join(parts)
