"""The metric registry: every metric defined once (name, label, definition), dbt-style.

The board pack, the email summary and ``docs/metrics.md`` all take labels and definitions
from here, so a metric cannot mean one thing in the PDF and another in the email.
``{customers}`` in a label or definition is replaced by the configured terminology.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Metric", "METRICS", "metric", "label", "register"]


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


_BRIDGE = ("cxpipeline/metrics/bridge.py", "tests/test_bridge.py")
_LEDGER = ("cxpipeline/metrics/ledger.py", "tests/test_ledger.py")

register(
    Metric("revenue_previous", "Revenue, comparison period", "Net revenue (sales minus returns) of all {customers} in the comparison period P-1.", "money", *_BRIDGE),
    Metric("revenue_current", "Revenue, this period", "Net revenue (sales minus returns) of all {customers} in the period P.", "money", *_BRIDGE),
    Metric("bridge_new", "New {customers}", "{customers} whose first-ever purchase is in P; value = their revenue in P.", "money", *_BRIDGE),
    Metric("bridge_reactivated", "Reactivated {customers}", "{customers} who bought before, had no net revenue in P-1 and buy in P; value = their change in revenue.", "money", *_BRIDGE),
    Metric("bridge_increased", "Increased spend", "{customers} buying in both periods who spent more in P than in P-1; value = the increase.", "money", *_BRIDGE),
    Metric("bridge_decreased", "Decreased spend", "{customers} buying in both periods who spent less in P than in P-1; value = the decrease (negative).", "money", *_BRIDGE),
    Metric("bridge_flat", "Unchanged spend", "{customers} buying in both periods with exactly the same revenue (to the cent).", "money", *_BRIDGE),
    Metric("bridge_stopped", "Stopped buying", "{customers} with revenue in P-1 and none (or only returns) in P; value = minus their P-1 revenue (and any returns in P).", "money", *_BRIDGE),
    Metric("bridge_returns_only", "Returns without purchases", "{customers} with no purchase in either period whose returns of older purchases changed revenue.", "money", *_BRIDGE),
    Metric("ledger_opening", "Active base at start", "{customers} whose last purchase before the start of P is within the lapse window.", "count", *_LEDGER),
    Metric("ledger_new", "Gained: new", "{customers} whose first-ever purchase is in P.", "count", *_LEDGER),
    Metric("ledger_reactivated", "Gained: won back", "{customers} who had lapsed (not active at the start of P) and bought again in P.", "count", *_LEDGER),
    Metric("ledger_lapsed", "Lost: lapsed", "{customers} active at some point in P whose last purchase is more than the lapse window before the end of P; value = their trailing 12-month revenue up to their last purchase.", "count", *_LEDGER),
    Metric("ledger_closing", "Active base at end", "{customers} whose last purchase before the end of P is within the lapse window. Opening + new + won back - lapsed = closing.", "count", *_LEDGER),
    Metric("count_gained", "{customers} gained", "New plus won-back {customers} in P (ledger).", "count", *_LEDGER),
    Metric("value_gained", "Value gained", "Trailing 12-month revenue, at the end of P, of the {customers} gained.", "money", *_LEDGER),
    Metric("count_lost", "{customers} lost", "{customers} who lapsed during P (ledger).", "count", *_LEDGER),
    Metric("value_lost", "Value lost", "Trailing 12-month revenue of the lapsed {customers} up to their last purchase.", "money", *_LEDGER),
    Metric("retention_rate", "Retention rate", "Share of the opening active base still active at the end of P. Shown only beside the raw gained and lost numbers it hides.", "ratio", *_LEDGER),
)
