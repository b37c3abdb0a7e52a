"""The README's examples are true: its key exists, its code runs."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

README = Path(__file__).resolve().parents[2] / "README.md"
#: What ``make run`` simulates: the demo preset, seed 1 (the default).
DEMO_SEED = 1


def _readme() -> str:
    return README.read_text()


def _curl_key(text: str) -> tuple[int, int]:
    match = re.search(r"curl -fsS .*?/api/v1/diffims/(\d+)/(\d+)", text)
    assert match, "no curl example in the README"
    return int(match[1]), int(match[2])


def _python_example(text: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    (example,) = [b for b in blocks if "from recreate.client" in b]
    return example


def test_the_readmes_key_is_in_the_demo_repository_and_covered():
    from recreate.simulate.coverage import coverage_fraction
    from recreate.simulate.presets import PRESETS
    from recreate.simulate.scene import template_footprints, visit_wcs
    from recreate.simulate.survey import plan_survey

    text = _readme()
    visit, detector = _curl_key(text)
    assert f"client.get({visit}, {detector})" in _python_example(text)
    plan = plan_survey(PRESETS["demo"], DEMO_SEED)
    (found,) = [v for v in plan.visits if v.visit == visit]
    camera = plan.preset.camera
    assert detector in camera.detectors
    coverage = coverage_fraction(
        visit_wcs(plan, found, detector),
        (camera.height, camera.width),
        template_footprints(plan, found.band),
    )
    assert coverage >= 0.99
    # The example's campaign selects that night.
    day = int(str(visit)[:8])
    assert f'"day_obs_range": [{day}, {day}]' in _python_example(text)


def test_the_readmes_examples_run_against_the_ci_repository(
    api_url,
    full_key,
    tmp_path,
    monkeypatch,
    capsys,
    cache_redis,
    control_redis,
):
    text = _readme()
    demo_visit, demo_detector = _curl_key(text)
    visit, detector = full_key
    # The curl command, as httpx.
    curled = httpx.get(
        f"{api_url}/api/v1/diffims/{visit}/{detector}", timeout=120
    )
    assert curled.status_code == 200, curled.text
    assert curled.headers["content-type"] == "application/fits"
    # The Python example, with the ci repository's key and night.
    day, demo_day = str(visit)[:8], str(demo_visit)[:8]
    example = (
        _python_example(text)
        .replace("http://localhost:8080", api_url)
        .replace(f"{demo_visit}, {demo_detector}", f"{visit}, {detector}")
        .replace(demo_day, day)
        .replace(
            f'"detectors": [{demo_detector}]', f'"detectors": [{detector}]'
        )
    )
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102 - our README
    written = tmp_path / "diffim.fits"
    assert written.read_bytes() == curled.content
    counts = capsys.readouterr().out
    assert "'queued': 0" in counts
    assert "'running': 0" in counts
