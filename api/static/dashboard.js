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

function riskCells(risk) {
  if (!risk) return `<td class="num">–</td><td>–</td>`;
  return `<td class="num">${risk.score}</td><td>${(risk.reasons || []).map((r) => `<span class="badge">${esc(r)}</span>`).join(" ") || "–"}</td>`;
}

function decisionCell(id, kind) {
  return `<td><button class="approve" data-kind="${kind}" data-id="${esc(id)}">Approve</button> `
    + `<input class="reason" data-id="${esc(id)}" placeholder="reason"> <button class="reject" data-kind="${kind}" data-id="${esc(id)}">Reject</button></td>`;
}

let withdrawalsWaiting = 0, depositsWaiting = 0;
function showReviewCount() { setText("kpi-review-queue", `${withdrawalsWaiting} wd · ${depositsWaiting} dep`); }

async function renderQueue() {
  const queue = await api("/v1/withdrawals?status=in_review&order=deadline&limit=50");
  withdrawalsWaiting = queue.data.length;
  showReviewCount();
  $("queue").innerHTML = `<tr><th>withdrawal</th><th>player</th><th>method</th><th class="num">amount</th><th class="num">score</th><th>reasons</th><th>since</th><th></th></tr>`
    + (queue.data.length ? queue.data.map((w) => `<tr data-id="${esc(w.id)}"><td>${esc(w.id)}${w.escalated_at ? ' <span class="badge bad">escalated</span>' : ""}</td>`
      + `<td>${esc(w.player_id)}</td><td>${esc(w.method)}</td><td class="num">${money(w.amount, w.currency)}</td>`
      + riskCells(w.risk) + `<td>${esc(w.created_at)}</td>` + decisionCell(w.id, "withdrawals") + `</tr>`).join("")
      : `<tr><td colspan="8" class="muted">nothing waits for review</td></tr>`);
}

// Issue 18: deposits the risk engine sent to review, risk alerts, block and allow lists.
async function renderDepositQueue() {
  const queue = await api("/v1/risk/reviews?status=pending&limit=50");
  depositsWaiting = queue.data.length;
  showReviewCount();
  $("deposit-queue").innerHTML = `<tr><th>deposit</th><th>player</th><th>method</th><th class="num">amount</th><th>held</th><th class="num">score</th><th>reasons</th><th>since</th><th></th></tr>`
    + (queue.data.length ? queue.data.map((r) => `<tr data-id="${esc(r.deposit_id)}"><td>${esc(r.deposit_id)} <span class="badge">${esc(r.deposit_status)}</span></td>`
      + `<td>${esc(r.player_id)}</td><td>${esc(r.method)}</td><td class="num">${money(r.amount, r.currency)}</td>`
      + `<td>${r.mode === "hold" ? "not credited" : "credited, withdrawals blocked"}</td>`
      + riskCells(r) + `<td>${esc(r.created_at)}</td>` + decisionCell(r.deposit_id, "deposits") + `</tr>`).join("")
      : `<tr><td colspan="9" class="muted">no deposit waits for review</td></tr>`);
}

const RISK_ALERTS = ["multi_account_device", "multi_account_card", "card_testing", "blocklisted", "card_holder_mismatch", "payment_review"];
async function renderRiskAlerts() {
  const lists = await Promise.all(RISK_ALERTS.map((kind) => api(`/v1/ops/alerts?status=open&kind=${kind}&limit=10`).catch(() => ({ data: [] }))));
  const alerts = lists.flatMap((l) => l.data).sort((a, b) => b.id - a.id).slice(0, 12);
  $("risk-alerts").innerHTML = alerts.length
    ? alerts.map((a) => `<li data-kind="${esc(a.kind)}"><span class="badge ${a.severity === "high" ? "bad" : ""}">${esc(a.kind)}</span> ${esc(a.message)}</li>`).join("")
    : `<li class="muted">no open risk alerts</li>`;
}

