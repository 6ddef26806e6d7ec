"""Prometheus metrics, in a registry of the app's own (no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "gridbot_messages_total",
            "Messages received, by channel and intent",
            ["channel", "intent"],
            registry=self.registry,
        )
        self.tickets_opened = Counter(
            "gridbot_tickets_opened_total",
            "Tickets opened, by channel and category",
            ["channel", "category"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gridbot_message_seconds",
            "Time to answer one message, by channel",
            ["channel"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.errors = Counter(
            "gridbot_errors_total", "Errors, by where they happened", ["where"], registry=self.registry
        )
        self.duplicates = Counter(
            "gridbot_duplicate_messages_total",
            "Provider retries dropped, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.nlu_fallbacks = Counter(
            "gridbot_nlu_fallbacks_total",
            "Rasa calls that fell back to the embedded NLU",
            ["reason"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
