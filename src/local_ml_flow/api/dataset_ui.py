"""The HTML shells of the registered datasets' pages: static skeletons that datasets.js fills.

Each shell carries only what the URL already said (``data-dataset``, ``data-run``); every value
shown comes from the JSON API in the browser (``static/ui/datasets.js``), escaped there.
"""

from __future__ import annotations

from local_ml_flow.api import assets
from local_ml_flow.api.pages import e, error_page, layout, promotions_section, reproduction_section
from local_ml_flow.events import RunParameters

_HTML_NAME_PATTERN = r"[a-z0-9_\-]{1,64}"  # browsers compile ``pattern`` with the v flag
ACTIVE = "Datasets"


def _shell(
    title: str,
    page: str,
    body: str,
    *,
    name: str | None = None,
    run_id: str | None = None,
    charts: bool = False,
) -> str:
    attrs = f' data-page="{e(page)}"'
    if name is not None:
        attrs += f' data-dataset="{e(name)}"'
    if run_id is not None:
        attrs += f' data-run="{e(run_id)}"'
    return layout(
        title,
        f'<div id="ds-app" class="ds"{attrs}>{body}</div>'
        "<noscript><p>These pages need JavaScript: they read the JSON API"
        ' (<a href="/docs">/docs</a>).</p></noscript>'
        f'<script src="{assets.UI_DATASETS_JS}" defer></script>',
        charts=charts,
        active=ACTIVE,
    )


def _table(table_id: str, columns: int, css: str = "") -> str:
    """An empty table that the script fills (head and body), inside a horizontal scroller;
    ``css="cards"``: one card per row on a narrow screen."""
    cls = f' class="{css}"' if css else ""
    return (
        f'<div class="scroll"><table id="{table_id}"{cls}><thead></thead><tbody>'
        f'<tr><td colspan="{columns}" class="muted">loading…</td></tr></tbody></table></div>'
    )


def list_page() -> str:
    """Every dataset, and the form that registers one (or a new version of one)."""
    return _shell(
        "Datasets",
        "list",
        f"""<section class="panel"><h2>Register a dataset</h2>
<form id="ds-upload" class="grid" enctype="multipart/form-data">
<label>name <input name="name" required maxlength="64" pattern="{_HTML_NAME_PATTERN}"
 autocomplete="off" spellcheck="false" placeholder="e.g. iris"><small>a-z, 0-9, _ and -</small>
</label>
<label>CSV file <input type="file" name="file" accept=".csv,text/csv" required></label>
<label>target column <input name="target" required list="ds-columns" autocomplete="off"
 spellcheck="false"></label><datalist id="ds-columns"></datalist>
<label>task <select name="task"><option value="">infer</option><option>regression</option>
<option>classification</option></select></label>
<label class="check"><span><input type="checkbox" name="replace_schema"> replace schema</span>
<small>accept other columns than the registered ones</small></label>
<button type="submit">register</button></form>
<div id="ds-upload-result" aria-live="polite"></div></section>
<section><h2>Registered datasets</h2><div id="ds-list-error"></div>{_table("ds-list", 8)}
</section>""",
    )


def dataset_page(name: str) -> str:
    """One dataset: summary, schema, its runs, start a run (and follow it), versions."""
    defaults = RunParameters()
    return _shell(
        f"Dataset {name}",
        "dataset",
        f"""<div id="ds-summary" aria-live="polite"><p class="muted">loading…</p></div>
<section class="panel"><h2>Start a run</h2>
<form id="ds-start-run"><div class="grid">
<label>model <select name="model" required></select></label>
<label>test size <input name="test_size" type="number" step="0.01" min="0.01" max="0.99"
 required value="{defaults.test_size}"></label>
<label>random state <input name="random_state" type="number" step="1" min="0" required
 value="{defaults.random_state}"></label>
<button type="submit" disabled>start run</button></div>
<fieldset id="ds-features"><legend>features</legend><p class="muted">loading…</p></fieldset>
</form><div id="ds-run-progress" aria-live="polite"></div></section>
<section><h2>Runs</h2><div id="ds-runs-error"></div>{_table("ds-runs", 9, "cards")}
<p><button type="button" id="ds-compare-selected" disabled>compare selected (2-4)</button></p>
</section>
{promotions_section(f"/datasets/{name}/promotions?limit=20", f"/ui/datasets/{name}/runs/")}
<section><h2>Schema</h2>{_table("ds-schema", 5)}</section>
<section><h2>Versions</h2>{_table("ds-versions", 5)}</section>""",
        name=name,
    )


def run_page(name: str, run_id: str) -> str:
    """One run of a dataset: status, parameters, metrics, error, make current, charts."""
    return _shell(
        f"Run {run_id}",
        "run",
        """<div id="ds-run-head" aria-live="polite"><p class="muted">loading…</p></div>
<div class="cols"><section><h2>Parameters</h2><div class="scroll"><table id="ds-params">
</table></div></section><section><h2>Test metrics</h2><div class="scroll">
<table id="ds-metrics"></table></div></section></div>
<div id="ds-charts"></div>"""
        + reproduction_section(f"/datasets/{name}/runs/{run_id}")
        + promotions_section(
            f"/datasets/{name}/promotions?limit=10", f"/ui/datasets/{name}/runs/", run_id
        ),
        name=name,
        run_id=run_id,
        charts=True,
    )


def compare_page(name: str, run_ids: list[str]) -> str:
    """2-4 runs of a dataset side by side: parameters and test metrics, differing rows marked."""
    runs = "".join(f'<span data-compare-run="{e(r)}"></span>' for r in run_ids)
    return _shell(
        f"Compare runs of {name}",
        "compare",
        f"""<div id="ds-compare-head" aria-live="polite"><p class="muted">loading…</p></div>
<div hidden id="ds-compare-runs">{runs}</div>
<section><h2>Runs side by side</h2>{_table("ds-compare", len(run_ids) + 1)}
<p class="muted">Highlighted rows differ.</p></section>""",
        name=name,
    )


def predict_page(name: str) -> str:
    """A form of the current model's features, built from the dataset's schema."""
    return _shell(
        f"Predict with {name}",
        "predict",
        """<div id="ds-predict-note"><p class="muted">loading…</p></div>
<form id="ds-predict" class="grid"></form>
<div id="ds-predict-result" aria-live="polite"></div>""",
        name=name,
    )


def not_found_page(what: str) -> str:
    """The 404 page of a dataset or run that cannot exist."""
    return error_page(
        404,
        "NotFoundError",
        what,
        back=("/ui/datasets", "all datasets"),
        element_id="ds-not-found",
        active=ACTIVE,
    )


def bad_request_page(name: str, what: str) -> str:
    """The 400 page of a request the dataset's pages cannot answer, with a link back."""
    return error_page(
        400,
        "InvalidRequestError",
        what,
        back=(f"/ui/datasets/{name}", f"dataset {name}"),
        element_id="ds-bad-request",
        active=ACTIVE,
    )
