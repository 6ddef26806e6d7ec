"""`gridbot flows …`: check, simulate, diagram and directory from the command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot import cli_flows
from tests.flows.conftest import DEFAULT_FLOW, DEFAULT_TEMPLATES, SAMPLE_DIRECTORY


@pytest.fixture(autouse=True)
def templates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every template the default flow names, in the config's override directory."""
    for name in DEFAULT_TEMPLATES:
        path = tmp_path / "templates" / f"{name}.j2"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("工单 {{ t.number }}", encoding="utf-8")
    monkeypatch.setenv("GRIDBOT_TEMPLATES__OVERRIDE_DIR", str(tmp_path / "templates"))


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="gridbot")
    cli_flows.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_check_passes_the_default_flow(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("flows", "check", str(DEFAULT_FLOW)) == 0
    out = capsys.readouterr().out
    assert f"{DEFAULT_FLOW}: ok" in out


def test_check_fails_with_located_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEFAULT_FLOW.read_text(encoding="utf-8").replace("to: accepted,", "to: acepted,"), "utf-8")
    assert run("flows", "check", str(DEFAULT_FLOW), str(broken)) == 1
    out = capsys.readouterr().out
    assert f"{broken}:" in out and "unknown status 'acepted'" in out and "1 error(s)" in out


def test_simulate_prints_the_timeline(capsys: pytest.CaptureFixture[str]) -> None:
    code = run("flows", "simulate", str(DEFAULT_FLOW), "--category", "noise", "--start", "2026-09-30T16:00+08:00",
               "--events", "accepted@+1h,resolved@+3d,rated:1@+4d")
    out = capsys.readouterr().out
    assert code == 0
    assert "2026-10-08 16:00 周四" in out  # the deadline after National Day
    assert "重新打开 → 街道 街道社会治理分中心  [bad_rating]" in out
    assert "红牌" in out


def test_simulate_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = run("flows", "simulate", str(DEFAULT_FLOW), "--category", "noise", "--start", "2026-11-24T10:00",
               "--events", "accepted@+1h,resolved@+3h,rated:5@+1d", "--json")
    steps = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [(s["event"], s["state"], s["level"], s["colour"], s["card"]) for s in steps] == [
        ("new", "dispatched", "grid", "red", None),
        ("accept", "accepted", "grid", "red", None),
        ("resolve", "resolved", "grid", "red", None),
        ("rate", "closed", "grid", "red", None),
    ]
    assert steps[0]["at"] == "2026-11-24T10:00:00+08:00"  # a start without a zone is the flow's zone
    assert {"kind", "rule", "params"} == set(steps[0]["actions"][0])


def test_simulate_refuses_an_unknown_category(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("flows", "simulate", str(DEFAULT_FLOW), "--category", "ufo", "--start", "2026-11-24T10:00") == 2
    assert "unknown category 'ufo'" in capsys.readouterr().err


def test_simulate_refuses_a_bad_event_script(capsys: pytest.CaptureFixture[str]) -> None:
    code = run("flows", "simulate", str(DEFAULT_FLOW), "--category", "noise", "--start", "2026-11-24T10:00",
               "--events", "accepted")
    assert code == 2 and "cannot read event 'accepted'" in capsys.readouterr().err


def test_diagram_writes_an_svg(tmp_path: Path) -> None:
    out = tmp_path / "flow.svg"
    assert run("flows", "diagram", str(DEFAULT_FLOW), "--out", str(out)) == 0
    assert out.read_text(encoding="utf-8").startswith("<svg")


def test_directory_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("flows", "directory", str(SAMPLE_DIRECTORY)) == 0
    assert "12 grids, 24 workers, 9 staff" in capsys.readouterr().out
    bad = tmp_path / "grids.yaml"
    bad.write_text("district: {code: D1}\nstreets: []\n", encoding="utf-8")
    assert run("flows", "directory", str(bad)) == 1
    assert f"{bad}:1:" in capsys.readouterr().out
