"""Vector charts for the pack: matplotlib SVG embedded as ``data:`` URIs.

Text stays text (``svg.fonttype = none``) so WeasyPrint sets it in the shipped Inter font and
it can be searched and extracted from the PDF. Each chart is an ``<img>`` (not inline ``<svg>``)
because several inline matplotlib SVGs collide on element ids in WeasyPrint.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402

__all__ = ["ChartBook", "svg_data_uri", "png_bytes", "waterfall_chart", "calibration_chart", "grouped_bar_chart",
           "gain_loss_chart", "movement_chart"]

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


class ChartBook:
    """Where the pack's charts are drawn: at once (the default), or, ``deferred``, while the
    document they are in is laid out.

    Deferred, :meth:`draw` returns a token (``cx-chart:N``) that the template writes where the
    ``data:`` URI goes. :meth:`start` then draws the charts a text names in a second process
    (forked, so nothing is pickled but the URIs coming back) while this one parses and styles
    the document; :meth:`uri` hands each one over when the layout fetches it, and
    :meth:`resolve` puts them all into the text. Drawing is the same either way, so is the pack
    (the charts are ~10% of a full render's time, docs/report.md).
    """

    #: A token where the template writes it, as an image's source: the same text elsewhere (a
    #: customer named "cx-chart:9") is data, left as it is.
    _TOKEN = re.compile(r'(?<=src=")cx-chart:(\d+)(?=")')

    def __init__(self, *, deferred: bool = False):
        self.deferred = deferred
        self._charts: list[Callable[[], str]] = []
        self.uris: dict[int, str] = {}
        self._drawer = None  # (process, connection) while a second process draws
        self.drawn_apart = 0  # how many charts the second process drew (the bench and tests read it)

    def draw(self, chart: Callable[..., str], /, *args, **kwargs) -> str:
        """``chart(*args, **kwargs)`` (a ``data:`` URI), or its token if deferred."""
        if not self.deferred:
            return chart(*args, **kwargs)
        self._charts.append(functools.partial(chart, *args, **kwargs))
        return f"cx-chart:{len(self._charts) - 1}"

    def numbers_in(self, text: str) -> list[int]:
        """The charts whose tokens are image sources in ``text``, in order, each once."""
        numbers = dict.fromkeys(int(m.group(1)) for m in self._TOKEN.finditer(text))
        return [n for n in numbers if n < len(self._charts)]

    def uri_for(self, url: str) -> str | None:
        """The ``data:`` URI of the chart a URL names (``cx-chart:N``, as the layout fetches a
        token), or None if it names none of this book's charts."""
        found = re.fullmatch(r"cx-chart:(\d+)", url)
        return self.uri(int(found.group(1))) if found and int(found.group(1)) < len(self._charts) else None

    def start(self, text: str | None = None) -> None:
        """Draw the charts ``text`` names (default: every chart asked for so far), in order, in a
        forked second process, if there are two or more, two CPUs to run on and ``fork``
        (Linux); else they are drawn here when asked for. Called once; later calls do nothing."""
        numbers = self.numbers_in(text) if text is not None else list(range(len(self._charts)))
        numbers = [n for n in numbers if n not in self.uris]
        if self._drawer is not None or len(numbers) < 2 or not _can_fork():
            return
        import multiprocessing

        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_draw_apart, args=(self._charts, numbers, sender, receiver, os.getpid()),
                                  daemon=True, name="cxpipeline-charts")
        process.start()
        sender.close()
        self._drawer = (process, receiver)

    def uri(self, number: int) -> str:
        """Chart ``number``'s ``data:`` URI: from the second process when it draws them (waiting
        for it), else drawn here. A chart that failed there is drawn here, so its error is
        raised here, with its traceback."""
        while number not in self.uris and self._drawer is not None:
            try:  # a chart takes well under a second; a process silent for 30 s is given up
                drawn, uri = self._drawer[1].recv() if self._drawer[1].poll(30) else (None, None)
            except (EOFError, OSError):  # the process is gone: draw the rest here
                drawn, uri = None, None
            if uri is None:
                self.close()
                break
            self.uris[drawn] = uri
            self.drawn_apart += 1
        if number not in self.uris:
            self.uris[number] = self._charts[number]()
        return self.uris[number]

    def resolve(self, text: str) -> str:
        """``text`` with every chart token replaced by its URI (see :meth:`uri`)."""
        for number in self.numbers_in(text):
            self.uri(number)
        if self._drawer is not None and all(n in self.uris for n in range(len(self._charts))):
            self.close()
        return self._TOKEN.sub(lambda m: self.uris.get(int(m.group(1)), m.group(0)), text)

    def close(self) -> None:
        """Stop the second process if it still runs (what it drew and sent is kept; :meth:`uri`
        draws anything missing here)."""
        if self._drawer is None:
            return
        process, receiver = self._drawer
        self._drawer = None
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join()


