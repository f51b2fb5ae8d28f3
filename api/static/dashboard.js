// Operator dashboard: vanilla JS, inline SVG, no external assets. Reads the JSON API with the
// operator key kept in localStorage, and refreshes itself.
"use strict";

const KEY_STORAGE = "kzpay.operatorKey";
const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
let timer = null;

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${apiKey()}`, "Content-Type": "application/json", ...(options.headers || {}) },
  });
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail || problem.title || detail; } catch (_) { /* not JSON */ }
    const error = new Error(`${response.status} ${detail}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// Money is integer minor units: format without floating point.
function money(minor, currency = "KZT") {
  if (minor === null || minor === undefined) return "–";
  const negative = minor < 0;
  const abs = Math.abs(minor);
  const major = Math.floor(abs / 100).toLocaleString("en-US");
  const cents = String(abs % 100).padStart(2, "0");
  return `${negative ? "−" : ""}${major}.${cents} ${currency}`;
}
function percent(rate) { return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`; }
function seconds(value) {
  if (value === null || value === undefined) return "–";
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function setText(id, text) { $(id).textContent = text; }

function rangeQuery() {
  const q = new URLSearchParams();
  const from = params.get("from") || ($("range-from").value ? `${$("range-from").value}:00Z` : "");
  const to = params.get("to") || ($("range-to").value ? `${$("range-to").value}:00Z` : "");
  if (from) q.set("from", from);
  if (to) q.set("to", to);
  return q;
}
function summaryUrl(groupBy) {
  const q = rangeQuery();
  if (groupBy) q.set("group_by", groupBy);
  return `/v1/analytics/summary?${q}`;
}

// --- charts ---------------------------------------------------------------------------------
const SVG = "http://www.w3.org/2000/svg";
function svg(width, height) {
  const el = document.createElementNS(SVG, "svg");
  el.setAttribute("viewBox", `0 0 ${width} ${height}`);
  el.setAttribute("role", "img");
  return el;
}
function node(parent, tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  parent.appendChild(el);
  return el;
}

function barsOverTime(container, groups) {
  const width = 900, height = 220, pad = 40;
  const chart = svg(width, height);
  const max = Math.max(1, ...groups.map((g) => Math.max(g.deposits.volume_minor, g.withdrawals.paid_volume_minor)));
  const slot = (width - pad * 2) / Math.max(1, groups.length);
  const bar = Math.max(2, Math.min(28, slot / 2 - 4));
  node(chart, "line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, stroke: "#30363d" });
  node(chart, "text", { x: 4, y: 14 }, money(max));
  groups.forEach((g, i) => {
    const x = pad + i * slot + slot / 2;
    const scale = (v) => ((height - pad * 2) * v) / max;
    const dep = scale(g.deposits.volume_minor), wd = scale(g.withdrawals.paid_volume_minor);
    node(chart, "rect", { x: x - bar, y: height - pad - dep, width: bar, height: dep, fill: "#3fb950" },)
      .appendChild(document.createElementNS(SVG, "title")).textContent = `${g.key}: ${money(g.deposits.volume_minor)} deposited`;
    node(chart, "rect", { x: x, y: height - pad - wd, width: bar, height: wd, fill: "#d29922" })
      .appendChild(document.createElementNS(SVG, "title")).textContent = `${g.key}: ${money(g.withdrawals.paid_volume_minor)} paid out`;
    if (groups.length <= 16 || i % Math.ceil(groups.length / 16) === 0) {
      node(chart, "text", { x: x, y: height - pad + 14, "text-anchor": "middle" }, g.key.slice(5));
    }
  });
  if (!groups.length) node(chart, "text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "no payments in this range");
  container.replaceChildren(chart);
}

function horizontalBars(container, groups) {
  const rowHeight = 22, width = 420, label = 110;
  const chart = svg(width, Math.max(1, groups.length) * rowHeight + 4);
  const max = Math.max(1, ...groups.map((g) => g.deposits.volume_minor));
  groups.forEach((g, i) => {
    const w = ((width - label - 10) * g.deposits.volume_minor) / max;
    node(chart, "text", { x: 0, y: i * rowHeight + 15 }, g.key);
    node(chart, "rect", { x: label, y: i * rowHeight + 4, width: Math.max(1, w), height: rowHeight - 8, fill: "#3fb950", rx: 3 });
  });
  container.replaceChildren(chart);
}

function breakdownTable(table, groups) {
  table.innerHTML = `<tr><th></th><th class="num">deposits</th><th class="num">volume</th><th class="num">approval</th>`
    + `<th class="num">p50</th><th class="num">paid out</th><th class="num">net</th><th class="num">fraud</th></tr>`
    + groups.map((g) => `<tr><td>${esc(g.key)}</td><td class="num">${g.deposits.count}</td>`
      + `<td class="num">${money(g.deposits.volume_minor)}</td><td class="num">${percent(g.deposits.approval_rate)}</td>`
      + `<td class="num">${seconds(g.deposits.median_seconds_to_complete)}</td>`
      + `<td class="num">${money(g.withdrawals.paid_volume_minor)}</td><td class="num">${money(g.net_deposits_minor)}</td>`
      + `<td class="num">${g.fraud_hits}</td></tr>`).join("");
}

// --- panels ---------------------------------------------------------------------------------
function renderTotals(t) {
  const d = t.deposits, w = t.withdrawals;
  setText("kpi-deposit-volume", money(d.volume_minor));
  setText("kpi-deposit-count", `${d.succeeded} / ${d.count}`);
  setText("kpi-approval-rate", percent(d.approval_rate));
  setText("kpi-net-deposits", money(t.net_deposits_minor));
  setText("kpi-average-deposit", money(d.average_minor));
  setText("kpi-first-time", String(d.first_time_depositors));
  setText("kpi-time-to-complete", `${seconds(d.median_seconds_to_complete)} / ${seconds(d.p95_seconds_to_complete)}`);
  setText("kpi-withdrawals-paid", `${money(w.paid_volume_minor)} (${w.paid})`);
  setText("kpi-time-to-pay", seconds(w.median_seconds_to_pay));
  setText("kpi-fraud-hits", String(t.fraud_hits));
  const reasons = [...d.unsuccessful_reasons.map((r) => ({ ...r, kind: "deposit" })),
    ...w.unsuccessful_reasons.map((r) => ({ ...r, kind: "withdrawal" }))];
  $("table-reasons").innerHTML = `<tr><th>kind</th><th>status</th><th>reason</th><th class="num">count</th></tr>`
    + (reasons.length ? reasons.map((r) => `<tr><td>${r.kind}</td><td>${esc(r.status)}</td><td>${esc(r.reason)}</td><td class="num">${r.count}</td></tr>`).join("")
      : `<tr><td colspan="4" class="muted">none</td></tr>`);
}

async function renderQueue() {
  const queue = await api("/v1/withdrawals?status=in_review&limit=50");
  setText("kpi-review-queue", String(queue.data.length) + (queue.next_cursor ? "+" : ""));
  $("queue").innerHTML = `<tr><th>withdrawal</th><th>player</th><th>method</th><th class="num">amount</th><th>since</th><th></th></tr>`
    + (queue.data.length ? queue.data.map((w) => `<tr data-id="${esc(w.id)}"><td>${esc(w.id)}${w.escalated_at ? ' <span class="badge bad">escalated</span>' : ""}</td>`
      + `<td>${esc(w.player_id)}</td><td>${esc(w.method)}</td><td class="num">${money(w.amount, w.currency)}</td>`
      + `<td>${esc(w.created_at)}</td><td><button class="approve" data-id="${esc(w.id)}">Approve</button> `
      + `<input class="reason" data-id="${esc(w.id)}" placeholder="reason"> <button class="reject" data-id="${esc(w.id)}">Reject</button></td></tr>`).join("")
      : `<tr><td colspan="6" class="muted">nothing waits for review</td></tr>`);
}

async function review(id, action) {
  const reasonInput = document.querySelector(`input.reason[data-id="${CSS.escape(id)}"]`);
  const reason = reasonInput && reasonInput.value ? reasonInput.value : (action === "reject" ? "rejected from the dashboard" : null);
  try {
    await api(`/v1/withdrawals/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(reason ? { reason } : {}) });
    showError("");
  } catch (error) {
    showError(`${action} ${id}: ${error.message}`);
  }
  await refresh();
}

