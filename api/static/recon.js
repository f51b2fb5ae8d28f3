// Reconciliation view: one business day, per provider. Vanilla JS, no external assets; reads the
// JSON API with the operator key the dashboard keeps in localStorage.
"use strict";

const KEY_STORAGE = "kzpay.operatorKey";
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

function apiKey() { return localStorage.getItem(KEY_STORAGE) || ""; }

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${apiKey()}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { const problem = await response.json(); detail = problem.detail || problem.title || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${response.status} ${detail}`);
  }
  return response.json();
}

// Money is integer minor units: formatted without floating point.
function money(minor, currency = "KZT") {
  if (minor === null || minor === undefined) return "–";
  const negative = minor < 0;
  const abs = Math.abs(minor);
  const major = Math.floor(abs / 100).toLocaleString("en-US");
  const cents = String(abs % 100).padStart(2, "0");
  return `${negative ? "−" : ""}${major}.${cents} ${currency}`;
}
function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function almatyToday() {
  // The Asia/Almaty calendar day, the business day the API counts in.
  return new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Almaty" }).format(new Date());
}

function renderDays(days) {
  const sum = (f) => days.reduce((total, d) => total + f(d), 0);
  $("kpi-matched").textContent = `${sum((d) => d.matched_count)} · ${money(sum((d) => d.matched_amount))}`;
  $("kpi-unmatched").textContent = `${sum((d) => d.unmatched_count)} · ${money(sum((d) => d.unmatched_amount))}`;
  $("kpi-open").textContent = String(sum((d) => d.open_cases));
  $("kpi-explained").textContent = `${days.filter((d) => d.explained).length} / ${days.length}`;
  $("days").innerHTML = `<tr><th>provider</th><th>run</th><th class="num">matched</th><th class="num">unmatched</th>`
    + `<th class="num">settled</th><th class="num">open cases</th><th class="num">clearing</th>`
    + `<th class="num">difference</th><th>state</th></tr>`
    + (days.length ? days.map((d) => {
      const run = d.run;
      const runText = run ? `${esc(run.status)}${d.runs > 1 ? ` (${d.runs} reports)` : ""}` : '<span class="muted">not reconciled</span>';
      return `<tr data-provider="${esc(d.provider)}"><td>${esc(d.provider)}</td><td>${runText}</td>`
        + `<td class="num">${d.matched_count} · ${money(d.matched_amount, d.currency)}</td>`
        + `<td class="num">${d.unmatched_count} · ${money(d.unmatched_amount, d.currency)}</td>`
        + `<td class="num">${run ? money(run.net_settled_minor, d.currency) : "–"}</td>`
        + `<td class="num">${d.open_cases} · ${money(d.open_cases_amount, d.currency)}</td>`
        + `<td class="num">${money(d.clearing_balance, d.currency)}</td>`
        + `<td class="num">${money(d.difference_balance, d.currency)}</td>`
        + `<td><span class="badge ${d.explained ? "" : "bad"}">${d.explained ? "explained" : "check"}</span></td></tr>`;
    }).join("") : `<tr><td colspan="9" class="muted">nothing for this day</td></tr>`);
}

function renderCases(cases) {
  $("cases").innerHTML = `<tr><th>case</th><th>provider</th><th>kind</th><th>reference</th><th class="num">amount</th>`
    + `<th>status</th><th>allowed</th></tr>`
    + (cases.length ? cases.map((c) => `<tr><td>${c.id}</td><td>${esc(c.provider)}</td><td>${esc(c.kind)}</td>`
      + `<td>${esc(c.reference || "–")}</td><td class="num">${money(c.held_amount, c.currency)}</td>`
      + `<td>${esc(c.status)}${c.approvals.length ? ` (${c.approvals.length}/${c.approvals_needed} approvals)` : ""}</td>`
      + `<td>${esc(c.allowed_actions.join(", "))}</td></tr>`).join("")
      : `<tr><td colspan="7" class="muted">no open case</td></tr>`);
}

async function refresh() {
  if (!apiKey()) { $("status").textContent = "enter an operator API key on the dashboard first"; return; }
  const day = $("day").value || almatyToday();
  const provider = $("provider").value.trim();
  const q = new URLSearchParams({ date: day });
  if (provider) q.set("provider", provider);
  const cq = new URLSearchParams({ date: day, status: "open", limit: "200" });
  if (provider) cq.set("provider", provider);
  try {
    const [days, cases] = await Promise.all([api(`/v1/finance/recon?${q}`), api(`/v1/recon/cases?${cq}`)]);
    renderDays(days.data);
    renderCases(cases.data);
    $("main").hidden = false;
    $("error").hidden = true;
    $("status").textContent = `${day}${provider ? ` · ${provider}` : ""}`;
    $("updated-at").textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    document.body.dataset.loaded = "true";
  } catch (error) {
    $("error").hidden = false;
    $("error").textContent = error.message;
  }
}

$("day").value = params.get("date") || almatyToday();
$("provider").value = params.get("provider") || "";
$("day-form").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
refresh();
