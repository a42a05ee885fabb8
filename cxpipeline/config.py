"""The pack configuration: one YAML file, validated with errors that say how to fix them.

One module of ~590 lines on purpose: every key of a pack definition is declared here, once, so
the whole YAML schema (and its error messages) reads in one place.

See ``examples/*.yaml`` for annotated configs. Unknown keys are errors (a typo must not be
silently ignored). Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cxpipeline.errors import ConfigError

__all__ = [
    "Config",
    "DemoSource",
    "FileSource",
    "SqlSource",
    "UnitsConfig",
    "SparkSource",
    "load_config",
    "config_from_dict",
    "config_hash",
    "MAX_YAML_DEPTH",
    "parse_yaml",
    "SECTION_IDS",
    "SUBJECT_FIELDS",
]

#: Page ids ``output.sections`` may name, in pack order (the ids of cxpipeline.report.context.PAGES;
#: kept here so a config is checked without importing the renderer; a test keeps them equal).
SECTION_IDS = ("summary", "trend", "bridge", "bridge-segments", "ledger", "migration", "rfm", "behaviour",
               "lapse", "at-risk", "value", "profitability", "referrals", "cohorts", "model",
               "value-backtest", "data-quality", "definitions")
#: The board section's page ids (those of PAGES marked ``board``; a test keeps them equal).
BOARD_SECTION_IDS = ("summary", "trend", "bridge", "ledger", "migration", "at-risk")


def board_pages(sections: list[str] | None) -> list[str]:
    """The board pages among ``output.sections`` (all of them when it is unset)."""
    return [s for s in BOARD_SECTION_IDS if sections is None or s in sections]


#: The placeholders ``delivery.subject`` may use.
SUBJECT_FIELDS = ("company", "period", "pack_id")
# Control characters (CR, LF, ...) would split an email header or forge a second one.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _no_control_characters(value: str, key: str) -> str:
    if _CONTROL.search(value):
        raise ValueError(f"{key} contains a line break or control character ({value!r}); it goes "
                         "into an email header, so write it on one line")
    return value


#: Deepest nesting a config may have (real configs use 4); deeper input is refused before it
#: can exhaust the parser's recursion.
MAX_YAML_DEPTH = 32


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int, first_line: int):
        super().__init__(key)
        self.key, self.line, self.first_line = key, line, first_line


class _TooDeep(yaml.YAMLError):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


class _StrictLoader(yaml.SafeLoader):  # pure Python: its composer can count depth
    """safe_load that refuses duplicate keys (a second ``delivery:`` would silently replace
    the first) and nesting deeper than :data:`MAX_YAML_DEPTH`."""

    def compose_node(self, parent, index):
        depth = getattr(self, "_cx_depth", 0) + 1
        if depth > MAX_YAML_DEPTH:
            raise _TooDeep(self.peek_event().start_mark.line + 1)
        self._cx_depth = depth
        try:
            return super().compose_node(parent, index)
        finally:
            self._cx_depth = depth - 1

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                if key in seen:
                    raise _DuplicateKey(str(key), key_node.start_mark.line + 1, seen[key])
                seen[key] = key_node.start_mark.line + 1
            except TypeError:  # an unhashable key: let PyYAML report it
                continue
        return super().construct_mapping(node, deep=deep)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC, "
                         "Europe/London or America/New_York)") from None
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DemoSource(_Strict):
    """The embedded synthetic retailer (deterministic for a given seed)."""

    kind: Literal["demo"] = "demo"
    customers: int = Field(5000, ge=1, le=50_000_000)
    years: int = Field(4, ge=1, le=30)
    seed: int = 7
    end_date: str = "2026-09-30"  # last day of data; fixed so the demo never reads the clock


class ColumnMap(_Strict):
    """Canonical column -> column name in the file. Only customer_id and ordered_at are required;
    revenue is given directly or computed as quantity x unit_price. In a file without a header
    (``header: false``) a column is named by its position: ``customer_id: 1``."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    customer_id: str
    ordered_at: str
    order_id: str | None = None  # none: each row is its own order
    revenue: str | None = None
    quantity: str | None = None
    unit_price: str | None = None
    cost: str | None = None
    profit: str | None = None  # exports that give the line's profit, not its cost: cost = revenue - profit
    cost_to_serve: str | None = None
    currency: str | None = None
    is_return: str | None = None  # a boolean / 0-1 column marking returns

    @model_validator(mode="after")
    def _revenue_given(self) -> "ColumnMap":
        if self.revenue is None and (self.quantity is None or self.unit_price is None):
            raise ValueError(
                "map either 'revenue' or both 'quantity' and 'unit_price' (revenue = quantity x unit_price)"
            )
        if self.cost is not None and self.profit is not None:
            raise ValueError("map either 'cost' or 'profit' (cost = revenue - profit), not both")
        return self


