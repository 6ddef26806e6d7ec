"""An SVG picture of a flow: statuses and transitions, rule-driven moves, ladders and colours.

Pure Python, no Graphviz: statuses are laid out in columns by their distance from the
initial status; transitions are arrows labelled with the event and who may send it
(solid), status changes that rules make are dashed (⚙ rule name); a move open to many
statuses (withdraw, a deadline rule) is written under the graph instead of drawn as a fan of
arrows; then each escalation ladder as a row of boxes, and the colours with their deadlines.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

from flows.model import ACTION_TARGETS, ACTORS, EVENT_NAMES, Flow, rule_statuses

_FONT = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif"
_BOX_H = 44
_COL_GAP = 160
_ROW_GAP = 60
_MARGIN = 30
# A move allowed from this many statuses or more is listed under the graph instead of drawn.
_FAN = 6
_FILL = {"red": "#fde2e1", "orange": "#ffe8cc", "yellow": "#fff6bf"}
_STROKE = {"red": "#c92a2a", "orange": "#e8590c", "yellow": "#e0a800"}


def _text_width(text: str, size: float) -> float:
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


@dataclass(frozen=True, slots=True)
class _Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    def border(self, toward_x: float, toward_y: float) -> tuple[float, float]:
        """Where the line from the centre toward a point leaves the box."""
        dx, dy = toward_x - self.cx, toward_y - self.cy
        if dx == 0 and dy == 0:
            return self.cx, self.cy
        scale = min(self.w / 2 / abs(dx) if dx else float("inf"), self.h / 2 / abs(dy) if dy else float("inf"))
        return self.cx + dx * scale, self.cy + dy * scale


def _layers(flow: Flow, edges: dict[tuple[str, str], list[str]], apart: set[str]) -> list[list[str]]:
    """Columns by breadth-first distance from the initial status; `apart` go in a last row."""
    depth = {flow.initial: 0}
    queue = deque([flow.initial])
    while queue:
        node = queue.popleft()
        for source, target in edges:
            if source == node and target not in depth and target not in apart:
                depth[target] = depth[node] + 1
                queue.append(target)
    deepest = max(depth.values(), default=0)
    for status in flow.statuses:
        if status not in apart:
            depth.setdefault(status, deepest + 1)
    columns: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
    for status in flow.statuses:  # YAML order within a column
        if status in depth:
            columns[depth[status]].append(status)
    return columns


def _sources(flow: Flow, names: Iterable[str]) -> str:
    return "、".join(flow.status_name(s) for s in names)


def render_svg(flow: Flow) -> str:
    # (label, target, drawn by a rule) -> sources; target None = the status stays
    moves: dict[tuple[str, str | None, bool], list[str]] = {}
    for t in flow.transitions:
        who = "/".join(ACTORS[a] for a in t.actors)
        sources = moves.setdefault((f"{EVENT_NAMES[t.event]}（{who}）", t.target, False), [])
        sources.extend(s for s in t.sources if s not in sources)
    for rule in flow.rules:
        candidates = rule_statuses(rule, flow.statuses, flow.transitions)
        for action in rule.actions:
            target = ACTION_TARGETS.get(action.kind)
            if target is not None:
                sources = moves.setdefault((f"⚙{rule.name}", target, True), [])
                sources.extend(s for s in flow.statuses if s in candidates and s not in sources
                               and not (action.kind == "close" and flow.is_final(s)))
    # a move open to many statuses is a note, not a fan of arrows
    edges: dict[tuple[str, str], list[str]] = {}
    dashed: set[tuple[str, str]] = set()
    notes: list[str] = []
    for (label, target, by_rule), sources in moves.items():
        if len(sources) >= _FAN:
            outcome = f"→ {flow.status_name(target)}" if target else "（状态不变）"
            notes.append(f"{label}：{_sources(flow, sources)} {outcome}")
            continue
        for source in sources:
            key = (source, target or source)
            edges.setdefault(key, []).append(label)
            if by_rule:
                dashed.add(key)
    touched = {s for pair in edges for s in pair}
    apart = {s for s in flow.statuses if flow.is_final(s) and s not in touched}
    columns = _layers(flow, edges, apart)

    size = 14
    boxes: dict[str, _Box] = {}
    x = float(_MARGIN)
    for column in columns:
        width = max(_text_width(flow.status_name(s), size) + 32 for s in column) if column else 80
        for row, status in enumerate(column):
            boxes[status] = _Box(x, _MARGIN + 40 + row * (_BOX_H + _ROW_GAP), width, _BOX_H)
        x += width + _COL_GAP
    y = max(b.y + b.h for b in boxes.values()) + _ROW_GAP
    x = float(_MARGIN)
    for status in flow.statuses:
        if status in apart:
            width = _text_width(flow.status_name(status), size) + 32
            boxes[status] = _Box(x, y, width, _BOX_H)
            x += width + 40
    graph_bottom = max(b.y + b.h for b in boxes.values()) + 30

    parts: list[str] = []
    add = parts.append
    add(f'<text x="{_MARGIN}" y="{_MARGIN}" font-size="18" font-weight="bold">{escape(flow.name)}'
        f' <tspan font-size="12" font-weight="normal" fill="#666">version {flow.version}</tspan></text>')

    def arrow(a: _Box, b: _Box, labels: list[str], dashed: bool, bend: float) -> None:
        stroke = "#868e96" if dashed else "#343a40"
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        marker = "url(#auto)" if dashed else "url(#arrow)"
        text = "；".join(labels)
        if a is b:  # a loop above the box
            x1, y1 = a.cx - 14, a.y
            add(f'<path d="M{x1:.1f},{y1:.1f} C{x1 - 10:.1f},{y1 - 36:.1f} {x1 + 38:.1f},{y1 - 36:.1f} '
                f'{x1 + 28:.1f},{y1:.1f}" fill="none" stroke="{stroke}"{dash} marker-end="{marker}"/>')
            lx, ly = a.cx, a.y - 30
        else:
            sx, sy = a.border(b.cx, b.cy)
            ex, ey = b.border(a.cx, a.cy)
            mx, my = (sx + ex) / 2, (sy + ey) / 2
            nx, ny = -(ey - sy), ex - sx
            length = max((nx * nx + ny * ny) ** 0.5, 1.0)
            cx, cy = mx + nx / length * bend, my + ny / length * bend
            add(f'<path d="M{sx:.1f},{sy:.1f} Q{cx:.1f},{cy:.1f} {ex:.1f},{ey:.1f}" fill="none" '
                f'stroke="{stroke}"{dash} marker-end="{marker}"/>')
            lx, ly = (sx + 2 * cx + ex) / 4, (sy + 2 * cy + ey) / 4
        width = _text_width(text, 11) + 6
        add(f'<rect x="{lx - width / 2:.1f}" y="{ly - 9:.1f}" width="{width:.1f}" height="14" fill="white" '
            'fill-opacity="0.85"/>')
        add(f'<text x="{lx:.1f}" y="{ly + 2:.1f}" font-size="11" text-anchor="middle" fill="{stroke}">'
            f'{escape(text)}</text>')

    for (source, target), labels in edges.items():
        backward = boxes[target].x <= boxes[source].x and source != target
        is_dashed = (source, target) in dashed
        arrow(boxes[source], boxes[target], labels, dashed=is_dashed,
              bend=-30.0 if is_dashed else (40.0 if backward else 0.0))

    for status, box in boxes.items():
        final = flow.is_final(status)
        fill = "#e9ecef" if final else ("#e7f5ff" if status == flow.initial else "#ffffff")
        add(f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h}" rx="8" fill="{fill}" '
            f'stroke="#343a40" stroke-width="{2.5 if final else 1.2}"/>')
        add(f'<text x="{box.cx:.1f}" y="{box.cy - 2:.1f}" font-size="{size}" text-anchor="middle">'
            f'{escape(flow.status_name(status))}</text>')
        add(f'<text x="{box.cx:.1f}" y="{box.cy + 13:.1f}" font-size="10" text-anchor="middle" fill="#666">'
            f'{escape(status)}</text>')

    y = graph_bottom
    for note in notes:
        add(f'<text x="{_MARGIN}" y="{y:.1f}" font-size="12" fill="#495057">{escape(note)}</text>')
        y += 18
    if notes:
        y += 20

    # ladders
    add(f'<text x="{_MARGIN}" y="{y:.1f}" font-size="16" font-weight="bold">上报阶梯 escalation ladders</text>')
    y += 20
    for ladder in flow.ladders.values():
        default = "（默认）" if ladder.id == flow.default_ladder else ""
        add(f'<text x="{_MARGIN}" y="{y + 27:.1f}" font-size="13">{escape(ladder.name + default)}</text>')
        x = _MARGIN + 150.0
        previous: _Box | None = None
        for step in ladder.steps:
            unit = flow.unit_name(step.unit or flow.office(step.level))
            width = max(_text_width(step.label, 13), _text_width(unit, 10)) + 24
            box = _Box(x, y, width, _BOX_H)
            add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{_BOX_H}" rx="6" fill="#f3f0ff" '
                'stroke="#5f3dc4"/>')
            add(f'<text x="{box.cx:.1f}" y="{y + 19:.1f}" font-size="13" text-anchor="middle">'
                f'{escape(step.label)}</text>')
            add(f'<text x="{box.cx:.1f}" y="{y + 34:.1f}" font-size="10" text-anchor="middle" fill="#666">'
                f'{escape(flow.level_name(step.level))} · {escape(unit)}</text>')
            if previous is not None:
                add(f'<line x1="{previous.x + previous.w:.1f}" y1="{previous.cy:.1f}" x2="{x - 2:.1f}" '
                    f'y2="{box.cy:.1f}" stroke="#5f3dc4" marker-end="url(#ladder)"/>')
            previous = box
            x += width + 40
        y += _BOX_H + 16

    # colours
    y += 20
    add(f'<text x="{_MARGIN}" y="{y:.1f}" font-size="16" font-weight="bold">颜色与时限 colours</text>')
    y += 14
    x = float(_MARGIN)
    for colour in flow.colours.values():
        lines = [f"{colour.name} {colour.rhythm}".strip(), f"办结 {colour.deadline}", f"进展 每 {colour.progress}"]
        width = max(_text_width(line, 12) for line in lines) + 24
        add(f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="62" rx="6" '
            f'fill="{_FILL.get(colour.id, "#f1f3f5")}" stroke="{_STROKE.get(colour.id, "#495057")}"/>')
        for i, line in enumerate(lines):
            add(f'<text x="{x + 12:.1f}" y="{y + 18 + i * 17:.1f}" font-size="12">{escape(line)}</text>')
        x += width + 16
    y += 62 + _MARGIN

    width = max([b.x + b.w for b in boxes.values()] + [x, 600.0]) + _MARGIN
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{y:.0f}" '
        f'viewBox="0 0 {width:.0f} {y:.0f}" font-family="{_FONT}">\n'
        "<defs>"
        + "".join(
            f'<marker id="{name}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
            for name, colour in (("arrow", "#343a40"), ("auto", "#868e96"), ("ladder", "#5f3dc4"))
        )
        + "</defs>\n"
        '<rect width="100%" height="100%" fill="white"/>\n'
    )
    return head + "\n".join(parts) + "\n</svg>\n"
