"""The report's tables of the ``nsd`` and ``kamitani`` evaluation suites.

They are read from ``recon/metrics.json`` (key ``"suites"``, written by
``e2e-recon evaluate --suite nsd --suite kamitani``) and shown as the published
tables show them: identification in percent, PixCorr, SSIM and distances to three
decimals, missing networks as "-" with the command that fetches them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from e2e_recon.evaluate.suite_common import score_text, unverified_lines
from e2e_recon.report.contents import read_json
from e2e_recon.report.page import note


def suites_html(recon_dir: Path) -> str:
    """HTML of the suites in ``recon_dir/metrics.json``; "" when none ran."""
    content = read_json(recon_dir / "metrics.json")
    suites = content.get("suites") if isinstance(content, dict) else None
    if not isinstance(suites, dict):
        return ""
    parts = []
    if isinstance(suites.get("nsd"), dict):
        parts.append(_nsd(suites["nsd"]))
    if isinstance(suites.get("kamitani"), dict):
        parts.append(_kamitani(suites["kamitani"]))
    return "".join(parts)


def _cell(value: Any, percent: bool) -> str:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    return f"<td>{score_text(number, percent)}</td>"


def _missing(table: Mapping[str, Any]) -> str:
    missing = table.get("missing") or {}
    return "".join(note(f"Missing: {text}") for text in missing.values()) + "".join(
        note(line) for line in unverified_lines(table)
    )


def _nsd(nsd: Mapping[str, Any]) -> str:
    columns = nsd.get("columns") or []
    head = "".join(
        f"<th>{html.escape(c['label'])} {'↑' if c.get('higher_is_better') else '↓'}</th>"
        for c in columns
    )
    rows = []
    for row in nsd.get("rows") or []:
        cells = "".join(
            _cell(row["scores"].get(c["key"]), bool(c.get("identification"))) for c in columns
        )
        rows.append(
            f'<tr><td class="l">{html.escape(str(row["set"]))}</td>'
            f'<td class="l">{html.escape(str(row["method"]))}</td>'
            f"<td>{html.escape(str(row.get('n_images', '')))}</td>{cells}</tr>"
        )
    return (
        "<h3>NSD benchmark</h3>"
        f'<table class="metrics"><tr><th class="l">Test set</th><th class="l">Method</th>'
        f"<th>Images</th>{head}</tr>{''.join(rows)}</table>"
        + note(
            "Two-way identification in %, chance 50%; EffNet-B and SwAV are correlation "
            f"distances (lower is better). Definitions: {nsd.get('source', '')}."
        )
        + _missing(nsd)
    )


def _kamitani(kamitani: Mapping[str, Any]) -> str:
    analyses = kamitani.get("analyses") or []
    head = "".join(f"<th>{html.escape(a['label'])}</th>" for a in analyses)
    blocks = []
    for row in kamitani.get("rows") or []:
        body = "".join(
            f'<tr><td class="l">{html.escape(space["label"])}</td>'
            + "".join(
                _cell(row["scores"].get(space["key"], {}).get(a["key"]), True) for a in analyses
            )
            + "</tr>"
            for space in kamitani.get("feature_spaces") or []
        )
        title = f"{row['set']}, {row['method']} ({row.get('n_images', '?')} images)"
        blocks.append(
            f"<h4>{html.escape(title)}</h4>"
            f'<table class="metrics"><tr><th class="l">Features</th>{head}</tr>{body}</table>'
        )
    chance = ", ".join(f"{a['label']} {100 * a['chance']:.0f}%" for a in analyses)
    distractors = (kamitani.get("distractors") or {}).get("source", "")
    return (
        "<h3>Identification analyses (Kamitani lab)</h3>"
        + "".join(blocks)
        + note(f"Chance: {chance}. Distractors: {distractors}. "
                f"Definitions: {kamitani.get('source', '')}.")
        + _missing(kamitani)
    )  # fmt: skip
