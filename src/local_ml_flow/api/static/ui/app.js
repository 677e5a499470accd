// local-ml-flow dashboard: forms that call the API (same origin, JSON), charts with uPlot.
// LMF (below) is what datasets.js shares: escaping, numbers for people, errors, chart axes.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
}[c]));
const DASH = "–";
const SUPERSCRIPT = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };

// A number for people (the rules of human() in pages.py): 1,609,023 · 0.6529 · 1.2×10⁻⁵.
function number(x) {
  if (typeof x !== "number" || !Number.isFinite(x)) return DASH;
  const size = Math.abs(x);
  if (size >= 1e15 || (size > 0 && size < 1e-4)) {
    const [mantissa, exponent] = x.toExponential(2).split("e");
    const power = String(Number(exponent)).replace(/./g, (c) => SUPERSCRIPT[c]);
    return `${mantissa.replace(/\.?0+$/, "")}×10${power}`;
  }
  if (Number.isInteger(x) || size >= 1000) return x.toLocaleString("en", { maximumFractionDigits: 0 });
  return x.toLocaleString("en", { maximumSignificantDigits: 4, useGrouping: false });
}

// Chart axes whose tick labels never run together: 3.5M rather than 3,500,000, and ticks
// spaced by the width of their labels (x) or an axis as wide as its labels (y).
const COMPACT = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });
const tickLabel = (v) => (Math.abs(v) >= 1e4 ? COMPACT.format(v) : number(v));
function ticks(u, splits) {
  const short = splits.map(tickLabel);
  return new Set(short).size === short.length ? short : splits.map(number);
}
const CHAR_PX = 7.5; // the widest digit of uPlot's 12px axis font, and a little more
function xAxis(label) {
  return { label, values: ticks, space: (u, i, min, max) => 16 + CHAR_PX * Math.max(tickLabel(min).length, tickLabel(max).length, 3) };
}
function yAxis(label) {
  return { label, values: ticks, size: (u, values) => 22 + CHAR_PX * Math.max(3, ...(values || []).map((v) => String(v).length)) };
}
// A series name short enough for a legend: the start and the end of a long run id.
const legendName = (s) => (String(s).length > 32 ? `${String(s).slice(0, 16)}…${String(s).slice(-12)}` : String(s));
// Charts follow their box when the window changes size.
const CHARTS = [];
const chartWidth = (el) => Math.max(200, (el.clientWidth || 480) - 2);
let resizing = 0;
window.addEventListener("resize", () => {
  clearTimeout(resizing);
  resizing = setTimeout(() => CHARTS.forEach(([plot, el]) => plot.setSize({ width: chartWidth(el), height: plot.height })), 150);
});
function chart(opts, data, el) {
  const plot = new uPlot({ ...opts, width: chartWidth(el) }, data, el);
  CHARTS.push([plot, el]);
  return plot;
}

async function api(method, url, body, headers = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  const data = await response.json().catch(() => ({}));
  return { response, data };
}

// The API's error shape. A refused dataset's problems are listed once: a message that only
// joins them says how many there are instead.
function errorHtml(data) {
  const err = (data && data.error) || { type: "Error", message: "unexpected answer" };
  let message = String(err.message ?? "");
  let details = "";
  if (Array.isArray(err.details)) {
    const lines = [...new Set(err.details.map((d) => (typeof d === "string" ? d
      : `${(d.loc || []).join(".")}: ${d.msg || JSON.stringify(d)}`)))].filter((d) => d && d !== message);
    const at = lines.map((d) => message.indexOf(d));
    const joined = at.every((i) => i >= 0);
    if (joined && lines.length > 1) {
      const head = message.slice(0, Math.min(...at)).replace(/[\s:;,]+$/, "");
      message = `${head || "refused"}: ${lines.length} problems`;
    }
    if (lines.length > 1 || (lines.length && !joined)) {
      details = `<ul class="problems">${lines.map((d) => `<li>${esc(d)}</li>`).join("")}</ul>`;
    }
  }
  return `<div class="error-box"><strong>${esc(err.type)}</strong>: ${esc(message)}${details}</div>`;
}

