"""The metric registry: every metric defined once (name, label, definition), dbt-style.

The definitions live in ``metrics.yaml`` beside this module, grouped by the module that computes
them and the test that checks their exact values (like dbt's metric files). The board pack, the
email and ``docs/metrics.md`` all take labels and definitions from here, so a metric cannot mean
one thing in the PDF and another in the email. ``{customers}`` in a label or definition is
replaced by the configured terminology.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["Metric", "METRICS", "METRICS_FILE", "metric", "label", "register"]

#: The definitions (see the module docstring).
METRICS_FILE = Path(__file__).with_name("metrics.yaml")


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    definition: str
    unit: str  # "count", "money", "ratio", "days", "number"
    module: str  # where the code lives
    test: str  # where its exact-value test lives

    def render(self, customers: str = "customers", customer: str = "customer") -> "Metric":
        fill = lambda text: text.replace("{customers}", customers).replace("{customer}", customer)  # noqa: E731
        return Metric(self.name, fill(self.label), fill(self.definition), self.unit, self.module, self.test)


METRICS: dict[str, Metric] = {}


def register(*metrics: Metric) -> None:
    for m in metrics:
        if m.name in METRICS:
            raise ValueError(f"metric {m.name!r} registered twice")
        METRICS[m.name] = m


def metric(name: str, customers: str = "customers", customer: str = "customer") -> Metric:
    return METRICS[name].render(customers, customer)


def label(name: str, customers: str = "customers", customer: str = "customer") -> str:
    return metric(name, customers, customer).label


def _load(path: Path) -> list[Metric]:
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return [Metric(m["name"], m["label"], m["definition"], m["unit"], group["module"], group["test"])
            for group in groups for m in group["metrics"]]


register(*_load(METRICS_FILE))
