// Sluice console: the page at /admin. Plain DOM, no libraries, no inline styles (strict CSP).
// Every piece of data from the API goes into the page through textContent or attributes, never HTML.
'use strict';
(() => {
const TOKEN_KEY = 'sluice.adminToken';
const STATUS_MS = 5000;
const REFRESH_MS = 30000;
const HOUR = 3600e3;
const DAY = 86400e3;
const PALETTE = 10;
const LEGEND_MAX = 8;
const SVG_NS = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);
const nfInt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });
const nf2 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const nfCompact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

const state = {
  token: null,
  gen: 0, // bumped at each sign-in and sign-out: answers to an older session are dropped
  timers: [],
  statusBusy: false,
  lastRefresh: 0,
  chart: { by: 'identity', bucket: 'hour', since: '24h', metric: 'requests', data: null, loaded: null, seq: 0 },
  colors: new Map(), // "by\0key" -> palette index, kept for the whole page so a key keeps its colour
  top: {
    identity: { table: 'top-identities', rows: null, sort: 'costUSD', dir: 'desc', seq: 0 },
    model: { table: 'top-models', rows: null, sort: 'costUSD', dir: 'desc', seq: 0 },
  },
  req: { identity: '', since: '24h', rows: [], next: null, seq: 0 },
  tokensSeq: 0,
};

// ---- formatting