class FileSource(_Strict):
    """CSV or Parquet transactions (e.g. an invoice-line export) with a column mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    kind: Literal["file"] = "file"
    path: str
    # default: from the file extension (.csv/.txt/.tsv, .parquet, .xlsx/.xlsm/.xls/.ods = excel)
    format: Literal["csv", "parquet", "excel"] | None = None
    columns: ColumnMap
    segment_columns: dict[str, str] = {}  # segment name -> file column (e.g. country: Country)
    delimiter: str = ","  # or "whitespace": fields separated by runs of spaces or tabs
    # false: the file has no header line; columns are then named by position, 1 = the first
    header: bool = True
    encoding: str = "utf-8"
    # '.' (1,234.56) or ',' (1.234,56); default: decided once per column from its values
    decimal: Literal[".", ","] | None = None
    date_format: str | None = None  # strptime format; default: decided once per column
    timezone: str = "UTC"  # zone of naive timestamps; aware ones are converted
    cancellation_prefix: str | None = None  # e.g. 'C': invoices starting with it are cancellations
    currency: str | None = None  # keep only rows in this currency when a currency column is mapped
    customers_path: str | None = None  # optional customer table (CSV/Parquet/Excel)
    customer_columns: dict[str, str] = {}  # canonical -> customer-table column
    sheet: str | int | None = None  # Excel/ODS: sheet name or 0-based index (default: the first)
    sheets: Literal["all"] | None = None  # Excel/ODS: stack every sheet (same header)
    # Without an order id, identical rows are separate purchases unless this is true.
    drop_identical_rows: bool = False
    exclude_zero_amounts: bool = False  # zero-amount rows are purchases worth 0 unless true
    # true: a line without a customer id takes its order's customer when the order's other lines
    # name exactly one (exports that write an order's fields on its first line only)
    fill_customer_from_order: bool = False
    earliest_date: date = date(1990, 1, 1)  # rows dated before it are excluded and counted
    data_through: date | None = None  # the last day the export covers (later rows: excluded)
    # file column -> values whose rows are no sales (a payment export's failed or voided charges):
    # {Status: [Failed, Voided]}; matched ignoring case and spaces; excluded and counted per value
    exclude_rows: dict[str, list[str]] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _zone(value)

    @model_validator(mode="after")
    def _one_sheet_choice(self) -> "FileSource":
        if self.sheet is not None and self.sheets is not None:
            raise ValueError("give either 'sheet' (one sheet) or 'sheets: all', not both")
        return self


class SqlSource(_Strict):
    """A warehouse table or query; the panel aggregation runs in the database."""

    kind: Literal["sql"] = "sql"
    url: str | None = None  # SQLAlchemy URL, may use ${ENV_VAR}; or
    conn_id: str | None = None  # an Airflow connection id (resolved by the DAG)
    url_env: str | None = None  # name of an env var holding the URL
    transactions_table: str = "transactions"
    customers_table: str | None = "customers"
    schema_name: str | None = None
    as_of: str | None = None  # only rows ordered before this timestamp (consistent snapshot)
    exclude_zero_amounts: bool = False  # zero-amount rows are purchases worth 0 unless true
    earliest_date: date = date(1990, 1, 1)  # rows dated before it are excluded and counted
    data_through: date | None = None  # the last day the table covers (later rows: excluded)

    @model_validator(mode="after")
    def _one_target(self) -> "SqlSource":
        if not (self.url or self.conn_id or self.url_env):
            raise ValueError("give one of 'url', 'url_env' or 'conn_id'")
        return self


class SparkSource(_Strict):
    """A table or a Parquet / Delta path aggregated in Spark (docs/warehouse.md, "Spark").

    Reached through Spark Connect (``remote``: ``sc://host:15002``, how Databricks and managed
    Spark expose it; ``${ENV}`` references are expanded, or ``remote_env`` names a variable
    holding the whole URL with its token) or a classic ``master`` (``local[2]``, ``yarn``).
    """

    kind: Literal["spark"] = "spark"
    remote: str | None = None  # sc://host:15002[/;token=${DATABRICKS_TOKEN};...]
    remote_env: str | None = None  # name of an env var holding the sc:// URL
    master: str | None = None  # e.g. local[2] (a Spark started in this process)
    table: str | None = None  # a catalog table or view with the canonical columns; or
    path: str | None = None  # a Parquet / Delta folder or file (relative to the config file)
    format: Literal["parquet", "delta"] = "parquet"
    customers_table: str | None = None
    customers_path: str | None = None  # Parquet customer table
    exclude_zero_amounts: bool = False  # zero-amount rows are purchases worth 0 unless true
    earliest_date: date = date(1990, 1, 1)  # rows dated before it are excluded and counted
    data_through: date | None = None  # the last day the data covers (later rows: excluded)

    @model_validator(mode="after")
    def _one_engine_one_input(self) -> "SparkSource":
        if sum(x is not None for x in (self.remote, self.remote_env, self.master)) != 1:
            raise ValueError("give exactly one of 'remote' (sc://host:15002), 'remote_env' or 'master'")
        if (self.table is None) == (self.path is None):
            raise ValueError("give exactly one of 'table' and 'path'")
        if self.customers_table is not None and self.customers_path is not None:
            raise ValueError("give at most one of 'customers_table' and 'customers_path'")
        return self


Source = Annotated[Union[DemoSource, FileSource, SqlSource, SparkSource], Field(discriminator="kind")]


class PeriodConfig(_Strict):
    # week: ISO weeks (Monday start, labels 2026-W14); the lapse window and model horizon stay in days.
    type: Literal["week", "month", "quarter", "year"] = "quarter"
    fiscal_year_start_month: int = Field(1, ge=1, le=12)
    comparison: Literal["previous", "year_ago"] = "previous"
    # The business's zone: periods start at its midnights (default: source.timezone for a
    # file source, else UTC). An IANA name such as Europe/London.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class LapseConfig(_Strict):
    """Lapse window: fixed days, or k x the customer's median gap between orders."""

    mode: Literal["fixed", "personal"] = "fixed"
    window_days: int = Field(365, ge=1, le=3650)
    k: float = Field(2.0, gt=0, le=20)
    floor_days: int = Field(30, ge=1)
    cap_days: int = Field(730, ge=1)

    @model_validator(mode="after")
    def _floor_below_cap(self) -> "LapseConfig":
        if self.floor_days > self.cap_days:
            raise ValueError(f"floor_days ({self.floor_days}) must not exceed cap_days ({self.cap_days})")
        return self


