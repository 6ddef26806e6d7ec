"""``gridbot nlu train / eval / parse`` end to end, on a subset of the real complaints data,
and the messages a user gets for bad files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot import cli_nlu
from nlu.byo import TsvError, read_tsv
from nlu.embedded import EmbeddedNlu

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridbot")
    cli_nlu.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


@pytest.fixture(scope="module")
def trained_cache(embedded: EmbeddedNlu, nlu_cache: Path) -> Path:
    """The session's model cache, filled: the CLI in a subprocess loads instead of training."""
    return nlu_cache


@pytest.fixture(scope="module")
def byo_split(complaints_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """1,600 titles to train on and 400 others to evaluate on (every 5th line), deterministic."""
    lines = (complaints_dir / "train_titles.tsv").read_text(encoding="utf-8").splitlines()[:2000]
    folder = tmp_path_factory.mktemp("byo")
    train, held = folder / "train.tsv", folder / "held.tsv"
    train.write_text("\n".join(line for i, line in enumerate(lines) if i % 5) + "\n", encoding="utf-8")
    held.write_text("\n".join(line for i, line in enumerate(lines) if not i % 5) + "\n", encoding="utf-8")
    return train, held


@pytest.fixture(scope="module")
def byo_model(byo_split: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "m"
    assert run(["nlu", "train", "--tsv", str(byo_split[0]), "--out", str(out)]) == 0
    return out


def test_train_writes_a_model_without_pickles(byo_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in byo_model.iterdir()) == ["category.json", "category.npz"]


def test_eval_prints_scores_and_confusion_matrix(
    byo_model: Path, byo_split: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plot = tmp_path / "cm.png"
    assert run(["nlu", "eval", "--model", str(byo_model), "--tsv", str(byo_split[1]), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "macro-F1" in out and "p99" in out
    assert "城乡建设" in out and "confusion matrix" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_json(byo_model: Path, byo_split: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["nlu", "eval", "--model", str(byo_model), "--tsv", str(byo_split[1]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "p50_ms", "p99_ms", "confusion", "labels"} <= set(report)
    assert report["messages"] == 400
    assert report["accuracy"] > 0.75 and report["macro_f1"] > 0.7  # 1,600 titles only; bench uses all data
    assert set(report["per_class"]["城乡建设"]) == {"precision", "recall", "f1", "support"}
    assert sum(c["support"] for c in report["per_class"].values()) == 400
    assert report["p50_ms"] <= report["p99_ms"] < 50


def test_parse_with_a_byo_model_takes_its_categories(byo_model: Path, trained_cache: Path) -> None:
    command = [sys.executable, "-m", "bot", "nlu", "parse", "--json", "--model", str(byo_model)]
    done = subprocess.run(
        [*command, "--cache", str(trained_cache)],
        input="小区门口的道路坏了好久没人修\n谢谢\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    first, second = (json.loads(line) for line in done.stdout.splitlines())
    assert first["intent"] == "report_issue" and first["category"] == "城乡建设"
    assert second["intent"] == "thanks" and second["category"] is None


def test_parse_json_lines_from_stdin(trained_cache: Path) -> None:
    messages = ["楼下着火了冒烟", "帮我查下 wg 2026 1122 0001", "", "😀", "噪音扰民，电话13812345678，住建设路88号"]
    done = subprocess.run(
        [sys.executable, "-m", "bot", "nlu", "parse", "--json", "--cache", str(trained_cache)],
        input="\n".join(messages) + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["text"] for r in rows] == messages
    for r in rows:
        assert {"text", "intent", "confidence", "category", "entities", "emergency"} <= set(r)
    assert rows[0]["emergency"] is True and rows[0]["category"] == "fire_safety"
    assert rows[1]["intent"] == "query_status" and rows[1]["category"] is None
    assert rows[1]["entities"] == [{"entity": "ticket_number", "value": "WG202611220001", "start": 5, "end": 22}]
    assert rows[2]["intent"] == rows[3]["intent"] == "greet" and rows[2]["confidence"] == 0
    assert rows[4]["category"] == "noise"
    found = {(e["entity"], e["value"]) for e in rows[4]["entities"]}
    assert found == {("phone", "13812345678"), ("address", "建设路88号")}


def test_missing_label_column_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = tmp_path / "bad.tsv"
    tsv.write_text("路灯坏了\t城乡建设\n\n工资拖欠\t劳动和社会保障\n噪音太大了\n", encoding="utf-8")
    with pytest.raises(TsvError, match=rf"^{tsv}:4: missing label column"):
        read_tsv([tsv])
    assert run(["nlu", "train", "--tsv", str(tsv), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert f"{tsv}:4: missing label column" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"a\tb\tc\n", ":1: 3 columns"),
        (b"\t\xe5\x9f\x8e\n", ":1: empty text"),
        (b"ok\tx\n\xff\xfe\tx\n", ":2: not UTF-8"),
        (b"only\tone\nlabel\tone\n", "only one label"),
    ],
)
def test_other_bad_tsv(tmp_path: Path, content: bytes, problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = tmp_path / "bad.tsv"
    tsv.write_bytes(content)
    assert run(["nlu", "train", "--tsv", str(tsv), "--out", str(tmp_path / "m")]) == 2
    assert problem in capsys.readouterr().err


def test_eval_of_a_directory_without_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tsv = tmp_path / "x.tsv"
    tsv.write_text("路灯坏了\t城乡建设\n", encoding="utf-8")
    assert run(["nlu", "eval", "--model", str(tmp_path), "--tsv", str(tsv)]) == 2
    assert "no model 'category'" in capsys.readouterr().err


def test_parse_with_broken_training_data_exits_non_zero(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "categories.yml").write_text("categories:\n  - id: noise\n    name_zh: 噪音扰民\n", encoding="utf-8")
    (data / "nlu.yml").write_text('version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n  - x: [\n')
    done = subprocess.run(
        [sys.executable, "-m", "bot", "nlu", "parse", "--data", str(data), "--cache", str(tmp_path / "c")],
        input="你好\n",
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert f"{data / 'nlu.yml'}:" in done.stderr and "invalid YAML" in done.stderr
