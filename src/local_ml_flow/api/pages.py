"""The dashboard's HTML, rendered on the server (no template engine): escaped, small, no CDN.

Each page is one HTML document with the app's own CSS and JS (``static/ui``) and, where it
draws charts, the vendored uPlot. Data the browser needs later is fetched from the API.
Every page fits 1280 px and reads at 390 px: a table wider than its box scrolls inside it
(``div.scroll``), the runs table turns into one card per run on a narrow screen (``cards``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from local_ml_flow.api import assets
from local_ml_flow.ml import dataset

DASH = "\u2013"  # an empty cell
STATUSES = ("queued", "running", "succeeded", "failed", "corrupt")
RUNS_COLUMNS = (
    "run",
    "status",
    "model",
    "features",
    "R²",
    "MAE",
    "RMSE",
    "dataset",
    "created (UTC)",
    "duration",
)
CURRENT = '<span class="badge current">current</span>'
_SUPERSCRIPT = str.maketrans(
    "-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
)


def e(value: object) -> str:
    """Escape anything for HTML text or an attribute."""
    return escape("" if value is None else str(value), quote=True)


def human(value: Any) -> str:
    """A number as people read it: ``1,609,023``, ``0.6529``, ``0.2``, ``1.2 x 10⁻⁵`` (the rules
    of ``number`` in app.js); text as it is, nothing (or a non-finite number) as a dash."""
    if value is None:
        return DASH
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return DASH
    size = abs(value)
    if isinstance(value, int) and size < 1e15:
        return f"{value:,}"
    if size >= 1e15 or 0 < size < 1e-4:
        mantissa, exponent = f"{value:.2e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}\u00d710{str(int(exponent)).translate(_SUPERSCRIPT)}"
    if size >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def when(timestamp: Any) -> str:
    """``2026-11-26T09:47:08.410799Z`` (or ``+00:00``) as ``2026-11-26 09:47:08`` (UTC)."""
    if not timestamp:
        return DASH
    return str(timestamp).replace("T", " ")[:19]


def layout(title: str, body: str, *, charts: bool = False, active: str = "") -> str:
    """A whole page: navigation, the app's CSS/JS, uPlot when it draws charts."""
    links = [
        ("/ui", "Runs"),
        ("/ui/datasets", "Datasets"),
        ("/ui/dataset", "Dataset"),
        ("/ui/predict", "Predict"),
        ("/docs", "API docs"),
        ("/redoc", "ReDoc"),
    ]
    nav = "".join(
        f'<a href="{href}"{" class=active" if name == active else ""}>{name}</a>'
        for href, name in links
    )
    chart_head = (
        f'<link rel="stylesheet" href="{assets.UPLOT_CSS}">'
        f'<script src="{assets.UPLOT_JS}" defer></script>'
        if charts
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · local-ml-flow</title>
<link rel="icon" href="{assets.FAVICON}">
<link rel="stylesheet" href="{assets.UI_CSS}">{chart_head}
<script src="{assets.UI_JS}" defer></script>
</head><body>
<header><strong>local-ml-flow</strong><nav>{nav}</nav></header>
<main><h1>{e(title)}</h1>
{body}
</main></body></html>"""


def scroll(table: str) -> str:
    """A table in a box of its own that scrolls sideways when the table is wider."""
    return f'<div class="scroll">{table}</div>'


def run_link(run_id: str) -> str:
    """A link to a run's page; a long id is cut short with an ellipsis (whole in its title)."""
    return f'<a class="run-id" href="/ui/runs/{e(run_id)}" title="{e(run_id)}">{e(run_id)}</a>'


def error_page(
    status: int,
    error_type: str,
    message: str,
    *,
    back: tuple[str, str] = ("/ui", "all runs"),
    element_id: str = "ui-error",
    active: str = "",
) -> str:
    """The page of an error under /ui: what went wrong, and a way back."""
    titles = {400: "Bad request", 404: "Not found", 405: "Not allowed", 422: "Bad request"}
    title = titles.get(status, "Bad request" if status < 500 else "Something went wrong")
    href, label = back
    return layout(
        title,
        f'<div class="error-box" id="{e(element_id)}" data-status="{status}">'
        f"<strong>{e(error_type)}</strong>: {e(message)}</div>"
        f'<p class="back"><a href="{e(href)}">\u2190 {e(label)}</a></p>',
        active=active,
    )


def _status(record: Mapping[str, Any]) -> str:
    status = str(record.get("status"))
    current = f" {CURRENT}" if record.get("current") else ""
    return f'<span class="status {e(status)}">{e(status)}</span>{current}'


def _duration(record: Mapping[str, Any]) -> str:
    start, end = record.get("created_at"), record.get("finished_at")
    if not start or not end:
        return DASH
    try:
        seconds = (
            datetime.fromisoformat(str(end).replace("Z", "+00:00"))
            - datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        ).total_seconds()
    except ValueError:
        return DASH
    return f"{seconds:.1f} s"


def _cell(label: str, content: str, css: str = "") -> str:
    """A runs-table cell; ``label`` names it when the table turns into cards."""
    cls = f' class="{css}"' if css else ""
    return f'<td data-label="{e(label)}"{cls}>{content}</td>'


def runs_rows(records: Sequence[Mapping[str, Any]], status: str | None, limit: int) -> str:
    """The rows of the runs table (also what app.js swaps in while a run goes on)."""
    rows = []
    for r in records:
        m = r.get("metrics") or {}
        p = r.get("parameters") or {}
        run_id = str(r["run_id"])
        rows.append(
            f'<tr data-run="{e(run_id)}" data-status="{e(r.get("status"))}">'
            f'<td class="pick"><input type="checkbox" name="run" value="{e(run_id)}"'
            f' form="compare" aria-label="compare {e(run_id)}"></td>'
            f'<td class="run">{run_link(run_id)}</td>'
            + _cell("status", _status(r), "state")
            + _cell("model", e(p.get("model")))
            + _cell("features", e(p.get("feature_set")))
            + _cell("R²", human(m.get("r2")), "num")
            + _cell("MAE", human(m.get("mae")), "num")
            + _cell("RMSE", human(m.get("rmse")), "num")
            + _cell("dataset", e((r.get("dataset_sha256") or "")[:8]) or DASH, "mono")
            + _cell("created (UTC)", e(when(r.get("created_at"))), "when")
            + _cell("duration", _duration(r), "num")
            + "</tr>"
        )
    if rows:
        return "".join(rows)
    empty = f"no {e(status)} runs" if status else "no runs yet: start one with the form above"
    return f'<tr class="empty"><td colspan="11">{empty}</td></tr>'


def runs_page(
    records: Sequence[Mapping[str, Any]],
    status: str | None,
    limit: int,
    following: str | None = None,
    later: bool = False,
) -> str:
    """The runs table (newest first), a status filter, compare 2-4, start a run; a page of
    ``limit`` runs, ``following`` the cursor of the next page (older runs), ``later`` when
    this is not the first page."""
    options = "".join(
        f'<option value="{s}"{" selected" if s == status else ""}>{s}</option>' for s in STATUSES
    )
    heads = "".join(
        f"<th{' class=num' if label in ('R²', 'MAE', 'RMSE', 'duration') else ''}>{label}</th>"
        for label in RUNS_COLUMNS
    )
    table = (
        f'<table id="runs" class="cards"><thead><tr><th><span class="sr-only">compare</span></th>'
        f"{heads}</tr></thead><tbody>{runs_rows(records, status, limit)}</tbody></table>"
    )
    return layout(
        "Runs",
        f"""
<section class="panel"><h2>Start a run</h2>{start_form()}</section>
<section>
<form method="get" action="/ui" class="inline" id="status-filter">
<label>status <select name="status">
<option value="">all</option>{options}</select></label>
<input type="hidden" name="limit" value="{limit}">
<button type="submit" class="secondary">filter</button></form>
<form id="compare" method="get" action="/ui/compare" class="inline">
<button type="submit" id="compare-button" disabled>compare selected (2-4)</button></form>
{scroll(table)}
<p class="muted" id="runs-count">{len(records)} run(s) shown (newest first, at most {limit}).</p>
{_runs_pager(status, limit, following, later)}
</section>
{promotions_section("/pipeline/promotions?limit=20", "/ui/runs/")}""",
        active="Runs",
    )


def _runs_pager(status: str | None, limit: int, following: str | None, later: bool) -> str:
    """Links to the newest runs and to the next page of older ones (the same filter)."""
    links = []
    kept = {"status": status} if status else {}
    if later:
        links.append(f'<a href="/ui?{e(urlencode({**kept, "limit": limit}))}">newest runs</a>')
    if following:
        query = urlencode({**kept, "limit": limit, "cursor": following})
        links.append(f'<a id="runs-more" rel="next" href="/ui?{e(query)}">older runs</a>')
    return f'<p class="pager">{" · ".join(links)}</p>' if links else ""


def start_form() -> str:
    from local_ml_flow.events import RunParameters
    from local_ml_flow.ml.model import MODEL_KINDS

    defaults = RunParameters()
    models = "".join(
        f"<option{' selected' if m == defaults.model else ''}>{e(m)}</option>" for m in MODEL_KINDS
    )
    sets = "".join(
        f"<option{' selected' if f == defaults.feature_set else ''}>{e(f)}</option>"
        for f in dataset.FEATURE_SETS
    )
    return f"""<form id="start-run" class="grid">
<label>model <select name="model">{models}</select></label>
<label>feature set <select name="feature_set">{sets}</select></label>
<label>test size <input name="test_size" type="number" step="0.01" min="0.01" max="0.99"
 value="{defaults.test_size}"></label>
<label>random state <input name="random_state" type="number" step="1" min="0"
 value="{defaults.random_state}"></label>
<button type="submit">start run</button></form>
<div id="run-progress" aria-live="polite"></div>"""


def promotions_section(api: str, runs_ui: str, run_id: str | None = None) -> str:
    """The promotion timeline of a dataset (app.js fills it from ``api``); ``runs_ui``: where
    a run's page is (its id appended); ``run_id``: a run to highlight."""
    mine = f' data-run="{e(run_id)}"' if run_id else ""
    return (
        "<section><h2>Promotions: what served when, and why</h2>"
        f'<div id="promotions" data-api="{e(api)}" data-runs-ui="{e(runs_ui)}"{mine}'
        ' aria-live="polite"><p class="muted">loading…</p></div></section>'
    )


def reproduction_section(run_api: str) -> str:
    """A run's last reproduction and the button that reproduces it (app.js)."""
    return (
        "<section><h2>Reproduction</h2>"
        f'<p><button type="button" id="reproduce" data-api="{e(run_api)}">reproduce</button>'
        ' <span class="muted">train again from the archived dataset version, the parameters'
        " and the seed, and compare bit for bit</span></p>"
        '<div id="reproduction" aria-live="polite"></div></section>'
    )


def _kv(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{e(k)}</th><td>{e(human(v))}</td></tr>" for k, v in pairs)


def run_page(
    record: Mapping[str, Any],
    train: Mapping[str, Any] | None,
    weights: tuple[str, list[tuple[str, float]]] | None,
    note: str | None,
) -> str:
    """One run: parameters, metrics, features and weights, charts, error, make current."""
    run_id = str(record["run_id"])
    metrics = record.get("metrics") or {}
    parts = [
        f'<p class="run-head">{_status(record)} · created {e(when(record.get("created_at")))}'
        f" · finished {e(when(record.get('finished_at')))} (UTC) · {_duration(record)}</p>"
    ]
    if record.get("status") == "succeeded" and not record.get("current"):
        kept = record.get("not_promoted")
        if kept:
            parts.append(f'<p class="not-promoted">not promoted: {e(kept.get("reason"))}</p>')
        parts.append(
            f'<p><button id="make-current" data-run="{e(run_id)}">make current</button>'
            ' <span id="promote-result" aria-live="polite"></span></p>'
        )
    error = record.get("error")
    if error:
        parts.append(
            f'<div class="error-box"><strong>{e(error.get("type"))}</strong>'
            f" at {e(error.get('stage') or '?')}: {e(error.get('message'))}</div>"
        )
    test = [(k, metrics.get(k)) for k in ("r2", "mae", "rmse", "n_test", "n_train")]
    train_rows = [(k, (train or {}).get(k)) for k in ("r2", "mae", "rmse", "n")]
    parameters = _kv((record.get("parameters") or {}).items())
    parts.append(
        '<div class="cols">'
        f"<section><h2>Parameters</h2>{scroll(f'<table>{parameters}</table>')}</section>"
        f"<section><h2>Test metrics</h2>{scroll(f'<table>{_kv(test)}</table>')}</section>"
        f"<section><h2>Train metrics</h2>{scroll(f'<table>{_kv(train_rows)}</table>')}</section>"
        "</div>"
    )
    if weights is not None:
        kind, pairs = weights
        rows = "".join(
            f'<tr><td>{e(name)}</td><td class="num">{e(human(value))}</td></tr>'
            for name, value in sorted(pairs, key=lambda p: -abs(p[1]))
        )
        table = (
            f'<table id="weights"><thead><tr><th>feature</th><th class="num">{e(kind)}</th></tr>'
            f"</thead><tbody>{rows}</tbody></table>"
        )
        parts.append(f"<section><h2>Features ({e(kind)}s)</h2>{scroll(table)}</section>")
    elif record.get("features"):
        names = e(", ".join(record["features"]))
        parts.append(f"<section><h2>Features</h2><p>{names}</p></section>")
    if note:
        parts.append(f'<p class="muted">{e(note)}</p>')
    if record.get("model_sha256"):
        parts.append(reproduction_section(f"/pipeline/runs/{run_id}"))
    parts.append(promotions_section("/pipeline/promotions?limit=10", "/ui/runs/", run_id))
    if record.get("status") == "succeeded":
        parts.append(
            '<div class="cols"><section><h2>Predicted vs actual</h2>'
            f'<div class="chart" data-chart="scatter" data-runs="{e(json.dumps([run_id]))}">'
            "</div></section><section><h2>Residuals (actual &minus; predicted)</h2>"
            f'<div class="chart" data-chart="residuals" data-runs="{e(json.dumps([run_id]))}">'
            "</div></section></div>"
        )
    return layout(f"Run {run_id}", "\n".join(parts), charts=True, active="Runs")


def compare_page(records: Sequence[Mapping[str, Any]]) -> str:
    """Runs side by side; a row whose values differ is highlighted; one chart for all."""
    ids = [str(r["run_id"]) for r in records]
    rows: list[tuple[str, list[Any]]] = [("status", [r.get("status") for r in records])]
    params = sorted({k for r in records for k in (r.get("parameters") or {})})
    rows += [(k, [(r.get("parameters") or {}).get(k) for r in records]) for k in params]
    for k in ("r2", "mae", "rmse", "n_test", "n_train"):
        rows.append((k, [(r.get("metrics") or {}).get(k) for r in records]))
    rows.append(("dataset", [(r.get("dataset_sha256") or "")[:12] for r in records]))
    head = "".join(f'<th class="run"><a href="/ui/runs/{e(i)}">{e(i)}</a></th>' for i in ids)
    body = "".join(
        f"<tr{' class=diff' if len({json.dumps(v, default=str) for v in values}) > 1 else ''}>"
        f"<th>{e(name)}</th>" + "".join(f"<td>{e(human(v))}</td>" for v in values) + "</tr>"
        for name, values in rows
    )
    scored = [i for i, r in zip(ids, records, strict=True) if r.get("status") == "succeeded"]
    table = (
        f'<table id="compare-table"><thead><tr><th></th>{head}</tr></thead><tbody>{body}</tbody>'
        "</table>"
    )
    return layout(
        "Compare runs",
        f"""{scroll(table)}<p class="muted">Highlighted rows differ.</p>
<section><h2>Predicted vs actual</h2>
<div class="chart" data-chart="scatter" data-runs="{e(json.dumps(scored))}"></div></section>""",
        charts=True,
        active="Runs",
    )


def describe(rule: dataset.NumberRule) -> str:
    """A column's rule for people: ``a whole number from 0 to 1,000,000,000``."""
    kind = "a whole number" if rule.integer else "a number"
    return f"{kind} from {human(rule.minimum)} to {human(rule.maximum)}"


def dataset_page(
    summary: Mapping[str, Any],
    page: Mapping[str, Any],
    history: Sequence[Mapping[str, Any]],
) -> str:
    """The current dataset (rows, sha256, columns), a page of rows, history, upload."""
    offset, limit, total = int(page["offset"]), int(page["limit"]), int(page["row_count"])
    columns = []
    seen: Mapping[str, str] = summary.get("columns") or {}
    for column in dataset.COLUMNS:
        rule = dataset.NUMBER_RULES.get(column)
        kind = describe(rule) if rule else "one of " + ", ".join(dataset.CHOICES[column])
        columns.append(
            f"<tr><td>{e(column)}</td><td>{e(kind)}</td><td>{e(seen.get(column, DASH))}</td></tr>"
        )
    values = page["values"]
    header = list(values[0]) if values else list(dataset.COLUMNS)
    numeric = {c for c in header if c in dataset.NUMBER_RULES}
    preview = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if c in numeric else ''}>{e(row.get(c))}</td>" for c in header)
        + "</tr>"
        for row in values
    )
    prev_link = (
        f'<a href="/ui/dataset?offset={max(0, offset - limit)}">← previous</a>' if offset else ""
    )
    next_link = (
        f'<a href="/ui/dataset?offset={offset + limit}">next →</a>'
        if offset + limit < total
        else ""
    )
    hist = (
        "".join(
            f'<tr><td class="mono">{e((h.get("sha256") or "")[:16]) or DASH}</td>'
            f'<td class="num">{human(h.get("size"))}</td><td>{e(when(h.get("archived_at")))}</td>'
            f"<td>{CURRENT if h.get('current') else ''}</td></tr>"
            for h in history
        )
        or '<tr><td colspan="4">none yet</td></tr>'
    )
    heads = "".join(f"<th{' class=num' if c in numeric else ''}>{e(c)}</th>" for c in header)
    location = f"s3://{summary['bucket']}/{summary['key']}"
    current_file = (
        f'<table id="current-file"><tr><th>key</th><td class="hash">{e(location)}</td></tr>'
        f'<tr><th>rows</th><td id="row-count">{human(total)}</td></tr>'
        f'<tr><th>sha256</th><td class="mono hash">{e(summary.get("sha256") or DASH)}</td></tr>'
        "</table>"
    )
    rules = (
        '<table id="columns"><thead><tr><th>column</th><th>rule</th><th>in this file</th></tr>'
        f"</thead><tbody>{''.join(columns)}</tbody></table>"
    )
    archive = (
        '<table id="history"><thead><tr><th>sha256</th><th class="num">bytes</th>'
        f"<th>archived (UTC)</th><th></th></tr></thead><tbody>{hist}</tbody></table>"
    )
    rows = (
        f'<table id="preview" class="compact"><thead><tr>{heads}</tr></thead>'
        f"<tbody>{preview}</tbody></table>"
    )
    first, last = offset + 1 if total else 0, min(total, offset + limit)
    return layout(
        "Dataset",
        f"""<div class="cols"><section><h2>Current file</h2>{scroll(current_file)}
<h2>Columns</h2>{scroll(rules)}</section>
<section><h2>Upload a new dataset</h2>
<form id="upload" class="grid" enctype="multipart/form-data">
<label>CSV file <input type="file" name="file" accept=".csv,text/csv" required></label>
<button type="submit">upload</button></form>
<div id="upload-result" aria-live="polite"></div>
<h2>History</h2>{scroll(archive)}</section></div>
<section><h2>Rows {human(first)}&ndash;{human(last)} of {human(total)}</h2>
<p>{prev_link} {next_link}</p>{scroll(rows)}</section>""",
        active="Dataset",
    )