class TierConfig(_Strict):
    """Value tiers by trailing 12-month value: cumulative top shares and their names."""

    names: list[str] = ["Top 1%", "Next 9%", "Middle 40%", "Bottom 50%"]
    top_shares: list[float] = [0.01, 0.10, 0.50]  # cumulative cut points, best tier first

    @model_validator(mode="after")
    def _consistent(self) -> "TierConfig":
        if len(self.names) != len(self.top_shares) + 1:
            raise ValueError("tiers need one more name than cut point")
        cuts = self.top_shares
        if any(not 0 < c < 1 for c in cuts) or any(a >= b for a, b in zip(cuts, cuts[1:])):
            raise ValueError("tiers.top_shares must rise strictly between 0 and 1, e.g. [0.01, 0.1, 0.5]")
        return self


_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class BrandConfig(_Strict):
    company_name: str = "Demo Retail Ltd"
    logo: str | None = None  # path to an SVG/PNG logo (relative to the config file)
    primary_color: str = "#1F3A5F"
    accent_color: str = "#E07A1F"
    positive_color: str = "#2E7D4F"
    negative_color: str = "#B23A3A"
    font: Literal["Inter"] = "Inter"  # fonts shipped in templates/fonts

    @field_validator("company_name")
    @classmethod
    def _one_line_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("company_name must not be empty")
        return _no_control_characters(value, "company_name")

    @field_validator("primary_color", "accent_color", "positive_color", "negative_color")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _HEX.match(value):
            raise ValueError(f"colour {value!r} must be written as #RRGGBB")
        return value


