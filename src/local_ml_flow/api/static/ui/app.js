// local-ml-flow dashboard: forms that call the API (same origin, JSON), charts with uPlot.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
}[c]));
const fmt = (x, d = 4) => (typeof x === "number" ? x.toLocaleString("en", { maximumFractionDigits: d }) : "–");

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

function errorHtml(data) {
  const err = (data && data.error) || { type: "Error", message: "unexpected answer" };
  let details = "";
  if (Array.isArray(err.details)) {
    details = "<ul class=problems>" + err.details.map((d) =>
      `<li>${esc(typeof d === "string" ? d : (d.loc || []).join(".") + ": " + (d.msg || JSON.stringify(d)))}</li>`).join("") + "</ul>";
  }
  return `<div class="error-box"><strong>${esc(err.type)}</strong>: ${esc(err.message)}${details}</div>`;
}

// -- runs page: compare selection, start a run and follow it ------------------------------
function initCompare() {
  const button = $("#compare-button");
  if (!button) return;
  const update = () => {
    const n = document.querySelectorAll('input[name=run]:checked').length;
    button.disabled = n < 2 || n > 4;
    button.textContent = `compare selected (${n}; 2-4)`;
  };
  document.addEventListener("change", (ev) => { if (ev.target.name === "run") update(); });
  update();
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
      const { response, data } = await api("POST", "/pipeline/runs?wait=false", body);
      if (response.status !== 202) { out.innerHTML = errorHtml(data); return; }
      await follow(response.headers.get("Location"), data, out);
    } finally {
      form.querySelector("button").disabled = false;
    }
  });
}

async function follow(location, run, out) {
  for (;;) {
    const link = `<a href="/ui/runs/${esc(run.run_id)}">${esc(run.run_id)}</a>`;
    out.innerHTML = `<p class="run-state">run ${link}: <span class="status ${esc(run.status)}">${esc(run.status)}</span></p>`;
    if (!["queued", "running"].includes(run.status)) break;
    await new Promise((r) => setTimeout(r, 400));
    const { response, data } = await api("GET", location);
    if (!response.ok) { out.innerHTML += errorHtml(data); return; }
    run = data;
  }
  if (run.status === "succeeded") {
    const m = run.metrics;
    out.innerHTML += `<p class="run-result">R² ${fmt(m.r2)} · MAE ${fmt(m.mae, 0)} · RMSE ${fmt(m.rmse, 0)}${run.current ? " · now current" : ""}</p>`;
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
    const { response, data } = await api("POST", `/pipeline/runs/${encodeURIComponent(button.dataset.run)}/promote`);
    const out = $("#promote-result");
    if (response.ok) {
      out.innerHTML = '<span class="badge current">current</span> /predict now serves this run';
      button.remove();
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
      out.innerHTML = `<p class="ok">accepted: ${fmt(data.row_count, 0)} rows, sha256 <code>${esc(data.sha256.slice(0, 16))}</code> · <a href="/ui/dataset">refresh the page</a></p>`;
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
      out.innerHTML = `<p class="prediction">predicted price <strong>${fmt(data.predictions[0], 0)}</strong> by run <a href="/ui/runs/${esc(data.run_id)}">${esc(data.run_id)}</a></p>`;
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
  const width = Math.max(320, el.clientWidth || 480);
  let opts, table;
  if (el.dataset.chart === "residuals") {
    const d = sets[0];
    const rows = d.y_pred.map((p, i) => [p, d.y_true[i] - p]).sort((a, b) => a[0] - b[0]);
    table = [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map(() => 0)];
    opts = {
      width, height: 320, scales: { x: { time: false } },
      series: [{ label: "predicted" }, { label: "residual", ...points(COLORS[0]) },
        { label: "zero", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [{ label: "predicted price" }, { label: "actual − predicted", size: 80 }],
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
    opts = {
      width, height: 320, scales: { x: { time: false } },
      series: [{ label: "actual" },
        ...sets.map((d, i) => ({ label: d.run_id, ...points(COLORS[i % COLORS.length]) })),
        { label: "identity", stroke: "#888", dash: [4, 4], points: { show: false } }],
      axes: [{ label: "actual price" }, { label: "predicted price", size: 80 }],
    };
  }
  el.innerHTML = "";
  new uPlot(opts, table, el);
  el.dataset.drawn = String(table[0].length);
  const sampled = sets.filter((d) => d.n_test > d.y_true.length);
  if (sampled.length) {
    const note = document.createElement("p");
    note.className = "muted";
    note.textContent = sampled.map((d) => `${d.run_id}: ${d.y_true.length.toLocaleString()} of ${d.n_test.toLocaleString()} test rows shown (evenly spaced)`).join("; ");
    el.appendChild(note);
  }
}

function initCharts() {
  document.querySelectorAll(".chart[data-chart]").forEach((el) => { drawChart(el); });
}

document.addEventListener("DOMContentLoaded", () => {
  initCompare(); initStartRun(); initPromote(); initUpload(); initPredict(); initCharts();
});
