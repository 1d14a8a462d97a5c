// Drives every page of meho's web console in a real headless Chromium (Debian's `chromium`,
// through playwright-core) for crates/meho/tests/it/console_e2e.rs, against `meho serve --dev`
// after real agent calls (the test makes them over MCP before this script starts):
//
//   1. signs in with the approver's dev token ($E2E_TOKEN) and reads the Activity page: the
//      counters, the chart (its bars, by decision and by tier), the timeline (one row per call),
//      a filter, and a live update (it approves $E2E_LIVE_APPROVAL through the REST API while
//      the page is open: the row must turn `approved` without a reload);
//   2. reaches a timeline row with the keyboard only (Tab until a row link has the focus, then
//      Enter) and reads the call detail it opens; then the detail of the approved call
//      $E2E_CALL_ID with its records, approval and chain verify status; then the closing call of
//      a shell session ($E2E_RECORDING_CALL) and its recording, downloaded from that page: its
//      sha256 must be $E2E_RECORDING_SHA256, the one the session's closing record holds;
//   3. the Audit search (human rows, relative and absolute times, the raw JSON behind a toggle);
//   4. Freezes: creates one and lifts it, and shows the API's refusal of a bad serial;
//   5. Grants: creates one and revokes it, and shows the API's refusal of an unknown target;
//   6. Approvals: approves $E2E_UI_APPROVAL with a reason;
//   7. at 800 px wide, every page again: the document must not scroll sideways.
//
// Screenshots go to $E2E_ARTIFACTS: console-activity.png, console-call.png, console-audit.png,
// console-recording.png, console-freezes.png, console-grants.png, console-approvals-dev.png and console-<page>-800.png.
//
// Environment: MEHO_URL, E2E_TOKEN, E2E_ARTIFACTS, E2E_LIVE_APPROVAL, E2E_UI_APPROVAL,
// E2E_CALL_ID, E2E_RECORDING_CALL, E2E_RECORDING_SHA256 (required); MEHO_CHROMIUM (default /usr/bin/chromium), E2E_TIMEOUT_MS (30000).
// Prints one JSON line: {"ok": true, ...} (exit 0) or {"ok": false, "step", "error", ...} (exit 1,
// with console-pages-failure.png). Any page error or CSP violation fails the run.

import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { mkdirSync, readFileSync } from 'node:fs';

import { chromium } from 'playwright-core';

const env = (name) => {
  const value = process.env[name];
  if (!value) {
    process.stdout.write(`${JSON.stringify({ ok: false, step: 'setup', error: `${name} is not set` })}\n`);
    process.exit(2);
  }
  return value;
};

const base = env('MEHO_URL').replace(/\/+$/, '');
const token = env('E2E_TOKEN');
const artifacts = env('E2E_ARTIFACTS');
const liveApproval = env('E2E_LIVE_APPROVAL');
const uiApproval = env('E2E_UI_APPROVAL');
const callId = env('E2E_CALL_ID');
const recordingCall = env('E2E_RECORDING_CALL');
const recordingSha = env('E2E_RECORDING_SHA256');
const executablePath = process.env.MEHO_CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.E2E_TIMEOUT_MS || 30000);

const log = (message) => process.stderr.write(`pages: ${message}\n`);
const result = { ok: false };
const problems = [];
let step = 'launch';
let browser;
let page;

