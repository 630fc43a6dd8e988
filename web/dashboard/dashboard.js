// The operator dashboard: renders the "snapshot" events of /dashboard/stream (one per
// interval, computed once on the server for every viewer) and reads order timelines and dead
// letters through the HTTP API. The admin token lives only in the variable below: never in a
// cookie, the URL or web storage.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
let adminToken = '';
let stream = null;

const $ = (id) => document.getElementById(id);

function text(tag, content, className) {
  const element = document.createElement(tag);
  element.textContent = content ?? '';
  if (className) element.className = className;
  return element;
}

function seconds(value) {
  if (value === null || value === undefined) return '–';
  return value < 1 ? `${Math.round(value * 1000)} ms` : `${value.toFixed(2)} s`;
}

function rate(value) {
  return value === null || value === undefined ? '–' : value.toFixed(1);
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : '–';
}

// ---- live snapshots --------------------------------------------------------------------

function connect() {
  stream = new EventSource('/dashboard/stream');
  stream.addEventListener('open', () => setConnection('live', 'live'));
  stream.addEventListener('snapshot', (event) => render(JSON.parse(event.data)));
  stream.addEventListener('error', () => {
    // EventSource reconnects by itself after a dropped stream; a refused one (503: too many
    // viewers on this replica) it gives up on, so try again a little later.
    if (stream.readyState === EventSource.CLOSED) {
      setConnection('down', 'disconnected, retrying');
      setTimeout(connect, 5000);
    } else {
      setConnection('down', 'reconnecting');
    }
  });
}

function setConnection(state, label) {
  const badge = $('connection');
  badge.className = `badge ${state}`;
  badge.textContent = label;
}

function render(snapshot) {
  $('replica').textContent = snapshot.replica;
  $('updated').textContent = new Date(snapshot.generatedAt).toLocaleTimeString();
  renderCharts(snapshot.thisReplica.outcomes, snapshot.windowSeconds);
  renderStages(snapshot.thisReplica.stages);
  const breaker = snapshot.thisReplica.circuitBreaker;
  $('breaker').textContent = breaker;
  $('breaker').className = `breaker-${breaker}`;
  const cluster = snapshot.cluster;
  $('outbox').textContent = cluster.outboxBacklog === undefined ? '–'
    : `${cluster.outboxBacklog} events (oldest ${seconds(cluster.outboxLagSeconds)})`;
  $('retries').textContent = cluster.retriesPending ?? '–';
  $('dead-letters').textContent = cluster.deadLetters ? cluster.deadLetters.parked : '–';
  renderNewest(cluster.newestOrders, cluster.databaseError);
}

function renderStages(stages) {
  const body = $('stages').tBodies[0];
  body.replaceChildren(...stages.map((s) => {
    const row = document.createElement('tr');
    row.dataset.stage = s.stage;
    row.append(text('td', s.stage), text('td', rate(s.perSecond), 'number'),
      text('td', seconds(s.p50Seconds), 'number'), text('td', seconds(s.p99Seconds), 'number'),
      text('td', s.consumerLag ?? '–', 'number'));
    return row;
  }));
}

function renderNewest(orders, databaseError) {
  const error = $('database-error');
  error.hidden = orders !== null;
  error.textContent = orders === null ? `Database unavailable: ${databaseError}` : '';
  if (orders === null) return;  // keep the last list on screen
  const body = $('newest-orders').tBodies[0];
  body.replaceChildren(...orders.map((o) => {
    const row = document.createElement('tr');
    row.dataset.orderId = o.orderId;
    const idCell = document.createElement('td');
    const open = text('button', o.orderId, 'link');
    open.type = 'button';
    open.addEventListener('click', () => showTimeline(o.orderId));
    idCell.append(open);
    const status = text('td', o.reason ? `${o.status} (${o.reason})` : o.status, `status status-${o.status}`);
    row.append(idCell, status, text('td', o.totalAmount.toFixed(2), 'number'),
      text('td', clock(o.createdAt)), text('td', clock(o.updatedAt)));
    return row;
  }));
}

// Draws series of [time, value] points as polylines; gaps (null) break the line.
// Returns the chart's caption: the time span and the top line's value.
function drawChart(svg, points, series, format) {
  const width = 600, top = 8, bottom = 152;
  const values = points.flatMap((p) => series.map((s) => p[s])).filter((v) => v !== null);
  const max = Math.max(1e-9, ...values);
  const first = points.length ? points[0].at : 0;
  const last = points.length ? points[points.length - 1].at : 1;
  const x = (at) => (last === first ? width : ((at - first) / (last - first)) * width);
  const y = (v) => bottom - (v / max) * (bottom - top);
  const nodes = [];
  for (const fraction of [0, 0.5, 1]) {
    const line = document.createElementNS(SVG, 'line');
    line.setAttribute('class', 'grid');
    line.setAttribute('x1', 0); line.setAttribute('x2', width);
    line.setAttribute('y1', y(max * fraction)); line.setAttribute('y2', y(max * fraction));
    nodes.push(line);
  }
  for (const name of series) {
    let run = [];
    const flush = () => {
      // A lone point would draw nothing: give it a short stroke.
      if (run.length === 1) run.push(run[0].replace(/^([\d.]+)/, (x) => (Number(x) - 3).toFixed(1)));
      if (run.length) {
        const line = document.createElementNS(SVG, 'polyline');
        line.setAttribute('class', name);
        line.setAttribute('points', run.join(' '));
        nodes.push(line);
      }
      run = [];
    };
    for (const p of points) {
      if (p[name] === null) flush();
      else run.push(`${x(p.at).toFixed(1)},${y(p[name]).toFixed(1)}`);
    }
    flush();
  }
  svg.replaceChildren(...nodes);
  // Text stays outside the stretched drawing, where it keeps its shape.
  const span = points.length > 1 ? `last ${Math.round((last - first) / 1000)} s` : 'no data yet';
  return values.length ? `${span}, top line ${format(max)}` : span;
}

