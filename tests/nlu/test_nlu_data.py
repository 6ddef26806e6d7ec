"""The training data is the single source for both backends: its shape, its size, and the
errors an admin gets when editing it goes wrong."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from nlu.dataset import TrainingDataError, load_nlu_data, nlu_files, split_intent, strip_annotations
from nlu.embedded import EmbeddedNlu
from nlu.heldout import load_heldout
from nlu.taxonomy import CATEGORIES_FILE, DATA_DIR, load_categories
from nlu.types import INTENTS, Entity

CONTRACT = {
    "noise": "噪音扰民",
    "sanitation": "环境卫生",
    "street_vending": "占道经营",
    "illegal_construction": "违章搭建",
    "public_facilities": "市政设施",
    "utilities": "水电气暖",
    "property_management": "物业服务",
    "traffic_parking": "交通与停车",
    "fire_safety": "消防安全",
    "public_security": "治安隐患",
    "dispute": "矛盾纠纷",
    "wage_arrears": "劳动保障",
    "pollution": "环境污染",
    "greening": "园林绿化",
    "animals": "动物管理",
    "social_assistance": "民生求助",
}


def test_categories_file_holds_the_contract_ids_and_names() -> None:
    categories = load_categories()
    assert {c.id: c.name_zh for c in categories if c.id != "other"} == CONTRACT
    assert categories[-1].id == "other"
    assert all(c.description for c in categories)


def test_enough_examples_per_category_and_intent() -> None:
    data = load_nlu_data()
    per_category = Counter(e.category for e in data.examples if e.category)
    per_intent = Counter(e.intent for e in data.examples)
    assert set(per_category) == {c.id for c in load_categories()}
    assert min(per_category.values()) >= 40, per_category
    assert set(per_intent) == set(INTENTS)
    assert min(per_intent.values()) >= 20, per_intent
    texts = [e.text for e in data.examples]
    assert len(texts) == len(set(texts)), [t for t, n in Counter(texts).items() if n > 1]


def test_rasa_files_are_version_3_1_and_regexes_cover_the_entities() -> None:
    files = nlu_files()
    assert {f.name for f in files} == {"nlu.yml", "report_issue.yml"}
    for f in files:
        assert yaml.safe_load(f.read_text(encoding="utf-8"))["version"] == "3.1"
    data = load_nlu_data()
    assert {"ticket_number", "phone", "address"} <= {name for name, _ in data.regexes}
    assert "幸福里小区" in data.lookup("address")
    annotated = {e.entity for ex in data.examples for e in ex.entities}
    assert {"ticket_number", "phone", "address"} <= annotated  # Rasa's RegexEntityExtractor needs these


@pytest.mark.parametrize("name", ["heldout.tsv", "fresh.tsv"])
def test_heldout_sets_are_not_in_the_training_data(name: str) -> None:
    cases = load_heldout(DATA_DIR / "eval" / name)
    assert len(cases) >= 130
    training = {e.text for e in load_nlu_data().examples}
    assert not [c.text for c in cases if c.text in training]
    assert sum(c.emergency_kind is not None for c in cases) >= 14
    assert len({c.category for c in cases if c.category}) == len(load_categories())
    assert {c.intent for c in cases} == set(INTENTS)


def test_report_intents_map_back_to_category() -> None:
    assert split_intent("report_issue+noise") == ("report_issue", "noise")
    assert split_intent("greet") == ("greet", None)


def test_annotations_are_stripped_with_offsets() -> None:
    text, entities = strip_annotations('电话[13812345678](phone)，住[阳光花园]{"entity": "address"}3栋')
    assert text == "电话13812345678，住阳光花园3栋"
    assert entities == (Entity("phone", "13812345678", 2, 13), Entity("address", "阳光花园", 15, 19))


def _copy_data(tmp_path: Path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    return target


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    nlu = data / "nlu.yml"
    lines = nlu.read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("- intent: greet"))
    lines[at + 1] = '  examples: "unclosed'
    nlu.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError) as err:
        load_nlu_data(data, data / "categories.yml")
    message = str(err.value)
    assert message.startswith(f"{nlu}:")
    line = int(message.split(":")[1])
    assert abs(line - (at + 2)) <= 2, message
    assert "invalid YAML" in message


@pytest.mark.parametrize(
    ("replace", "by", "problem"),
    [
        ("- intent: greet\n", "- intent: greeting\n", "unknown intent 'greeting'"),
        ("- intent: deny\n", "- intent: report_issue+weather\n", "unknown category 'weather'"),
        ("    - 你好\n", "    你好\n", "expected '- example'"),
        ("- regex: phone\n  examples: |\n", "- regex: phone\n  examples: |\n    - ([0-9]\n", "bad regex"),
    ],
)
def test_semantic_errors_name_file_and_line(tmp_path: Path, replace: str, by: str, problem: str) -> None:
    data = _copy_data(tmp_path)
    nlu = data / "nlu.yml"
    text = nlu.read_text(encoding="utf-8")
    assert replace in text
    nlu.write_text(text.replace(replace, by, 1), encoding="utf-8")
    expected_line = text[: text.index(replace)].count("\n") + 1
    with pytest.raises(TrainingDataError) as err:
        load_nlu_data(data, data / "categories.yml")
    message = str(err.value)
    assert problem in message
    file_name, line, _ = message.split(":", 2)
    assert file_name == str(nlu)
    assert expected_line <= int(line) <= expected_line + 3


def test_embedded_backend_refuses_broken_data(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "report_issue.yml").write_text("version: '3.1'\nnlu:\n- intent: [oops\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"report_issue\.yml:\d+: invalid YAML"):
        EmbeddedNlu(data_dir=data, categories_file=data / "categories.yml")


def test_categories_file_is_the_one_the_data_is_checked_against(tmp_path: Path) -> None:
    data = _copy_data(tmp_path)
    (data / "categories.yml").write_text(
        CATEGORIES_FILE.read_text(encoding="utf-8").replace("- id: greening", "- id: trees"), encoding="utf-8"
    )
    with pytest.raises(TrainingDataError, match="unknown category 'greening'"):
        load_nlu_data(data, data / "categories.yml")