async function renderLists() {
  const lists = await api("/v1/risk/lists?limit=50");
  $("lists").innerHTML = `<tr><th>list</th><th>kind</th><th>value</th><th>reason</th><th>by</th><th>expires</th><th></th></tr>`
    + (lists.data.length ? lists.data.map((e) => `<tr data-entry="${e.id}"><td><span class="badge ${e.list_type === "block" ? "bad" : ""}">${esc(e.list_type)}</span></td>`
      + `<td>${esc(e.kind)}</td><td title="${esc(e.value)}">${esc(e.value.length > 24 ? e.value.slice(0, 12) + "…" + e.value.slice(-6) : e.value)}</td>`
      + `<td>${esc(e.reason)}</td><td>${esc(e.created_by)}</td><td>${esc(e.expires_at || "never")}</td>`
      + `<td><button class="secondary remove-entry" data-entry="${e.id}">Remove</button></td></tr>`).join("")
      : `<tr><td colspan="7" class="muted">the lists are empty</td></tr>`);
}

function idempotencyKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(16)}-${Math.random().toString(16).slice(2)}-${Math.random().toString(16).slice(2)}`;
}

async function addListEntry() {
  const expires = $("list-expires").value;
  const body = { list_type: $("list-type").value, kind: $("list-kind").value, value: $("list-value").value.trim(), reason: $("list-reason").value.trim() };
  if (expires) body.expires_at = `${expires}:00Z`;
  try {
    await api("/v1/risk/lists", { method: "POST", body: JSON.stringify(body), headers: { "Idempotency-Key": idempotencyKey() } });
    $("list-value").value = ""; $("list-reason").value = ""; $("list-expires").value = "";
    showError("");
  } catch (error) {
    showError(`add to the ${body.list_type} list: ${error.message}`);
  }
  await refresh();
}

async function removeListEntry(id) {
  const reason = prompt("Why is this entry removed?");
  if (!reason) return;
  try {
    await api(`/v1/risk/lists/${encodeURIComponent(id)}/remove`, { method: "POST", body: JSON.stringify({ reason }) });
    showError("");
  } catch (error) {
    showError(`remove entry ${id}: ${error.message}`);
  }
  await refresh();
}

async function review(id, action, kind = "withdrawals") {
  const reasonInput = document.querySelector(`input.reason[data-id="${CSS.escape(id)}"]`);
  const reason = reasonInput && reasonInput.value ? reasonInput.value : (action === "reject" ? "rejected from the dashboard" : null);
  try {
    await api(`/v1/${kind}/${encodeURIComponent(id)}/${action}`, { method: "POST", body: JSON.stringify(reason ? { reason } : {}) });
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

// Hosted checkout: page opened -> method chosen -> submitted -> succeeded (GET /v1/analytics/checkout-funnel).
async function renderFunnel() {
  try {
    const f = await api(`/v1/analytics/checkout-funnel?${rangeQuery()}`);
    const t = f.totals;
    setText("funnel-totals", `${t.created} sessions · opened ${t.opened} → method chosen ${t.method_chosen}`
      + ` → submitted ${t.submitted} → succeeded ${t.succeeded} (${percent(t.conversion)} of opened)`);
    const methods = f.by_method.map((m) => `<tr><td>${esc(m.method)}</td><td></td><td class="num">${m.chosen}</td>`
      + `<td class="num">${m.submitted} (${m.attempts})</td><td class="num">${m.succeeded}</td>`
      + `<td class="num">${percent(m.conversion)}</td><td class="num">${money(m.volume_minor, f.currency)}</td></tr>`);
    const providers = f.by_provider.map((p) => `<tr data-provider="${esc(p.provider)}"><td>${esc(p.method)}</td><td>${esc(p.provider)}</td>`
      + `<td></td><td class="num">${p.attempts}</td><td class="num">${p.succeeded}</td>`
      + `<td class="num">${percent(p.approval_rate)}</td><td></td></tr>`);
    $("table-funnel").innerHTML = `<tr><th>method</th><th>provider</th><th class="num">chosen</th>`
      + `<th class="num">submitted (payments)</th><th class="num">succeeded</th><th class="num">conversion</th>`
      + `<th class="num">volume</th></tr>`
      + ([...methods, ...providers].join("") || `<tr><td colspan="7" class="muted">no checkout sessions in this range</td></tr>`);
  } catch (error) {
    setText("funnel-totals", `checkout funnel unavailable (${error.message})`);
  }
}

// Player segments (GET /v1/analytics/segments): who is new, active, churning, dormant, VIP, risky.
async function renderSegments() {
  try {
    const s = await api("/v1/analytics/segments");
    $("table-segments").innerHTML = `<tr><th>segment</th><th class="num">players</th><th class="num">deposits</th>`
      + `<th class="num">withdrawals</th><th class="num">net deposits</th></tr>`
      + s.data.map((g) => `<tr data-segment="${esc(g.segment)}"><td>${esc(g.segment.replaceAll("_", " "))}</td>`
        + `<td class="num">${g.players}</td><td class="num">${money(g.deposits_minor, s.currency)}</td>`
        + `<td class="num">${money(g.withdrawals_minor, s.currency)}</td>`
        + `<td class="num">${money(g.net_deposits_minor, s.currency)}</td></tr>`).join("");
  } catch (error) {
    $("table-segments").innerHTML = `<tr><td class="muted">segments unavailable (${esc(error.message)})</td></tr>`;
  }
}

// Cohorts (GET /v1/analytics/cohorts): retention per first-deposit month, which one is churning.
async function renderCohorts() {
  try {
    const c = await api("/v1/analytics/cohorts?months=6");
    const f = c.funnel;
    setText("cohort-funnel", `registered ${f.registered} → first deposit ${f.first_deposit} → second deposit ${f.second_deposit}`);
    const span = Math.max(0, ...c.cohorts.map((k) => k.months.length));
    const head = Array.from({ length: span }, (_, i) => `<th class="num">+${i}</th>`).join("");
    $("table-cohorts").innerHTML = `<tr><th>cohort</th><th class="num">players</th>${head}<th class="num">net so far</th></tr>`
      + (c.cohorts.length ? c.cohorts.map((k) => {
        const cells = Array.from({ length: span }, (_, i) => {
          const m = k.months.find((x) => x.months_after === i);
          return `<td class="num">${m && m.retention !== null ? `${(m.retention * 100).toFixed(0)}%` : "–"}</td>`;
        }).join("");
        const last = k.months[k.months.length - 1];
        return `<tr data-cohort="${esc(k.cohort)}"><td>${esc(k.cohort)}</td><td class="num">${k.players}</td>${cells}`
          + `<td class="num">${last ? money(last.cumulative_net_minor, c.currency) : "–"}</td></tr>`;
      }).join("") : `<tr><td colspan="3" class="muted">no first deposits in these months</td></tr>`);
  } catch (error) {
    $("table-cohorts").innerHTML = `<tr><td class="muted">cohorts unavailable (${esc(error.message)})</td></tr>`;
  }
}

// Harm markers (GET /v1/analytics/harm-markers): a page at a time, in player id order.
let harmPage = "";  // the cursor of the page shown (refreshes keep it)
let harmNext = "";
function harmEvidence(m) {
  const e = m.evidence;
  switch (m.marker) {
    case "deposit_escalation": return e.amounts_minor.map((a) => money(a)).join(" → ");
    case "night_deposits": return `${e.night_deposits} of ${e.deposits} deposits at night`;
    case "chasing": return `${e.deposits_after_zero_balance} deposits within ${e.within_minutes} min of a zero balance`;
    case "cancelled_withdrawal_regambled": return `${money(e.amount_minor)} cancelled, bet within ${e.within_hours} h`;
    case "limit_increases": return `${e.changes.length} limit raised or removed`;
    default: return "";
  }
}
async function renderHarm(after = "") {
  try {
    const h = await api(`/v1/analytics/harm-markers?limit=20&after=${encodeURIComponent(after)}`);
    harmPage = after;
    harmNext = h.next_after || "";
    $("harm-next").hidden = !h.next_after;
    $("table-harm").innerHTML = `<tr><th>player</th><th>marker</th><th>evidence</th></tr>`
      + (h.data.length ? h.data.map((p) => p.markers.map((m, i) => `<tr data-player="${esc(p.player_id)}" data-marker="${esc(m.marker)}">`
        + `<td>${i ? "" : `<a href="#" class="profile-link" data-player="${esc(p.player_id)}">${esc(p.player_id)}</a>`}</td>`
        + `<td><span class="badge bad">${esc(m.marker.replaceAll("_", " "))}</span></td><td>${esc(harmEvidence(m))}</td></tr>`).join("")).join("")
        : `<tr><td colspan="3" class="muted">no player shows a harm marker</td></tr>`);
  } catch (error) {
    $("table-harm").innerHTML = `<tr><td class="muted">harm markers unavailable (${esc(error.message)})</td></tr>`;
  }
}

// Player 360 (GET /v1/players/{id}/profile): identity masked, behaviour, links, risk, limits.
async function showProfile(playerId) {
  try {
    const p = await api(`/v1/players/${encodeURIComponent(playerId)}/profile`);
    const b = p.behaviour;
    const row = (label, value) => `<tr><th>${esc(label)}</th><td>${value}</td></tr>`;
    const hours = b.hour_of_day.map((n, h) => (n ? `${h}h:${n}` : "")).filter(Boolean).join(" ");
    $("profile").innerHTML = `<table id="profile-table">`
      + row("player", esc(p.player_id)) + row("name", esc(p.identity.full_name))
      + row("IIN", esc(p.identity.iin)) + row("phone", esc(p.identity.phone))
      + row("balance", money(p.balance_minor, p.currency))
      + row("deposits", `${b.deposit_count} · ${money(b.deposits_minor, p.currency)}`)
      + row("last 7 / 30 / 90 days", ["7d", "30d", "90d"].map((w) => `${b.deposits[w].count} (${money(b.deposits[w].amount_minor, p.currency)})`).join(" / "))
      + row("average deposit", b.average_deposit_minor === null ? "–" : money(b.average_deposit_minor, p.currency))
      + row("net deposits", money(b.net_deposits_minor, p.currency))
      + row("withdrawal ratio", percent(b.withdrawal_ratio))
      + row("first / last deposit", `${esc(String(b.first_deposit_at ?? "–").slice(0, 16))} / ${esc(String(b.last_deposit_at ?? "–").slice(0, 16))}`)
      + row("active days", String(b.active_days))
      + row("hour of day", esc(hours || "–"))
      + row("flagged deposits", String(b.flagged_deposits))
      + row("linked accounts", esc(p.linked_accounts.map((l) => `${l.player_id} (${l.link})`).join(", ") || "none"))
      + row("risk decisions", esc(p.risk_decisions.map((d) => `${d.decision} ${d.score}`).join(", ") || "none"))
      + row("limits", esc(p.limits.map((l) => `${l.period} ${l.amount_minor ?? "removed"}`).join(", ") || "none"))
      + row("exclusions", esc(p.exclusions.map((e) => `until ${String(e.until).slice(0, 10)}`).join(", ") || "none"))
      + `</table>`;
  } catch (error) {
    $("profile").innerHTML = `<p class="muted">${esc(error.message)}</p>`;
  }
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message;
}

// One refresh at a time: asked for while one runs, it runs once more after it; the timer
// starts counting only when a refresh has finished, so a slow database never piles them up.
let running = null;
let queued = false;
function refresh() {
  if (running) { queued = true; return running; }
  running = (async () => {
    try {
      do { queued = false; await refreshNow(); } while (queued);
    } finally {
      running = null;
    }
  })();
  return running;
}

function schedule() {
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, REFRESH_MS);
}

async function refreshNow() {
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
    await Promise.all([renderQueue(), renderStuck(), renderProviders(), renderFunnel(), renderSegments(), renderCohorts(), renderHarm(harmPage)]);
    await Promise.all([renderDepositQueue(), renderRiskAlerts(), renderLists()]);
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
    if (button) review(button.dataset.id, button.classList.contains("approve") ? "approve" : "reject", button.dataset.kind || "withdrawals");
    const remove = event.target.closest("button.remove-entry");
    if (remove) removeListEntry(remove.dataset.entry);
  });
  $("list-form").addEventListener("submit", (event) => { event.preventDefault(); addListEntry(); });
  $("profile-form").addEventListener("submit", (event) => { event.preventDefault(); showProfile($("profile-player").value.trim()); });
  $("harm-next").addEventListener("click", () => renderHarm(harmNext));
  $("table-harm").addEventListener("click", (event) => {
    const link = event.target.closest("a.profile-link");
    if (!link) return;
    event.preventDefault();
    $("profile-player").value = link.dataset.player;
    showProfile(link.dataset.player);
  });
  setText("refresh-seconds", String(REFRESH_MS / 1000));
  refresh();
  schedule();
}

start();
