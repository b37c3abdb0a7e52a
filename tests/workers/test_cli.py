"""The ``recreate`` command: output, exit codes, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import free_port
from workers.cli import main


def _key(ci_repo, fraction_ok):
    for key, fraction in sorted(ci_repo.coverage.items()):
        if fraction_ok(fraction):
            return tuple(map(int, key.split("/")))
    pytest.fail("no such key in the ci repository")


def test_info_prints_the_summary(ci_repo, capsys):
    assert main(["info", "--repo", str(ci_repo.root)]) == 0
    out = capsys.readouterr().out
    assert "visit_images:     72" in out
    assert "LSSTComCam" in out


def test_run_reuses_an_existing_repository_then_serves(
    ci_repo, capsys, monkeypatch
):
    served = []
    monkeypatch.setattr(
        "workers.serve.serve",
        lambda settings, announce, sock: served.append(
            (settings, announce, sock.getsockname()[1])
        ),
    )
    port = free_port()
    assert main(["run", "--repo", str(ci_repo.root), "--port", str(port)]) == 0
    out = capsys.readouterr().out
    assert "simulating" not in out
    assert "template patches:" in out
    ((settings, announce, bound),) = served
    assert settings.butler_repo == str(ci_repo.root)
    assert settings.port == bound == port
    assert announce


def test_inputs_as_json(ci_repo, capsys):
    visit, detector = _key(ci_repo, lambda f: f == 1.0)
    code = main(
        [
            "inputs",
            str(visit),
            str(detector),
            "--repo",
            str(ci_repo.root),
            "--json",
        ]
    )
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert found["visit"] == visit
    assert found["visit_image"]["dataset_type"] == "visit_image"
    assert all(
        t["dataset_type"] == "template_coadd" for t in found["templates"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["inputs", "2024110900999", "4"], "visit 2024110900999"),
        (["inputs", "VISIT", "4"], "'VISIT' is not an integer"),
        (["inputs", "2024110900001", "-3"], "-3"),
        (["inputs", "2024110900001", "17"], "detector 17"),
    ],
)
def test_bad_input_is_one_line_naming_the_value(
    ci_repo, capsys, args, message
):
    assert _exit_code([*args, "--repo", str(ci_repo.root)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def _exit_code(args):
    """Run the command; argparse's own errors exit through SystemExit."""
    try:
        return main(args)
    except SystemExit as exit_:
        return exit_.code


def test_simulate_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "x").write_text("keep me")
    assert main(["simulate", "--repo", str(tmp_path)]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert (tmp_path / "x").read_text() == "keep me"


def test_failed_simulation_leaves_nothing(tmp_path, monkeypatch):
    from recreate.simulate import repository

    def explode(*_args):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(repository, "_render_visit_file", explode)
    target = tmp_path / "repo"
    with pytest.raises(RuntimeError, match="renderer failed"):
        repository.simulate_repository(target, "ci", 1, jobs=1)
    assert list(tmp_path.iterdir()) == []


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "workers.cli", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for command in ("simulate", "info", "inputs", "run"):
        assert command in out


@pytest.mark.parametrize(
    "command",
    [
        ["get", "2024110900001", "4", "-o", "{out}"],
        ["prewarm", "--visits", "2024110900001"],
    ],
)
def test_a_service_that_is_down_is_one_line(command, tmp_path, capsys):
    port = free_port()
    args = [part.format(out=tmp_path / "x.fits") for part in command]
    assert main([*args, "--url", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"cannot reach the service at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["serve", "run"])
def test_a_taken_port_is_one_line_before_anything_starts(
    command, ci_repo, tmp_path
):
    import socket
    import time

    recreate = str(Path(sys.executable).parent / "recreate")
    # serve: a real repository, so that the port is what fails; run: a
    # new one, which must not be simulated before the port is tried.
    repo = ci_repo.root if command == "serve" else tmp_path / "new-repo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        done = subprocess.run(
            [recreate, command, "--repo", str(repo), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"recreate: error: port {port} on 127.0.0.1 is in use; choose "
        "another with --port (make run PORT=...) or RECREATE_PORT\n"
    )
    # Nothing was simulated or started before the port was tried.
    assert not (tmp_path / "new-repo").exists()
    assert elapsed < 30


def test_serve_names_a_missing_repository_in_one_line(tmp_path, capsys):
    port = free_port()
    missing = tmp_path / "nowhere"
    code = main(["serve", "--repo", str(missing), "--port", str(port)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no Butler repository at" in err
    assert "recreate simulate --repo" in err