function renderCharts(outcomes, windowSeconds) {
  $('outcome-scale').textContent =
    drawChart($('outcome-chart'), outcomes, ['confirmed', 'cancelled', 'failed'], (v) => `${v.toFixed(1)}/s`);
  $('latency-scale').textContent = drawChart($('latency-chart'), outcomes, ['p50', 'p95', 'p99'], seconds);
  const now = outcomes[outcomes.length - 1];
  $('rate-now').textContent = now
    ? `${rate(now.confirmed)} confirmed, ${rate(now.cancelled)} cancelled, ${rate(now.failed)} failed per second`
    : '–';
  $('latency-now').textContent = now
    ? `p50 ${seconds(now.p50)}, p95 ${seconds(now.p95)}, p99 ${seconds(now.p99)} (last ${windowSeconds} s)`
    : '–';
}

// ---- order timeline ------------------------------------------------------------------

async function readJson(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `HTTP ${response.status}`);
  return body;
}

async function showTimeline(orderId) {
  const id = orderId.trim();
  $('order-search').value = id;
  const message = $('timeline-message');
  $('timeline-order').replaceChildren();
  $('timeline-events').replaceChildren();
  if (!id) {
    message.textContent = 'Type an order id.';
    return;
  }
  message.textContent = 'Loading…';
  try {
    const path = `/api/orders/${encodeURIComponent(id)}`;
    const [order, history] = await Promise.all([
      fetch(path).then(readJson), fetch(`${path}/events`).then(readJson)]);
    message.textContent = '';
    const summary = text('p', '');
    summary.append(text('strong', order.orderId), ' ',
      text('span', order.status, `status status-${order.status}`),
      ` · ${order.customerId} · ${order.totalAmount.toFixed(2)}`);
    if (order.reason) summary.append(` · ${order.reason}: ${order.reasonDetail ?? ''}`);
    $('timeline-order').append(summary);
    $('timeline-events').replaceChildren(...history.events.map((e) => {
      const item = text('li', '');
      item.dataset.status = e.status;
      item.append(text('span', e.status, `status status-${e.status}`), ` at ${e.at}`);
      if (e.reason) item.append(` · ${e.reason}`);
      if (e.detail) item.append(` · ${e.detail}`);
      return item;
    }));
  } catch (error) {
    message.textContent = `No timeline: ${error.message}`;
  }
}

// ---- dead letters ----------------------------------------------------------------------

async function admin(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    credentials: 'omit',
    headers: { Authorization: `Bearer ${adminToken}` },
  });
  return readJson(response);
}

async function loadDeadLetters() {
  const message = $('dlq-message');
  const body = $('dlq-entries').tBodies[0];
  if (!adminToken) {
    message.textContent = 'Enter the admin token to see and replay dead letters.';
    body.replaceChildren();
    return;
  }
  message.textContent = 'Loading…';
  try {
    const page = await admin('/api/admin/dlq?limit=50');
    message.textContent = page.entries.length ? '' : 'No dead letters.';
    body.replaceChildren(...page.entries.map((entry) => {
      const row = document.createElement('tr');
      row.dataset.entryId = entry.id;
      const action = document.createElement('td');
      if (entry.status === 'PARKED') {
        const replay = text('button', 'Replay');
        replay.type = 'button';
        replay.addEventListener('click', () => replayEntry(entry.id));
        action.append(replay);
      }
      row.append(text('td', entry.id, 'number'), text('td', entry.stage),
        text('td', entry.orderId ?? entry.key), text('td', `${entry.errorClass}: ${entry.errorMessage}`, 'error-text'),
        text('td', entry.status, 'entry-status'), action);
      return row;
    }));
  } catch (error) {
    message.textContent = `Dead letters not loaded: ${error.message}`;
    body.replaceChildren();
  }
}

async function replayEntry(id) {
  try {
    const result = await admin(`/api/admin/dlq/${id}/replay`, { method: 'POST' });
    await loadDeadLetters();
    $('dlq-message').textContent = result.replayed ? `Entry ${id} replayed.` : `Entry ${id} was already replayed.`;
  } catch (error) {
    $('dlq-message').textContent = `Replay of ${id} failed: ${error.message}`;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('timeline-form').addEventListener('submit', (event) => {
    event.preventDefault();
    showTimeline($('order-search').value);
  });
  $('token-form').addEventListener('submit', (event) => {
    event.preventDefault();  // a submitted form would put the token into the URL
    adminToken = $('admin-token').value.trim();
    loadDeadLetters();
  });
  connect();
});
