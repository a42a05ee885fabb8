"""Number, money and percentage formatting for the pack, through Babel.

One :class:`Formatter` is built per pack from ``config.locale`` and ``config.currency``; its
methods are registered as Jinja filters (``money``, ``money_compact``, ``count``, ``percent``,
``signed_money``, ``signed_count``, ``signed_percent``) so a template never formats a number
by hand. Board packs show whole currency units; the metric tables keep the cents.
"""

from __future__ import annotations

import math
import re

from babel import Locale
from babel.numbers import (
    format_compact_currency,
    format_decimal,
    format_percent,
    get_currency_symbol,
    parse_pattern,
)

__all__ = ["Formatter", "MINUS", "tint"]

#: Typographic minus sign (same width as + and the figures in Inter's tabular numerals).
MINUS = "\u2212"


def _finite(value: float | int | None, what: str) -> float:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        # A NaN reaching the template is a bug upstream; printing "nan" in a board pack is worse.
        raise ValueError(f"cannot format {what} {value!r}: the metric tables must not hold NaN/None")
    return float(value)


class Formatter:
    """Locale-aware formatting of the numbers printed in the pack.

    Parameters
    ----------
    locale
        A Babel locale name such as ``en_GB`` or ``de_DE``.
    currency
        ISO 4217 code such as ``GBP`` or ``EUR``.
    """

    def __init__(self, locale: str, currency: str):
        self.locale = Locale.parse(locale)
        self.currency = currency
        self.currency_symbol = get_currency_symbol(currency, locale=self.locale)
        # The locale's own currency pattern (symbol placement, spacing) with no decimals.
        pattern = parse_pattern(self.locale.currency_formats["standard"].pattern)
        pattern.frac_prec = (0, 0)
        self._whole_money = pattern

    # -- plain values -------------------------------------------------------------------
    def money(self, value: float | None) -> str:
        """Whole currency units, e.g. ``£1,234,567`` / ``1.234.567 €``; negatives with a minus."""
        number = _finite(value, "money")
        text = self._whole_money.apply(abs(number), self.locale, currency=self.currency,
                                       currency_digits=False)
        return (MINUS + text) if round(number) < 0 else text

    def money_compact(self, value: float | None) -> str:
        """Short money for charts and tiles: ``£1.2m``, ``£23.5k`` (English), ``1,2 Mio. €``."""
        number = _finite(value, "money")
        if abs(number) < 1000:
            return self.money(number)
        text = format_compact_currency(abs(number), self.currency, locale=self.locale,
                                       fraction_digits=1)
        if not re.search(r"[^\W\d_]", text.replace(self.currency_symbol, "")):
            # The locale has no short form at this size (German thousands): print it in full.
            return self.money(number)
        if self.locale.language == "en":
            text = re.sub(r"(?<=\d)([KMBT])\b", lambda m: m.group(1).lower(), text)
            text = text.replace("b", "bn") if re.search(r"\db\b", text) else text
        return (MINUS + text) if number < 0 else text

    def count(self, value: int | float | None) -> str:
        """A whole number with the locale's grouping, e.g. ``12,345`` / ``12.345``."""
        number = _finite(value, "count")
        text = format_decimal(abs(round(number)), format="#,##0", locale=self.locale)
        return (MINUS + text) if round(number) < 0 else text

    def percent(self, value: float | None, digits: int = 1) -> str:
        """A ratio as a percentage: ``0.873`` -> ``87.3%`` / ``87,3 %``."""
        number = _finite(value, "percentage")
        fmt = "#,##0" + ("." + "0" * digits if digits else "") + "%"
        text = format_percent(abs(number), format=fmt, locale=self.locale)
        negative = round(abs(number) * 100, digits) > 0 and number < 0
        return (MINUS + text) if negative else text

    # -- signed changes -----------------------------------------------------------------
    @staticmethod
    def _signed(text: str, value: float) -> str:
        if text.startswith(MINUS):
            return text
        return ("+" + text) if value > 0 and text.strip("0.,%  ") else text

    def signed_money(self, value: float | None) -> str:
        """A change in money with an explicit sign: ``+£1,204`` / ``−£310``."""
        number = _finite(value, "money")
        return self._signed(self.money(number), round(number))

    def signed_money_compact(self, value: float | None) -> str:
        number = _finite(value, "money")
        return self._signed(self.money_compact(number), round(number))

    def signed_count(self, value: int | float | None) -> str:
        number = _finite(value, "count")
        return self._signed(self.count(number), round(number))

    def signed_percent(self, value: float | None, digits: int = 1) -> str:
        number = _finite(value, "percentage")
        return self._signed(self.percent(number, digits), number)

    @staticmethod
    def clip(text, limit: int = 80) -> str:
        """A name, id or segment value from the data, cut to ``limit`` characters with an ellipsis:
        a 50,000-character customer name would otherwise run one table row over dozens of pages."""
        text = str(text)
        return text if len(text) <= limit else text[:limit - 1].rstrip() + "\u2026"

    def filters(self) -> dict:
        """The Jinja filters, by name."""
        return {
            "clip": self.clip,
            "money": self.money,
            "money_compact": self.money_compact,
            "count": self.count,
            "percent": self.percent,
            "signed_money": self.signed_money,
            "signed_money_compact": self.signed_money_compact,
            "signed_count": self.signed_count,
            "signed_percent": self.signed_percent,
        }


def tint(hex_color: str, weight: float) -> str:
    """``hex_color`` mixed with white (weight = share of the colour), e.g. a brand colour's
    light background for table rows and heat-map cells."""
    rgb = [int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(c * weight + 255 * (1 - weight)):02X}" for c in rgb)
