"""A simple SVG plan of the grid polygons from the directory, with a dot where a ticket is.

No map tiles (the machines have no internet): the polygons are drawn in an equirectangular
projection scaled by cos(latitude), which is accurate enough at a district's size.
"""

from __future__ import annotations

import math
from html import escape

from bot.tickets import Ticket
from flows import GridDirectory

WIDTH = 640


def plan_svg(directory: GridDirectory, highlight: str | None = None, dot: tuple[float, float] | None = None) -> str:
    """The plan of every grid; `highlight` a grid code, `dot` a (lat, lon)."""
    points = [p for g in directory.grids for p in g.polygon]
    if dot is not None:
        points.append((dot[1], dot[0]))
    if not points:
        return ""
    lons = [p[0] for p in points]
    lats = [p[1] for p in points]
    k = math.cos(math.radians(sum(lats) / len(lats)))
    span_x = max((max(lons) - min(lons)) * k, 1e-9)
    span_y = max(max(lats) - min(lats), 1e-9)
    scale = (WIDTH - 20) / span_x
    height = span_y * scale + 20

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return 10 + (lon - min(lons)) * k * scale, 10 + (max(lats) - lat) * scale

    shapes = []
    for g in directory.grids:
        if not g.polygon:
            continue
        coords = [xy(lon, lat) for lon, lat in g.polygon]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        cx = sum(x for x, _ in coords) / len(coords)
        cy = sum(y for _, y in coords) / len(coords)
        fill = "#ffd166" if g.code == highlight else "#e8f1fb"
        shapes.append(
            f"<g><title>{escape(g.name)}（{escape(g.code)}）</title>"
            f'<polygon points="{path}" fill="{fill}" stroke="#12355b" stroke-width="1"/>'
            f'<text x="{cx:.1f}" y="{cy:.1f}" font-size="10" text-anchor="middle">{escape(g.name)}</text></g>'
        )
    if dot is not None:
        x, y = xy(dot[1], dot[0])
        shapes.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="#d00000" stroke="#fff" stroke-width="2">'
            "<title>反映位置</title></circle>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" width="100%" '
        f'role="img" aria-label="网格平面图">{"".join(shapes)}</svg>'
    )


def plan_for(directory: GridDirectory | None, ticket: Ticket) -> str:
    """The plan with the ticket's grid highlighted and its reported point, if any."""
    if directory is None:
        return ""
    dot = (ticket.lat, ticket.lon) if ticket.lat is not None and ticket.lon is not None else None
    return plan_svg(directory, ticket.grid_code, dot)
