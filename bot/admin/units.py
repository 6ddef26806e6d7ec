"""Which grid, community and street a ticket counts for in the assessment (from the directory)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.admin.figures import Unit
from bot.tickets import Ticket
from flows import GridDirectory


def units_of(directory: GridDirectory | None) -> Callable[[Ticket], Sequence[Unit]]:
    """A ticket counts for its grid and for the community and street above it; unroutable: none."""

    def lookup(ticket: Ticket) -> Sequence[Unit]:
        grid = directory.grid(ticket.grid_code) if directory is not None and ticket.grid_code else None
        if grid is None:
            return ()
        return (
            Unit("街道", grid.street_code, grid.street),
            Unit("社区", grid.community_code, grid.community),
            Unit("网格", grid.code, grid.name),
        )

    return lookup
