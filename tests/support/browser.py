"""Debian's Chromium driven by Playwright, kept offline.

Playwright's own browser download is never used: the browser is the
system's ``chromium`` (``.ci/run`` installs it with apt), launched by
``executable_path``. Every request a page makes to a host other than
the service's loopback address is refused and recorded, so a page that
would need the internet fails its test instead of passing on a machine
that has it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest

#: The flags the project's browser tests run Chromium with.
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium_path() -> str:
    """Return the system Chromium, or skip (fail on CI) when it is absent."""
    path = os.environ.get("RECREATE_CHROMIUM") or shutil.which("chromium")
    if path is None:
        reason = (
            "Debian's chromium is not installed (apt-get install chromium)"
        )
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """Yield a Playwright Browser of the system's Chromium."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    """What a page tried to reach outside, and the errors it raised."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def offline_page(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    """Yield a fresh page that may reach loopback only, and its log."""
    log = PageLog()
    context = browser.new_context()

    def guard(route: Any) -> None:
        host = urlsplit(route.request.url).hostname
        if host in {"127.0.0.1", "localhost"} or route.request.url.startswith(
            "data:"
        ):
            route.continue_()
        else:
            log.outside.append(route.request.url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    try:
        yield page, log
    finally:
        context.close()