class TerminologyConfig(_Strict):
    customer: str = "customer"
    customers: str = "customers"


class OutputConfig(_Strict):
    root: str = "out"  # artifacts go to <root>/<pack_id>/<period>/
    page_size: Literal["A4", "Letter"] = "A4"
    orientation: Literal["landscape", "portrait"] = "landscape"
    # Page ids to include, in pack order (default: all). E.g. [summary, bridge, ledger, data-quality].
    sections: list[str] | None = None
    # board: the board section only (summary, trend, bridge, ledger, migration, at-risk: one page
    # each); full: the board section, then the appendix (every other page) behind its divider.
    edition: Literal["board", "full"] = "full"

    @field_validator("sections")
    @classmethod
    def _known_sections(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        if not values:
            raise ValueError("sections is empty: a pack needs at least one page (leave the key out "
                             "for all pages)")
        unknown = [v for v in values if v not in SECTION_IDS]
        if unknown:
            raise ValueError(f"unknown section id(s) {', '.join(map(repr, unknown))}; "
                             f"use page ids from: {', '.join(SECTION_IDS)}")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise ValueError(f"section id(s) listed twice: {', '.join(repeated)}")
        return values

    @model_validator(mode="after")
    def _board_has_a_page(self) -> "OutputConfig":
        if self.edition == "board" and not board_pages(self.sections):
            raise ValueError("edition is 'board' but sections names no board page; add one of "
                             f"{', '.join(BOARD_SECTION_IDS)}, or set edition: full")
        return self


# A plain address (no display name); the same rule as cxpipeline.delivery applies when sending.
_EMAIL = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _domain_allowed(domain: str, allowed: list[str]) -> bool:
    return not allowed or any(domain == d or domain.endswith("." + d) for d in allowed)


class DeliveryConfig(_Strict):
    recipients: list[str] = []
    allowed_domains: list[str] = []  # empty: any domain
    subject: str = "{company} board pack {period}"
    smtp_conn_id: str = "smtp_default"
    mask_customers: bool = False  # hash ids and hide names in the pack and every published file
    keep_unmasked: bool = False  # with masking: keep a private raw copy outside the published folder

    @field_validator("subject")
    @classmethod
    def _subject_template(cls, value: str) -> str:
        _no_control_characters(value, "subject")
        try:
            fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(value)
                      if name is not None]
        except ValueError as exc:
            raise ValueError(f"subject {value!r} is not a valid template ({exc}); write a literal "
                             "brace as {{ or }}") from None
        allowed = ", ".join("{" + f + "}" for f in SUBJECT_FIELDS)
        for name, spec, conversion in fields:
            # Only plain names: "{company.__class__}" or "{period[0]}" would reach into objects.
            if name not in SUBJECT_FIELDS or spec or conversion:
                shown = "{" + name + ("!" + conversion if conversion else "") + (":" + spec if spec else "") + "}"
                raise ValueError(f"subject placeholder {shown} is not allowed; use only {allowed}")
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower().lstrip("@") for v in values]
        bad = [v for v in cleaned if not _DOMAIN.match(v)]
        if bad:
            raise ValueError(f"not a domain name: {', '.join(repr(b) for b in bad)} (write e.g. example.com)")
        return cleaned

    @model_validator(mode="after")
    def _recipients_valid(self) -> "DeliveryConfig":
        # Every problem at once: a board pack must never go to a mistyped or outside address.
        problems = []
        for address in self.recipients:
            if not _EMAIL.match(address.strip()):
                problems.append(f"{address!r} is not a plain email address (write name@example.com)")
            elif not _domain_allowed(address.strip().rsplit("@", 1)[1].lower(), self.allowed_domains):
                problems.append(f"{address!r} is outside the allowed domains ({', '.join(self.allowed_domains)})")
        if problems:
            raise ValueError("recipients: " + "; ".join(problems))
        return self


class TrendConfig(_Strict):
    """How many periods the trend page shows (this one and those before it)."""

    periods: int = Field(8, ge=2, le=36)


