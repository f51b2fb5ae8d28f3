// Hosted checkout: checks as the player types, live status, countdowns, copy buttons.
// Served by the platform; no inline script, no third party. Card data is never stored here:
// not in storage, not in cookies, and the fields are cleared when the page is left.
"use strict";

(function () {
  const body = document.body;
  const text = (name) => body.dataset[name] || "";

  // --- card checks -----------------------------------------------------------------------
  function digits(value) { return value.replace(/\D/g, ""); }

  function luhn(number) {
    let sum = 0;
    for (let i = 0; i < number.length; i += 1) {
      let d = number.charCodeAt(number.length - 1 - i) - 48;
      if (i % 2 === 1) { d *= 2; if (d > 9) d -= 9; }
      sum += d;
    }
    return sum % 10 === 0;
  }

  function scheme(number) {
    if (/^4/.test(number)) return "visa";
    const four = Number(number.slice(0, 4));
    if (/^5[1-5]/.test(number) || (four >= 2221 && four <= 2720)) return "mastercard";
    if (/^62/.test(number)) return "unionpay";
    return "unknown";
  }
  const SCHEME_NAMES = { visa: "Visa", mastercard: "Mastercard", unionpay: "UnionPay" };

  function expiry(value, now) {
    const match = /^\s*(\d{1,2})\s*\/?\s*(\d{2}|\d{4})\s*$/.exec(value);
    if (!match) return "check-expiry";
    const month = Number(match[1]);
    let year = Number(match[2]);
    if (year < 100) year += 2000;
    if (month < 1 || month > 12) return "check-expiry";
    const current = now.getFullYear() * 12 + now.getMonth();
    if (year * 12 + month - 1 < current) return "check-expired";
    return "";
  }

  function setMessage(input, key) {
    const message = document.getElementById(`${input.id}-msg`);
    if (message) message.textContent = key ? text(camel(key)) : "";
    input.setAttribute("aria-invalid", key ? "true" : "false");
  }

  function camel(key) { return key.replace(/-([a-z])/g, (_, c) => c.toUpperCase()); }

  function cardForm(form) {
    const accepted = (form.dataset.schemes || "").split(" ").filter(Boolean);
    const number = form.querySelector("[data-check=number]");
    const exp = form.querySelector("[data-check=expiry]");
    const cvc = form.querySelector("[data-check=cvc]");
    const holder = form.querySelector("[data-check=holder]");
    const shown = document.getElementById("cc-scheme");

    function checkNumber(final) {
      const value = digits(number.value);
      const kind = scheme(value);
      shown.textContent = value.length >= 2 && kind !== "unknown"
        ? text("cardScheme").replace("{scheme}", SCHEME_NAMES[kind]) : "";
      if (value.length >= 2 && accepted.length && !accepted.includes(kind)) return "check-scheme";
      if (value.length < 12 || value.length > 19 || !luhn(value)) {
        return final || value.length >= 16 ? "check-number" : "";
      }
      return "";
    }
    function checkExpiry(final) {
      if (!final && digits(exp.value).length < 4) return "";
      return expiry(exp.value, new Date());
    }
    function checkCvc(final) {
      const value = cvc.value;
      if (!final && value.length < 3) return /^\d*$/.test(value) ? "" : "check-cvc";
      return /^\d{3,4}$/.test(value) ? "" : "check-cvc";
    }
    function checkHolder(final) {
      const value = holder.value.trim();
      if (!final && !value) return "";
      return /^[A-Za-z][A-Za-z .'-]{0,99}$/.test(value) ? "" : "check-holder";
    }
    const checks = [[number, checkNumber], [exp, checkExpiry], [cvc, checkCvc], [holder, checkHolder]];

    number.addEventListener("input", () => {
      const value = digits(number.value).slice(0, 19);
      const grouped = value.replace(/(\d{4})(?=\d)/g, "$1 ");
      if (grouped !== number.value) number.value = grouped;
      setMessage(number, checkNumber(false));
    });
    exp.addEventListener("input", (event) => {
      let value = digits(exp.value).slice(0, 4);
      if (value.length >= 3 || (value.length === 2 && event.inputType !== "deleteContentBackward")) {
        value = `${value.slice(0, 2)}/${value.slice(2)}`;
      }
      if (value !== exp.value) exp.value = value;
      setMessage(exp, checkExpiry(false));
    });
    cvc.addEventListener("input", () => setMessage(cvc, checkCvc(false)));
    holder.addEventListener("input", () => setMessage(holder, checkHolder(false)));
    for (const [input, check] of checks) {
      input.addEventListener("blur", () => { if (input.value) setMessage(input, check(true)); });
    }
    form.addEventListener("submit", (event) => {
      let first = null;
      for (const [input, check] of checks) {
        const problem = check(true);
        setMessage(input, problem);
        if (problem && !first) first = input;
      }
      if (first) { event.preventDefault(); first.focus(); return; }
      lock(form);
    });
    // Nothing of the card stays behind: not in the page the back button restores.
    window.addEventListener("pagehide", () => { for (const [input] of checks) input.value = ""; });
  }

  function lock(form) {
    // A second click must not post again (the server would answer the same, but calmly).
    window.setTimeout(() => {
      for (const button of form.querySelectorAll("button[type=submit]")) button.disabled = true;
    }, 0);
  }

  // --- amount and methods ----------------------------------------------------------------
  function minor(value) {
    const match = /^\s*(\d{1,13})(?:[.,](\d{1,2}))?\s*$/.exec(value.replace(/[\s\u00a0\u202f]/g, ""));
    if (!match) return null;
    return Number(match[1]) * 100 + Number((match[2] || "").padEnd(2, "0"));
  }

  function chooser(form) {
    const other = document.getElementById("amount-other");
    const otherChoice = document.getElementById("amount-other-choice");
    function amount() {
      const picked = form.querySelector("input[name=amount]:checked") || form.querySelector("input[name=amount][type=hidden]");
      if (!picked) return null;
      if (picked.value === "other") return other ? minor(other.value) : null;
      return Number(picked.value);
    }
    function refresh() {
      const value = amount();
      for (const button of form.querySelectorAll("button.method")) {
        const low = Number(button.dataset.low), high = Number(button.dataset.high);
        button.disabled = value !== null && (value < low || value > high);
      }
      if (other) {
        const low = Number(other.dataset.low), high = Number(other.dataset.high);
        const bad = otherChoice && otherChoice.checked && other.value && (value === null || value < low || value > high);
        other.setAttribute("aria-invalid", bad ? "true" : "false");
      }
    }
    if (other) {
      other.addEventListener("input", () => { if (otherChoice) otherChoice.checked = true; refresh(); });
      other.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          const next = form.querySelector("button.method:not([disabled])");
          if (next) next.focus();
        }
      });
    }
    for (const radio of form.querySelectorAll("input[name=amount]")) radio.addEventListener("change", refresh);
    form.addEventListener("submit", () => lock(form));
    refresh();
  }

  function withdrawForm(form) {
    const iban = form.querySelector(".iban");
    function refresh() {
      const picked = form.querySelector("input[name=destination]:checked");
      if (!iban) return;
      const needed = picked && picked.value === "bank_transfer";
      iban.hidden = !needed;
      iban.querySelector("input").required = Boolean(needed);
    }
    for (const radio of form.querySelectorAll("input[name=destination]")) radio.addEventListener("change", refresh);
    form.addEventListener("submit", () => lock(form));
    refresh();
  }

  // --- live status ---------------------------------------------------------------------------
  function poll() {
    const url = body.dataset.statusUrl;
    if (!url) return;
    const every = Number(body.dataset.pollMs) || 2000;
    async function tick() {
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "omit" });
        if (response.status === 429) { window.setTimeout(tick, every * 3); return; }
        if (!response.ok) { window.location.reload(); return; }
        const state = await response.json();
        if (state.view !== body.dataset.view) { window.location.reload(); return; }
      } catch (_) { /* offline for a moment: ask again */ }
      window.setTimeout(tick, every);
    }
    window.setTimeout(tick, every);
  }

  function redirect() {
    const url = body.dataset.redirect;
    if (!url) return;
    const parents = (body.dataset.parents || "").split(" ").filter(Boolean);
    if (window.parent !== window) {
      for (const origin of parents) {
        window.parent.postMessage({ type: "kzpay.checkout", status: "succeeded" }, origin);
      }
    }
    window.setTimeout(() => window.location.assign(url), 3000);
  }

  function countdowns() {
    for (const element of document.querySelectorAll("[data-expires]")) {
      const left = Date.parse(element.dataset.expires) - Date.parse(element.dataset.now);
      if (Number.isNaN(left)) continue;
      const deadline = Date.now() + left;
      const shown = element.querySelector(".left");
      const tick = () => {
        const seconds = Math.max(0, Math.round((deadline - Date.now()) / 1000));
        shown.textContent = `${String(Math.floor(seconds / 60)).padStart(2, "0")}:${String(seconds % 60).padStart(2, "0")}`;
        if (seconds === 0) { element.textContent = text("timeUp"); return; }
        window.setTimeout(tick, 1000);
      };
      tick();
    }
  }

  function copyButtons() {
    for (const button of document.querySelectorAll("button.copy")) {
      button.hidden = false;
      const label = button.textContent;
      button.addEventListener("click", async () => {
        try {
          await navigator.clipboard.writeText(button.dataset.copy);
        } catch (_) {
          const value = button.parentElement.querySelector(".value");
          const range = document.createRange();
          range.selectNodeContents(value);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
        }
        button.textContent = text("copied");
        button.setAttribute("aria-live", "polite");
        window.setTimeout(() => { button.textContent = label; }, 2000);
      });
    }
  }

  const card = document.getElementById("card-form");
  if (card) cardForm(card);
  const choose = document.getElementById("choose-form");
  if (choose) chooser(choose);
  const withdraw = document.getElementById("withdraw-form");
  if (withdraw) withdrawForm(withdraw);
  for (const form of document.querySelectorAll("form:not(#card-form):not(#choose-form):not(#withdraw-form)")) {
    if (!form.target) form.addEventListener("submit", () => lock(form));
  }
  poll();
  redirect();
  countdowns();
  copyButtons();
})();