def predict_page(example: Mapping[str, Any], current: str | None) -> str:
    """A form for one house, with the dataset's rules; the answer names its run."""
    fields = []
    for column in dataset.HOUSE_COLUMNS:
        rule = dataset.NUMBER_RULES.get(column)
        if rule is not None:
            step = "1" if rule.integer else "any"
            fields.append(
                f'<label>{e(column)} <input name="{e(column)}" type="number" required'
                f' min="{rule.minimum:.15g}" max="{rule.maximum:.15g}" step="{step}"'
                f' value="{e(example.get(column))}"><small>{e(describe(rule))}</small></label>'
            )
        else:
            choices = "".join(
                f"<option{' selected' if c == example.get(column) else ''}>{e(c)}</option>"
                for c in dataset.CHOICES[column]
            )
            select = f'<select name="{e(column)}">{choices}</select>'
            fields.append(f"<label>{e(column)} {select}</label>")
    if current:
        note = f"<p>Predictions come from the current run, {run_link(current)}.</p>"
    else:
        note = (
            '<p class="not-promoted" id="no-model">No model yet: <a href="/ui">start a run on'
            " the Runs page</a>, then predict here.</p>"
        )
    return layout(
        "Predict a price",
        f"""<div id="predict-note">{note}</div><form id="predict" class="grid">{"".join(fields)}
<button type="submit">predict</button></form>
<div id="predict-result" aria-live="polite"></div>""",
        active="Predict",
    )