// -- promotions: what served when, and why (newest first) -----------------------------------
const stamp = (ts) => (ts ? String(ts).replace("T", " ").slice(0, 19) : DASH);

async function initPromotions() {
  const box = $("#promotions");
  if (!box) return;
  const { response, data } = await api("GET", box.dataset.api);
  if (!response.ok) { box.innerHTML = errorHtml(data); return; }
  if (!data.promotions.length) { box.innerHTML = '<p class="muted">No run has been promoted yet.</p>'; return; }
  const link = (id) => `<a class="run-id" href="${esc(box.dataset.runsUi + encodeURIComponent(id))}" title="${esc(id)}">${esc(id)}</a>`;
  const items = data.promotions.map((p) => {
    const mine = p.run_id === box.dataset.run ? ' class="this-run"' : "";
    const replaced = p.previous_run_id ? ` replaced ${link(p.previous_run_id)}` : " (the first)";
    const rebuilt = p.recorded ? "" : ' <span class="muted">(rebuilt from the pointer)</span>';
    return `<li${mine}><time datetime="${esc(p.at)}">${esc(stamp(p.at))}</time> ${link(p.run_id)}${replaced}`
      + ` <span class="by">by ${esc(p.by)}</span>${rebuilt}<br><span class="reason">${esc(p.reason)}</span></li>`;
  });
  box.innerHTML = `<ol class="timeline">${items.join("")}</ol><p class="muted">UTC, newest first.</p>`;
}

// -- reproduction: train a run again and compare bit for bit ---------------------------------
function reproductionHtml(r) {
  const verdict = r.identical
    ? '<span class="badge current">identical</span> the same model bytes and test predictions, bit for bit'
    : '<span class="badge differs">not identical</span>';
  const differs = r.differences.length
    ? `<ul class="problems">${r.differences.map((d) => `<li>${esc(d)}</li>`).join("")}</ul>` : "";
  return `<p class="reproduced">${verdict} · ${esc(stamp(r.reproduced_at))} (UTC) · ${number(r.took_s)} s`
    + ` · model sha256 <code title="${esc(r.reproduced_model_sha256)}">${esc(r.reproduced_model_sha256.slice(0, 16))}</code></p>${differs}`;
}

async function initReproduce() {
  const button = $("#reproduce");
  if (!button) return;
  const out = $("#reproduction");
  const base = button.dataset.api;
  const last = await api("GET", `${base}/reproductions?limit=1`);
  if (last.response.ok) {
    out.innerHTML = last.data.reproductions.length
      ? `<p class="muted">last reproduction:</p>${reproductionHtml(last.data.reproductions[0])}`
      : '<p class="muted">Not reproduced yet.</p>';
  }
  button.addEventListener("click", async () => {
    button.disabled = true;
    out.innerHTML = "<p>training again…</p>";
    const { response, data } = await api("POST", `${base}/reproduce`);
    out.innerHTML = response.ok ? reproductionHtml(data) : errorHtml(data);
    button.disabled = false;
  });
}

window.LMF = { esc, number, errorHtml, xAxis, yAxis, legendName, chart, promotions: initPromotions };

// -- runs page: status filter, compare selection, start a run and follow it -----------------
function initFilter() {
  const form = $("#status-filter");
  if (!form) return;
  form.querySelector("button").hidden = true; // a choice filters at once
  form.elements.status.addEventListener("change", () => form.submit());
}

function updateCompare() {
  const button = $("#compare-button");
  if (!button) return;
  const n = document.querySelectorAll("input[name=run]:checked").length;
  button.disabled = n < 2 || n > 4;
  button.textContent = `compare selected (${n}; 2-4)`;
}

function initCompare() {
  if (!$("#compare-button")) return;
  document.addEventListener("change", (ev) => { if (ev.target.name === "run") updateCompare(); });
  updateCompare();
}

