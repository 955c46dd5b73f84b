// emgate status page: reads `snapshot` events from /events and redraws. No build step, no
// libraries: the chart is an inline SVG drawn below. Every number is shown with its unit.
"use strict";

const COLORS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let timeFmt = null, clockFmt = null, zone = null, colorOf = {};

function fmtNum(x, digits) {
  return x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
// CO2 mass: kg below 10 t, t above, always with the unit.
function fmtKg(kg) {
  if (kg === null || kg === undefined) return "–";
  if (Math.abs(kg) >= 10000) return fmtNum(kg / 1000, 1) + " t";
  return fmtNum(kg, 1) + " kg";
}
function fmtAge(s) {
  if (s === null || s === undefined) return "never";
  if (s < 120) return fmtNum(s, 0) + " s ago";
  if (s < 7200) return fmtNum(s / 60, 0) + " min ago";
  return fmtNum(s / 3600, 1) + " h ago";
}
function sum(obj) { return Object.values(obj || {}).reduce((a, b) => a + (b || 0), 0); }

function setText(id, text) { $(id).textContent = text; }
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function fillTable(id, rows, render) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const row of rows) {
    const tr = document.createElement("tr");
    render(tr, row);
    body.appendChild(tr);
  }
}

function colorFor(process) {
  if (!(process in colorOf)) colorOf[process] = COLORS[Object.keys(colorOf).length % COLORS.length];
  return colorOf[process];
}

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// A line per process over the last hour; y from 0 (or the lowest negative) to the highest value.
function drawChart(series) {
  const svg = $("chart");
  const W = svg.clientWidth || 800, H = svg.clientHeight || 280;
  const pad = { l: 64, r: 130, t: 10, b: 26 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const xs = series.minute_start;
  const procs = Object.keys(series.co2_kg);
  if (xs.length === 0) {
    svg.appendChild(el("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }, "waiting for the first closed minute…"));
    return;
  }
  let lo = 0, hi = 0;
  for (const p of procs) for (const v of series.co2_kg[p]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (hi === lo) hi = lo + 1;
  const x0 = xs[xs.length - 1] - 3540, x1 = xs[xs.length - 1];  // 60 minute starts
  const X = (t) => pad.l + (W - pad.l - pad.r) * (t - x0) / (x1 - x0 || 1);
  const Y = (v) => H - pad.b - (H - pad.t - pad.b) * (v - lo) / (hi - lo);
  for (let i = 0; i <= 4; i++) {  // horizontal grid with kg labels
    const v = lo + (hi - lo) * i / 4, y = Y(v);
    svg.appendChild(el("line", { x1: pad.l, x2: W - pad.r, y1: y, y2: y, stroke: "#eef0f3" }));
    svg.appendChild(el("text", { x: pad.l - 6, y: y + 4, "text-anchor": "end" }, fmtNum(v, hi - lo < 10 ? 1 : 0) + " kg"));
  }
  for (let t = Math.ceil(x0 / 600) * 600; t <= x1; t += 600) {  // a time label every 10 minutes
    svg.appendChild(el("text", { x: X(t), y: H - 8, "text-anchor": "middle" }, timeFmt.format(new Date(t * 1000))));
  }
  procs.forEach((p, i) => {
    let d = "", pen = "M";
    series.co2_kg[p].forEach((v, j) => {
      if (v === null) { pen = "M"; return; }
      d += `${pen}${X(xs[j]).toFixed(1)},${Y(v).toFixed(1)} `;
      pen = "L";
    });
    const path = el("path", { d, fill: "none", stroke: colorFor(p), "stroke-width": 2 });
    path.dataset.process = p;
    svg.appendChild(path);
    const vals = series.co2_kg[p], j = vals.length - 1;  // mark the latest minute
    if (vals[j] !== null) svg.appendChild(el("circle", { cx: X(xs[j]), cy: Y(vals[j]), r: 3, fill: colorFor(p) }));
    svg.appendChild(el("rect", { x: W - pad.r + 10, y: pad.t + i * 18, width: 10, height: 10, fill: colorFor(p) }));
    svg.appendChild(el("text", { x: W - pad.r + 26, y: pad.t + i * 18 + 9 }, p));
  });
}

function render(s) {
  if (zone !== s.timezone) {
    zone = s.timezone;
    timeFmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, hour: "2-digit", minute: "2-digit" });
    clockFmt = new Intl.DateTimeFormat("en-GB", { timeZone: zone, dateStyle: "medium", timeStyle: "medium" });
  }
  setText("site", s.site);
  setText("clock", clockFmt.format(new Date(s.now * 1000)) + " (" + zone + ")");
  setText("updated", new Date().toLocaleTimeString("en-GB"));
  const t = s.totals;
  setText("total-today", fmtKg(sum(t.today_kg)));
  setText("total-year", fmtKg(sum(t.year_kg)));
  setText("total-hour", fmtKg(sum(t.last_hour_kg)));
  setText("total-minute", s.latest ? fmtKg(sum(s.latest.co2_kg)) : "–");
  setText("latest-minute", s.latest ? "(" + timeFmt.format(new Date(s.latest.minute_start * 1000)) + ")" : "");
  setText("scope-today", fmtKg(t.today_by_scope_kg.direct || 0) + " / " + fmtKg(t.today_by_scope_kg.indirect || 0));
  drawChart(s.series);

  fillTable("processes", s.processes, (tr, p) => {
    tr.dataset.process = p;
    const name = cell(tr, p);
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = colorFor(p);
    name.prepend(sw);
    cell(tr, s.latest && p in s.latest.co2_kg ? fmtKg(s.latest.co2_kg[p]) : "–", "n");
    cell(tr, fmtKg(t.last_hour_kg[p] || 0), "n");
    cell(tr, fmtKg(t.today_kg[p] || 0), "n");
    cell(tr, fmtKg(t.year_kg[p] || 0), "n");
  });

  $("budget-section").hidden = !(s.budgets && s.budgets.length);
  fillTable("budgets", s.budgets || [], (tr, b) => {
    // the alert stage reports tonnes (gateway/alerts budget_payload); fmtKg takes kg
    const kg = (k) => (b[k] === undefined || b[k] === null ? null : b[k] * 1000);
    const used = kg("actual_t"), limit = kg("allowance_t"), proj = kg("projected_year_end_t");
    cell(tr, [b.budget || "budget", b.scope].filter(Boolean).join(" · "));
    cell(tr, b.year === undefined ? "" : String(b.year));
    cell(tr, fmtKg(used), "n");
    cell(tr, fmtKg(kg("trajectory_t")), "n");
    cell(tr, fmtKg(limit), "n");
    cell(tr, fmtKg(proj), proj !== null && limit && proj > limit ? "n bad" : "n");
    const short = kg("shortfall_t");
    cell(tr, short === null ? "–" : (short > 0 ? fmtKg(short) + " over" : fmtKg(-short) + " spare") +
      (b.shortfall_cny ? " (" + fmtNum(Math.abs(b.shortfall_cny), 0) + " CNY)" : ""), short > 0 ? "n bad" : "n ok");
    const bar = document.createElement("div"), fill = document.createElement("div");
    bar.className = "bar";
    const frac = limit ? used / limit : 0;
    fill.style.width = Math.max(0, Math.min(100, frac * 100)).toFixed(1) + "%";
    if (frac > (b.elapsed_fraction || 1)) fill.className = "over";
    bar.appendChild(fill);
    const td = cell(tr, "");
    td.appendChild(bar);
    td.title = limit ? fmtNum(frac * 100, 1) + " % of the allowance used, " +
      fmtNum((b.elapsed_fraction || 0) * 100, 1) + " % of the year elapsed" : "";
  });

  $("deposit-section").hidden = !(s.deposits && s.deposits.length);
  fillTable("deposits", s.deposits || [], (tr, d) => {
    cell(tr, d.month);
    cell(tr, d.due_date);
    cell(tr, String(d.days_left), d.days_left < 0 ? "n bad" : "n");
    cell(tr, fmtNum(d.default_fuel_minutes, 0), d.default_fuel_minutes ? "n warn" : "n");
    cell(tr, fmtNum(d.low_coverage_minutes, 0), d.low_coverage_minutes > d.max_low_coverage_minutes ? "n warn" : "n");
    cell(tr, d.export_current ? "yes" : (d.exported ? "before its last change" : "no"), d.export_current ? "ok" : "warn");
    cell(tr, d.open.length ? "open: " + d.open.join(", ") : "complete", d.open.length ? "warn" : "ok");
  });

  $("alerts-section").hidden = s.alerts === null;
  const alerts = s.alerts || [];
  $("alerts-none").hidden = alerts.length > 0;
  $("alerts").hidden = alerts.length === 0;
  fillTable("alerts", alerts, (tr, a) => {
    const sev = String(a.severity || "warning");
    cell(tr, sev, sev === "critical" ? "bad" : "warn");
    cell(tr, a.kind || a.name || a.id || "alert");
    cell(tr, a.process || "");
    const since = a.raised_at ? Date.parse(a.raised_at) : (a.at_s || 0) * 1000;
    cell(tr, since ? timeFmt.format(new Date(since)) : "");
    cell(tr, a.message || "");
  });

  fillTable("devices", s.devices, (tr, d) => {
    tr.dataset.device = d.name;
    cell(tr, d.name);
    cell(tr, d.ok ? "OK" : "LOST", d.ok ? "ok" : "bad");
    cell(tr, fmtAge(d.age_s), "n");
    cell(tr, fmtNum(d.polls, 0), "n");
    cell(tr, fmtNum(d.errors, 0), d.errors ? "n warn" : "n");
    cell(tr, d.latency_ms === null ? "–" : fmtNum(d.latency_ms, 1) + " ms", "n");
    cell(tr, d.last_error || "", "muted");
  });

  setText("influx-backlog", s.influx ? fmtNum(s.influx.backlog_rows, 0) + " rows" : "InfluxDB disabled");
  setText("influx-written", s.influx ? fmtNum(s.influx.points_written, 0) + " points" : "–");
  setText("ledger-rows", fmtNum(s.ledger_rows, 0) + " rows");
  setText("minutes-closed", fmtNum(s.window.minutes_closed, 0));
  setText("close-lag", s.close_lag_s === null ? "–" : fmtNum(s.close_lag_s, 1) + " s");
  setText("samples", [s.window.samples, s.window.late, s.window.bad].map((n) => fmtNum(n, 0)).join(" / ") + " readings");
  setText("quality", Object.entries(s.quality).map(([q, n]) => `${q} ${n}`).join(", ") || "–");
}

function connect() {
  const source = new EventSource("/events");
  source.addEventListener("snapshot", (ev) => {
    $("conn").textContent = "live";
    $("conn").className = "meta live";
    render(JSON.parse(ev.data));
  });
  // EventSource reconnects by itself (the server sends retry: 3000); just say so.
  source.onerror = () => { $("conn").textContent = "reconnecting…"; $("conn").className = "meta down"; };
}

connect();
