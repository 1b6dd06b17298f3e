// tradekit dashboard: live updates by polling, the charts, and the token-guarded controls.
// Plain JS, no build step. The serve token lives in sessionStorage (this tab only) and goes
// out only as an Authorization header to this server.
"use strict";

const REFRESH_MS = Number(document.body.dataset.refreshMs) || 5000;
const TOKEN_KEY = "tradekit-serve-token";
const charts = []; // {update: () => Promise}

async function getJSON(url, token) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const r = await fetch(url, { headers, cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

// -- live part: reload #live from ?fragment=live -------------------------------------------
async function refreshLive() {
  const live = document.getElementById("live");
  if (!live) return;
  const url = new URL(location.href);
  url.searchParams.set("fragment", "live");
  const r = await fetch(url, { cache: "no-store" });
  const html = await r.text();
  if (html !== live.innerHTML) live.innerHTML = html;
}

async function tick() {
  if (!document.hidden) {
    await Promise.allSettled([refreshLive(), ...charts.map((c) => c.update())]);
  }
  setTimeout(tick, REFRESH_MS);
}

// -- charts --------------------------------------------------------------------------------
const sec = (ms) => Math.floor(ms / 1000);

function baseChart(el) {
  const LC = window.LightweightCharts;
  return LC.createChart(el, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1d2330" },
    grid: { vertLines: { color: "#f0f1f3" }, horzLines: { color: "#f0f1f3" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { borderVisible: false },
  });
}

function equityChart(el) {
  const LC = window.LightweightCharts;
  const chart = baseChart(el);
  const equity = chart.addSeries(LC.LineSeries, { color: "#2e5aac", lineWidth: 2, title: "equity" }, 0);
  const dd = chart.addSeries(LC.AreaSeries, {
    lineColor: "#b42318", topColor: "rgba(180,35,24,0.05)", bottomColor: "rgba(180,35,24,0.35)",
    invertFilledArea: true, title: "drawdown %",
    priceFormat: { type: "percent" },
  }, 1);
  const markers = LC.createSeriesMarkers(equity, []);
  let fitted = false;
  return {
    async update() {
      const doc = await getJSON("/api/v1/equity");
      equity.setData(doc.points.map((p) => ({ time: sec(p.time), value: p.equity })));
      dd.setData(doc.points.map((p) => ({ time: sec(p.time), value: -100 * p.drawdown })));
      markers.setMarkers(doc.halts.filter((h) => h.time).map((h) => ({
        time: sec(h.time), position: "aboveBar", shape: h.change === "start" ? "arrowDown" : "arrowUp",
        color: h.change === "start" ? "#b42318" : "#067647",
        text: (h.change === "start" ? "halt " : "lift ") + (h.halt || ""),
      })));
      if (!fitted && doc.points.length) { chart.timeScale().fitContent(); fitted = true; }
      el.dataset.drawn = String(doc.points.length);
    },
  };
}

function assetChart(el) {
  const LC = window.LightweightCharts;
  const chart = baseChart(el);
  const candles = chart.addSeries(LC.CandlestickSeries, {
    upColor: "#067647", downColor: "#b42318", borderVisible: false,
    wickUpColor: "#067647", wickDownColor: "#b42318",
  }, 0);
  const pred = chart.addSeries(LC.LineSeries, { color: "#7a5af8", lineWidth: 1, title: "prediction" }, 1);
  const markers = LC.createSeriesMarkers(candles, []);
  let lines = [];
  let fitted = false;
  const url = "/api/v1/candles?symbol=" + encodeURIComponent(el.dataset.symbol);
  return {
    async update() {
      const doc = await getJSON(url);
      candles.setData(doc.candles.rows.map(([t, o, h, l, c]) => ({ time: sec(t), open: o, high: h, low: l, close: c })));
      pred.setData(doc.predictions.map(([t, p]) => ({ time: sec(t), value: p })));
      markers.setMarkers(doc.fills.map((f) => ({
        time: sec(f.time),
        position: f.side === "buy" ? "belowBar" : "aboveBar",
        shape: f.side === "buy" ? "arrowUp" : "arrowDown",
        color: f.side === "buy" ? "#2e5aac" : "#e04f16",
      })));
      lines.forEach((l) => candles.removePriceLine(l));
      lines = [];
      const p = doc.position;
      if (p) {
        lines.push(candles.createPriceLine({ price: p.entry_price, color: "#2e5aac", lineStyle: 2, title: "entry" }));
        if (p.stop_price) lines.push(candles.createPriceLine({ price: p.stop_price, color: "#b42318", lineStyle: 2, title: "stop" }));
      }
      (doc.exchange_stops || []).forEach((s) => lines.push(candles.createPriceLine({
        price: s, color: "#b54708", lineStyle: 1, title: "exchange stop",
      })));
      if (!fitted && (doc.candles.rows.length || doc.predictions.length)) { chart.timeScale().fitContent(); fitted = true; }
      el.dataset.drawn = String(doc.candles.rows.length);
    },
  };
}

function startCharts() {
  if (!window.LightweightCharts) return;
  document.querySelectorAll("[data-chart]").forEach((el) => {
    const c = el.dataset.chart === "equity" ? equityChart(el) : assetChart(el);
    charts.push(c);
    c.update().catch((e) => { el.dataset.error = String(e); });
  });
}

// -- controls ------------------------------------------------------------------------------
function say(text, bad) {
  const m = document.getElementById("control-msg");
  if (m) { m.textContent = text; m.className = bad ? "neg" : ""; }
}

async function unlock(token) {
  const doc = await getJSON("/api/v1/controls", token);
  if (!doc.authorized) {
    sessionStorage.removeItem(TOKEN_KEY);
    say("That token is not the serve token: the page stays read-only.", true);
    return false;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  document.getElementById("control-buttons").hidden = false;
  document.getElementById("unlock").hidden = true;
  say("Unlocked: pause, resume and kill go to the loop.");
  return true;
}

async function send(command, body) {
  const token = sessionStorage.getItem(TOKEN_KEY) || "";
  const r = await fetch("/api/v1/" + command, {
    method: "POST",
    headers: { Authorization: "Bearer " + token, "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
  const doc = await r.json();
  if (r.ok) say(doc.status + ": " + doc.applies);
  else say(command + " refused (" + r.status + "): " + doc.error, true);
  refreshLive();
}

function startControls() {
  const form = document.getElementById("unlock");
  if (!form) return;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    unlock(document.getElementById("token").value).catch((err) => say(String(err), true));
  });
  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) unlock(saved).catch(() => {});
  document.getElementById("lock").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("control-buttons").hidden = true;
    form.hidden = false;
    say("Locked: read-only.");
  });
  const dialog = document.getElementById("kill-dialog");
  dialog.addEventListener("close", () => {
    const typed = document.getElementById("kill-confirm").value.trim();
    document.getElementById("kill-confirm").value = "";
    if (dialog.returnValue === "ok" && typed === "kill") send("kill", { confirm: "kill" });
    else if (dialog.returnValue === "ok") say("Kill not sent: type kill to confirm.", true);
  });
  document.querySelectorAll("[data-control]").forEach((b) => {
    b.addEventListener("click", () => {
      const c = b.dataset.control;
      if (c === "kill") dialog.showModal();
      else send(c);
    });
  });
}

startCharts();
startControls();
setTimeout(tick, REFRESH_MS);
