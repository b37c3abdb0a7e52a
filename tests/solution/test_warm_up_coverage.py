"""A worker's warm-up loads every compiled kernel its requests use.

`warm_up` runs when a worker starts, and the image's numba cache is
compiled by it (the Dockerfile), so a kernel, or a kernel's signature,
that only a request reaches is compiled in the middle of a user's first
request on every new pod: seconds, not milliseconds. In a fresh
interpreter, after `warm_up`, whole recreations of a repository's
detector under both recipes and stamps from their solutions (a corner,
the middle, the far corner) must add no signature to any dispatcher.
"""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys

import numba

from recreate.butler import find_inputs, open_butler
from recreate.numerics.box import PixelBox
from recreate.pipeline.warmup import warm_up
from recreate.recreation import recreate_from_inputs
from recreate.solution import read_inputs_for_box, render


def signatures():
    found = set()
    for name, module in list(sys.modules.items()):
        if not name.startswith("recreate"):
            continue
        for attr, obj in list(vars(module).items()):
            if isinstance(obj, numba.core.dispatcher.Dispatcher):
                found.update((name, attr, str(s)) for s in obj.signatures)
    return found


warm_up()
before = signatures()
repo, visit, detector = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
found = find_inputs(open_butler(repo), visit, detector)
for recipe in ("dp1", "dp2"):
    result = recreate_from_inputs(found, recipe=recipe)
    x0, y0 = result.exposure.xy0
    h, w = result.exposure.shape
    for bx, by in ((0, 0), (w // 2, h // 3), (w - 51, h - 51)):
        box = PixelBox(x0 + bx, y0 + by, 51, 51)
        inputs = read_inputs_for_box(found, result.solution, box)
        render(result.solution, inputs, box)
for new in sorted(signatures() - before):
    print(*new)
"""


def test_requests_compile_nothing_the_warm_up_did_not(ci_repo, full_key):
    visit, detector = full_key
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            str(ci_repo.root),
            str(visit),
            str(detector),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "", "compiled after the warm-up:\n" + done.stdout