class UnitsConfig(_Strict):
    """Per-unit packs beside the company pack (see :mod:`cxpipeline.units`).

    ``by``: a customer column (``region``) or two (``[region, channel]``: one pack per pair);
    ``recipients``: unit name -> addresses (a two-level unit is named ``North / Online``);
    ``recipients_column``: a column of the customers table holding each unit's addresses;
    ``edition``: the units' packs' edition when it differs from the company's (``board``: the
    board section only, a quarter of the full pack's render).
    """

    by: str | list[str]
    recipients: dict[str, list[str]] = {}
    recipients_column: str | None = None
    # The units' packs' edition (board: the board section only); default: output.edition
    edition: Literal["board", "full"] | None = None

    @field_validator("by")
    @classmethod
    def _one_or_two_columns(cls, value: str | list[str]) -> str | list[str]:
        columns = [value] if isinstance(value, str) else value
        if not 1 <= len(columns) <= 2 or any(not c.strip() for c in columns) or len(set(columns)) != len(columns):
            raise ValueError("by must name one customer column (region) or two different ones ([region, channel])")
        return value

    @property
    def columns(self) -> list[str]:
        """The ``by`` columns as a list."""
        return [self.by] if isinstance(self.by, str) else list(self.by)


class ModelConfig(_Strict):
    horizon_days: int = Field(90, ge=7, le=730)
    random_state: int = Field(0, ge=0, le=2**32 - 1)  # numpy / scikit-learn seeds are 32-bit unsigned
    # Above this many customers the model is fitted on a fixed sample of them, chosen by a hash
    # of the customer id (cxpipeline/panel.py, write_model_sample); every customer is still scored.
    max_customers_monthly: int = Field(1_000_000, ge=1_000)


