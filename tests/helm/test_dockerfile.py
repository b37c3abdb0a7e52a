"""The Dockerfile: multi-stage, non-root, and runs commands that exist."""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from tests.helm.rendering import CHART_DIR, ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined."""

    keyword: str
    arguments: str
    stage: int  # index of the FROM it follows; -1 before the first


def parse(text: str) -> list[Instruction]:
    """Return the instructions of a Dockerfile (no heredocs)."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1].rstrip() + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    instructions = []
    stage = -1
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        assert re.fullmatch(r"[A-Z]+", keyword), f"not an instruction: {line}"
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, arguments.strip(), stage))
    return instructions


def _exec_form(arguments: str) -> list[str]:
    value = json.loads(arguments)
    assert isinstance(value, list), f"not the exec (JSON) form: {arguments}"
    return value


def _stages(instructions: list[Instruction]) -> list[str]:
    names = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            match = re.fullmatch(
                r"(\S+)\s+AS\s+(\S+)", instruction.arguments, re.IGNORECASE
            )
            assert match, f"unnamed stage: FROM {instruction.arguments}"
            names.append(match[2])
    return names


def _final(instructions: list[Instruction], keyword: str) -> Instruction:
    last_stage = max(i.stage for i in instructions)
    found = [
        i
        for i in instructions
        if i.keyword == keyword and i.stage == last_stage
    ]
    assert found, f"no {keyword} in the final stage"
    return found[-1]


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def scripts() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["scripts"]


def test_parser_reads_continuations_and_stages() -> None:
    text = (
        "# comment\nARG BASE=python:3.12\nFROM $BASE AS one\n"
        "RUN a \\\n  # inner comment\n  && b\nFROM one AS two\nUSER 10\n"
    )
    parsed = parse(text)
    assert [i.keyword for i in parsed] == [
        "ARG",
        "FROM",
        "RUN",
        "FROM",
        "USER",
    ]
    assert parsed[2].arguments == "a && b"
    assert [i.stage for i in parsed] == [-1, 0, 0, 1, 1]
    assert _stages(parsed) == ["one", "two"]


def test_build_is_multi_stage(instructions: list[Instruction]) -> None:
    stages = _stages(instructions)
    assert len(stages) >= 2
    assert len(set(stages)) == len(stages)
    for instruction in instructions:
        match = re.search(r"--from=(\S+)", instruction.arguments)
        if instruction.keyword == "COPY" and match:
            earlier = stages[: instruction.stage]
            assert match[1] in earlier, (
                f"COPY --from={match[1]}: no such stage"
            )


def test_final_stage_runs_as_the_charts_non_root_user(
    instructions: list[Instruction],
) -> None:
    user = _final(instructions, "USER").arguments
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), "USER must be numeric for runAsNonRoot checks"
    assert int(uid) != 0
    assert gid == "" or int(gid) != 0
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    for component in ("api", "scheduler", "worker"):
        context = values[component]["podSecurityContext"]
        assert context["runAsUser"] == int(uid), component


def test_entry_point_is_a_console_script_that_exists(
    instructions: list[Instruction], scripts: dict[str, str]
) -> None:
    entrypoint = _exec_form(_final(instructions, "ENTRYPOINT").arguments)
    command = _exec_form(_final(instructions, "CMD").arguments)
    assert entrypoint == ["recreate"]
    module, _, function = scripts[entrypoint[0]].partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    from workers.cli import _build_parser

    parsed = _build_parser().parse_args(command)
    assert parsed.command == "serve"


def test_chart_commands_exist_in_the_image(scripts: dict[str, str]) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dependencies = " ".join(pyproject["project"]["dependencies"])
    assert "recreate" in scripts
    # `dask scheduler` comes with the dask[distributed] dependency.
    assert "dask[distributed]" in dependencies
    assert "dask" in {e.name for e in entry_points(group="console_scripts")}
    assert "scheduler" in {e.name for e in entry_points(group="dask_cli")}


def test_image_exposes_the_charts_ports(
    instructions: list[Instruction],
) -> None:
    exposed = {
        int(port.split("/")[0])
        for i in instructions
        if i.keyword == "EXPOSE"
        for port in i.arguments.split()
    }
    assert exposed == {8080, 8786, 8787}


def _ignored(path: str, patterns: list[str]) -> bool:
    """Return whether .dockerignore excludes ``path`` (last match wins)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                out += "(?:.*/)?"
                index += 3
            elif pattern.startswith("**", index):
                out += ".*"
                index += 2
            elif pattern[index] == "*":
                out += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                out += "[^/]"
                index += 1
            elif pattern[index] == "[":
                end = pattern.index("]", index)
                out += pattern[index : end + 1]
                index = end + 1
            else:
                out += re.escape(pattern[index])
                index += 1
        return re.compile(out)

    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        compiled = regex(pattern.lstrip("!").strip("/"))
        if any(compiled.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def test_dockerignore_matcher() -> None:
    patterns = ["*", "!pkg", "**/__pycache__", "**/*.py[cod]"]
    assert _ignored("tests/test_x.py", patterns)
    assert not _ignored("pkg/mod.py", patterns)
    assert _ignored("pkg/__pycache__/mod.cpython-312.pyc", patterns)
    assert _ignored("pkg/mod.pyc", patterns)


#: The pins the image installs with; written from the project's virtual
#: environment by `.venv/bin/pip freeze --exclude-editable > constraints.txt`.
CONSTRAINTS = "constraints.txt"


def _copy_sources(instructions: list[Instruction]) -> list[str]:
    """Return the build-context paths that COPY instructions read."""
    sources = []
    for instruction in instructions:
        if instruction.keyword != "COPY" or "--from=" in instruction.arguments:
            continue
        *names, _ = [
            a for a in instruction.arguments.split() if not a.startswith("--")
        ]
        sources.extend(names)
    return sources


def test_copy_sources_exist_and_reach_the_build(
    instructions: list[Instruction],
) -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = _copy_sources(instructions)
    assert CONSTRAINTS in sources
    for source in sources:
        assert not _ignored(source, patterns), f"{source} is dockerignored"
        path = ROOT / source
        if source == CONSTRAINTS:
            continue  # test_constraints_file_exists
        assert path.exists(), f"COPY {source}: missing from the repository"
        if path.is_dir():
            python = next(Path(path).rglob("*.py"))
            relative = python.relative_to(ROOT).as_posix()
            assert not _ignored(relative, patterns), relative


def test_constraints_file_exists() -> None:
    path = ROOT / CONSTRAINTS
    assert path.is_file()
    pins = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert pins
    assert all("==" in line for line in pins), "every line pins a version"


def test_project_is_installed_with_pinned_dependencies(
    instructions: list[Instruction],
) -> None:
    installs = [
        i.arguments
        for i in instructions
        if i.keyword == "RUN" and "pip install" in i.arguments
    ]
    assert installs
    for command in installs:
        assert "--constraint constraints.txt" in command, command
    assert any(command.rstrip().endswith(" .") for command in installs)
