"""The flow engine (pure) and the admins' flow files: see flows/CONTRACT.md and docs/flows.md.

`flows` imports neither `bot`, `nlu` nor `integrations`.
"""

from flows.calendar import CalendarError, Duration, WorkCalendar
from flows.check import FlowError, check_flow_file, check_flow_text, load_flow, load_flow_text
from flows.directory import Area, DirectoryError, Grid, GridDirectory, Post, Worker
from flows.engine import (
    Action,
    Event,
    StepResult,
    TicketState,
    Timer,
    TransitionRefused,
    migrate,
    new_ticket,
    pending_timers,
    step,
)
from flows.model import CategoryRule, Flow
from flows.simulate import SimStep, simulate
from flows.source import Problem

__all__ = [
    "Action",
    "Area",
    "CalendarError",
    "CategoryRule",
    "DirectoryError",
    "Duration",
    "Event",
    "Flow",
    "FlowError",
    "Grid",
    "GridDirectory",
    "Post",
    "Problem",
    "SimStep",
    "StepResult",
    "TicketState",
    "Timer",
    "TransitionRefused",
    "WorkCalendar",
    "Worker",
    "check_flow_file",
    "check_flow_text",
    "load_flow",
    "load_flow_text",
    "migrate",
    "new_ticket",
    "pending_timers",
    "simulate",
    "step",
]