// The runs table again, as the server renders it for this page's URL (its filter kept): the
// rows swapped in place, the ticked runs still ticked.
async function refreshRuns() {
  const table = $("#runs");
  if (!table) return;
  const response = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" } });
  if (!response.ok) return;
  const page = new DOMParser().parseFromString(await response.text(), "text/html");
  const rows = $("#runs tbody", page);
  if (!rows) return;
  const ticked = new Set([...table.querySelectorAll("input[name=run]:checked")].map((i) => i.value));
  rows.querySelectorAll("input[name=run]").forEach((i) => { i.checked = ticked.has(i.value); });
  table.tBodies[0].replaceWith(rows);
  const count = $("#runs-count", page);
  if (count && $("#runs-count")) $("#runs-count").replaceWith(count);
  updateCompare();
}

function initStartRun() {
  const form = $("#start-run");
  if (!form) return;
  const out = $("#run-progress");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = new FormData(form);
    const body = {
      model: f.get("model"), feature_set: f.get("feature_set"),
      test_size: Number(f.get("test_size")), random_state: Number(f.get("random_state")),
    };
    form.querySelector("button").disabled = true;
    out.innerHTML = "<p>starting…</p>";
    try {
      const { response, data } = await api("POST", "/pipeline/runs?wait=false&by=dashboard", body);
      if (response.status !== 202) { out.innerHTML = errorHtml(data); return; }
      await refreshRuns();
      await follow(response.headers.get("Location"), data, out);
    } finally {
      form.querySelector("button").disabled = false;
      await refreshRuns();
      await initPromotions();
    }
  });
}

// A run is scored ("succeeded") a moment before the promotion decides whether it serves:
// follow it until it is current or says why not (or ends otherwise), a few seconds at most.
const DECIDED_WITHIN = 25;  // polls after "succeeded"

function decided(run) {
  return run.status !== "succeeded" || run.current || Boolean(run.not_promoted);
}

async function follow(location, run, out) {
  let settling = DECIDED_WITHIN;
  for (;;) {
    const link = `<a class="run-id" href="/ui/runs/${esc(run.run_id)}" title="${esc(run.run_id)}">${esc(run.run_id)}</a>`;
    out.innerHTML = `<p class="run-state">run ${link}: <span class="status ${esc(run.status)}">${esc(run.status)}</span></p>`;
    if (!["queued", "running"].includes(run.status) && (decided(run) || settling-- <= 0)) break;
    await new Promise((r) => setTimeout(r, 400));
    const { response, data } = await api("GET", location);
    if (!response.ok) { out.innerHTML += errorHtml(data); return; }
    if (data.status !== run.status || data.current !== run.current) refreshRuns();
    run = data;
  }
  if (run.status === "succeeded") {
    const m = run.metrics;
    out.innerHTML += `<p class="run-result">R² ${number(m.r2)} · MAE ${number(m.mae)} · RMSE ${number(m.rmse)}${run.current ? " · now current" : ""}</p>`;
    if (run.not_promoted) out.innerHTML += `<p class="not-promoted">not promoted: ${esc(run.not_promoted.reason)}</p>`;
  } else if (run.error) {
    out.innerHTML += errorHtml({ error: run.error });
  }
}

// -- run page: make current ----------------------------------------------------------------
function initPromote() {
  const button = $("#make-current");
  if (!button) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    const { response, data } = await api("POST", `/pipeline/runs/${encodeURIComponent(button.dataset.run)}/promote?by=dashboard`);
    const out = $("#promote-result");
    if (response.ok) {
      out.innerHTML = '<span class="badge current">current</span> /predict now serves this run';
      button.remove();
      await initPromotions();
    } else {
      out.innerHTML = errorHtml(data);
      button.disabled = false;
    }
  });
}

// -- dataset page: upload, every problem shown ----------------------------------------------
function initUpload() {
  const form = $("#upload");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const out = $("#upload-result");
    out.innerHTML = "<p>uploading…</p>";
    const { response, data } = await api("PUT", "/bucket/dataset", new FormData(form));
    if (response.ok) {
      out.innerHTML = `<p class="ok">accepted: ${number(data.row_count)} rows, sha256 <code>${esc(data.sha256.slice(0, 16))}</code> · <a href="/ui/dataset">refresh the page</a></p>`;
    } else {
      out.innerHTML = errorHtml(data);
    }
  });
}

