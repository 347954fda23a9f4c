"""`wharf bench report`: the benchmarks view as one self-contained HTML file.

Chart.js, the chart code and the records are all inlined, so the file opens
anywhere, with no network and no server.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from gateway.web.benchdata import load_records

STATIC = Path(__file__).resolve().parent / "static"


def _script(code: str) -> str:
    # A record can hold any text; keep it from closing the script element.
    return "<script>" + code.replace("</", "<\\/") + "</script>"


def render(records: list[dict]) -> str:  # type: ignore[type-arg]
    # The whole stylesheet, not a copy of the benchmark rules: the report cannot drift from the dashboard.
    css = (STATIC / "style.css").read_text()
    chart = (STATIC / "vendor" / "chart.umd.min.js").read_text()
    bench = (STATIC / "bench.js").read_text()
    data = json.dumps(records)
    names = sorted({r["benchmark"] for r in records})
    title = "DataWharf benchmarks" + (f": {', '.join(names)}" if names else "")
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Without it a phone lays the page out at desktop width and the charts do not reflow.
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{css}</style>",
        "</head><body>",
        f"<header><h1>{html.escape(title)}</h1><span class='status'>{len(records)} record(s)</span></header>",
        '<main><div id="bench-root"></div></main>',
        _script(chart),
        _script(bench),
        _script(f"window.WHARF_RECORDS = {data};\n"
                "window.renderBenchmarks(document.getElementById('bench-root'), window.WHARF_RECORDS);"),
        "</body></html>",
    ])


def write_report(results_dir: Path, out: Path) -> int:
    records = load_records(results_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(records), encoding="utf-8")
    return len(records)