async function renderStuck() {
  const stuck = await api("/v1/ops/stuck?older_than=10m&limit=50");
  setText("kpi-stuck", String(stuck.data.length));
  setText("stuck-visibility", stuck.visibility.detail);
  const rows = stuck.data.map((p) => `<tr><td>${esc(p.id)}</td><td>${p.kind}</td><td>${esc(p.status)}</td>`
    + `<td>${esc(p.waiting_on)}</td><td class="num">${p.attempts}</td><td class="num">${seconds(p.stuck_seconds)}</td>`
    + `<td><a href="${esc(p.temporal_url)}" target="_blank" rel="noopener">Temporal UI</a></td></tr>`);
  const orphans = stuck.temporal_only.map((o) => `<tr><td>${esc(o.workflow_id)}</td><td>workflow</td><td>${esc(o.payment_status)}</td>`
    + `<td>database says ${esc(o.database_status || "nothing")}</td><td></td><td></td>`
    + `<td><a href="${esc(o.temporal_url)}" target="_blank" rel="noopener">Temporal UI</a></td></tr>`);
  $("stuck").innerHTML = `<tr><th>payment</th><th>kind</th><th>status</th><th>waiting on</th><th class="num">attempts</th><th class="num">stuck for</th><th></th></tr>`
    + ([...rows, ...orphans].join("") || `<tr><td colspan="7" class="muted">nothing is stuck</td></tr>`);
}

