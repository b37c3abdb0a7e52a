"""The allocator settings that keep a recreating process's heap."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from recreate.memory import ALLOCATOR_ENVIRON

#: Allocate and free 400 MB in 100 MB planes, then print the resident
#: set (MB) before and after the planes are freed.
_CHURN = """
import numpy as np
from recreate.memory import retain_freed_memory

def rss_mb():
    with open("/proc/self/statm") as stream:
        return int(stream.read().split()[1]) * {page} / 2**20

if {tune}:
    assert retain_freed_memory()
planes = [np.ones(25_000_000, np.float32) for _ in range(4)]
held = rss_mb()
del planes
print(held, rss_mb())
"""

glibc_linux = pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or os.confstr("CS_GNU_LIBC_VERSION") is None,
    reason="the settings are glibc's",
)


def _churn(*, tune: bool, environ: dict[str, str]) -> tuple[float, float]:
    code = _CHURN.format(page=os.sysconf("SC_PAGE_SIZE"), tune=tune)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **environ},
    )
    held, after = (float(v) for v in out.stdout.split())
    return held, after


@glibc_linux
def test_by_default_freed_planes_go_back_to_the_kernel():
    held, after = _churn(tune=False, environ={})
    assert after < held - 300


@glibc_linux
def test_a_tuned_process_keeps_its_freed_planes():
    held, after = _churn(tune=True, environ={})
    assert after > held - 50


@glibc_linux
def test_the_environment_settings_have_the_same_effect():
    held, after = _churn(tune=False, environ=ALLOCATOR_ENVIRON)
    assert after > held - 50
