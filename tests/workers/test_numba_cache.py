"""The image's prebuilt numba cache reaches a pod's writable cache dir."""

from __future__ import annotations

from tests.helm.test_dockerfile import DOCKERFILE, parse
from workers.numba_cache import CACHE_ENV, SEED_ENV, seed_numba_cache


def test_seed_is_copied_once_and_kept(tmp_path):
    seed, target = tmp_path / "seed", tmp_path / "pod" / "numba"
    (seed / "pipeline_abc").mkdir(parents=True)
    (seed / "pipeline_abc" / "f-12.py312.nbi").write_bytes(b"index")
    (seed / "pipeline_abc" / "f-12.py312.1.nbc").write_bytes(b"code")
    environ = {SEED_ENV: str(seed), CACHE_ENV: str(target)}
    assert seed_numba_cache(environ) == 2
    assert (target / "pipeline_abc" / "f-12.py312.1.nbc").read_bytes() == (
        b"code"
    )
    # What a process compiled or loaded since is never overwritten.
    (target / "pipeline_abc" / "f-12.py312.nbi").write_bytes(b"newer")
    assert seed_numba_cache(environ) == 0
    assert (target / "pipeline_abc" / "f-12.py312.nbi").read_bytes() == (
        b"newer"
    )
    assert not list(target.rglob(".seed-*"))


def test_nothing_happens_without_both_settings(tmp_path):
    assert seed_numba_cache({}) == 0
    assert seed_numba_cache({SEED_ENV: str(tmp_path)}) == 0
    assert seed_numba_cache({CACHE_ENV: str(tmp_path)}) == 0
    missing = {SEED_ENV: str(tmp_path / "no"), CACHE_ENV: str(tmp_path)}
    assert seed_numba_cache(missing) == 0


def test_image_compiles_the_cache_and_ships_it():
    instructions = parse(DOCKERFILE.read_text())
    final = max(i.stage for i in instructions)
    build_env = " ".join(
        i.arguments
        for i in instructions
        if i.keyword == "ENV" and i.stage == 0
    )
    assert "NUMBA_CACHE_DIR=/opt/numba-cache" in build_env
    assert any(
        i.keyword == "RUN" and i.stage == 0 and "warm_up()" in i.arguments
        for i in instructions
    )
    assert any(
        i.keyword == "COPY"
        and i.stage == final
        and i.arguments.endswith("/opt/numba-cache /opt/numba-cache")
        for i in instructions
    )
    runtime_env = " ".join(
        i.arguments
        for i in instructions
        if i.keyword == "ENV" and i.stage == final
    )
    assert f"{SEED_ENV}=/opt/numba-cache" in runtime_env
    assert "NUMBA_CACHE_DIR=/tmp/numba" in runtime_env
    # One CPU name at build and run time, or numba's cache misses.
    assert "NUMBA_CPU_NAME=generic" in build_env
    assert "NUMBA_CPU_NAME=generic" in runtime_env
