"""flows diagram: an SVG an admin can open, showing statuses, moves, ladders and colours."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from flows import Flow
from flows.diagram import render_svg

SVG = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    return ["".join(t.itertext()) for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_the_diagram_is_well_formed_svg_with_every_status(flow: Flow) -> None:
    svg = render_svg(flow)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and float(root.get("width", "0")) > 600
    shown = texts(svg)
    for status in flow.statuses.values():
        assert status.name in shown and status.id in shown


def test_the_ladders_and_colours_are_drawn(flow: Flow) -> None:
    shown = " ".join(texts(render_svg(flow)))
    labels = ("网格首诊", "村社坐诊", "街镇接诊", "区级会诊", "一级响应", "二级响应", "两级响应（默认）", "四级分诊")
    for label in labels:
        assert label in shown
    assert "红色 日清周进" in shown and "办结 22 working days" in shown


def test_transitions_are_labelled_with_event_and_actor(flow: Flow) -> None:
    shown = " ".join(texts(render_svg(flow)))
    assert "受理（承办人）" in shown
    assert "⚙不满意，升一级重办" in shown  # a move a rule makes
    # withdraw is open to seven statuses: written once under the graph, not drawn seven times
    assert sum("撤回（居民/坐席）" in t for t in texts(render_svg(flow))) == 1


def test_names_are_escaped(flow: Flow) -> None:
    from dataclasses import replace

    odd = replace(flow, name="<流程 & 测试>")
    assert "&lt;流程 &amp; 测试&gt;" in render_svg(odd)
    ET.fromstring(render_svg(odd))