class Config(_Strict):
    """A whole pack definition."""

    pack_id: str = Field("demo", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    source: Source = DemoSource()
    period: PeriodConfig = PeriodConfig()
    segments: list[str] = ["region", "channel", "customer_type"]
    lapse: LapseConfig = LapseConfig()
    tolerance: float = Field(0.10, ge=0, lt=1)  # +-band for "steady" counts / within-tier moves
    tiers: TierConfig = TierConfig()
    brand: BrandConfig = BrandConfig()
    terminology: TerminologyConfig = TerminologyConfig()
    locale: str = "en_GB"
    currency: str = Field("GBP", pattern=r"^[A-Z]{3}$")
    output: OutputConfig = OutputConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    model: ModelConfig = ModelConfig()
    trend: TrendConfig = TrendConfig()
    units: UnitsConfig | None = None  # per-unit packs (cxpipeline.units); none: the company pack only
    base_dir: str = "."  # folder relative paths are resolved against (set by load_config)
    # Where it came from: the YAML file (resolved, set by load_config) or the origin given to
    # config_from_dict (e.g. "cxpipeline demo"); not part of config_hash.
    config_origin: str | None = None

    @field_validator("currency")
    @classmethod
    def _iso_currency(cls, value: str) -> str:
        from babel.numbers import list_currencies

        if value not in list_currencies():
            raise ValueError(f"{value!r} is not an ISO 4217 currency code (use e.g. GBP, EUR, USD)")
        return value

    @field_validator("segments")
    @classmethod
    def _segment_names(cls, values: list[str]) -> list[str]:
        problems = []
        for name in values:
            if not name.strip():
                problems.append("an empty segment name")
            elif name.strip().lower() == "all":
                problems.append(f"{name!r} is reserved for the overall row of every table; rename the column "
                                "(e.g. via source.segment_columns)")
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            problems.append(f"listed twice: {', '.join(repeated)}")
        if problems:
            raise ValueError("; ".join(problems))
        return values

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(value)
        except (ValueError, UnknownLocaleError) as exc:
            raise ValueError(f"unknown locale {value!r} (use e.g. en_GB, en_US, de_DE)") from exc
        return value

    @model_validator(mode="after")
    def _unit_recipients_valid(self) -> "Config":
        if self.units is None:
            return self
        problems = []
        allowed = self.delivery.allowed_domains
        for unit, addresses in self.units.recipients.items():
            for address in addresses:
                if not _EMAIL.match(address.strip()):
                    problems.append(f"{unit}: {address!r} is not a plain email address (write name@example.com)")
                elif not _domain_allowed(address.strip().rsplit("@", 1)[1].lower(), allowed):
                    problems.append(f"{unit}: {address!r} is outside the allowed domains ({', '.join(allowed)})")
        if problems:
            raise ValueError("units.recipients: " + "; ".join(problems))
        if self.units.edition == "board" and not board_pages(self.output.sections):
            raise ValueError("units.edition is 'board' but output.sections names no board page; add one of "
                             f"{', '.join(BOARD_SECTION_IDS)}, or set units.edition: full")
        return self

    @property
    def cadence_trend_periods(self) -> int:
        """Trend periods whose boundaries need each customer's cadence (the personal lapse
        rule's); see :func:`cxpipeline.periods.cadence_instants`."""
        return self.trend.periods if self.lapse.mode == "personal" else 0

    @property
    def report_timezone(self) -> str:
        """The zone whose midnights cut the periods (see docs/reliability.md, "Time zones")."""
        if self.period.timezone:
            return self.period.timezone
        return self.source.timezone if self.source.kind == "file" else "UTC"

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(path)
        return p if p.is_absolute() else Path(self.base_dir) / p


def _format_validation_error(exc: ValidationError, origin: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"] if not str(part).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see examples/demo.yaml for the keys)"
        lines.append(f"{loc or '(top level)'}: {msg}")
    return ConfigError(
        "The configuration is not valid:\n  - " + "\n  - ".join(lines),
        where=origin,
        fix="Correct the keys listed above; examples/demo.yaml documents every key.",
    )


def config_from_dict(data: dict, *, origin: str = "config", base_dir: str | Path = ".") -> Config:
    """Validate a config given as a dict (e.g. parsed YAML or Airflow params)."""
    if not isinstance(data, dict):
        raise ConfigError("The configuration must be a mapping of keys to values.", where=origin,
                          fix="Start the file with keys such as 'pack_id:' and 'source:'.")
    data = {**data, "base_dir": str(base_dir), "config_origin": origin}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise _format_validation_error(exc, origin) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file.

    Raises
    ------
    ConfigError
        If the file is missing, is not YAML, or has unknown keys / bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file {str(path)!r} does not exist.", where=str(path),
                          fix="Pass the path of a YAML config, e.g. examples/demo.yaml.")
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise ConfigError(f"The config is not valid YAML: {getattr(exc, 'problem', exc)}.",
                          where=where, fix="Check indentation and quoting at that line.") from None
    except UnicodeDecodeError:
        raise ConfigError("The config file is not UTF-8 text.", where=str(path),
                          fix="Save the file as UTF-8.") from None
    config = config_from_dict(data or {}, origin=str(path), base_dir=path.resolve().parent)
    return config.model_copy(update={"config_origin": str(path.resolve())})


def parse_yaml(text: str, origin: str = "config") -> object:
    """Parse YAML like ``yaml.safe_load``, refusing duplicate keys and over-deep nesting.

    Raises
    ------
    ConfigError
        On a duplicate key or nesting deeper than :data:`MAX_YAML_DEPTH` (other YAML errors
        propagate as :class:`yaml.YAMLError`).
    """
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a safe loader subclass
    except _DuplicateKey as exc:
        raise ConfigError(f"The key {exc.key!r} appears twice in the same block (lines {exc.first_line} "
                          f"and {exc.line}); YAML would silently keep only the second.",
                          where=f"{origin}, line {exc.line}",
                          fix=f"Merge the two '{exc.key}:' blocks into one.") from None
    except _TooDeep as exc:
        raise ConfigError(f"The config is nested more than {MAX_YAML_DEPTH} levels deep.",
                          where=f"{origin}, line {exc.line}",
                          fix="A pack config needs only a few levels; see examples/demo.yaml.") from None
    except RecursionError:  # a flow collection nested past the C parser's own limits
        raise ConfigError("The config is nested too deeply to read.", where=origin,
                          fix="A pack config needs only a few levels; see examples/demo.yaml.") from None


def config_hash(config: Config) -> str:
    """A stable hash of the config's content (without the file and folder it was loaded from)."""
    payload = config.model_dump(mode="json", exclude={"base_dir", "config_origin"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]