mkdirSync(artifacts, { recursive: true });
const shot = async (name) => {
  await page.screenshot({ path: join(artifacts, name), fullPage: true });
  log(`screenshot ${name}`);
};
const text = async (locator) => ((await locator.first().textContent({ timeout })) || '').trim();
const go = async (hash) => page.evaluate((h) => { window.location.hash = h; }, hash);
const api = async (method, path, body) => {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status} ${await response.text()}`);
  return response.json();
};
const overflow = () => page.evaluate(() => ({
  document: document.documentElement.scrollWidth - document.documentElement.clientWidth,
  body: document.body.scrollWidth - document.body.clientWidth,
}));
const rowsOf = (selector) => page.locator(selector).evaluateAll((rows) => rows.map((r) => ({
  id: r.dataset.callId,
  decision: r.dataset.decision,
  tier: r.dataset.tier,
  command: r.querySelector('[data-testid="activity-command"]').textContent,
  agent: r.querySelector('[data-testid="activity-agent"]').textContent,
  rule: r.querySelector('[data-testid="activity-rule"]').textContent,
  result: r.querySelector('[data-testid="activity-result"]').textContent.trim(),
  when: r.querySelector('[data-testid="activity-link"]').textContent.trim(),
})));

try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout,
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  page.setDefaultTimeout(timeout);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to|Uncaught/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });

  step = 'sign in';
  await page.goto(`${base}/console/`);
  await page.locator('#dev-token-form').waitFor({ state: 'visible' });
  result.dev_help = await text(page.locator('#dev-token-form'));
  await page.locator('#dev-token').fill(token);
  await page.locator('#dev-token-submit').click();
  await page.locator('#whoami[data-subject]').waitFor({ state: 'attached' });
  result.whoami = await page.locator('#whoami').getAttribute('data-subject');

  step = 'activity: the default page';
  await page.locator('#page-activity').waitFor({ state: 'visible' });
  result.landed = new URL(page.url()).hash;
  await page.locator('tr[data-testid="activity-row"]').first().waitFor({ state: 'visible' });
  await page.locator('[data-testid="activity-chart-svg"]').waitFor({ state: 'attached' });
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById('counter-pending').textContent));
  result.counters = {
    pending: await text(page.locator('#counter-pending')),
    denials: await text(page.locator('#counter-denials')),
    freezes: await text(page.locator('#counter-freezes')),
    sessions: await text(page.locator('#counter-sessions')),
  };
  result.rows = await rowsOf('tr[data-testid="activity-row"]');
  const bars = page.locator('rect[data-testid="chart-bar"]');
  result.chart = {
    total: Number(await page.locator('[data-testid="activity-chart-svg"]').getAttribute('data-total')),
    label: await page.locator('[data-testid="activity-chart-svg"]').getAttribute('aria-label'),
    bars: await bars.count(),
    keys: [...new Set(await bars.evaluateAll((all) => all.map((b) => b.dataset.key)))],
    sum: (await bars.evaluateAll((all) => all.map((b) => Number(b.dataset.count)))).reduce((a, b) => a + b, 0),
    legend: await text(page.locator('#chart-legend')),
  };
  await shot('console-activity.png');

  step = 'activity: the chart by tier';
  await page.locator('#chart-by-tier').click();
  await page.locator('#chart-by-tier[aria-pressed="true"]').waitFor();
  result.chart.tier_keys = [...new Set(await bars.evaluateAll((all) => all.map((b) => b.dataset.key)))];
  result.chart.tier_sum = (await bars.evaluateAll((all) => all.map((b) => Number(b.dataset.count)))).reduce((a, b) => a + b, 0);
  await page.locator('#chart-by-decision').click();

  step = 'activity: filter by decision';
  await page.locator('#activity-decision').selectOption('denied');
  await page.locator('#activity-apply').click();
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('tr[data-testid="activity-row"]')];
    return rows.length > 0 && rows.every((r) => r.dataset.decision === 'denied');
  });
  result.denied_rows = await rowsOf('tr[data-testid="activity-row"]');
  await page.locator('#activity-clear').click();
  await page.waitForFunction(() => [...document.querySelectorAll('tr[data-testid="activity-row"]')].some((r) => r.dataset.decision !== 'denied'));
  await page.locator('#activity-agent').fill('nobody-at-all');
  await page.locator('#activity-agent').press('Enter');
  await page.locator('#activity-empty').waitFor({ state: 'visible' });
  result.nobody_rows = await page.locator('tr[data-testid="activity-row"]').count();
  await page.locator('#activity-clear').click();
  await page.locator('tr[data-testid="activity-row"]').first().waitFor({ state: 'visible' });

  step = 'activity: a live update';
  const live = page.locator(`tr[data-testid="activity-row"][data-call-id="${liveApproval}"]`);
  result.live_before = await live.getAttribute('data-decision');
  await api('POST', `/api/v1/approvals/${encodeURIComponent(liveApproval)}/approve`, { reason: 'live update in the console test' });
  await page.locator(`tr[data-testid="activity-row"][data-call-id="${liveApproval}"][data-decision="approved"]`).waitFor({ state: 'attached' });
  result.live_after = await live.getAttribute('data-decision');
  await page.locator('#counter-pending', { hasText: /^1$/ }).waitFor();
  result.pending_after_live = await text(page.locator('#counter-pending'));

  step = 'keyboard: Tab to a row, Enter opens the call';
  await page.locator('#activity-refresh').focus();
  let tabs = 0;
  let focused = null;
  for (; tabs < 150; tabs += 1) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el.dataset.testid !== 'activity-link') return null;
      const style = getComputedStyle(el);
      return { href: el.getAttribute('href'), outline: style.outlineStyle, outline_width: style.outlineWidth };
    });
    if (focused) break;
  }
  if (!focused) throw new Error('no timeline row link is reachable with Tab');
  result.keyboard = { tabs: tabs + 1, ...focused };
  await page.keyboard.press('Enter');
  await page.locator('#page-call').waitFor({ state: 'visible' });
  await page.locator('li[data-testid="call-record"]').first().waitFor({ state: 'visible' });
  result.keyboard.opened = new URL(page.url()).hash;

  step = 'call detail';
  await go(`#/calls/${encodeURIComponent(callId)}`);
  await page.waitForFunction((id) => document.getElementById('call-id').textContent === id
    && document.querySelectorAll('li[data-testid="call-record"]').length > 0
    && document.getElementById('call-fields').childElementCount > 0, callId);
  await page.locator('#call-verify[data-state="ok"], #call-verify[data-state="broken"], #call-verify[data-state="failed"]').waitFor();
  const field = async (name) => {
    const el = page.locator(`#call-fields dd[data-field="${name}"], #call-approval dd[data-field="${name}"]`);
    return (await el.count()) ? text(el) : null;
  };
  result.call = {
    command: await text(page.locator('#call-command')),
    decision: await page.locator('[data-testid="call-decision"]').getAttribute('data-decision'),
    verify: { state: await page.locator('#call-verify').getAttribute('data-state'), text: await text(page.locator('#call-verify')) },
    serial: await field('serial'),
    output_sha256: await field('output_sha256'),
    output: await field('output_bytes'),
    result: await field('result'),
    decided_by: await field('decided_by'),
    reason: await field('reason'),
    chain: await field('chain'),
    records: await page.locator('li[data-testid="call-record"]').evaluateAll((all) => all.map((li) => ({
      seq: Number(li.dataset.seq), kind: li.dataset.kind, linked_by: li.dataset.linkedBy,
    }))),
  };
  const raw = page.locator('details[data-testid="call-record-raw"]').first();
  await raw.locator('summary').click();
  result.call.raw_seq = JSON.parse(await raw.locator('pre').textContent()).seq;
  await shot('console-call.png');

  step = 'session recording';
  await go(`#/calls/${encodeURIComponent(recordingCall)}`);
  const download = page.locator('[data-testid="call-recording"]');
  await download.waitFor({ state: 'visible' });
  const [file] = await Promise.all([page.waitForEvent('download', { timeout }), download.click()]);
  const saved = await file.path();
  const bytes = readFileSync(saved);
  result.recording = {
    name: file.suggestedFilename(),
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    status: await text(page.locator('[data-testid="call-recording-status"]')),
  };
  if (result.recording.sha256 !== recordingSha) {
    throw new Error(`the downloaded recording's sha256 is ${result.recording.sha256}, not ${recordingSha}`);
  }
  await shot('console-recording.png');

  step = 'audit search';
  await page.locator('[data-testid="nav-audit"]').click();
  await page.locator('#page-audit').waitFor({ state: 'visible' });
  await page.locator('tr[data-testid="audit-row"]').first().waitFor({ state: 'visible' });
  await page.locator('#audit-verify[data-state="ok"], #audit-verify[data-state="broken"], #audit-verify[data-state="failed"]').waitFor();
  result.audit = {
    verify: await page.locator('#audit-verify').getAttribute('data-state'),
    rows: await page.locator('tr[data-testid="audit-row"]').count(),
    when: await page.locator('[data-testid="audit-when"]').evaluateAll((all) => all.slice(0, 10).map((w) => w.textContent)),
    what: await page.locator('[data-testid="audit-what"]').evaluateAll((all) => all.map((w) => w.textContent)),
  };
  const firstRaw = page.locator('details[data-testid="audit-raw"]').first();
  result.audit.raw_visible_before = await firstRaw.locator('pre').isVisible();
  await firstRaw.locator('summary').click();
  await firstRaw.locator('pre').waitFor({ state: 'visible' });
  result.audit.raw = JSON.parse(await firstRaw.locator('pre').textContent());
  result.audit.still_on_search = new URL(page.url()).hash;
  await shot('console-audit.png');

  step = 'freezes';
  await page.locator('[data-testid="nav-freezes"]').click();
  await page.locator('#page-freezes').waitFor({ state: 'visible' });
  await page.locator('#freeze-kind').selectOption('serial');
  await page.locator('#freeze-value').fill('not-a-serial');
  await page.locator('#freeze-reason').fill('a bad serial');
  await page.locator('#freeze-submit').click();
  await page.locator('#freezes-error').waitFor({ state: 'visible' });
  result.freeze_error = await text(page.locator('#freezes-error'));
  await page.locator('#freeze-kind').selectOption('principal');
  await page.locator('#freeze-value').fill('agent-e2e');
  await page.locator('#freeze-reason').fill('incident INC-42: console test');
  await page.locator('#freeze-submit').click();
  await page.locator('#freezes-message', { hasText: 'froze principal agent-e2e' }).waitFor({ state: 'visible' });
  const frozen = page.locator('tr[data-testid="freeze-row"][data-active="true"]', { hasText: 'agent-e2e' });
  await frozen.waitFor({ state: 'visible' });
  result.freeze = { id: await frozen.getAttribute('data-freeze-id'), message: await text(page.locator('#freezes-message')) };
  await shot('console-freezes.png');
  await frozen.locator('[data-testid="freeze-lift-reason"]').fill('resolved');
  await frozen.locator('[data-testid="freeze-lift"]').click();
  await page.locator('#freezes-message', { hasText: 'lifted principal agent-e2e' }).waitFor({ state: 'visible' });
  await frozen.waitFor({ state: 'detached' });
  await page.locator('#freezes-all').check();
  const lifted = page.locator(`tr[data-testid="freeze-row"][data-freeze-id="${result.freeze.id}"]`);
  await lifted.waitFor({ state: 'visible' });
  result.freeze.after = { active: await lifted.getAttribute('data-active'), state: await text(lifted.locator('[data-testid="freeze-state"]')) };
  await page.locator('#freezes-all').uncheck();

  step = 'grants';
  await page.locator('[data-testid="nav-grants"]').click();
  await page.locator('#page-grants').waitFor({ state: 'visible' });
  await page.locator('#grant-target').fill('no-such-host');
  await page.locator('#grant-pattern').fill('^uptime -p$');
  await page.locator('#grant-reason').fill('a host that does not exist');
  await page.locator('#grant-submit').click();
  await page.locator('#grants-error').waitFor({ state: 'visible' });
  result.grant_error = await text(page.locator('#grants-error'));
  await page.locator('#grant-target').fill('web');
  await page.locator('#grant-pattern').fill('^uptime -p$');
  await page.locator('#grant-tier').selectOption('read');
  await page.locator('#grant-ttl').selectOption('3600');
  await page.locator('#grant-reason').fill('ticket CHG-9: pretty uptime');
  await page.locator('#grant-submit').click();
  await page.locator('#grants-message', { hasText: 'granted' }).waitFor({ state: 'visible' });
  const granted = page.locator('tr[data-testid="grant-row"][data-active="true"]', { hasText: '^uptime -p$' });
  await granted.waitFor({ state: 'visible' });
  result.grant = { id: await granted.getAttribute('data-grant-id'), message: await text(page.locator('#grants-message')) };
  await shot('console-grants.png');
  await granted.locator('[data-testid="grant-revoke"]').click();
  await page.locator('#grants-message', { hasText: 'revoked' }).waitFor({ state: 'visible' });
  await granted.waitFor({ state: 'detached' });
  result.grant.revoked = await text(page.locator('#grants-message'));

  step = 'approvals';
  await page.locator('[data-testid="nav-approvals"]').click();
  const row = page.locator(`tr[data-testid="approval-row"][data-approval-id="${uiApproval}"]`);
  await row.waitFor({ state: 'visible' });
  result.approval_row = {
    command: await text(row.locator('[data-testid="approval-command"]')),
    expires: await text(row.locator('[data-testid="approval-expires"]')),
  };
  await row.locator('[data-testid="approval-reason"]').fill('approved in the console pages test');
  await shot('console-approvals-dev.png');
  await row.locator('[data-testid="approve"]').click();
  await page.locator('#approvals-message', { hasText: `approved ${uiApproval}` }).waitFor({ state: 'visible' });
  result.approved = await text(page.locator('#approvals-message'));

  step = '800 px';
  await page.setViewportSize({ width: 800, height: 900 });
  result.narrow = {};
  const pages = [
    ['activity', '#/activity', 'tr[data-testid="activity-row"]'],
    ['call', `#/calls/${encodeURIComponent(callId)}`, 'li[data-testid="call-record"]'],
    ['approvals', '#/approvals', '#approvals-empty, tr[data-testid="approval-row"]'],
    ['freezes', '#/freezes', '#freezes-empty, tr[data-testid="freeze-row"]'],
    ['grants', '#/grants', '#grants-empty, tr[data-testid="grant-row"]'],
    ['audit', '#/audit', 'tr[data-testid="audit-row"]'],
    ['feed', '#/feed', '#feed-status'],
  ];
  for (const [name, hash, ready] of pages) {
    await go(hash);
    await page.locator(`#page-${name}`).waitFor({ state: 'visible' });
    await page.locator(ready).first().waitFor({ state: 'visible' });
    if (name === 'audit') {
      const details = page.locator('details[data-testid="audit-raw"]').first();
      if (!(await details.evaluate((d) => d.open))) await details.locator('summary').click();
      await details.locator('pre').waitFor({ state: 'visible' });
    }
    result.narrow[name] = await overflow();
    await shot(`console-${name}-800.png`);
  }

  step = 'page health';
  if (problems.length) throw new Error(problems.join('; '));
  result.ok = true;
} catch (error) {
  result.step = step;
  result.error = String(error && error.message ? error.message : error).split('\n')[0];
  result.problems = problems;
  if (page) {
    result.url = page.url();
    try {
      await page.screenshot({ path: join(artifacts, 'console-pages-failure.png'), fullPage: true });
    } catch {
      // The browser is gone; the error says why.
    }
  }
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