const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
const fmtInt = (v) => (isNum(v) ? nfInt.format(v) : '—');
const fmtCost = (v) => (!isNum(v) ? '—' : Math.abs(v) < 1 ? '$' + v.toFixed(4) : '$' + nf2.format(v));
const fmtMs = (v) => (!isNum(v) ? '—' : Math.abs(v) < 100 ? nf1.format(v) : nfInt.format(v));
function fmtTime(iso, seconds) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '—';
  const opts = { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
  if (seconds) opts.second = '2-digit';
  const now = new Date();
  if (seconds && d.toDateString() === now.toDateString()) { delete opts.month; delete opts.day; }
  if (d.getFullYear() !== now.getFullYear()) opts.year = 'numeric';
  return d.toLocaleString(undefined, opts);
}
function fmtUptime(s) {
  if (!isNum(s)) return '—';
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${Math.floor(s)}s`;
}
function metricValue(row, metric) {
  if (metric === 'cost') return row.costUSD || 0;
  if (metric === 'tokens') {
    return (row.inputTokens || 0) + (row.outputTokens || 0) + (row.cacheReadTokens || 0) + (row.cacheWriteTokens || 0);
  }
  return row.requests || 0;
}
function fmtMetric(v, metric) {
  if (metric === 'cost') return fmtCost(v);
  if (metric === 'tokens') return fmtInt(v) + ' tokens';
  return fmtInt(v) + (v === 1 ? ' request' : ' requests');
}
const sinceLabel = (s) => ({ '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days', '30d': 'last 30 days' }[s] || 'since ' + s);

// ---- DOM helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v;
    else e.setAttribute(k, String(v));
  }
  return e;
}
const td = (text, cls, title) => el('td', { class: cls, title }, text);
// A section's non-blocking error line; an empty message hides it.
function setError(id, message) {
  const e = $(id);
  e.textContent = message;
  e.hidden = !message;
}
function onEnter(input, fn) {
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.isComposing) {
      ev.preventDefault();
      fn();
    }
  });
}

// ---- API

class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param || null;
    this.silent = false; // already handled (401 sign-out, or an answer for a session that ended)
  }
}

// `token` is given only by the sign-in check, which must not sign anybody out on a 401.
async function api(path, { method = 'GET', body, token } = {}) {
  const gen = state.gen;
  const bearer = token !== undefined ? token : state.token;
  const headers = { Authorization: 'Bearer ' + bearer, Accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'same-origin', redirect: 'error' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res, text;
  try {
    res = await fetch(path, init);
    text = await res.text();
  } catch (e) {
    const err = new ApiError(0, 'Could not reach the gateway' + (e && e.message ? ` (${e.message})` : '') + '.');
    err.silent = token === undefined && gen !== state.gen;
    throw err;
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (token === undefined && gen !== state.gen) {
    const err = new ApiError(res.status, 'stale answer');
    err.silent = true;
    throw err;
  }
  if (!res.ok) {
    const e = data && data.error;
    const message = (e && typeof e.message === 'string' && e.message) || `HTTP ${res.status}${res.statusText ? ' ' + res.statusText : ''}`;
    const err = new ApiError(res.status, message, e && e.param);
    if (res.status === 401 && token === undefined) {
      err.silent = true;
      signOut(message);
    }
    throw err;
  }
  if (data === null || typeof data !== 'object') throw new ApiError(res.status, 'The gateway answered with something that is not JSON.');
  return { status: res.status, data };
}

// ---- session

async function signIn() {
  const input = $('token-input');
  const button = $('sign-in');
  const errLine = $('sign-in-error');
  const tok = input.value.trim();
  errLine.textContent = '';
  if (!tok) {
    errLine.textContent = 'Enter an admin token.';
    input.focus();
    return;
  }
  button.disabled = true;
  try {
    const { data } = await api('/admin/api/me', { token: tok });
    startSession(tok, data);
  } catch (e) {
    errLine.textContent = e.message;
    input.focus();
    input.select();
  } finally {
    button.disabled = false;
  }
}

function startSession(tok, me) {
  state.token = tok;
  state.gen++;
  try { sessionStorage.setItem(TOKEN_KEY, tok); } catch (_) { /* private mode: the token lives in memory */ }
  $('token-input').value = '';
  $('sign-in-error').textContent = '';
  const who = $('whoami');
  who.textContent = 'Signed in as ' + (me && me.identity ? me.identity : '?');
  who.title = me && Array.isArray(me.groups) ? 'Groups: ' + me.groups.join(', ') : '';
  $('signin').hidden = true;
  $('dashboard').hidden = false;
  $('session-bar').hidden = false;
  refreshStatus();
  refreshAll();
  stopTimers();
  state.timers.push(setInterval(() => { if (!document.hidden) refreshStatus(); }, STATUS_MS));
  state.timers.push(setInterval(() => { if (!document.hidden) refreshAll(); }, REFRESH_MS));
}

function stopTimers() {
  for (const t of state.timers) clearInterval(t);
  state.timers = [];
}

function signOut(message) {
  state.token = null;
  state.gen++;
  try { sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* nothing stored */ }
  stopTimers();
  hideNewToken();
  state.chart.data = null;
  state.top.identity.rows = null;
  state.top.model.rows = null;
  state.req.rows = [];
  state.req.next = null;
  for (const id of ['top-identities', 'top-models', 'requests-table', 'tokens-table']) {
    $(id).tBodies[0].replaceChildren();
    if ($(id).tFoot) $(id).tFoot.replaceChildren();
  }
  for (const e of document.querySelectorAll('.section-error')) { e.textContent = ''; e.hidden = true; }
  const old = $('chart').querySelector('svg');
  if (old) old.remove();
  $('chart-legend').replaceChildren();
  $('chart-empty').hidden = true;
  $('chart-loading').hidden = false;
  $('status-upstreams').replaceChildren();
  for (const id of ['status-streams', 'status-rps', 'status-ttfb', 'status-chunk', 'status-version', 'status-uptime']) $(id).textContent = '—';
  $('requests-count').textContent = '';
  $('requests-more').hidden = true;
  $('new-token-error').textContent = '';
  $('dashboard').hidden = true;
  $('session-bar').hidden = true;
  $('whoami').textContent = '';
  $('signin').hidden = false;
  $('sign-in-error').textContent = message || '';
  $('token-input').focus();
}

async function resume() {
  let tok = null;
  try { tok = sessionStorage.getItem(TOKEN_KEY); } catch (_) { tok = null; }
  if (!tok) {
    $('signin').hidden = false;
    $('token-input').focus();
    return;
  }
  try {
    const { data } = await api('/admin/api/me', { token: tok });
    startSession(tok, data);
  } catch (e) {
    signOut(e.message);
  }
}

// ---- refresh

function refreshAll() {
  state.lastRefresh = Date.now();
  loadChart();
  loadTop('identity');
  loadTop('model');
  loadRequests({ keep: true });
  loadTokens();
  const now = new Date();
  $('last-updated').textContent = 'Updated ' + now.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}

// ---- status

async function refreshStatus() {
  if (state.statusBusy || !state.token) return;
  state.statusBusy = true;
  try {
    const { data } = await api('/admin/api/status');
    renderStatus(data);
    setError('status-error', '');
  } catch (e) {
    if (!e.silent) setError('status-error', 'Could not load the status: ' + e.message);
  } finally {
    state.statusBusy = false;
  }
}

function pair(lat) {
  if (!lat) return '— / —';
  return fmtMs(lat.p50) + ' / ' + fmtMs(lat.p99);
}

function renderStatus(s) {
  $('status-streams').textContent = fmtInt(s.activeStreams);
  $('status-streams-max').textContent = isNum(s.maxStreams) ? 'of ' + fmtInt(s.maxStreams) + ' max' : '';
  $('status-rps').textContent = isNum(s.requestsPerSecond) ? nf2.format(s.requestsPerSecond) : '—';
  const win = isNum(s.windowSeconds) ? Math.round(s.windowSeconds / 60) : 5;
  $('status-window').textContent = `last ${win} min`;
  $('status-requests').textContent = isNum(s.requests) ? `${fmtInt(s.requests)} requests in ${win} min` : '';
  $('status-ttfb').textContent = pair(s.firstByteMs);
  $('status-ttfb-count').textContent = s.firstByteMs && isNum(s.firstByteMs.count) ? fmtInt(s.firstByteMs.count) + ' samples' : '';
  $('status-chunk').textContent = pair(s.chunkMicroseconds);
  $('status-chunk-count').textContent = s.chunkMicroseconds && isNum(s.chunkMicroseconds.count) ? fmtInt(s.chunkMicroseconds.count) + ' chunks' : '';
  $('status-version').textContent = s.version || '—';
  $('status-version').title = s.version || '';
  $('status-uptime').textContent = fmtUptime(s.uptimeSeconds);
  $('status-uptime').title = s.startedAt ? 'since ' + fmtTime(s.startedAt, true) : '';
  const list = $('status-upstreams');
  const items = (s.upstreams || []).map((u) => el('li', {
    class: u.healthy ? 'healthy' : 'cooling',
    title: u.healthy ? 'Healthy' : 'Cooling down after failures',
    'data-name': u.name,
  }, u.name, ' ', el('span', { class: 'region', text: u.region || '' })));
  if (items.length === 0) items.push(el('li', { class: 'none', text: 'none' }));
  list.replaceChildren(...items);
}

// ---- chart

async function loadChart() {
  const c = state.chart;
  const seq = ++c.seq;
  const params = { by: c.by, bucket: c.bucket, since: c.since };
  try {
    const { data } = await api('/admin/api/usage?' + new URLSearchParams(params));
    if (seq !== c.seq) return;
    c.data = data;
    c.loaded = params;
    setError('chart-error', '');
    renderChart();
  } catch (e) {
    if (seq !== c.seq || e.silent) return;
    $('chart-loading').hidden = true;
    setError('chart-error', 'Could not load usage: ' + e.message);
  }
}

const floorTo = (t, step) => Math.floor(t / step) * step;

function parseDuration(s) {
  const m = /^(\d+)([smhdw])$/.exec(s || '');
  if (!m) return null;
  return Number(m[1]) * { s: 1e3, m: 60e3, h: HOUR, d: DAY, w: 7 * DAY }[m[2]];
}

// The colour of each legend key: the one it had before when it is still free, else a new one.
function assignColors(by, keys) {
  const out = new Map();
  const used = new Set();
  const remembered = new Set([...state.colors].filter(([k]) => k.startsWith(by + '\0')).map(([, v]) => v));
  for (const k of keys) {
    const c = state.colors.get(by + '\0' + k);
    if (c !== undefined && !used.has(c)) { out.set(k, c); used.add(c); }
  }
  for (const k of keys) {
    if (out.has(k)) continue;
    let pick = -1;
    for (let i = 0; i < PALETTE && pick < 0; i++) if (!used.has(i) && !remembered.has(i)) pick = i;
    for (let i = 0; i < PALETTE && pick < 0; i++) if (!used.has(i)) pick = i;
    if (pick < 0) pick = 0;
    state.colors.set(by + '\0' + k, pick);
    used.add(pick);
    out.set(k, pick);
  }
  return out;
}

// A "nice" step (1, 2, 2.5 or 5 times a power of ten) for about `count` gridlines up to max.
function niceStep(max, count, integer) {
  const raw = max / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  let step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
  if (integer) step = Math.max(1, Math.ceil(step));
  return step;
}

function decimalsOf(step) {
  for (let d = 0; d < 8; d++) if (Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) < 1e-9) return d;
  return 8;
}

function fmtAxis(v, metric, step) {
  if (metric === 'cost') {
    if (v === 0) return '$0';
    if (v < 1000) return '$' + v.toFixed(Math.min(4, decimalsOf(step)));
    return '$' + nfCompact.format(v);
  }
  return v < 1000 ? nfInt.format(v) : nfCompact.format(v);
}

const hourFmt = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
const fmtHour = (t) => new Date(t).toLocaleTimeString(undefined, hourFmt);
const fmtLocalDay = (t) => new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric' });
const fmtUtcDay = (t) => new Date(t).toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' });
function bucketLabel(t, bucket) {
  if (bucket === 'day') {
    return new Date(t).toLocaleDateString(undefined, { weekday: 'short', month: 'short', day: 'numeric', timeZone: 'UTC' }) + ' (UTC day)';
  }
  return fmtLocalDay(t) + ', ' + fmtHour(t) + '–' + fmtHour(t + HOUR);
}

function renderChart() {
  const c = state.chart;
  const host = $('chart');
  const old = host.querySelector('svg');
  if (old) old.remove();
  $('chart-loading').hidden = true;
  const legend = $('chart-legend');
  const empty = $('chart-empty');
  if (!c.data || !c.loaded) return;
  const metric = c.metric;
  const bucket = c.loaded.bucket;
  const step = bucket === 'day' ? DAY : HOUR;
  const rows = (Array.isArray(c.data.rows) ? c.data.rows : []).filter((r) => r && r.bucket && !Number.isNaN(Date.parse(r.bucket)));

  // Totals per key decide the legend: the biggest keys, and the rest as "other".
  const totals = new Map();
  let requests = 0;
  for (const r of rows) {
    totals.set(r.key, (totals.get(r.key) || 0) + metricValue(r, metric));
    requests += r.requests || 0;
  }
  const keys = [...totals.keys()].sort((a, b) => totals.get(b) - totals.get(a) || String(a).localeCompare(String(b)));
  const grand = keys.reduce((s, k) => s + totals.get(k), 0);
  if (rows.length === 0 || requests === 0 || grand <= 0) {
    empty.textContent = rows.length === 0 || requests === 0 ? 'No requests in this window' : 'Nothing to show for this metric in this window';
    empty.hidden = false;
    legend.replaceChildren();
    return;
  }
  empty.hidden = true;
  const shown = keys.length <= LEGEND_MAX + 1 ? keys : keys.slice(0, LEGEND_MAX);
  const rest = keys.slice(shown.length);
  const OTHER = shown.includes('other') ? '(other)' : 'other';
  const colors = assignColors(c.loaded.by, shown);
  const series = shown.map((k) => ({ key: k, cls: 'c' + colors.get(k), total: totals.get(k) }));
  const restSet = new Set(rest);
  if (rest.length) series.push({ key: OTHER, cls: 'c-other', total: rest.reduce((s, k) => s + totals.get(k), 0), other: rest.length });
  const seriesIndex = new Map(shown.map((k, i) => [k, i]));

  // One slot per bucket of the window, empty ones too, so that time reads correctly.
  let start = floorTo(Date.parse(c.data.since), step);
  if (Number.isNaN(start)) start = floorTo(Date.now() - (parseDuration(c.loaded.since) || DAY), step);
  let end = floorTo(Date.now(), step);
  for (const r of rows) {
    const t = floorTo(Date.parse(r.bucket), step);
    if (t > end) end = t;
    if (t < start) start = t;
  }
  const MAX_SLOTS = 2000;
  if ((end - start) / step + 1 > MAX_SLOTS) start = end - (MAX_SLOTS - 1) * step;
  const n = Math.round((end - start) / step) + 1;
  const slots = Array.from({ length: n }, (_, i) => ({ t: start + i * step, vals: new Array(series.length).fill(0), total: 0 }));
  for (const r of rows) {
    const i = Math.round((floorTo(Date.parse(r.bucket), step) - start) / step);
    if (i < 0 || i >= n) continue;
    const v = metricValue(r, metric);
    const si = restSet.has(r.key) ? series.length - 1 : seriesIndex.get(r.key);
    slots[i].vals[si] += v;
    slots[i].total += v;
  }
  const maxTotal = Math.max(...slots.map((s) => s.total));

  // Geometry.
  const W = Math.max(320, host.clientWidth || 800);
  const H = 300;
  const yStep = niceStep(maxTotal > 0 ? maxTotal : 1, 4, metric !== 'cost');
  const yMax = Math.max(yStep, Math.ceil(maxTotal / yStep - 1e-9) * yStep);
  const ticks = [];
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) ticks.push(v);
  const tickLabels = ticks.map((v) => fmtAxis(v, metric, yStep));
  const mL = Math.max(36, 12 + 6.5 * Math.max(...tickLabels.map((s) => s.length)));
  const mR = 8, mT = 10, mB = 40;
  const pw = W - mL - mR, ph = H - mT - mB;
  const y = (v) => mT + ph - (v / yMax) * ph;
  const slotW = pw / n;
  const gap = slotW >= 8 ? slotW * 0.22 : slotW >= 3 ? 1 : 0;
  const barW = Math.min(56, slotW - gap);

  const root = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': `${metric} by ${c.loaded.by} per ${bucket}` });
  const gGrid = svg('g');
  ticks.forEach((v, i) => {
    const yy = Math.round(y(v)) + 0.5;
    if (i > 0) gGrid.append(svg('line', { class: 'grid', x1: mL, x2: W - mR, y1: yy, y2: yy }));
    gGrid.append(svg('text', { x: mL - 8, y: yy + 4, 'text-anchor': 'end', text: tickLabels[i] }));
  });
  root.append(gGrid);

  const gBars = svg('g', { class: 'bars' });
  slots.forEach((s, i) => {
    if (s.total <= 0) return;
    const x = mL + i * slotW + (slotW - barW) / 2;
    let acc = 0;
    const label = bucketLabel(s.t, bucket);
    s.vals.forEach((v, si) => {
      if (v <= 0) return;
      const y0 = y(acc), y1 = y(acc + v);
      acc += v;
      const ser = series[si];
      const rect = svg('rect', {
        class: 'seg ' + ser.cls, x: x.toFixed(2), y: y1.toFixed(2), width: Math.max(0.5, barW).toFixed(2),
        height: Math.max(0.5, y0 - y1).toFixed(2), 'data-key': ser.key, 'data-value': String(v), 'data-bucket': new Date(s.t).toISOString(),
      });
      const extra = ser.other ? ` (${ser.other} keys)` : '';
      rect.append(svg('title', { text: `${ser.key}${extra}\n${label}\n${fmtMetric(v, metric)} of ${fmtMetric(s.total, metric)}` }));
      gBars.append(rect);
    });
  });
  root.append(gBars);

  // X axis: labels thinned to fit, on round hours (local) or days.
  const gX = svg('g');
  const axisY = mT + ph + 0.5;
  gX.append(svg('line', { class: 'axis', x1: mL, x2: W - mR, y1: axisY, y2: axisY }));
  // Local hours (or UTC days) since the epoch: labels land on round hours such as 00:00, 06:00, 12:00.
  const every0 = Math.ceil(50 / slotW);
  const every = bucket === 'hour'
    ? [1, 2, 3, 4, 6, 12, 24].find((e) => e >= every0) || Math.ceil(every0 / 24) * 24
    : [1, 2, 3, 7, 14, 28].find((e) => e >= every0) || Math.ceil(every0 / 28) * 28;
  let lastDate = '';
  slots.forEach((s, i) => {
    const no = bucket === 'hour' ? Math.floor((s.t - new Date(s.t).getTimezoneOffset() * 60e3) / HOUR) : Math.round(s.t / DAY);
    if (no % every !== 0 && n > 1) return;
    const cx = mL + (i + 0.5) * slotW;
    if (cx < mL + 14 || cx > W - mR - 14) return;
    gX.append(svg('line', { class: 'tick', x1: cx.toFixed(1), x2: cx.toFixed(1), y1: axisY, y2: axisY + 4 }));
    if (bucket === 'hour') {
      gX.append(svg('text', { x: cx.toFixed(1), y: axisY + 16, 'text-anchor': 'middle', text: fmtHour(s.t) }));
      const date = fmtLocalDay(s.t);
      if (date !== lastDate) {
        gX.append(svg('text', { class: 'xdate', x: cx.toFixed(1), y: axisY + 29, 'text-anchor': 'middle', text: date }));
        lastDate = date;
      }
    } else {
      gX.append(svg('text', { x: cx.toFixed(1), y: axisY + 16, 'text-anchor': 'middle', text: fmtUtcDay(s.t) }));
    }
  });
  root.append(gX);
  host.append(root);

  legend.replaceChildren(...series.map((s) => el('li', { 'data-key': s.key, title: s.other ? `${s.other} other keys` : s.key },
    el('span', { class: 'swatch ' + s.cls }),
    el('span', { class: 'legend-key', text: s.key }),
    el('span', { class: 'legend-value', text: metric === 'cost' ? fmtCost(s.total) : fmtInt(s.total) }))));
}

// ---- top tables

const TOP_COLUMNS = ['requests', 'inputTokens', 'outputTokens', 'cacheReadTokens', 'cacheWriteTokens'];

async function loadTop(by) {
  const t = state.top[by];
  const seq = ++t.seq;
  const since = state.chart.since;
  const errId = t.table + '-error';
  try {
    const { data } = await api('/admin/api/usage?' + new URLSearchParams({ by, since }));
    if (seq !== t.seq) return;
    t.rows = Array.isArray(data.rows) ? data.rows : [];
    t.since = since;
    setError(errId, '');
    renderTop(by);
  } catch (e) {
    if (seq !== t.seq || e.silent) return;
    setError(errId, 'Could not load usage by ' + by + ': ' + e.message);
  }
}

function renderTop(by) {
  const t = state.top[by];
  const table = $(t.table);
  for (const th of table.tHead.rows[0].cells) {
    const col = th.dataset.sort;
    let ind = th.querySelector('.sort-ind');
    if (!ind) { ind = el('span', { class: 'sort-ind', 'aria-hidden': 'true' }); th.append(ind); }
    const active = col === t.sort;
    ind.textContent = active ? (t.dir === 'asc' ? '▲' : '▼') : '';
    th.setAttribute('aria-sort', active ? (t.dir === 'asc' ? 'ascending' : 'descending') : 'none');
  }
  table.closest('.card').querySelector('.top-window').textContent = sinceLabel(t.since);
  if (!t.rows) return;
  const rows = t.rows.slice();
  const dir = t.dir === 'asc' ? 1 : -1;
  const byKey = (a, b) => String(a.key).localeCompare(String(b.key));
  rows.sort((a, b) => (t.sort === 'key' ? byKey(a, b) : (a[t.sort] || 0) - (b[t.sort] || 0)) * dir || byKey(a, b));
  const body = rows.map((r) => {
    const tr = el('tr', { 'data-key': r.key });
    tr.append(td(r.key, 'key', r.key));
    tr.append(td(fmtInt(r.requests), 'num requests'));
    for (const col of TOP_COLUMNS.slice(1)) tr.append(td(fmtInt(r[col]), 'num'));
    tr.append(td(fmtCost(r.costUSD), 'num cost'));
    return tr;
  });
  if (body.length === 0) body.push(el('tr', { class: 'empty' }, el('td', { class: 'empty-cell', colspan: 7, text: 'No requests in this window' })));
  table.tBodies[0].replaceChildren(...body);
  const foot = table.tFoot;
  if (rows.length > 1) {
    const sum = (col) => rows.reduce((s, r) => s + (r[col] || 0), 0);
    const tr = el('tr', null, td(`Total (${rows.length})`));
    for (const col of TOP_COLUMNS) tr.append(td(fmtInt(sum(col)), 'num'));
    tr.append(td(fmtCost(sum('costUSD')), 'num'));
    foot.replaceChildren(tr);
  } else {
    foot.replaceChildren();
  }
}

function bindSort(by) {
  const t = state.top[by];
  const table = $(t.table);
  for (const th of table.tHead.rows[0].cells) {
    th.tabIndex = 0;
    const activate = () => {
      const col = th.dataset.sort;
      if (!col) return;
      if (t.sort === col) t.dir = t.dir === 'asc' ? 'desc' : 'asc';
      else { t.sort = col; t.dir = col === 'key' ? 'asc' : 'desc'; }
      renderTop(by);
    };
    th.addEventListener('click', activate);
    th.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); activate(); }
    });
  }
  renderTop(by);
}

// ---- recent requests

// keep: a refresh of what is shown (as many rows as now, so "Load more" pages are not lost);
// append: the next, older page.
async function loadRequests({ keep = false, append = false } = {}) {
  const r = state.req;
  if (append && !r.next) return;
  const seq = ++r.seq;
  const limit = keep ? Math.min(500, Math.max(50, r.rows.length)) : 50;
  const q = new URLSearchParams({ since: r.since, limit: String(limit) });
  if (r.identity) q.set('identity', r.identity);
  if (append) q.set('before', r.next);
  const more = $('requests-more');
  more.disabled = true;
  try {
    const { data } = await api('/admin/api/requests?' + q);
    if (seq !== r.seq) return;
    const page = Array.isArray(data.requests) ? data.requests : [];
    r.rows = append ? r.rows.concat(page) : page;
    r.next = data.next || null;
    setError('requests-error', '');
    renderRequests();
  } catch (e) {
    if (seq !== r.seq || e.silent) return;
    setError('requests-error', 'Could not load requests: ' + e.message);
  } finally {
    if (seq === r.seq) more.disabled = false;
  }
}

function renderRequests() {
  const r = state.req;
  const body = r.rows.map((q) => {
    const bad = isNum(q.status) && q.status >= 400;
    const tr = el('tr', { 'data-request-id': q.requestId || q.id, class: bad ? 'error' : null });
    tr.append(td(fmtTime(q.at, true), null, `${q.at}\nrequest id ${q.requestId || '—'}`));
    tr.append(td(q.identity, 'clip', q.identity + (q.tokenPrefix ? `\ntoken ${q.tokenPrefix}` : '')));
    tr.append(td(q.route, 'clip', q.route));
    const modelTitle = q.requestedModel && q.requestedModel !== q.model ? `${q.model}\nrequested as ${q.requestedModel}` : q.model;
    tr.append(td(q.model, 'clip wide', modelTitle));
    tr.append(el('td', { class: 'num status' }, el('span', { class: 'status-code', text: isNum(q.status) ? String(q.status) : '—' })));
    tr.append(td(q.finishReason || '—', q.finishReason ? null : 'dim'));
    const cache = (q.cacheReadTokens || q.cacheWriteTokens)
      ? `cache read ${fmtInt(q.cacheReadTokens || 0)}, cache write ${fmtInt(q.cacheWriteTokens || 0)}` : undefined;
    tr.append(td(fmtInt(q.inputTokens), 'num', cache));
    tr.append(td(fmtInt(q.outputTokens), 'num'));
    tr.append(td(fmtCost(q.costUSD), 'num'));
    tr.append(td(fmtMs(q.firstByteMs), isNum(q.firstByteMs) ? 'num' : 'num dim'));
    tr.append(td(fmtMs(q.durationMs), 'num'));
    tr.append(td(q.upstream || '—', q.upstream ? 'clip' : 'dim'));
    return tr;
  });
  if (body.length === 0) body.push(el('tr', { class: 'empty' }, el('td', { class: 'empty-cell', colspan: 12, text: 'No requests in this window' })));
  $('requests-table').tBodies[0].replaceChildren(...body);
  $('requests-more').hidden = !r.next;
  const who = r.identity ? ` of ${r.identity}` : '';
  $('requests-count').textContent = r.rows.length
    ? `${fmtInt(r.rows.length)} request${r.rows.length === 1 ? '' : 's'}${who} · ${sinceLabel(r.since)}${r.next ? ' · more available' : ''}`
    : '';
}

function applyRequestFilters() {
  state.req.identity = $('requests-identity').value.trim();
  state.req.since = $('requests-since').value;
  state.req.rows = [];
  state.req.next = null;
  loadRequests();
}

// ---- tokens

async function loadTokens() {
  const seq = ++state.tokensSeq;
  try {
    const { data } = await api('/admin/api/tokens');
    if (seq !== state.tokensSeq) return;
    renderTokens(Array.isArray(data.tokens) ? data.tokens : []);
    setError('tokens-error', '');
  } catch (e) {
    if (seq !== state.tokensSeq || e.silent) return;
    setError('tokens-error', 'Could not load tokens: ' + e.message);
  }
}

function renderTokens(tokens) {
  const body = tokens.map((t) => {
    const st = t.state || 'active';
    const tr = el('tr', { 'data-prefix': t.prefix, class: st === 'active' ? null : 'inactive' });
    tr.append(el('td', null, el('code', { text: t.prefix })));
    tr.append(td(t.identity, 'clip', t.identity));
    const groups = el('td', { class: 'clip', title: (t.groups || []).join(', ') });
    for (const g of t.groups || []) groups.append(el('span', { class: 'chip', text: g }));
    if (!t.groups || t.groups.length === 0) { groups.textContent = '—'; groups.className = 'dim'; }
    tr.append(groups);
    tr.append(td(t.label || '—', t.label ? 'clip' : 'dim', t.label || undefined));
    tr.append(td(fmtTime(t.createdAt), null, t.createdAt));
    tr.append(td(t.expiresAt ? fmtTime(t.expiresAt) : 'never', t.expiresAt ? null : 'dim', t.expiresAt || undefined));
    tr.append(td(t.lastUsedAt ? fmtTime(t.lastUsedAt) : 'never', t.lastUsedAt ? null : 'dim', t.lastUsedAt || undefined));
    const stateTitle = st === 'revoked' && t.revokedAt ? 'revoked ' + fmtTime(t.revokedAt) : undefined;
    tr.append(el('td', { title: stateTitle }, el('span', { class: 'state state-' + st, text: st })));
    const actions = el('td', { class: 'actions' });
    if (st === 'active') {
      const b = el('button', { type: 'button', class: 'btn small danger revoke', text: 'Revoke' });
      b.addEventListener('click', () => revokeToken(t, b));
      actions.append(b);
    }
    tr.append(actions);
    return tr;
  });
  if (body.length === 0) body.push(el('tr', { class: 'empty' }, el('td', { class: 'empty-cell', colspan: 9, text: 'No tokens yet' })));
  $('tokens-table').tBodies[0].replaceChildren(...body);
}

async function revokeToken(t, button) {
  const label = t.label ? ` (${t.label})` : '';
  if (!window.confirm(`Revoke token ${t.prefix}… of ${t.identity}${label}?\n\nClients using it are refused at once.`)) return;
  button.disabled = true;
  try {
    await api('/admin/api/tokens/' + encodeURIComponent(t.prefix), { method: 'DELETE' });
    loadTokens();
  } catch (e) {
    if (e.silent) return;
    await loadTokens(); // a 404 means the list was out of date
    setError('tokens-error', `Could not revoke ${t.prefix}: ${e.message}`);
  }
}

const TOKEN_FIELDS = { identity: 'new-token-identity', groups: 'new-token-groups', ttl: 'new-token-ttl', label: 'new-token-label' };

async function createToken() {
  const button = $('new-token-create');
  const errLine = $('new-token-error');
  errLine.textContent = '';
  for (const id of Object.values(TOKEN_FIELDS)) $(id).classList.remove('invalid');
  const body = {
    identity: $('new-token-identity').value.trim(),
    groups: $('new-token-groups').value.split(',').map((g) => g.trim()).filter((g) => g.length > 0),
    ttl: $('new-token-ttl').value.trim() || '30d',
  };
  const label = $('new-token-label').value.trim();
  if (label) body.label = label;
  button.disabled = true;
  try {
    const { data } = await api('/admin/api/tokens', { method: 'POST', body });
    showNewToken(data);
    $('new-token-identity').value = '';
    $('new-token-groups').value = '';
    $('new-token-label').value = '';
    loadTokens();
  } catch (e) {
    if (e.silent) return;
    errLine.textContent = e.message;
    const field = e.param && TOKEN_FIELDS[String(e.param).split(/[.[]/)[0]];
    if (field) $(field).classList.add('invalid');
  } finally {
    button.disabled = false;
  }
}

function showNewToken(t) {
  const value = $('new-token-value');
  value.value = t.token || '';
  const parts = [`${t.prefix} for ${t.identity}`];
  if (t.groups && t.groups.length) parts.push('groups ' + t.groups.join(', '));
  parts.push(t.expiresAt ? 'expires ' + fmtTime(t.expiresAt) : 'never expires');
  $('new-token-info').textContent = parts.join(' · ');
  $('new-token-copy').textContent = 'Copy';
  $('new-token-result').hidden = false;
  value.focus();
  value.select();
}

function hideNewToken() {
  $('new-token-value').value = '';
  $('new-token-info').textContent = '';
  $('new-token-result').hidden = true;
}

async function copyNewToken() {
  const input = $('new-token-value');
  const button = $('new-token-copy');
  const text = input.value;
  if (!text) return;
  let ok = false;
  if (navigator.clipboard) {
    try { await navigator.clipboard.writeText(text); ok = true; } catch (_) { ok = false; }
  }
  if (!ok) {
    input.focus();
    input.select();
    input.setSelectionRange(0, text.length);
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  }
  button.textContent = ok ? 'Copied' : 'Press Ctrl+C';
  setTimeout(() => { button.textContent = 'Copy'; }, 2500);
}

// ---- wiring

function init() {
  // Forms are layout only (form-action 'none'): never let one submit.
  for (const f of document.querySelectorAll('form')) f.addEventListener('submit', (ev) => ev.preventDefault());

  $('sign-in').addEventListener('click', (ev) => { ev.preventDefault(); signIn(); });
  onEnter($('token-input'), signIn);
  $('sign-out').addEventListener('click', () => signOut(''));
  $('refresh').addEventListener('click', () => { refreshStatus(); refreshAll(); });

  const c = state.chart;
  $('chart-by').addEventListener('change', (ev) => { c.by = ev.target.value; loadChart(); });
  $('chart-metric').addEventListener('change', (ev) => { c.metric = ev.target.value; renderChart(); });
  $('chart-bucket').addEventListener('change', (ev) => {
    c.bucket = ev.target.value;
    let since = c.since;
    if (c.bucket === 'day' && since === '24h') since = '7d';
    if (c.bucket === 'hour' && since === '30d') since = '7d';
    const sinceChanged = since !== c.since;
    c.since = since;
    $('chart-since').value = since;
    loadChart();
    if (sinceChanged) { loadTop('identity'); loadTop('model'); }
  });
  $('chart-since').addEventListener('change', (ev) => {
    c.since = ev.target.value;
    loadChart();
    loadTop('identity');
    loadTop('model');
  });
  bindSort('identity');
  bindSort('model');

  $('requests-apply').addEventListener('click', (ev) => { ev.preventDefault(); applyRequestFilters(); });
  onEnter($('requests-identity'), applyRequestFilters);
  $('requests-more').addEventListener('click', () => loadRequests({ append: true }));

  $('new-token-create').addEventListener('click', (ev) => { ev.preventDefault(); createToken(); });
  for (const id of Object.values(TOKEN_FIELDS)) onEnter($(id), createToken);
  $('new-token-copy').addEventListener('click', copyNewToken);
  $('new-token-done').addEventListener('click', hideNewToken);

  let resizeTimer = 0;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(renderChart, 150);
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden || !state.token) return;
    refreshStatus();
    if (Date.now() - state.lastRefresh > REFRESH_MS) refreshAll();
  });

  resume();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
})();