// -- predict page ---------------------------------------------------------------------------
function initPredict() {
  const form = $("#predict");
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const house = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      house[el.name] = el.type === "number" ? Number(el.value) : el.value;
    }
    const out = $("#predict-result");
    const { response, data } = await api("POST", "/predict", { houses: [house] });
    if (response.ok) {
      out.innerHTML = `<p class="prediction">predicted price <strong>${number(Math.round(data.predictions[0]))}</strong> by run <a class="run-id" href="/ui/runs/${esc(data.run_id)}" title="${esc(data.run_id)}">${esc(data.run_id)}</a></p>`;
    } else if (data && data.error && data.error.type === "NoModelError") {
      out.innerHTML = '<p class="not-promoted">No model yet: <a href="/ui">start a run on the Runs page</a>, then predict here.</p>';
    } else {
      out.innerHTML = errorHtml(data);
    }
  });
}

// -- charts (uPlot): predicted vs actual with the identity line, residuals -------------------
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea"];
// A large run's test split is sampled by the API (evenly spaced rows): enough for a chart.
const CHART_POINTS = 5000;

function points(color) {
  return { stroke: color, fill: color, paths: () => null, points: { show: true, size: 5, stroke: color, fill: color } };
}

async function drawChart(el) {
  const ids = JSON.parse(el.dataset.runs || "[]");
  if (!ids.length || typeof uPlot === "undefined") return;
  const sets = [];
  for (const id of ids) {
    const url = `/pipeline/runs/${encodeURIComponent(id)}/predictions?max_points=${CHART_POINTS}`;
    const { response, data } = await api("GET", url);
    if (!response.ok) { el.innerHTML = errorHtml(data); return; }
    sets.push(data);
  }
  let opts, table;
  if (el.dataset.chart === "residuals") {
    const d = sets[0];
    const rows = d.y_pred.map((p, i) => [p, d.y_true[i] - p]).sort((a, b) => a[0] - b[0]);
    table = [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map(() => 0)];
    opts = {
      height: 320, scales: { x: { time: false } },
      series: [{ label: "predicted" }, { label: "residual", ...points(COLORS[0]) },
        { label: "zero", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [xAxis("predicted price"), yAxis("actual − predicted")],
    };
  } else {
    // x: every actual price of every run; one series per run (null where another run's row).
    const xs = [...new Set(sets.flatMap((d) => d.y_true))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    const series = sets.map((d) => {
      const ys = new Array(xs.length).fill(null);
      d.y_true.forEach((t, i) => { ys[at.get(t)] = d.y_pred[i]; });
      return ys;
    });
    table = [xs, ...series, xs.slice()];
    const name = (d) => (sets.length > 1 ? legendName(d.run_id) : "predicted");
    opts = {
      height: 320, scales: { x: { time: false } },
      series: [{ label: "actual" },
        ...sets.map((d, i) => ({ label: name(d), ...points(COLORS[i % COLORS.length]) })),
        { label: "identity", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [xAxis("actual price"), yAxis("predicted price")],
    };
  }
  el.innerHTML = "";
  chart(opts, table, el);
  el.dataset.drawn = String(table[0].length);
  const sampled = sets.filter((d) => d.n_test > d.y_true.length);
  if (sampled.length) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = sampled.map((d) => `${sets.length > 1 ? `${d.run_id}: ` : ""}${d.y_true.length.toLocaleString("en")} of ${d.n_test.toLocaleString("en")} test rows shown (evenly spaced)`).join("; ");
    el.appendChild(note);
  }
}

function initCharts() {
  document.querySelectorAll(".chart[data-chart]").forEach((el) => { drawChart(el); });
}

document.addEventListener("DOMContentLoaded", () => {
  initFilter(); initCompare(); initStartRun(); initPromote(); initUpload(); initPredict(); initCharts();
  initPromotions(); initReproduce();
});