def _can_fork() -> bool:
    import multiprocessing

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cpus >= 2 and "fork" in multiprocessing.get_all_start_methods()


def _draw_apart(charts: list[Callable[[], str]], numbers: list[int], sender, receiver, parent: int) -> None:
    """The second process: each chart's URI, in order, then the pipe is closed. A chart that
    fails ends it with ``(number, None)``; the first process draws that one itself.

    It must not outlive the render: it holds copies of every file the first process had open,
    the pack's lock file among them, so a process left behind by a killed run would keep the
    next run of the period waiting. Hence it ends with its parent (Linux ``PR_SET_PDEATHSIG``),
    and it closes its copy of the pipe's reading end, so a send to a parent that is gone fails
    instead of waiting for a reader.
    """
    receiver.close()
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the closed reading end still ends it
        pass
    if os.getppid() != parent:  # the parent died before the line above
        return
    for number in numbers:
        try:
            uri = charts[number]()
        except BaseException:
            sender.send((number, None))
            break
        sender.send((number, uri))
    sender.close()


def svg_data_uri(fig) -> str:
    """Serialise a figure as an SVG ``data:`` URI (and close it)."""
    buffer = io.BytesIO()
    # The figure cropped to its drawn extent plus 0.02 in. bbox_inches="tight" would draw the
    # whole figure once to measure it and again to write it; measured with the Agg renderer
    # (the same font metrics) it is drawn once: the pack's four charts 0.35 -> 0.2 s.
    bbox = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.02)
    fig.savefig(buffer, format="svg", bbox_inches=bbox, metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def png_bytes(fig, dpi: int = 144) -> bytes:
    """Serialise a figure as PNG bytes (and close it): for mail clients, which show no SVG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight", pad_inches=0.04,
                facecolor="white", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


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


def calibration_chart(
    predicted: list[float],
    observed: list[float],
    *,
    colors: dict[str, str],
    label_percent: Callable[[float], str],
    fonts_dir: Path,
    size_inches: tuple[float, float] = (4.6, 3.4),
) -> str:
    """Predicted vs observed lapse rate per decile, against the diagonal of perfect calibration.

    Parameters
    ----------
    predicted, observed
        Mean predicted probability and observed rate per decile (same length, at least one).
    colors
        ``{"model", "diagonal", "grid", "text"}`` hex colours.
    label_percent
        Formatter for the axis ticks (the pack's locale).
    """
    if not predicted or len(predicted) != len(observed):
        raise ValueError("calibration_chart needs one observed rate per predicted rate (at least one)")
    with plt.rc_context(_style(fonts_dir)):
        fig, ax = plt.subplots(figsize=size_inches)
        ax.plot([0, 1], [0, 1], color=colors["diagonal"], linewidth=0.9, linestyle=(0, (3, 2)), zorder=1,
                label="Perfect calibration")
        ax.plot(predicted, observed, color=colors["model"], linewidth=1.2, marker="o", markersize=3.8,
                zorder=3, label="Observed, by decile")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ticks = [0, 0.25, 0.5, 0.75, 1]
        ax.set_xticks(ticks, [label_percent(t) for t in ticks])
        ax.set_yticks(ticks, [label_percent(t) for t in ticks])
        ax.set_xlabel("Predicted lapse rate (mean of the decile)")
        ax.set_ylabel("Observed lapse rate")
        ax.spines["left"].set_visible(True)
        ax.tick_params(length=0)
        ax.grid(color=colors["grid"], linewidth=0.5, zorder=0)
        ax.legend(loc="upper left", frameon=False, fontsize=7)
        return svg_data_uri(fig)


def grouped_bar_alt(title: str, groups: list[str], series: list[dict],
                    label_value: Callable[[float], str]) -> str:
    """A grouped bar chart's description from its numbers (the PDF's alt text): the title, then
    each series' value per group, as the bars' own labels print them."""
    parts = [f"{s['label']}: " + ", ".join(f"{g} {label_value(v)}" for g, v in zip(groups, s["values"]))
             for s in series]
    return f"Bar chart, {title}. " + "; ".join(parts) + "."


def grouped_bar_chart(
    groups: list[str],
    series: list[dict],
    *,
    colors: dict[str, str],
    label_value: Callable[[float], str],
    fonts_dir: Path,
    size_inches: tuple[float, float] = (6.3, 3.2),
) -> str:
    """Bars side by side per group, e.g. shares of historical vs predicted value by band.

    Parameters
    ----------
    groups
        Category labels along the x axis.
    series
        ``[{"label": str, "values": [float per group], "color": hex}, ...]``.
    colors
        ``{"grid", "text"}`` hex colours.
    label_value
        Formatter for the bar labels and the y ticks.
    """
    if not groups or not series or any(len(s["values"]) != len(groups) for s in series):
        raise ValueError("grouped_bar_chart needs one value per group in every series")
    with plt.rc_context(_style(fonts_dir)):
        fig, ax = plt.subplots(figsize=size_inches)
        width = 0.8 / len(series)
        top = max(max(s["values"]) for s in series) or 1.0
        for k, s in enumerate(series):
            xs = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
            ax.bar(xs, s["values"], width=width * 0.92, color=s["color"], label=s["label"], zorder=2)
            for x, v in zip(xs, s["values"]):
                ax.text(x, v + top * 0.015, label_value(v), ha="center", va="bottom", fontsize=6.5,
                        color=colors["text"])
        ax.set_xticks(range(len(groups)), groups)
        ax.tick_params(axis="x", length=0, pad=5)
        ax.tick_params(axis="y", length=0)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: label_value(v)))
        ax.grid(axis="y", color=colors["grid"], linewidth=0.5, zorder=0)
        ax.set_ylim(0, top * 1.12)
        # Legend above the axes, so it never sits on a bar label.
        ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7, ncol=len(series))
        return svg_data_uri(fig)


def _period_axis(ax, labels: list[str], colors: dict[str, str], label_value: Callable[[float], str],
                 show_labels: bool = True) -> None:
    ax.axhline(0, color=colors["text"], linewidth=0.7, zorder=3)
    # Many periods (config trend.periods up to 36): slanted labels so they do not collide.
    slant = {"rotation": 45, "ha": "right"} if len(labels) > 8 else {}
    ax.set_xticks(range(len(labels)), labels if show_labels else [""] * len(labels), fontsize=6.5, **slant)
    ax.tick_params(axis="x", length=0, pad=3)
    ax.tick_params(axis="y", length=0, labelsize=6.5)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: label_value(v)))
    ax.grid(axis="y", color=colors["grid"], linewidth=0.5, zorder=0)
    ax.set_xlim(-0.6, len(labels) - 0.4)


def _limits(ax, highs: list[float], lows: list[float]) -> None:
    top, bottom = max([*highs, 0]), min([*lows, 0])
    if top == bottom:
        top = 1.0
    pad = (top - bottom) * 0.08
    ax.set_ylim(bottom - pad, top + pad)


def gain_loss_chart(
    labels: list[str],
    panels: list[dict],
    *,
    colors: dict[str, str],
    fonts_dir: Path,
    size_inches: tuple[float, float] = (4.9, 3.1),
    encode: Callable = svg_data_uri,
):
    """Gained above the axis, lost below it, and the net line, per period; one panel per
    measure, stacked (e.g. counts above values) on the same periods.

    Returns ``encode(figure)``: an SVG ``data:`` URI by default (the pack), or e.g. PNG bytes
    with :func:`png_bytes` (the email).

    Parameters
    ----------
    labels
        Period labels along the x axis, oldest first.
    panels
        ``[{"title": str, "gained": [...], "lost": [...] (positive numbers), "net": [...],
        "label_value": callable}, ...]``.
    colors
        ``{"gained", "lost", "net", "grid", "text"}`` hex colours (the brand's).
    """
    if not labels or not panels or any(len(p[k]) != len(labels) for p in panels for k in ("gained", "lost", "net")):
        raise ValueError("gain_loss_chart needs one gained, lost and net value per period in every panel")
    with plt.rc_context(_style(fonts_dir)):
        fig, axes = plt.subplots(len(panels), 1, figsize=size_inches, squeeze=False, sharex=True)
        xs = list(range(len(labels)))
        for index, (ax, panel) in enumerate(zip(axes[:, 0], panels)):
            lost = [-v for v in panel["lost"]]
            ax.bar(xs, panel["gained"], width=0.62, color=colors["gained"], zorder=2, label="Gained")
            ax.bar(xs, lost, width=0.62, color=colors["lost"], zorder=2, label="Lost")
            ax.plot(xs, panel["net"], color=colors["net"], linewidth=1.3, marker="o", markersize=3,
                    zorder=4, label="Net (gained − lost)")
            _period_axis(ax, labels, colors, panel["label_value"], show_labels=index == len(panels) - 1)
            _limits(ax, [*panel["gained"], *panel["net"]], [*lost, *panel["net"]])
            ax.set_title(panel["title"], loc="left", fontsize=7.5, fontweight="semibold", color=colors["text"])
        axes[0, 0].legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=6.5, ncol=3,
                          handlelength=1.2, columnspacing=1.0)
        fig.subplots_adjust(hspace=0.35)
        return encode(fig)


def movement_chart(
    labels: list[str],
    series: list[dict],
    net: list[float],
    *,
    colors: dict[str, str],
    label_value: Callable[[float], str],
    fonts_dir: Path,
    net_label: str = "Revenue change",
    size_inches: tuple[float, float] = (4.9, 3.1),
) -> str:
    """Revenue movements by class per period, stacked above (gains) and below (losses) the axis,
    with the net change as a line: the movements chart of subscription analytics.

    Parameters
    ----------
    labels
        Period labels, oldest first.
    series
        ``[{"label": str, "values": [signed value per period], "color": hex}, ...]`` in stacking
        order; a positive value stacks upwards, a negative one downwards.
    net
        The net change per period (the sum of the series).
    colors
        ``{"net", "grid", "text"}`` hex colours.
    """
    if not labels or not series or len(net) != len(labels) or any(len(s["values"]) != len(labels) for s in series):
        raise ValueError("movement_chart needs one value per period in every series and in net")
    with plt.rc_context(_style(fonts_dir)):
        fig, ax = plt.subplots(figsize=size_inches)
        xs = list(range(len(labels)))
        up, down = [0.0] * len(labels), [0.0] * len(labels)
        for s in series:
            bottoms = [up[i] if v >= 0 else down[i] for i, v in enumerate(s["values"])]
            ax.bar(xs, s["values"], bottom=bottoms, width=0.62, color=s["color"], zorder=2, label=s["label"])
            for i, v in enumerate(s["values"]):
                if v >= 0:
                    up[i] += v
                else:
                    down[i] += v
        ax.plot(xs, net, color=colors["net"], linewidth=1.3, marker="o", markersize=3, zorder=4, label=net_label)
        _period_axis(ax, labels, colors, label_value)
        _limits(ax, [*up, *net], [*down, *net])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 if len(labels) <= 8 else -0.2), frameon=False,
                  fontsize=6.5, ncol=3, handlelength=1.2, columnspacing=1.0)
        return svg_data_uri(fig)
