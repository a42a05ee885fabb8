"""The demo source: a deterministic synthetic retailer, any size.

One module of ~620 lines on purpose: it is one generative model, read top to bottom (arrival,
purchases, dropout, order values, returns, costs, segments, referrals).

It is the embedded default source (a newcomer sees a real pack in one command) and the scale
generator for benchmarks (tens of millions of transactions). Everything is vectorised numpy;
there is no loop over customers or orders.

The model, per customer (a BG/NBD-like buy-till-you-die process with a few retail realities):

* **Arrival.** Customers arrive over the whole span with a growth trend, a Q4 peak and a weekly
  rhythm. Arrivals are stratified by customer number (customer ``i`` of ``N`` arrives at the
  ``(i + u) / N`` quantile of the arrival curve), so ids rise with acquisition date as in a CRM.
  The first order is placed at arrival; ``acquired_at`` is that order's timestamp.
* **Purchasing.** A heterogeneous rate (gamma) with a customer-level trend (some customers buy
  more often over time, some less) on a seasonal business calendar (Q4 peak, busier weekends).
* **Dropout.** After each purchase the customer becomes inactive with probability ``p`` (beta),
  so some customers lapse after one order and others stay for years.
* **Order value.** Lognormal around a customer-level mean (segment effects, a few whales) with a
  customer-level spend trend.
* **Returns.** Some orders are partly or fully returned: a separate row (``is_return``), dated
  days later, order id ``R...`` matching the ``O...`` purchase, with negative quantity, revenue
  and cost of goods, and a (positive) handling cost to serve. Returns after ``end_date`` have
  not happened yet and are not in the data.
* **Costs.** Cost of goods 55-70 % of revenue by channel; cost to serve per order = fixed +
  variable by channel, customer type and region, so many small customers lose money.
* **Referrals.** About a fifth of customers were referred by a customer who arrived on an
  earlier day (a few "advocates" refer many); a handful carry a short ``referral_note``.

Determinism: customers are generated in blocks of :data:`BLOCK_CUSTOMERS` with
``np.random.default_rng([seed, block])``, so any slice of customers is identical whether it is
generated in one call or in chunks (:func:`iter_demo_chunks`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cxpipeline.config import DemoSource
from cxpipeline.errors import InputError
from cxpipeline.quality import Exclusions
from cxpipeline.schema import (
    TRANSACTION_COLUMNS,
    validate_customers,
    validate_transactions,
)
from cxpipeline.sources.base import SourceData

__all__ = [
    "BLOCK_CUSTOMERS",
    "CUSTOMER_COLUMNS",
    "demo_span",
    "generate_demo",
    "iter_demo_chunks",
    "load_demo",
]

#: Customers per random block; fixed, because the output depends on it.
BLOCK_CUSTOMERS = 5_000

#: Columns (and dtypes) of the demo's customer table.
CUSTOMER_COLUMNS: dict[str, str] = {
    "customer_id": "string",
    "customer_name": "string",
    "region": "string",
    "channel": "string",
    "customer_type": "string",
    "acquired_at": "datetime64[us]",
    "referred_by": "string",
    "referral_note": "string",
}

_US_PER_DAY = 86_400_000_000
_US_PER_SECOND = 1_000_000

# --- Segments and their effects (multipliers on rate, dropout and order value) ----------------
_REGIONS = ["North", "South", "East", "West", "International"]
_REGION_SHARE = np.array([0.25, 0.22, 0.20, 0.21, 0.12])
_REGION_RATE = np.array([1.00, 1.05, 0.95, 1.00, 0.70])
_REGION_VALUE = np.array([1.00, 0.95, 1.00, 1.05, 1.25])
_REGION_SERVE_FIXED = np.array([0.0, 0.0, 0.0, 0.0, 7.50])  # cross-border shipping / duties

_CHANNELS = ["Online", "Store", "Marketplace"]
_CHANNEL_SHARE = np.array([0.50, 0.32, 0.18])
_CHANNEL_RATE = np.array([1.00, 1.10, 0.80])
_CHANNEL_DROPOUT = np.array([1.00, 0.85, 1.40])
_CHANNEL_VALUE = np.array([1.00, 0.90, 0.85])
_CHANNEL_COGS = np.array([0.58, 0.62, 0.67])  # cost of goods share of revenue
_CHANNEL_SERVE_FIXED = np.array([7.90, 2.80, 3.50])  # per order: pick/pack/ship, till, listing
_CHANNEL_SERVE_VARIABLE = np.array([0.030, 0.015, 0.120])  # share of revenue (marketplace fee)
_CHANNEL_RETURN_HANDLING = np.array([6.50, 2.00, 4.50])  # per return row
_CHANNEL_RETURN_RATE = np.array([0.085, 0.035, 0.065])  # mean share of orders returned
_CHANNEL_REFERRAL = np.array([0.18, 0.25, 0.10])  # share of customers who were referred

_TYPES = ["Consumer", "Small business", "Enterprise"]
_TYPE_SHARE = np.array([0.80, 0.16, 0.04])
_TYPE_RATE_PER_YEAR = np.array([12.0, 16.0, 22.0])  # mean purchase rate while active
_TYPE_DROPOUT_BETA = np.array([[0.40, 5.0], [0.45, 6.5], [0.55, 11.0]])  # beta(a, b) of p
_TYPE_LOG_VALUE = np.log(np.array([45.0, 190.0, 850.0]))  # median order value
_TYPE_QUANTITY = np.array([2.2, 7.0, 30.0])  # mean units per order
_TYPE_SERVE_FIXED = np.array([0.0, 3.00, 35.00])  # invoicing, account management
_TYPE_RETURN = np.array([1.00, 0.80, 0.50])

_RATE_SHAPE = 0.9  # gamma shape of purchase rates: strongly heterogeneous
_RATE_TREND_SD = (0.10, 0.35)  # per-year log trend of the rate: most stable, some strong movers
_RATE_TREND_MOVER_SHARE = 0.30
_MAX_LOG_RATE_CHANGE = 3.0  # over the customer's whole window
_VALUE_BETWEEN_SD = 0.55  # customer-level spread of mean order value (log scale)
_VALUE_WITHIN_SD = 0.50  # order-to-order spread (log scale)
_VALUE_TREND_SD = 0.12  # per-year log trend of order value
_WHALE_SHARE = 0.01
_WHALE_LIFT = 1.0  # log lift of a whale's order value
_REFERRED_DROPOUT = 0.80  # referred customers stay a little longer
_ADVOCATE_EVERY = 37  # customers 5, 42, 79, ... are advocates who refer many others
_ADVOCATE_OFFSET = 5
_ADVOCATE_SHARE_OF_REFERRALS = 0.5
_NOTE_SHARE_OF_REFERRED = 0.015

# --- Calendar ---------------------------------------------------------------------------------
_ARRIVAL_GROWTH_PER_YEAR = 0.22  # the customer intake grows ~25 % a year
_MAX_ARRIVAL_GROWTH = 2.5  # log growth over the whole span: long spans grow more slowly
_MONTH_SEASON = np.array([0.85, 0.80, 0.92, 0.95, 1.00, 0.96, 0.94, 0.95, 1.00, 1.05, 1.35, 1.50])
_WEEKDAY_SEASON = np.array([0.92, 0.95, 0.97, 1.00, 1.08, 1.15, 0.93])  # Monday .. Sunday

# --- Names and notes --------------------------------------------------------------------------
_FIRST_NAMES = [
    "Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Isla", "Jonas", "Kemi",
    "Liam", "Maya", "Niko", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Umar", "Vera",
    "Wen", "Ximena", "Yusuf", "Zoe", "Aiden", "Bea", "Carlos", "Dana", "Emil", "Freya",
]
_LAST_NAMES = [
    "Abbott", "Baker", "Castillo", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Patel", "Quinlan",
    "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Walsh", "Xu", "Young", "Zimmer",
]
_BUSINESS_WORDS = [
    "Acorn", "Beacon", "Cedar", "Delta", "Ember", "Fjord", "Granite", "Harbour", "Iris",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Northwind", "Orchard", "Pioneer", "Quarry",
    "Ridge", "Summit", "Tidewater", "Upland", "Vantage", "Willow", "Yarrow", "Zenith",
]
_SMALL_SUFFIXES = ["Trading", "Studio", "Supplies", "& Co", "Workshop", "Cafe", "Interiors"]
_ENTERPRISE_SUFFIXES = ["Group", "Holdings", "Industries", "Logistics", "Partners"]
_NOTE_TEMPLATES = [
    ("Recommended by ", " after a store event."),
    ("Heard about us from ", " at a trade fair."),
    ("Colleague of ", "; placed a large first order within a week."),
    ("Introduced by ", " through the refer-a-friend offer."),
    ("Neighbour of ", ", who brought them to the spring open day."),
    ("Referred by ", " after a glowing review on their team chat."),
]


# ----------------------------------------------------------------------------------------------
# Parameters and calendar
# ----------------------------------------------------------------------------------------------


def _parse_end_date(end_date: str | date) -> date:
    if isinstance(end_date, pd.Timestamp):
        return end_date.date()
    if isinstance(end_date, date):
        return end_date
    try:
        return date.fromisoformat(str(end_date))
    except ValueError:
        raise InputError(
            f"Demo end date {end_date!r} is not a date.",
            where="source.end_date",
            fix="Write the last day of data as YYYY-MM-DD, e.g. 2026-09-30.",
        ) from None


def demo_span(years: int, end_date: str | date) -> tuple[date, date]:
    """First and last day (inclusive) covered by ``years`` years of data ending on ``end_date``.

    The span starts the day after ``end_date`` minus ``years`` years, so 4 years ending on
    2026-09-30 cover 2022-10-01 .. 2026-09-30 (whole quarters when the end is a quarter end).
    """
    end = _parse_end_date(end_date)
    after_end = pd.Timestamp(end) + pd.Timedelta(days=1)
    start = (after_end - pd.DateOffset(years=int(years))).date()
    return start, end


def _check_arguments(customers: int, years: int, first_customer: int, count: int | None) -> int:
    if int(customers) < 1:
        raise InputError(f"The demo needs at least one customer, got {customers}.",
                         where="source.customers", fix="Set customers to 1 or more (e.g. 5000).")
    if int(years) < 1:
        raise InputError(f"The demo needs at least one year of data, got {years}.",
                         where="source.years", fix="Set years to 1 or more (e.g. 4).")
    if not 0 <= int(first_customer) < int(customers):
        raise InputError(
            f"first_customer {first_customer} is outside 0..{int(customers) - 1}.",
            where="generate_demo(first_customer=...)",
            fix="Ask for customers that exist: 0 <= first_customer < customers.",
        )
    remaining = int(customers) - int(first_customer)
    if count is None:
        return remaining
    if not 1 <= int(count) <= remaining:
        raise InputError(
            f"count {count} is outside 1..{remaining} for first_customer {first_customer}.",
            where="generate_demo(count=...)",
            fix="Ask for at most customers - first_customer customers.",
        )
    return int(count)


class _Calendar:
    """Day-level curves of the span: arrival intensity and seasonal business time.

    Both are cumulative sums over days (``edges`` has one more entry than days), so a position
    on either curve maps back to a fractional day by linear interpolation.
    """

    def __init__(self, start: date, end: date):
        self.start = start
        self.days = (end - start).days + 1
        dates = pd.date_range(start, periods=self.days, freq="D")
        season = _MONTH_SEASON[dates.month.to_numpy() - 1] * _WEEKDAY_SEASON[dates.weekday.to_numpy()]
        season = season / season.mean()
        span_years = self.days / 365.25
        growth_per_year = min(_ARRIVAL_GROWTH_PER_YEAR, _MAX_ARRIVAL_GROWTH / span_years)
        growth = np.exp(growth_per_year * np.arange(self.days) / 365.25)
        self.day_edges = np.arange(self.days + 1, dtype="float64")
        self.arrival_edges = np.concatenate([[0.0], np.cumsum(season * growth)])
        self.arrival_edges /= self.arrival_edges[-1]  # arrival CDF at day starts
        self.business_edges = np.concatenate([[0.0], np.cumsum(season)])  # seasonal days
        self.start_us = int(pd.Timestamp(start).value // 1_000)  # ns -> us since epoch

    def arrival_day_position(self, quantile: np.ndarray) -> np.ndarray:
        return np.interp(quantile, self.arrival_edges, self.day_edges)

    def arrival_share_before(self, day: np.ndarray) -> np.ndarray:
        """Share of all arrivals that happen before the start of ``day``."""
        return self.arrival_edges[day]

    def to_business(self, day_position: np.ndarray) -> np.ndarray:
        return np.interp(day_position, self.day_edges, self.business_edges)

    def from_business(self, business_position: np.ndarray) -> np.ndarray:
        return np.interp(business_position, self.business_edges, self.day_edges)


# ----------------------------------------------------------------------------------------------
# One block of customers (pure numpy)
# ----------------------------------------------------------------------------------------------


def _time_of_day_us(rng: np.random.Generator, channel: np.ndarray) -> np.ndarray:
    """Microseconds after midnight (whole seconds): store hours for stores, lunch and evening
    peaks online."""
    size = channel.shape[0]
    store_hours = np.clip(rng.normal(13.5, 2.4, size), 9.0, 19.75)
    evening = rng.random(size) < 0.55
    online_hours = np.where(evening, rng.normal(20.3, 1.7, size), rng.normal(12.5, 2.5, size)) % 24.0
    hours = np.where(channel == 1, store_hours, online_hours)
    seconds = np.minimum(np.floor(hours * 3600.0), 86_399).astype("int64")
    return seconds * _US_PER_SECOND


def _ratio(function, x: np.ndarray) -> np.ndarray:
    """``function(x) / x`` with its limit 1 at 0 (for ``expm1`` and ``log1p``)."""
    small = np.abs(x) < 1e-9
    return np.where(small, 1.0, function(np.where(small, 1.0, x)) / np.where(small, 1.0, x))


def _segmented_offsets(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index of each element and the start of each segment, for ``counts`` per owner."""
    owner = np.repeat(np.arange(counts.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    return owner, starts


def _generate_block(block: int, customers: int, seed: int, calendar: _Calendar) -> dict[str, dict]:
    """All customers of one block and their transactions, as numpy arrays."""
    rng = np.random.default_rng([int(seed), int(block)])
    first = block * BLOCK_CUSTOMERS
    n = min(BLOCK_CUSTOMERS, customers - first)
    index = np.arange(first, first + n, dtype="int64")
    days = calendar.days

    # Segments.
    region = rng.choice(len(_REGIONS), size=n, p=_REGION_SHARE)
    channel = rng.choice(len(_CHANNELS), size=n, p=_CHANNEL_SHARE)
    ctype = rng.choice(len(_TYPES), size=n, p=_TYPE_SHARE)

    # Arrival: stratified by customer number, so ids rise with acquisition date.
    quantile = (index + rng.random(n)) / customers
    arrival_position = calendar.arrival_day_position(quantile)
    arrival_day = np.minimum(np.floor(arrival_position).astype("int64"), days - 1)
    arrival_tod = _time_of_day_us(rng, channel)

    # Referrals: only from customers whose arrival stratum ends before this customer's day, so
    # the referrer arrived on an earlier day (2 strata of margin against rounding).
    last_earlier = np.floor(calendar.arrival_share_before(arrival_day) * customers).astype("int64") - 2
    referred = (rng.random(n) < _CHANNEL_REFERRAL[channel]) & (last_earlier >= 0)
    advocates_before = np.where(
        last_earlier >= _ADVOCATE_OFFSET, (last_earlier - _ADVOCATE_OFFSET) // _ADVOCATE_EVERY + 1, 0
    )
    use_advocate = (rng.random(n) < _ADVOCATE_SHARE_OF_REFERRALS) & (advocates_before > 0)
    pick = rng.random(n)
    advocate = _ADVOCATE_OFFSET + _ADVOCATE_EVERY * np.floor(pick * advocates_before).astype("int64")
    anyone = np.floor(pick * (np.maximum(last_earlier, 0) + 1)).astype("int64")
    referrer = np.where(referred, np.where(use_advocate, advocate, anyone), -1)
    note = np.where(
        referred & (rng.random(n) < _NOTE_SHARE_OF_REFERRED),
        rng.integers(0, len(_NOTE_TEMPLATES), n),
        -1,
    )

    # Purchasing while active: gamma rate with a per-customer trend, beta dropout.
    rate = (
        rng.gamma(_RATE_SHAPE, 1.0 / _RATE_SHAPE, n)
        * _TYPE_RATE_PER_YEAR[ctype] * _CHANNEL_RATE[channel] * _REGION_RATE[region]
    )
    mover = rng.random(n) < _RATE_TREND_MOVER_SHARE
    rate_trend = rng.normal(0.0, 1.0, n) * np.where(mover, _RATE_TREND_SD[1], _RATE_TREND_SD[0])
    beta_ab = _TYPE_DROPOUT_BETA[ctype]
    dropout = rng.beta(beta_ab[:, 0], beta_ab[:, 1]) * _CHANNEL_DROPOUT[channel]
    dropout = np.clip(np.where(referred, dropout * _REFERRED_DROPOUT, dropout), 0.002, 0.97)
    max_repeats = rng.geometric(dropout) - 1  # purchases after the first before dropping out

    # Repeat purchases: a Poisson process on business time with intensity
    # rate * exp(trend * t) (t in years since arrival); n events in the window, of which the
    # first min(n, max_repeats) happen. Their positions are the first m order statistics of n
    # uniforms, drawn in O(m) via exponential spacings plus one gamma for the remainder.
    arrival_business = calendar.to_business(arrival_position)
    window_years = (calendar.business_edges[-1] - arrival_business) / 365.25
    # Over long spans an unchecked trend explodes; a rate moves at most e**3 (~20x) in the window.
    limit = _MAX_LOG_RATE_CHANGE / np.maximum(window_years, 1e-9)
    rate_trend = np.clip(rate_trend, -limit, limit)
    expected = rate * window_years * _ratio(np.expm1, rate_trend * window_years)
    in_window = rng.poisson(expected)
    repeats = np.minimum(in_window, max_repeats)
    owner, starts = _segmented_offsets(repeats)
    spacing = rng.standard_exponential(owner.shape[0])
    cumulative = np.cumsum(spacing)
    before = np.concatenate([[0.0], cumulative])[starts]
    partial = cumulative - before[owner]
    last_partial = np.zeros(n)
    has_repeats = repeats > 0
    last_partial[has_repeats] = partial[starts[has_repeats] + repeats[has_repeats] - 1]
    total = last_partial + rng.gamma(in_window - repeats + 1.0)
    intensity_position = expected[owner] * partial / total[owner]  # integrated intensity
    x = rate_trend[owner] * intensity_position / rate[owner]
    years_after = intensity_position / rate[owner] * _ratio(np.log1p, x)  # inverse of the above
    repeat_position = calendar.from_business(arrival_business[owner] + years_after * 365.25)
    repeat_day = np.maximum(np.floor(repeat_position).astype("int64"), arrival_day[owner] + 1)
    happened = repeat_day < days  # one day after a last-day arrival is past the end
    owner, repeat_day = owner[happened], repeat_day[happened]

    # All purchase orders: the first at arrival, then repeats, ordered by customer and time.
    order_owner = np.concatenate([np.arange(n), owner])
    order_day = np.concatenate([arrival_day, repeat_day])
    order_tod = np.concatenate([arrival_tod, _time_of_day_us(rng, channel[owner])])
    order_us = order_day * _US_PER_DAY + order_tod
    order = np.lexsort((order_us, order_owner))
    order_owner, order_day, order_us = order_owner[order], order_day[order], order_us[order]
    count_orders = np.bincount(order_owner, minlength=n)
    _, order_starts = _segmented_offsets(count_orders)
    sequence = np.arange(order_owner.shape[0]) - order_starts[order_owner]

    # Order values: lognormal around a customer mean, with a customer-level spend trend.
    whale = rng.random(n) < _WHALE_SHARE
    log_value = (
        _TYPE_LOG_VALUE[ctype] + np.log(_CHANNEL_VALUE[channel] * _REGION_VALUE[region])
        + rng.normal(0.0, _VALUE_BETWEEN_SD, n) + np.where(whale, _WHALE_LIFT, 0.0)
        - _VALUE_WITHIN_SD**2 / 2  # the customer's mean order value, not median
    )
    value_trend = rng.normal(0.0, _VALUE_TREND_SD, n)
    years_in = (order_day - arrival_day[order_owner]) / 365.25
    count = order_owner.shape[0]
    revenue = np.round(np.exp(
        log_value[order_owner] + value_trend[order_owner] * years_in
        + rng.normal(0.0, _VALUE_WITHIN_SD, count)
    ), 2)
    revenue = np.maximum(revenue, 0.50)
    quantity = 1.0 + rng.poisson(_TYPE_QUANTITY[ctype[order_owner]] - 1.0)
    cogs_share = np.clip(_CHANNEL_COGS[channel[order_owner]] + rng.normal(0.0, 0.03, count), 0.40, 0.85)
    cost = np.round(revenue * cogs_share, 2)
    cost_to_serve = np.round(
        _CHANNEL_SERVE_FIXED[channel[order_owner]] + _TYPE_SERVE_FIXED[ctype[order_owner]]
        + _REGION_SERVE_FIXED[region[order_owner]]
        + revenue * _CHANNEL_SERVE_VARIABLE[channel[order_owner]],
        2,
    )

    # Returns: customer propensity (beta around the channel's rate); partial or full; later.
    propensity_mean = _CHANNEL_RETURN_RATE[channel] * _TYPE_RETURN[ctype]
    propensity = rng.beta(1.5, 1.5 * (1 - propensity_mean) / propensity_mean)
    returned = rng.random(count) < propensity[order_owner]
    full = rng.random(count) < 0.45
    returned_share = np.where(full, 1.0, rng.uniform(0.2, 0.8, count))
    returned_units = np.clip(np.round(quantity * returned_share), 1.0, quantity)
    delay_days = 2 + np.floor(rng.lognormal(np.log(10.0), 0.6, count)).astype("int64")
    return_day = order_day + delay_days
    return_tod = _time_of_day_us(rng, channel[order_owner])
    returned &= return_day < days  # returns after the end have not happened yet
    ret = np.flatnonzero(returned)
    share = np.where(full[ret], 1.0, returned_units[ret] / quantity[ret])
    return_revenue = -np.round(revenue[ret] * share, 2)
    return_cost = -np.round(cost[ret] * share, 2)
    return_serve = _CHANNEL_RETURN_HANDLING[channel[order_owner[ret]]]

    # Stack purchases and returns, ordered by customer and time.
    rows_owner = np.concatenate([order_owner, order_owner[ret]])
    rows_us = np.concatenate([order_us, return_day[ret] * _US_PER_DAY + return_tod[ret]])
    rows_order = np.lexsort((rows_us, rows_owner))
    transactions = {
        "customer": index[rows_owner][rows_order],
        "sequence": np.concatenate([sequence, sequence[ret]])[rows_order],
        "is_return": np.concatenate([np.zeros(count, bool), np.ones(ret.shape[0], bool)])[rows_order],
        "ordered_at_us": rows_us[rows_order] + calendar.start_us,
        "revenue": np.concatenate([revenue, return_revenue])[rows_order],
        "cost": np.concatenate([cost, return_cost])[rows_order],
        "cost_to_serve": np.concatenate([cost_to_serve, return_serve])[rows_order],
        "quantity": np.concatenate([quantity, -returned_units[ret]])[rows_order],
    }

    name_first = rng.integers(0, len(_FIRST_NAMES), n)
    name_last = rng.integers(0, len(_LAST_NAMES), n)
    name_word = rng.integers(0, len(_BUSINESS_WORDS), n)
    name_suffix = rng.integers(0, 1_000_000, n)
    customers_out = {
        "customer": index,
        "region": region,
        "channel": channel,
        "customer_type": ctype,
        "acquired_at_us": arrival_day * _US_PER_DAY + arrival_tod + calendar.start_us,
        "referrer": referrer,
        "note": note,
        "name_first": name_first,
        "name_last": name_last,
        "name_word": name_word,
        "name_suffix": name_suffix,
    }
    return {"transactions": transactions, "customers": customers_out}


# ----------------------------------------------------------------------------------------------
# Frames (strings built in Arrow, not Python)
# ----------------------------------------------------------------------------------------------


def _digits(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(values, type=pa.int64()), pa.string()), width=width, padding="0")


def _string_series(array: pa.Array) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(array.cast(pa.large_string())), copy=False)


