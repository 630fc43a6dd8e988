// The operator dashboard in headless chromium, against a running server (run_browser_test
// starts it): the page goes live over server-sent events, an order placed during the test
// shows up in the newest orders with its final status within 2 s of becoming final, its
// timeline opens from the search box, the dead-letter section loads with the admin token
// and replays an entry, the token is in no cookie, URL or web storage, and nothing on the
// page logs an error or fails a request.
//
//   node test/browser/dashboard.test.mjs BASE_URL ADMIN_TOKEN POISON_KEY LOG_DIR
// BROWSER_TOOLS names the folder playwright-core is installed in (.cache/browser-tools).

import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';

const [baseUrl, adminToken, poisonKey, logDir] = process.argv.slice(2);
if (!logDir) {
  console.error('usage: dashboard.test.mjs BASE_URL ADMIN_TOKEN POISON_KEY LOG_DIR');
  process.exit(2);
}
const require = createRequire(path.join(process.env.BROWSER_TOOLS, 'node_modules', 'x.js'));
const { chromium } = require('playwright-core');

const failures = [];
function check(condition, what) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}`);
  if (!condition) failures.push(what);
}

async function until(what, seconds, probe) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

// Flags from /work/shared/TOOLS.md: no network beyond loopback, no background traffic.
const userDataDir = mkdtempSync(path.join(tmpdir(), 'dashboard-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1400, height: 1100 },
});
const problems = [];
let watching = true;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on('console', (message) => {
    if (watching && message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    if (watching) problems.push(`request failed: ${request.url()} ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });

  await page.goto(`${baseUrl}/dashboard`);
  await page.waitForFunction(() => document.getElementById('connection').textContent === 'live');
  await page.waitForFunction(() => document.getElementById('replica').textContent !== '…');
  const replica = await page.textContent('#replica');
  check(/:\d+$/.test(replica), `the page names its replica (${replica})`);
  check((await page.locator('#newest .scope.cluster').count()) === 1,
    'the newest orders are marked cluster-wide');
  check((await page.locator('#stages').evaluate((t) => t.previousElementSibling.textContent))
    .includes('this replica'), 'the stage figures are marked as this replica\'s');

  // An order placed now, over HTTP as a shop would.
  const placed = await fetch(`${baseUrl}/api/orders`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ customerId: 'cust-123', totalAmount: 9.99, paymentMethod: 'pm_card_visa',
      items: [{ productId: 'prod-789', quantity: 1, price: 9.99 }] }),
  });
  check(placed.status === 200, `POST /api/orders answers 200 (${placed.status})`);
  const { orderId } = await placed.json();
  console.log(`placed ${orderId}`);

  // When it became final (seen through the API) and when the page showed it so.
  const shownOnPage = page.waitForFunction((id) => {
    const row = document.querySelector(`#newest-orders tr[data-order-id="${id}"] .status`);
    return row && row.textContent === 'CONFIRMED';
  }, orderId, { polling: 25, timeout: 60000 }).then(() => Date.now());
  const finalInApi = until('the order to be final', 60, async () => {
    const order = await (await fetch(`${baseUrl}/api/orders/${orderId}`)).json();
    return ['CONFIRMED', 'CANCELLED', 'FAILED'].includes(order.status) ? [order.status, Date.now()] : null;
  });
  const [[status, finalAt], shownAt] = await Promise.all([finalInApi, shownOnPage]);
  check(status === 'CONFIRMED', `the order ended CONFIRMED (${status})`);
  check(shownAt - finalAt <= 2000,
    `the page showed it CONFIRMED ${shownAt - finalAt} ms after it became final (at most 2000)`);
  await page.screenshot({ path: path.join(logDir, 'browser-dashboard.png'), fullPage: true });

  // Its timeline, from the search box.
  await page.fill('#order-search', orderId);
  await page.click('#timeline-form button');
  await page.waitForSelector('#timeline-events li[data-status="CONFIRMED"]');
  const statuses = await page.$$eval('#timeline-events li', (items) => items.map((i) => i.dataset.status));
  check(JSON.stringify(statuses) ===
    JSON.stringify(['PLACED', 'VALIDATED', 'INVENTORY_RESERVED', 'PAYMENT_PROCESSED', 'CONFIRMED']),
  `the timeline lists every step in order (${statuses.join(' > ')})`);
  check((await page.textContent('#timeline-order')).includes(orderId), 'the timeline names the order');

  // Dead letters with the admin token: the poison message is listed and replayed.
  await page.fill('#admin-token', adminToken);
  await page.click('#token-form button');
  const entryId = await until('the poison message in the dead-letter list', 60, async () => {
    const rows = await page.$$eval('#dlq-entries tbody tr', (trs) => trs.map((tr) => ({
      id: tr.dataset.entryId, text: tr.textContent, replay: !!tr.querySelector('button') })));
    const row = rows.find((r) => r.text.includes(poisonKey) && r.replay);
    if (!row) await page.click('#token-form button');  // not dead-lettered yet: load again
    return row?.id;
  });
  await page.click(`#dlq-entries tr[data-entry-id="${entryId}"] button`);
  await page.waitForFunction((id) => document.getElementById('dlq-message').textContent
    === `Entry ${id} replayed.`, entryId);
  check(true, `dead letter ${entryId} replayed from the page`);
  await page.screenshot({ path: path.join(logDir, 'browser-dashboard-dead-letters.png'), fullPage: true });

  // The token stays in page memory.
  check(!page.url().includes(adminToken), 'the token is not in the URL');
  const cookies = await context.cookies();
  check(!cookies.some((c) => c.value.includes(adminToken) || c.name.includes(adminToken)),
    `the token is in no cookie (${cookies.length} cookies)`);
  const stored = await page.evaluate(() => JSON.stringify([{ ...localStorage }, { ...sessionStorage }]));
  check(!stored.includes(adminToken), 'the token is in no web storage');

  watching = false;  // closing the page aborts the live stream
  check(problems.length === 0, `no console errors or failed requests${problems.length ? `: ${problems.join('; ')}` : ''}`);
} catch (error) {
  failures.push(error.message);
  console.log(`FAIL ${error.stack}`);
} finally {
  watching = false;
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
}
if (failures.length) {
  console.log(`${failures.length} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