async function renderProviders() {
  try {
    const health = await api("/v1/ops/providers");
    const list = Array.isArray(health) ? health : (health.data || []);
    $("providers").innerHTML = `<table><tr><th>provider</th><th>method</th><th class="num">calls</th><th class="num">success</th>`
      + `<th class="num">p50</th><th class="num">p95</th><th>circuit</th></tr>`
      + list.map((p) => {
        const state = p.circuit ? p.circuit.state : (p.circuit_state ?? "–");
        const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);
        return `<tr><td>${esc(p.provider)}${p.enabled === false ? ' <span class="badge">disabled</span>' : ""}</td>`
          + `<td>${esc(p.method ?? "")}</td><td class="num">${p.attempts ?? "–"}</td><td class="num">${percent(p.success_rate)}</td>`
          + `<td class="num">${ms(p.latency_p50_ms)}</td><td class="num">${ms(p.latency_p95_ms)}</td>`
          + `<td><span class="badge ${state === "closed" ? "" : "bad"}" data-provider="${esc(p.provider)}">${esc(state)}</span></td></tr>`;
      }).join("") + `</table>`;
  } catch (error) {
    $("providers").innerHTML = `<p class="muted">provider health unavailable (${esc(error.message)})</p>`;
  }
  try {
    const alerts = await api("/v1/ops/alerts?status=open&limit=5");
    setText("alerts-count", String(alerts.data.length) + (alerts.next_cursor ? "+" : ""));
    $("alerts").innerHTML = alerts.data.map((a) => `<li><span class="badge">${esc(a.severity)}</span> ${esc(a.message)}</li>`).join("");
  } catch (error) {
    setText("alerts-count", "unavailable");
  }
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message;
}

async function refresh() {
  if (!apiKey()) { $("main").hidden = true; setText("status", "enter an operator API key"); return; }
  try {
    const [totals, days, methods, providers] = await Promise.all([
      api(summaryUrl(null)), api(summaryUrl("day")), api(summaryUrl("method")), api(summaryUrl("provider")),
    ]);
    renderTotals(totals.totals);
    barsOverTime($("chart-days"), days.groups);
    horizontalBars($("chart-method"), methods.groups);
    breakdownTable($("table-method"), methods.groups);
    horizontalBars($("chart-provider"), providers.groups);
    breakdownTable($("table-provider"), providers.groups);
    $("main").hidden = false;
    setText("status", `${totals.from.slice(0, 16)} → ${totals.to.slice(0, 16)} UTC · ${totals.currency}`);
    await Promise.all([renderQueue(), renderStuck(), renderProviders()]);
    setText("updated-at", `updated ${new Date().toISOString().slice(11, 19)} UTC`);
    document.body.dataset.loaded = "true";
    showError("");
  } catch (error) {
    showError(error.status === 401 || error.status === 403 ? `The key was refused: ${error.message}` : error.message);
    setText("status", "error");
  }
}

function start() {
  $("api-key").value = apiKey();
  if (params.get("from")) $("range-from").value = params.get("from").slice(0, 16);
  if (params.get("to")) $("range-to").value = params.get("to").slice(0, 16);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    localStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    // The operator session cookie lets the Temporal Web UI decrypt payloads through /codec.
    fetch("/v1/session", { method: "POST", headers: { Authorization: `Bearer ${apiKey()}` } }).catch(() => {});
    refresh();
  });
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORAGE); $("api-key").value = "";
    fetch("/v1/session", { method: "DELETE" }).catch(() => {});
    refresh();
  });
  $("range-form").addEventListener("submit", (event) => {
    event.preventDefault();
    params.delete("from"); params.delete("to");
    refresh();
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.approve, button.reject");
    if (button) review(button.dataset.id, button.classList.contains("approve") ? "approve" : "reject");
  });
  setText("refresh-seconds", String(REFRESH_MS / 1000));
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

start();
