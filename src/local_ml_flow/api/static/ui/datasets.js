// local-ml-flow dashboard, registered datasets: each page is a shell (#ds-app) this fills from the
// JSON API. Dataset values (names, columns, levels, labels) are the uploader's: every one is
// escaped (esc) or set as text, never put into HTML as it came.
"use strict";

(() => {
  const app = document.getElementById("ds-app");
  if (!app) return;

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  // escaping, numbers for people (1,609,023 · 0.6529), the API's errors, chart axes: app.js's
  const { esc, number: fmt, errorHtml, xAxis, yAxis, chart } = window.LMF;
  const enc = encodeURIComponent;
  const DASH = "–";
  const TERMINAL = ["succeeded", "failed", "corrupt"];
  const POLL_MS = 1000;
  const CHART_POINTS = 5000;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

  const when = (ts) => (ts ? String(ts).replace("T", " ").slice(0, 19) : DASH);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  async function api(method, url, body) {
    const init = { method, headers: { Accept: "application/json" } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      return { response: { ok: false, status: 0, headers: new Headers() }, data: { error: { type: "NetworkError", message: String(err) } } };
    }
    const data = await response.json().catch(() => ({}));
    if (!response.ok && !(data && data.error)) {
      data.error = { type: "HTTPError", message: `HTTP ${response.status} from ${method} ${url}` };
    }
    return { response, data };
  }

  const problem = (message, type = "InvalidRequestError") => errorHtml({ error: { type, message } });

  function notFound(message) {
    app.innerHTML = `<div class="error-box" id="ds-not-found"><strong>NotFoundError</strong>: ${esc(message)}</div>`
      + '<p><a href="/ui/datasets">← all datasets</a></p>';
    app.dataset.ready = "not-found";
  }

  const datasetApi = (name) => `/datasets/${enc(name)}`;
  const runApi = (name, id) => `${datasetApi(name)}/runs/${enc(id)}`;

  // Where a dataset's pages are: the built-in one keeps the original dashboard's.
  function pagesOf(name, builtin) {
    if (builtin) {
      return { home: "/ui/dataset", runs: "/ui", run: (id) => `/ui/runs/${enc(id)}`, predict: "/ui/predict" };
    }
    const base = `/ui/datasets/${enc(name)}`;
    return { home: base, runs: base, run: (id) => `${base}/runs/${enc(id)}`, predict: `${base}/predict` };
  }

  const statusHtml = (run) => `<span class="status ${esc(run.status)}">${esc(run.status)}</span>`
    + (run.current ? ' <span class="badge current">current</span>' : "");

  const METRIC_NAMES = {
    r2: "R²", mae: "MAE", rmse: "RMSE", accuracy: "accuracy", balanced_accuracy: "balanced accuracy",
    f1_macro: "F1 (macro)", log_loss: "log loss", roc_auc: "ROC AUC", n_test: "test rows",
    n_train: "train rows", score: "score",
  };
  const TASK_METRICS = {
    regression: ["r2", "mae", "rmse"],
    classification: ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"],
  };
  const MAIN_METRICS = { regression: ["r2", "mae", "rmse"], classification: ["accuracy", "f1_macro", "roc_auc"] };
  const metricName = (key) => METRIC_NAMES[key] || key;
  const mainMetrics = (task) => MAIN_METRICS[task] || [];

  // -- the list of datasets and the form that registers one ------------------------------------
  function datasetRow(d) {
    const p = pagesOf(d.name, d.builtin);
    const cur = d.current_run;
    const run = cur ? `<a class="mono run-id" href="${esc(p.run(cur.run_id))}" title="${esc(cur.run_id)}">${esc(cur.run_id)}</a>` : DASH;
    const metric = cur && cur.metric ? `${esc(metricName(cur.metric.name))} <strong>${fmt(cur.metric.value)}</strong>` : DASH;
    const links = d.builtin
      ? `<a href="/ui">runs</a> · <a href="/ui/dataset">rows</a> · <a href="/ui/predict">predict</a>`
      : `<a href="${esc(p.runs)}">runs</a> · <a href="${esc(p.predict)}">predict</a>`;
    return `<tr data-dataset="${esc(d.name)}"><td class="ds-name"><a href="${esc(p.home)}">${esc(d.name)}</a>`
      + `${d.builtin ? ' <span class="badge">built-in</span>' : ""}</td><td>${esc(d.task)}</td>`
      + `<td class="ds-name">${esc(d.target)}</td><td class="num">${fmt(d.rows)}</td>`
      + `<td class="mono">${esc(String(d.sha256 || "").slice(0, 12)) || DASH}</td><td>${run}</td>`
      + `<td>${metric}</td><td class="nowrap">${links}</td></tr>`;
  }

  async function loadList() {
    const { response, data } = await api("GET", "/datasets");
    const table = $("#ds-list");
    if (!response.ok) {
      $("#ds-list-error").innerHTML = errorHtml(data);
      table.tBodies[0].innerHTML = "";
      return;
    }
    $("#ds-list-error").innerHTML = "";
    table.tHead.innerHTML = "<tr><th>name</th><th>task</th><th>target</th><th>rows</th><th>sha256</th>"
      + "<th>current run</th><th>metric</th><th></th></tr>";
    table.tBodies[0].innerHTML = (data.datasets || []).map(datasetRow).join("")
      || '<tr><td colspan="8">no datasets yet: register one above</td></tr>';
  }

  // One CSV line split into fields (quotes as RFC 4180): the header, for the target's choices.
  function csvFields(line) {
    const out = [];
    let cur = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
        else if (c === '"') quoted = false;
        else cur += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { out.push(cur.trim()); cur = ""; }
      else cur += c;
    }
    out.push(cur.trim());
    return out.filter((f) => f);
  }

  async function offerColumns(form) {
    const file = form.elements.file.files[0];
    const list = $("#ds-columns");
    list.replaceChildren();
    if (!file) return;
    if (!form.elements.name.value) {
      const guess = file.name.replace(/\.csv$/i, "").toLowerCase().replace(/[^a-z0-9_-]+/g, "_").slice(0, 64);
      if (/^[a-z0-9_-]{1,64}$/.test(guess)) form.elements.name.value = guess;
    }
    const head = (await file.slice(0, 65536).text()).replace(/^\uFEFF/, "").split(/\r?\n/, 1)[0];
    for (const column of csvFields(head)) {
      const option = document.createElement("option");
      option.value = column;
      list.appendChild(option);
    }
  }

  function schemaSummary(schema) {
    const cols = (schema && schema.columns) || [];
    const features = cols.filter((c) => c.feature);
    const refused = cols.filter((c) => !c.feature && c.name !== schema.target);
    const labels = Array.isArray(schema.labels) ? ` · labels: ${schema.labels.map(esc).join(", ")}` : "";
    return `<p>${fmt(cols.length)} columns, ${fmt(features.length)} features: ${features.map((c) => esc(c.name)).join(", ") || DASH}${labels}</p>`
      + (refused.length ? `<p class="muted">not features: ${refused.map((c) => `${esc(c.name)} (${esc(c.reason || c.kind)})`).join("; ")}</p>` : "")
      + `<details><summary>schema</summary><div class="scroll"><table class="ds-schema">${schemaHead()}<tbody>${cols.map((c) => schemaRow(c, schema.target)).join("")}</tbody></table></div></details>`;
  }

  async function listPage() {
    const form = $("#ds-upload");
    const out = $("#ds-upload-result");
    form.elements.file.addEventListener("change", () => { offerColumns(form); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const name = String(f.get("name") || "").trim();
      if (!/^[a-z0-9_-]{1,64}$/.test(name)) { out.innerHTML = problem("name: use 1-64 of a-z, 0-9, _ and -"); return; }
      const body = new FormData();
      body.append("file", f.get("file"));
      body.append("target", String(f.get("target") || "").trim());
      if (f.get("task")) body.append("task", f.get("task"));
      const url = datasetApi(name) + (f.get("replace_schema") ? "?schema=replace" : "");
      const button = form.querySelector("button");
      button.disabled = true;
      out.innerHTML = "<p>uploading…</p>";
      try {
        const { response, data } = await api("PUT", url, body);
        if (!response.ok) { out.innerHTML = errorHtml(data); return; }
        const home = pagesOf(data.name, false).home;
        out.innerHTML = `<div class="ok-box" id="ds-upload-ok"><p class="ok">${data.created ? "registered" : "new version of"}`
          + ` <a href="${esc(home)}">${esc(data.name)}</a>: ${fmt(data.rows)} rows, ${esc(data.task)} of`
          + ` <strong>${esc(data.target)}</strong>, sha256 <code>${esc(String(data.sha256 || "").slice(0, 12))}</code>`
          + ` · <a href="${esc(home)}">open its page</a></p>${schemaSummary(data.schema || {})}</div>`;
        await loadList();
      } finally {
        button.disabled = false;
      }
    });
    await loadList();
  }

  // -- one dataset: summary, schema, runs, start a run, versions --------------------------------
  const SCHEMA_HEAD = "<tr><th>column</th><th>kind</th><th>feature</th><th>missing</th><th>range or levels</th></tr>";
  const schemaHead = () => `<thead>${SCHEMA_HEAD}</thead>`;
  const LEVELS_SHOWN = 12;

  function rangeOf(c) {
    if (c.kind === "number" || c.kind === "integer") {
      return c.minimum == null && c.maximum == null ? DASH : `${fmt(c.minimum)} – ${fmt(c.maximum)}`;
    }
    if (c.kind === "boolean") return `${esc(c.true_value ?? "true")} / ${esc(c.false_value ?? "false")}`;
    if (Array.isArray(c.levels)) {
      const shown = c.levels.slice(0, LEVELS_SHOWN).map((l) => `<span class="level">${esc(l)}</span>`).join(" ");
      const more = c.levels.length - LEVELS_SHOWN;
      return `${fmt(c.levels.length)} levels: ${shown}${more > 0 ? ` <span class="muted">+${fmt(more)} more</span>` : ""}`;
    }
    return DASH;
  }

  function schemaRow(c, target) {
    const feature = c.name === target ? '<span class="badge">target</span>'
      : c.feature ? "yes" : `no${c.reason ? ` <span class="muted">(${esc(c.reason)})</span>` : ""}`;
    return `<tr data-column="${esc(c.name)}"><td class="ds-name">${esc(c.name)}</td><td>${esc(c.kind)}</td>`
      + `<td>${feature}</td><td class="num">${fmt(c.missing)}</td><td class="levels">${rangeOf(c)}</td></tr>`;
  }

  function metricsCells(run, task) {
    const m = run.metrics || {};
    return mainMetrics(task).map((k) => `<td class="num" data-label="${esc(metricName(k))}">${fmt(m[k])}</td>`).join("");
  }

  // The runs ticked for comparison; the button goes to the compare page when 2-4 are.
  const selectedRuns = () => $$("#ds-runs input[name=compare]:checked").map((i) => i.value);
  function updateCompare() {
    const n = selectedRuns().length;
    const button = $("#ds-compare-selected");
    if (button) button.disabled = n < 2 || n > 4;
  }

  function initCompare(name) {
    $("#ds-runs").addEventListener("change", updateCompare);
    $("#ds-compare-selected").addEventListener("click", () => {
      const ids = selectedRuns();
      if (ids.length < 2 || ids.length > 4) return;
      window.location.href = `${pagesOf(name, false).home}/compare?${ids.map((id) => `run=${enc(id)}`).join("&")}`;
    });
  }

  function renderRuns(name, task, runs) {
    const table = $("#ds-runs");
    const keys = mainMetrics(task);
    const kept = new Set(selectedRuns());
    table.tHead.innerHTML = `<tr><th><span class="sr-only">compare</span></th><th>run</th><th>status</th><th>model</th>${keys.map((k) => `<th class="num">${esc(metricName(k))}</th>`).join("")}`
      + "<th>created (UTC)</th><th>finished</th></tr>";
    const p = pagesOf(name, false);
    table.tBodies[0].innerHTML = runs.map((r) => `<tr data-run="${esc(r.run_id)}" data-status="${esc(r.status)}">`
      + `<td class="pick"><input type="checkbox" name="compare" value="${esc(r.run_id)}" aria-label="compare ${esc(r.run_id)}"`
      + `${kept.has(r.run_id) ? " checked" : ""}></td><td class="run nowrap"><a class="mono run-id" href="${esc(p.run(r.run_id))}" title="${esc(r.run_id)}">${esc(r.run_id)}</a></td>`
      + `<td class="nowrap" data-label="status">${statusHtml(r)}</td>`
      + `<td data-label="model">${esc((r.parameters || {}).model)}</td>${metricsCells(r, task)}`
      + `<td class="nowrap" data-label="created (UTC)">${esc(when(r.created_at))}</td><td class="nowrap" data-label="finished">${esc(when(r.finished_at))}</td></tr>`).join("")
      || `<tr class="empty"><td colspan="${keys.length + 6}">no runs yet: start one with the form above</td></tr>`;
    updateCompare();
  }

  async function loadRuns(name, task) {
    const { response, data } = await api("GET", `${datasetApi(name)}/runs`);
    if (!response.ok) { $("#ds-runs-error").innerHTML = errorHtml(data); return; }
    $("#ds-runs-error").innerHTML = "";
    renderRuns(name, task, data.runs || []);
  }

  function renderSummary(d) {
    const p = pagesOf(d.name, false);
    const cur = d.current_run;
    const current = cur
      ? `current run <a class="mono" href="${esc(p.run(cur.run_id))}">${esc(cur.run_id)}</a>`
        + (cur.metric ? ` (${esc(metricName(cur.metric.name))} <strong>${fmt(cur.metric.value)}</strong>)` : "")
      : "no model yet: start a run";
    $("#ds-summary").innerHTML = `<p>${esc(d.task)} of <strong>${esc(d.target)}</strong> · ${fmt(d.rows)} rows`
      + ` · sha256 <code>${esc(String(d.sha256 || "").slice(0, 12))}</code> · ${current}</p>`
      + `<p><a href="${esc(p.predict)}">predict with the current model →</a></p>`;
  }

  function renderSchema(d) {
    const schema = d.schema || {};
    const table = $("#ds-schema");
    table.tHead.innerHTML = SCHEMA_HEAD;
    table.tBodies[0].innerHTML = (schema.columns || []).map((c) => schemaRow(c, schema.target)).join("");
    if (Array.isArray(schema.labels)) {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `labels: ${schema.labels.join(", ")}`;
      table.closest(".scroll").after(note);
    }
  }

  function renderVersions(d) {
    const table = $("#ds-versions");
    table.tHead.innerHTML = "<tr><th>sha256</th><th>rows</th><th>accepted (UTC)</th><th>schema</th><th></th></tr>";
    table.tBodies[0].innerHTML = (d.versions || []).map((v) => `<tr><td class="mono">${esc(String(v.sha256 || "").slice(0, 16))}</td>`
      + `<td class="num">${fmt(v.rows)}</td><td class="nowrap">${esc(when(v.accepted_at))}</td>`
      + `<td class="mono">${esc(String(v.schema_sha256 || "").slice(0, 12))}</td>`
      + `<td>${v.current ? '<span class="badge current">current</span>' : ""}</td></tr>`).join("")
      || '<tr><td colspan="5">none</td></tr>';
  }

  function renderStartForm(d) {
    const form = $("#ds-start-run");
    const kinds = d.model_kinds || [];
    form.elements.model.innerHTML = kinds.map((k) => `<option value="${esc(k)}"${k === d.default_model ? " selected" : ""}>${esc(k)}</option>`).join("");
    const features = ((d.schema || {}).columns || []).filter((c) => c.feature);
    $("#ds-features").innerHTML = '<legend>features</legend><p class="feature-tools"><button type="button" class="link" data-check="all">all</button>'
      + ' · <button type="button" class="link" data-check="none">none</button></p><div class="checklist">'
      + features.map((c) => `<label><input type="checkbox" name="feature" value="${esc(c.name)}" checked> ${esc(c.name)}`
        + ` <small>${esc(c.kind)}</small></label>`).join("") + "</div>";
    $$("button[data-check]", form).forEach((b) => b.addEventListener("click", () => {
      $$("input[name=feature]", form).forEach((el) => { el.checked = b.dataset.check === "all"; });
    }));
    form.querySelector("button[type=submit]").disabled = !kinds.length || !features.length;
  }

  function runResult(run, task) {
    if (run.status === "succeeded") {
      const m = run.metrics || {};
      const parts = mainMetrics(task).filter((k) => typeof m[k] === "number").map((k) => `${esc(metricName(k))} ${fmt(m[k])}`);
      return `<p class="run-result">${parts.join(" · ")}${run.current ? " · now current" : ""}</p>`
        + (run.not_promoted ? `<p class="not-promoted">not promoted: ${esc(run.not_promoted.reason)}</p>` : "");
    }
    return run.error ? errorHtml({ error: run.error }) : `<p>run ended as ${esc(run.status)}</p>`;
  }

  // Follow a run until it ends: its state, then its result, every second.
  async function follow(name, run, out, onChange) {
    const started = Date.now();
    const p = pagesOf(name, false);
    let settling = 10;  // after "succeeded": the promotion decision follows (current, or why not)
    for (;;) {
      const seconds = Math.round((Date.now() - started) / 1000);
      out.innerHTML = `<p class="run-state">run <a class="mono" href="${esc(p.run(run.run_id))}">${esc(run.run_id)}</a>:`
        + ` ${statusHtml(run)} <span class="muted">${seconds} s</span></p>`;
      const decided = run.status !== "succeeded" || run.current || Boolean(run.not_promoted);
      if (TERMINAL.includes(run.status) && (decided || settling-- <= 0)) return run;
      await sleep(POLL_MS);
      const { response, data } = await api("GET", runApi(name, run.run_id));
      if (!response.ok) { out.innerHTML += errorHtml(data); return null; }
      if ((data.status !== run.status || data.current !== run.current) && onChange) onChange();
      run = data;
    }
  }

  function initStartRun(d, reload) {
    const form = $("#ds-start-run");
    const out = $("#ds-run-progress");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const features = f.getAll("feature").map(String);
      if (!features.length) { out.innerHTML = problem("choose at least one feature"); return; }
      const body = {
        model: f.get("model"), test_size: Number(f.get("test_size")),
        random_state: Number(f.get("random_state")), features,
      };
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      out.innerHTML = "<p>starting…</p>";
      try {
        const { response, data } = await api("POST", `${datasetApi(d.name)}/runs?wait=false&by=dashboard`, body);
        if (response.status !== 202) { out.innerHTML = errorHtml(data); return; }
        await loadRuns(d.name, d.task);
        const run = await follow(d.name, data, out, () => loadRuns(d.name, d.task));
        if (run) out.innerHTML += runResult(run, d.task);
        await reload();
      } finally {
        button.disabled = false;
      }
    });
  }

  async function datasetPage() {
    const name = app.dataset.dataset;
    const load = async () => {
      const [ds, runs] = await Promise.all([api("GET", datasetApi(name)), api("GET", `${datasetApi(name)}/runs`)]);
      if (ds.response.status === 404) { notFound(`no dataset named "${name}"`); return null; }
      if (!ds.response.ok) { $("#ds-summary").innerHTML = errorHtml(ds.data); return null; }
      const d = ds.data;
      renderSummary(d);
      if (runs.response.ok) renderRuns(name, d.task, runs.data.runs || []);
      else $("#ds-runs-error").innerHTML = errorHtml(runs.data);
      return d;
    };
    const d = await load();
    if (!d) return;
    renderSchema(d);
    renderVersions(d);
    renderStartForm(d);
    initStartRun(d, load);
    initCompare(name);
  }

  // -- one run: parameters, metrics, error, make current, charts -------------------------------
  function kv(pairs) {
    return pairs.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${v}</td></tr>`).join("");
  }

  function paramValue(v) {
    if (Array.isArray(v)) return v.map(esc).join(", ") || DASH;
    return typeof v === "number" ? fmt(v) : esc(v ?? DASH);
  }

  function renderRunHead(name, d, run) {
    const p = pagesOf(name, false);
    const error = run.error ? errorHtml({ error: { type: run.error.type, message: `${run.error.message} (at ${run.error.stage || "?"})` } }) : "";
    const kept = run.not_promoted && !run.current
      ? `<p class="not-promoted">not promoted: ${esc(run.not_promoted.reason)}</p>` : "";
    const promote = run.status === "succeeded" && !run.current
      ? kept + '<p><button type="button" id="ds-make-current">make current</button> <span id="ds-promote-result" aria-live="polite"></span></p>' : "";
    const live = TERMINAL.includes(run.status) ? "" : ' <span class="muted">(this page follows the run)</span>';
    $("#ds-run-head").innerHTML = `<p>dataset <a href="${esc(p.home)}">${esc(name)}</a> (${esc(d.task)} of`
      + ` <strong>${esc(d.target)}</strong>) · ${statusHtml(run)}${live} · created ${esc(when(run.created_at))}`
      + ` · finished ${esc(when(run.finished_at))}</p>${error}${promote}`;
    const params = { ...(run.parameters || {}) };
    if (!params.features && run.features) params.features = run.features;
    $("#ds-params").innerHTML = kv(Object.entries(params).map(([k, v]) => [k.replace(/_/g, " "), paramValue(v)]));
    const m = run.metrics || {};
    const keys = [...(TASK_METRICS[d.task] || []), "n_test", "n_train", "score"];
    const rest = Object.keys(m).filter((k) => !keys.includes(k));
    // the other task's metrics are null; the seed-style score is text ("95.83%")
    $("#ds-metrics").innerHTML = run.metrics
      ? kv([...keys, ...rest].filter((k) => m[k] != null).map((k) => [metricName(k), `<span class="num">${paramValue(m[k])}</span>`]))
      : `<tr><td class="muted">none${TERMINAL.includes(run.status) ? "" : " yet"}</td></tr>`;
    const button = $("#ds-make-current");
    if (button) {
      button.addEventListener("click", async () => {
        button.disabled = true;
        const { response, data } = await api("POST", `${runApi(name, run.run_id)}/promote?by=dashboard`);
        const out = $("#ds-promote-result");
        if (response.ok) {
          out.innerHTML = `<span class="badge current">current</span> <a href="${esc(p.predict)}">predict</a> now uses this run`;
          button.remove();
          window.LMF.promotions();
        } else {
          out.innerHTML = errorHtml(data);
          button.disabled = false;
        }
      });
    }
  }

  function points(color) {
    return { stroke: color, fill: color, paths: () => null, points: { show: true, size: 5, stroke: color, fill: color } };
  }

  function drawRegression(box, data) {
    box.innerHTML = '<section><h2>Predicted vs actual</h2><div class="chart" id="ds-scatter" data-ds-chart="scatter"></div></section>';
    const el = $("#ds-scatter");
    const pairs = data.y_true.map((t, i) => [t, data.y_pred[i]]).sort((a, b) => a[0] - b[0]);
    const xs = pairs.map((q) => q[0]);
    const table = [xs, pairs.map((q) => q[1]), xs.slice()];
    chart({
      height: 320, scales: { x: { time: false } },
      series: [{ label: "actual" }, { label: "predicted", ...points(COLORS[0]) },
        { label: "identity", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [xAxis("actual"), yAxis("predicted")],
    }, table, el);
    el.dataset.drawn = String(xs.length);
    sampledNote(el, data);
  }

  function sampledNote(el, data) {
    if (data.n_test > data.y_true.length) {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `${data.y_true.length.toLocaleString("en")} of ${data.n_test.toLocaleString("en")} test rows shown (evenly spaced)`;
      el.after(note);
    }
  }

  function confusionHtml(labels, confusion) {
    const max = Math.max(1, ...confusion.flat());
    const head = labels.map((l) => `<th scope="col" class="ds-name">${esc(l)}</th>`).join("");
    const rows = confusion.map((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      const cells = row.map((n, j) => {
        const alpha = (0.08 + 0.62 * (n / max)).toFixed(2);
        const tint = i === j ? `rgba(22,163,74,${alpha})` : n ? `rgba(220,38,38,${alpha})` : "transparent";
        return `<td class="num${i === j ? " diag" : ""}" style="background:${tint}">${fmt(n)}</td>`;
      }).join("");
      return `<tr><th scope="row" class="ds-name">${esc(labels[i])}</th>${cells}<td class="num muted">${fmt(total)}</td></tr>`;
    }).join("");
    return `<div class="scroll"><table id="ds-confusion" class="confusion"><thead><tr><th class="muted">actual ↓ predicted →</th>${head}`
      + `<th class="muted">total</th></tr></thead><tbody>${rows}</tbody></table></div>`;
  }

  // Every ROC curve on one x axis: each point is a row of its own curve (null elsewhere, lines span).
  function rocTable(curves) {
    const rows = [];
    curves.forEach((c, k) => c.fpr.forEach((x, i) => rows.push([x, c.tpr[i], k])));
    rows.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const xs = rows.map((r) => r[0]);
    const series = curves.map((_, k) => rows.map((r) => (r[2] === k ? r[1] : null)));
    return [xs, ...series, xs.slice()];
  }

  function drawClassification(box, data) {
    const labels = data.labels || [];
    const curves = (data.roc || []).filter((c) => Array.isArray(c.fpr) && c.fpr.length);
    box.innerHTML = '<div class="cols"><section><h2>Confusion matrix (test split)</h2>'
      + `${confusionHtml(labels, data.confusion || [])}<p class="muted">rows: actual label · columns: predicted label</p></section>`
      + '<section><h2>ROC curve</h2><div class="chart" id="ds-roc" data-ds-chart="roc"></div></section></div>';
    const el = $("#ds-roc");
    sampledNote($("#ds-confusion").closest(".scroll"), data);
    if (!curves.length) { el.innerHTML = '<p class="muted">no ROC curve for this run</p>'; return; }
    const auc = (c) => (typeof c.auc === "number" ? ` (AUC ${fmt(c.auc)})` : "");
    chart({
      height: 320,
      scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
      series: [{ label: "false positive rate" },
        ...curves.map((c, k) => ({ label: `${c.label}${auc(c)}`, stroke: COLORS[k % COLORS.length], width: 2, spanGaps: true, points: { show: false } })),
        { label: "chance", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [xAxis("false positive rate"), yAxis("true positive rate")],
    }, rocTable(curves), el);
    el.dataset.drawn = String(curves.length);
  }

  async function drawCharts(name, runId) {
    const box = $("#ds-charts");
    box.innerHTML = '<p class="muted">loading the test predictions…</p>';
    const { response, data } = await api("GET", `${runApi(name, runId)}/predictions?max_points=${CHART_POINTS}`);
    if (!response.ok) { box.innerHTML = errorHtml(data); return; }
    if (typeof uPlot === "undefined") { box.innerHTML = problem("the chart library did not load", "Error"); return; }
    if (data.task === "classification") drawClassification(box, data);
    else drawRegression(box, data);
  }

  async function runPage() {
    const name = app.dataset.dataset;
    const runId = app.dataset.run;
    const [ds, first] = await Promise.all([api("GET", datasetApi(name)), api("GET", runApi(name, runId))]);
    if (ds.response.status === 404) { notFound(`no dataset named "${name}"`); return; }
    if (first.response.status === 404) { notFound(`dataset "${name}" has no run "${runId}"`); return; }
    for (const r of [ds, first]) {
      if (!r.response.ok) { $("#ds-run-head").innerHTML = errorHtml(r.data); return; }
    }
    let run = first.data;
    renderRunHead(name, ds.data, run);
    while (!TERMINAL.includes(run.status)) {
      await sleep(POLL_MS);
      const { response, data } = await api("GET", runApi(name, runId));
      if (!response.ok) { $("#ds-run-head").innerHTML += errorHtml(data); return; }
      if (data.status !== run.status) renderRunHead(name, ds.data, data);
      run = data;
    }
    if (run.status === "succeeded") await drawCharts(name, runId);
  }

  // -- compare: 2-4 runs side by side, parameters and test metrics --------------------------------
  const sameValues = (values) => new Set(values.map((v) => JSON.stringify(v ?? null))).size <= 1;

  async function comparePage() {
    const name = app.dataset.dataset;
    const ids = $$("[data-compare-run]").map((el) => el.dataset.compareRun);
    const head = $("#ds-compare-head");
    const [ds, ...answers] = await Promise.all([api("GET", datasetApi(name)), ...ids.map((id) => api("GET", runApi(name, id)))]);
    if (ds.response.status === 404) { notFound(`no dataset named "${name}"`); return; }
    const missing = ids.find((_, i) => answers[i].response.status === 404);
    if (missing !== undefined) { notFound(`dataset "${name}" has no run "${missing}"`); return; }
    for (const r of [ds, ...answers]) {
      if (!r.response.ok) { head.innerHTML = errorHtml(r.data); return; }
    }
    const d = ds.data;
    const runs = answers.map((a) => a.data);
    const p = pagesOf(name, false);
    head.innerHTML = `<p>dataset <a href="${esc(p.home)}">${esc(name)}</a> (${esc(d.task)} of`
      + ` <strong>${esc(d.target)}</strong>) · ${fmt(runs.length)} runs</p>`;
    const params = runs.map((r) => {
      const q = { ...(r.parameters || {}) };
      if (!q.features && r.features) q.features = r.features;
      return q;
    });
    const paramKeys = [...new Set(params.flatMap((q) => Object.keys(q)))].sort();
    const metrics = runs.map((r) => r.metrics || {});
    const known = [...(TASK_METRICS[d.task] || []), "n_test", "n_train", "score"];
    const rest = [...new Set(metrics.flatMap((m) => Object.keys(m)))].filter((k) => !known.includes(k)).sort();
    const metricKeys = [...known, ...rest].filter((k) => metrics.some((m) => m[k] != null));
    const row = (kind, key, label, values, cell) => `<tr data-${kind}="${esc(key)}"${sameValues(values) ? "" : ' class="diff"'}>`
      + `<th>${esc(label)}</th>${values.map((v, i) => `<td>${cell(v, i)}</td>`).join("")}</tr>`;
    const group = (title) => `<tr class="group"><th colspan="${runs.length + 1}">${esc(title)}</th></tr>`;
    const table = $("#ds-compare");
    table.tHead.innerHTML = `<tr><th></th>${runs.map((r) => `<th class="run"><a class="mono" href="${esc(p.run(r.run_id))}">${esc(r.run_id)}</a></th>`).join("")}</tr>`;
    table.tBodies[0].innerHTML = row("field", "status", "status", runs.map((r) => r.status), (_, i) => statusHtml(runs[i]))
      + group("parameters")
      + paramKeys.map((k) => row("param", k, k.replace(/_/g, " "), params.map((q) => q[k]), paramValue)).join("")
      + group("test metrics")
      + (metricKeys.map((k) => row("metric", k, metricName(k), metrics.map((m) => m[k]), (v) => `<span class="num">${paramValue(v)}</span>`)).join("")
        || `<tr><td colspan="${runs.length + 1}" class="muted">no metrics yet</td></tr>`);
  }

  // -- predict: one input per feature of the current model --------------------------------------
  function fieldHtml(c, i) {
    const id = `ds-f${i}`;
    const label = `<span class="ds-name">${esc(c.name)}</span>`;
    if (c.kind === "number" || c.kind === "integer") {
      const integer = c.kind === "integer";
      const has = typeof c.minimum === "number" && typeof c.maximum === "number";
      let value = "";
      if (has) value = integer ? Math.round((c.minimum + c.maximum) / 2) : Number(((c.minimum + c.maximum) / 2).toPrecision(4));
      const hint = `${has ? `observed ${fmt(c.minimum)} – ${fmt(c.maximum)}` : "no observed range"}; blank: filled as in training`;
      return `<label for="${id}">${label} <input id="${id}" data-field="${i}" type="number" step="${integer ? 1 : "any"}"`
        + ` value="${esc(value)}"><small>${esc(hint)}</small></label>`;
    }
    let choices = null;
    if (c.kind === "boolean") choices = [c.true_value ?? "true", c.false_value ?? "false"];
    else if (Array.isArray(c.levels)) choices = c.levels;
    if (choices) {
      const options = choices.map((v, k) => `<option value="${k}">${esc(v)}</option>`).join("");
      return `<label for="${id}">${label} <select id="${id}" data-field="${i}">${options}</select><small>${esc(c.kind)}</small></label>`;
    }
    return `<label for="${id}">${label} <input id="${id}" data-field="${i}" type="text"><small>${esc(c.kind)}</small></label>`;
  }

  function fieldValue(c, el) {
    if (el.tagName === "SELECT") {
      const choices = c.kind === "boolean" ? [c.true_value ?? "true", c.false_value ?? "false"] : c.levels;
      return choices[Number(el.value)];
    }
    if (el.type === "number") return el.value === "" ? null : Number(el.value);
    return el.value;
  }

  function predictionHtml(d, data) {
    const value = data.predictions && data.predictions[0];
    const p = pagesOf(d.name, false);
    const shown = typeof value === "number" ? fmt(value) : esc(value);
    let html = `<p class="prediction">prediction <strong id="ds-prediction">${shown}</strong> by run`
      + ` <a class="mono" href="${esc(p.run(data.run_id))}">${esc(data.run_id)}</a></p>`;
    const probs = data.probabilities && data.probabilities[0];
    if (probs && typeof probs === "object") {
      const rows = Object.entries(probs).sort((a, b) => b[1] - a[1]).map(([label, q]) => {
        const pct = Math.max(0, Math.min(100, q * 100)).toFixed(1);
        return `<tr><td class="ds-name">${esc(label)}</td><td class="num">${fmt(q)}</td>`
          + `<td class="bar-cell"><span class="bar" style="width:${pct}%"></span></td></tr>`;
      }).join("");
      html += `<div class="scroll"><table id="ds-probabilities"><thead><tr><th>label</th><th>probability</th><th></th></tr></thead><tbody>${rows}</tbody></table></div>`;
    }
    return html;
  }

  async function predictPage() {
    const name = app.dataset.dataset;
    const { response, data: d } = await api("GET", datasetApi(name));
    if (response.status === 404) { notFound(`no dataset named "${name}"`); return; }
    if (!response.ok) { $("#ds-predict-note").innerHTML = errorHtml(d); return; }
    const columns = (d.schema || {}).columns || [];
    const byName = new Map(columns.map((c) => [c.name, c]));
    const cur = d.current_run;
    const names = cur && Array.isArray(cur.features) ? cur.features : columns.filter((c) => c.feature).map((c) => c.name);
    const fields = names.map((n) => byName.get(n) || { name: n, kind: "text" });
    const p = pagesOf(name, false);
    $("#ds-predict-note").innerHTML = `<p>dataset <a href="${esc(p.home)}">${esc(name)}</a>: ${esc(d.task)} of`
      + ` <strong>${esc(d.target)}</strong> · `
      + (cur ? `current run <a class="mono" href="${esc(p.run(cur.run_id))}">${esc(cur.run_id)}</a>`
        : `no model yet: <a href="${esc(p.home)}">start a run</a> first`) + "</p>";
    const form = $("#ds-predict");
    form.innerHTML = fields.map(fieldHtml).join("") + '<button type="submit">predict</button>';
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const row = Object.fromEntries(fields.map((c, i) => [c.name, fieldValue(c, $(`[data-field="${i}"]`, form))]));
      const out = $("#ds-predict-result");
      out.innerHTML = "<p>predicting…</p>";
      const answer = await api("POST", `${datasetApi(name)}/predict`, { rows: [row] });
      out.innerHTML = answer.response.ok ? predictionHtml(d, answer.data) : errorHtml(answer.data);
    });
  }

  const PAGES = { list: listPage, dataset: datasetPage, run: runPage, compare: comparePage, predict: predictPage };
  const start = () => {
    const page = PAGES[app.dataset.page];
    if (!page) return;
    page().then(() => { if (!app.dataset.ready) app.dataset.ready = "1"; }, (err) => {
      app.insertAdjacentHTML("afterbegin", problem(String(err && err.message ? err.message : err), "Error"));
      app.dataset.ready = "error";
      throw err;
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