def _pick(labels: list[str], codes: np.ndarray) -> pa.Array:
    return pa.array(labels, type=pa.string()).take(pa.array(codes, type=pa.int64()))


def _customer_ids(index: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise("C", _digits(index, 7), "")


def _customer_names(c: dict) -> pa.Array:
    person = pc.binary_join_element_wise(
        _pick(_FIRST_NAMES, c["name_first"]), _pick(_LAST_NAMES, c["name_last"]), " "
    )
    small = pc.binary_join_element_wise(
        _pick(_BUSINESS_WORDS, c["name_word"]),
        _pick(_SMALL_SUFFIXES, c["name_suffix"] % len(_SMALL_SUFFIXES)),
        " ",
    )
    enterprise = pc.binary_join_element_wise(
        _pick(_BUSINESS_WORDS, c["name_word"]),
        _pick(_ENTERPRISE_SUFFIXES, c["name_suffix"] % len(_ENTERPRISE_SUFFIXES)),
        " ",
    )
    ctype = pa.array(c["customer_type"], type=pa.int64())
    return pc.if_else(pc.equal(ctype, 0), person, pc.if_else(pc.equal(ctype, 1), small, enterprise))


def _transactions_frame(t: dict) -> pd.DataFrame:
    customer_digits = _digits(t["customer"], 8)
    prefix = pc.if_else(pa.array(t["is_return"]), "R", "O")
    order_id = pc.binary_join_element_wise(prefix, customer_digits, _digits(t["sequence"], 5), "")
    frame = pd.DataFrame({
        "order_id": _string_series(order_id),
        "customer_id": _string_series(_customer_ids(t["customer"])),
        "ordered_at": pd.Series(t["ordered_at_us"].view("datetime64[us]"), copy=False),
        "revenue": pd.Series(t["revenue"], dtype="float64", copy=False),
        "cost": pd.Series(t["cost"], dtype="float64", copy=False),
        "cost_to_serve": pd.Series(t["cost_to_serve"], dtype="float64", copy=False),
        "quantity": pd.Series(t["quantity"], dtype="float64", copy=False),
        "is_return": pd.Series(t["is_return"], dtype="bool", copy=False),
    })
    return frame[list(TRANSACTION_COLUMNS)]


def _customers_frame(c: dict) -> pd.DataFrame:
    referrer = c["referrer"]
    has_referrer = pa.array(referrer >= 0)
    referrer_ids = pc.if_else(has_referrer, _customer_ids(np.maximum(referrer, 0)), pa.scalar(None, pa.string()))
    note = c["note"]
    template = np.maximum(note, 0)
    notes = pc.binary_join_element_wise(
        _pick([p for p, _ in _NOTE_TEMPLATES], template), referrer_ids,
        _pick([s for _, s in _NOTE_TEMPLATES], template), "",
    )
    notes = pc.if_else(pa.array(note >= 0), notes, pa.scalar(None, pa.string()))
    return pd.DataFrame({
        "customer_id": _string_series(_customer_ids(c["customer"])),
        "customer_name": _string_series(_customer_names(c)),
        "region": _string_series(_pick(_REGIONS, c["region"])),
        "channel": _string_series(_pick(_CHANNELS, c["channel"])),
        "customer_type": _string_series(_pick(_TYPES, c["customer_type"])),
        "acquired_at": pd.Series(c["acquired_at_us"].view("datetime64[us]"), copy=False),
        "referred_by": _string_series(referrer_ids),
        "referral_note": _string_series(notes),
    })


def _slice(arrays: dict, keep: np.ndarray) -> dict:
    return {name: values[keep] for name, values in arrays.items()}


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------


def generate_demo(
    customers: int,
    years: int,
    seed: int = 7,
    end_date: str | date = "2026-09-30",
    *,
    first_customer: int = 0,
    count: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generate the synthetic retailer's transactions and customer table.

    Parameters
    ----------
    customers
        Total number of customers of the retailer (ids ``C0000000`` .. in arrival order).
    years
        Years of history, ending on ``end_date`` (inclusive).
    seed
        Random seed; the same seed gives the same data on every machine.
    end_date
        Last day of data (``YYYY-MM-DD`` or a date). No transaction is later.
    first_customer, count
        Generate only customers ``first_customer .. first_customer + count - 1`` (all remaining
        ones when ``count`` is None). The result is identical to the same rows of a one-shot
        call, which is how :func:`iter_demo_chunks` bounds memory.

    Returns
    -------
    (transactions, customers)
        ``transactions`` in the canonical schema (:data:`cxpipeline.schema.TRANSACTION_COLUMNS`),
        ordered by customer and time; ``customers`` with :data:`CUSTOMER_COLUMNS`.

    Raises
    ------
    InputError
        For a non-positive size, an unreadable end date or a slice outside the customers.
    """
    count = _check_arguments(customers, years, first_customer, count)
    customers, first_customer = int(customers), int(first_customer)
    start, end = demo_span(years, end_date)
    calendar = _Calendar(start, end)
    stop = first_customer + count
    blocks = range(first_customer // BLOCK_CUSTOMERS, (stop - 1) // BLOCK_CUSTOMERS + 1)
    parts = [_generate_block(block, customers, seed, calendar) for block in blocks]
    # Column by column, releasing each block's array as it is copied: peak memory ~1x, not 2x.
    transactions = {k: np.concatenate([p["transactions"].pop(k) for p in parts]) for k in list(parts[0]["transactions"])}
    people = {k: np.concatenate([p["customers"].pop(k) for p in parts]) for k in list(parts[0]["customers"])}
    del parts
    if first_customer != blocks.start * BLOCK_CUSTOMERS or stop != min(blocks.stop * BLOCK_CUSTOMERS, customers):
        transactions = _slice(transactions, (transactions["customer"] >= first_customer)
                              & (transactions["customer"] < stop))
        people = _slice(people, (people["customer"] >= first_customer) & (people["customer"] < stop))
    return _transactions_frame(transactions), _customers_frame(people)


def iter_demo_chunks(
    customers: int,
    years: int,
    seed: int = 7,
    end_date: str | date = "2026-09-30",
    chunk_customers: int = 200_000,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame]]:
    """Yield ``(transactions, customers)`` for consecutive slices of ``chunk_customers`` customers.

    Concatenating the chunks gives exactly :func:`generate_demo` for the same arguments; memory
    stays bounded by one chunk (about 20 transactions per customer at the defaults).
    """
    _check_arguments(customers, years, 0, None)
    if int(chunk_customers) < 1:
        raise InputError(f"chunk_customers must be at least 1, got {chunk_customers}.",
                         where="iter_demo_chunks(chunk_customers=...)", fix="Use e.g. 200000.")
    for first in range(0, int(customers), int(chunk_customers)):
        size = min(int(chunk_customers), int(customers) - first)
        yield generate_demo(customers, years, seed, end_date, first_customer=first, count=size)


def _plural(number: int, word: str) -> str:
    return f"{number:,} {word}" + ("" if number == 1 else "s")


def load_demo(source: DemoSource) -> SourceData:
    """The demo source as :class:`~cxpipeline.sources.SourceData` (validated, with accounting)."""
    transactions, customers = generate_demo(source.customers, source.years, source.seed, source.end_date)
    quality = Exclusions.start(len(transactions), transactions["revenue"])
    transactions = validate_transactions(transactions, source="demo retailer")
    customers = validate_customers(customers, source="demo retailer customers")
    description = (
        f"demo retailer: {_plural(source.customers, 'customer')}, {_plural(source.years, 'year')}, "
        f"seed {source.seed}"
    )
    return SourceData(transactions=transactions, customers=customers, quality=quality,
                      description=description)
