"""What ``recreate subtract`` costs in a fresh process (`anysurvey.py`).

Each figure is a fresh interpreter running the command as a user runs
it (``python -m workers.cli subtract ...``). This machine is shared with
other work, so every measurement is repeated, the variants interleaved
(a change of load hits each alike), and the median printed beside the
minimum, the maximum, the CPU time (user + system, which the load
inflates less than the wall time) and the 1-minute load average.

The project's bytecode is written first, as installing it does: pip
compiles a wheel's modules at install (the image's included), and
Python writes an editable tree's on first import, unless
``PYTHONDONTWRITEBYTECODE`` is set, as it is on this machine. Without
it each fresh process would compile the project's ~110 modules again,
about 0.1 s that no installation pays.
"""

from __future__ import annotations

import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import recreate
import workers

#: Fresh-process runs of each variant.
REPEATS = 7
#: The subtract command's own imports, and nothing else.
IMPORTS = (
    "import workers.cli, recreate.anysurvey.subtract, recreate.recreation"
)


@dataclass
class Runs:
    """Wall and CPU seconds of repeated runs, and the load during each."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def summary(self) -> str:
        """Return 'median  min  max  cpu-median' in seconds."""
        return (
            f"{statistics.median(self.walls):6.2f} {min(self.walls):6.2f} "
            f"{max(self.walls):6.2f} {statistics.median(self.cpus):8.2f}"
        )


def compile_bytecode() -> None:
    """Write the bytecode of the packages the command imports."""
    for package in (recreate, workers):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def _run_once(command: list[str], runs: Runs, env: dict[str, str]) -> None:
    """Run a command in a fresh process and record its cost."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, env=env
    )
    runs.walls.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    runs.cpus.append(
        after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    )
    runs.loads.append(os.getloadavg()[0])
    if done.returncode != 0:
        raise RuntimeError(done.stderr)


def subtract_command(
    science: Path, template: Path, out: Path, *extra: str
) -> list[str]:
    """Return ``recreate subtract`` as a user runs it."""
    return [
        sys.executable,
        "-m",
        "workers.cli",
        "subtract",
        str(science),
        str(template),
        "-o",
        str(out),
        "--overwrite",
        *extra,
    ]


def command_costs(science: Path, template: Path, out: Path) -> dict[str, Runs]:
    """Return the runs of the default output, GZIP output and imports."""
    variants = {
        "dp1 (default)": subtract_command(science, template, out),
        "dp1-compressed": subtract_command(
            science, template, out, "--format", "dp1-compressed"
        ),
        "imports alone": [sys.executable, "-c", IMPORTS],
    }
    compile_bytecode()
    runs = {label: Runs() for label in variants}
    env = dict(os.environ)
    _run_once(variants["dp1 (default)"], Runs(), env)  # page cache
    for _ in range(REPEATS):
        for label, command in variants.items():
            _run_once(command, runs[label], env)
    return runs


def cold_start(science: Path, template: Path, out: Path) -> tuple[float, ...]:
    """Return fresh-install first, set-up first subtract walls (s)."""
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "NUMBA_CACHE_DIR": empty}
        runs = Runs()
        for _ in range(2):  # empty cache, then the cache it filled
            _run_once(subtract_command(science, template, out), runs, env)
    return tuple(runs.walls)


def print_costs(runs: dict[str, Runs], target_s: float) -> None:
    """Print the table of `command_costs`."""
    loads = [load for r in runs.values() for load in r.loads]
    print(
        "\nrecreate subtract, fresh process, bytecode compiled "
        f"({REPEATS} runs each, interleaved; seconds)"
    )
    print(f"  {'':<18} {'median':>6} {'min':>6} {'max':>6} {'cpu med':>8}")
    for label, values in runs.items():
        print(f"  {label:<18} {values.summary()}")
    print(
        f"  target: median <= {target_s} s wall; 1-minute load average "
        f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    )
