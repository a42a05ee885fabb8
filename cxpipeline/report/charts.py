"""Vector charts for the pack: matplotlib SVG embedded as ``data:`` URIs.

Text stays text (``svg.fonttype = none``) so WeasyPrint sets it in the shipped Inter font and
it can be searched and extracted from the PDF. Each chart is an ``<img>`` (not inline ``<svg>``)
because several inline matplotlib SVGs collide on element ids in WeasyPrint.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

__all__ = ["svg_data_uri", "waterfall_chart"]

_FONTS_REGISTERED: set[str] = set()


def _use_shipped_font(fonts_dir: Path) -> None:
    """Register the shipped Inter files so matplotlib measures text with the real metrics."""
    key = str(fonts_dir)
    if key not in _FONTS_REGISTERED:
        for font_file in sorted(fonts_dir.glob("Inter-*.otf")):
            font_manager.fontManager.addfont(str(font_file))
        _FONTS_REGISTERED.add(key)


def _style(fonts_dir: Path) -> dict:
    _use_shipped_font(fonts_dir)
    return {
        "svg.fonttype": "none",
        "svg.hashsalt": "cxpipeline",  # stable ids -> identical SVG for identical numbers
        "font.family": "Inter",
        "font.size": 7.5,
        "axes.edgecolor": "#C9CED6",
        "axes.labelcolor": "#4A5260",
        "xtick.color": "#4A5260",
        "ytick.color": "#4A5260",
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.spines.left": False,
        "figure.dpi": 72,
    }


def svg_data_uri(fig) -> str:
    """Serialise a figure as an SVG ``data:`` URI (and close it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", pad_inches=0.02, metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def waterfall_chart(
    steps: list[dict],
    *,
    colors: dict[str, str],
    label_money: Callable[[float], str],
    label_signed: Callable[[float], str],
    fonts_dir: Path,
    size_inches: tuple[float, float] = (9.5, 3.6),
) -> str:
    """A revenue bridge waterfall: first and last steps are totals, the rest signed changes.

    Parameters
    ----------
    steps
        ``[{"label": str, "value": float, "kind": "total" | "change"}, ...]`` in display order.
    colors
        ``{"total", "positive", "negative", "grid", "text"}`` hex colours (the brand's).
    label_money, label_signed
        Formatters for the bar labels (totals / changes), e.g. compact money.
    fonts_dir
        Folder with the shipped Inter OTF files.

    Returns
    -------
    str
        ``data:image/svg+xml;base64,...``
    """
    with plt.rc_context(_style(fonts_dir)):
        fig, ax = plt.subplots(figsize=size_inches)
        running = 0.0
        tops = []
        for index, step in enumerate(steps):
            value = float(step["value"])
            if step["kind"] == "total":
                bottom, height, color = 0.0, value, colors["total"]
                running = value
                label = label_money(value)
            else:
                bottom = running if value >= 0 else running + value
                height = abs(value)
                color = colors["positive"] if value >= 0 else colors["negative"]
                label = label_signed(value)
                # connector from the previous bar's level
                running += value
            ax.bar(index, height, bottom=bottom, width=0.62, color=color, zorder=2)
            tops.append((index, bottom + height, label, step["kind"]))
            if index < len(steps) - 1:
                ax.plot([index + 0.31, index + 1 - 0.31], [running, running], color=colors["grid"],
                        linewidth=0.8, zorder=1)
        span = max(top for _, top, _, _ in tops) or 1.0
        for index, top, label, kind in tops:
            ax.text(index, top + span * 0.02, label, ha="center", va="bottom",
                    fontsize=7.5, fontweight="semibold" if kind == "total" else "normal",
                    color=colors["text"])
        ax.set_xticks(range(len(steps)), [s["label"] for s in steps])
        ax.tick_params(axis="x", length=0, pad=6)
        ax.tick_params(axis="y", length=0)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: label_money(v)))
        ax.grid(axis="y", color=colors["grid"], linewidth=0.5, zorder=0)
        ax.set_ylim(0, span * 1.12)
        ax.set_xlim(-0.55, len(steps) - 0.45)
        return svg_data_uri(fig)
