"""The report's table of paired comparisons: per-image differences against the baseline."""

from __future__ import annotations

import html

from e2e_recon.report.metrics_file import Metrics, MetricValue, PairedRow


def paired_table(metrics: Metrics, keys: list[str]) -> str:
    """HTML table of ``metrics.paired`` ("" when there is none).

    Each cell: the mean per-image difference (method minus baseline), its paired
    bootstrap interval and the share of images the method wins; bold where the
    interval excludes 0, which is where the method can be said to beat its baseline.
    """
    if not metrics.paired:
        return ""
    head = "".join(f"<th>{html.escape(metrics.label(k))}</th>" for k in keys)
    rows = "".join(_row(metrics, row, keys) for row in metrics.paired)
    note = (
        "Paired per-image differences (method minus baseline), mean with its paired bootstrap "
        "interval and the share of images won. Bold: the interval excludes 0."
    )
    return (
        f'<h3>Paired comparisons</h3><table class="metrics"><tr><th class="l">Test set</th>'
        f'<th class="l">Comparison</th>{head}</tr>{rows}</table><p class="note">{note}</p>'
    )


def _row(metrics: Metrics, row: PairedRow, keys: list[str]) -> str:
    cells = "".join(
        _cell(row.values.get(k), row.wins.get(k), k in row.clear, metrics.is_identification(k))
        for k in keys
    )
    return (
        f'<tr><td class="l">{html.escape(row.set_name)}</td>'
        f'<td class="l">{html.escape(row.title)}</td>{cells}</tr>'
    )


def _cell(value: MetricValue | None, wins: float | None, clear: bool, percent: bool) -> str:
    if value is None or value.value is None:
        return "<td>&ndash;</td>"
    scale, unit = (100.0, " pt") if percent else (1.0, "")
    text = f"{scale * value.value:+.1f}{unit}" if percent else f"{value.value:+.3f}"
    if value.low is not None and value.high is not None:
        low, high = scale * value.low, scale * value.high
        text += (
            f'<span class="ci">[{low:+.1f}, {high:+.1f}]</span>'
            if percent
            else (f'<span class="ci">[{low:+.3f}, {high:+.3f}]</span>')
        )
    if wins is not None:
        text += f'<span class="ci">wins {100 * wins:.0f}%</span>'
    return f'<td class="best">{text}</td>' if clear else f"<td>{text}</td>"
