// Drives meho's web console in a real headless Chromium (Debian's `chromium`, through
// playwright-core: no browser download) for the end-to-end test in
// crates/meho/tests/it/console_e2e.rs. The test has already made an MCP tool call go pending; this
// script plays the approver:
//
//   1. opens <MEHO_URL>/console/ and signs in through the IdP (oidc-provider's development forms:
//      authorization code + PKCE, login name $E2E_LOGIN), and checks who the console says is
//      signed in, that no code is left in the address bar and that nothing sits in localStorage,
//      sessionStorage or cookies;
//   2. lands on the Activity page, where the held call is a row, then finds the pending approval
//      $E2E_APPROVAL_ID on the Approvals page, checks it shows exactly $E2E_COMMAND, types
//      $E2E_REASON, takes the screenshot $E2E_SCREENSHOT of the approvals page, clicks Approve and
//      waits for the console to confirm;
//   3. opens the approval's detail view, the live feed (which must show the approval event) and the
//      audit search for the approval id (with the chain's verify status).
//
// Environment:
//   MEHO_URL          meho's base URL, e.g. http://127.0.0.1:8080 (required)
//   E2E_APPROVAL_ID   the pending approval (required)
//   E2E_COMMAND       the exact command the approval must show (required)
//   E2E_SCREENSHOT    where to write the PNG of the approvals page (required)
//   E2E_LOGIN         login name at the IdP (default tenant-a-admin)
//   E2E_REASON        the approval reason (default "approved by the console e2e test")
//   MEHO_CHROMIUM     the browser (default /usr/bin/chromium)
//   E2E_TIMEOUT_MS    bound on each wait (default 30000)
//
// It prints progress on stderr and exactly one JSON line on stdout: {"ok": true, ...} (exit 0), or
// {"ok": false, "step": "...", "error": "...", ...} (exit 1) with a screenshot of the failure next to
// $E2E_SCREENSHOT. Any page error or CSP violation on the console fails the run.

import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { chromium } from 'playwright-core';

function required(name) {
  const value = process.env[name];
  if (!value) {
    process.stdout.write(`${JSON.stringify({ ok: false, step: 'setup', error: `${name} is not set` })}\n`);
    process.exit(2);
  }
  return value;
}

const base = required('MEHO_URL').replace(/\/+$/, '');
const approvalId = required('E2E_APPROVAL_ID');
const command = required('E2E_COMMAND');
const screenshot = required('E2E_SCREENSHOT');
const login = process.env.E2E_LOGIN || 'tenant-a-admin';
const reason = process.env.E2E_REASON || 'approved by the console e2e test';
const executablePath = process.env.MEHO_CHROMIUM || '/usr/bin/chromium';
const timeout = Number(process.env.E2E_TIMEOUT_MS || 30000);

// The flags the closed test network needs (tests/peers: without the networking ones Chromium
// floods it with refused connections).
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const log = (message) => process.stderr.write(`e2e: ${message}\n`);
const result = { ok: false, screenshot };
const problems = [];
let step = 'launch';

mkdirSync(dirname(screenshot), { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'meho-e2e-chromium-'));
let context;
let page;
let bearer = '';

async function text(selector) {
  return ((await page.locator(selector).first().textContent({ timeout })) || '').trim();
}

async function go(hash) {
  await page.evaluate((h) => { window.location.hash = h; }, hash);
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 900 },
    timeout,
  });
  context.setDefaultTimeout(timeout);
  page = context.pages()[0] || (await context.newPage());
  const onConsole = (origin) => (location) => location.startsWith(origin);
  const fromMeho = onConsole(base);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  // The bearer token the console sends to meho, to look for it in browser storage later.
  page.on('request', (request) => {
    const authorization = request.headers().authorization;
    if (request.url().startsWith(`${base}/api/`) && authorization) bearer = authorization.replace(/^Bearer /, '');
  });
  page.on('console', (message) => {
    const where = message.location().url || page.url();
    if (message.type() === 'error' && fromMeho(where)) {
      // Chromium logs every refused fetch (e.g. a 4xx the page handles) as a console error;
      // what matters here is CSP and script failures.
      const textOf = message.text();
      if (/Content Security Policy|Refused to|Uncaught/i.test(textOf)) problems.push(`console: ${textOf}`);
    }
  });

  step = 'open the console';
  log(`opening ${base}/console/`);
  await page.goto(`${base}/console/`);
  await page.locator('#login-oidc').waitFor({ state: 'visible' });

  step = 'sign in at the IdP';
  await page.locator('#login-oidc').click();
  await page.locator('input[name="login"]').waitFor({ state: 'visible' });
  result.idp_login_url = new URL(page.url()).origin;
  log(`at the IdP (${result.idp_login_url}), signing in as ${login}`);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('any-password');
  await page.locator('button[type="submit"]').click();
  // The consent form (first login of this account for this client), or straight back.
  const consent = page.locator('input[name="prompt"][value="consent"]');
  const signedIn = page.locator('#whoami[data-subject]');
  await consent.or(signedIn).first().waitFor({ state: 'attached' });
  if (await consent.count()) {
    log('consenting');
    await page.locator('form:has(input[name="prompt"][value="consent"]) button[type="submit"]').click();
  }
  step = 'back in the console';
  await signedIn.waitFor({ state: 'attached' });
  result.whoami = {
    text: await text('#whoami'),
    subject: await page.locator('#whoami').getAttribute('data-subject'),
    tenant: await page.locator('#whoami').getAttribute('data-tenant'),
    role: await page.locator('#whoami').getAttribute('data-role'),
  };
  log(`signed in: ${result.whoami.text}`);
  const landed = new URL(page.url());
  result.url_after_login = landed.pathname + landed.search + landed.hash;
  if (landed.search.includes('code=') || landed.search.includes('state=')) {
    throw new Error(`the authorization code is still in the address bar: ${page.url()}`);
  }

  step = 'token storage';
  // Nothing in localStorage or sessionStorage (the PKCE verifier is gone too), no cookie the page
  // can read, and the token in no cookie at all. (Cookies ignore ports: the IdP's own session
  // cookies on 127.0.0.1 show up here too, HttpOnly and without the token.)
  const storage = await page.evaluate(() => ({
    local: Object.keys(window.localStorage),
    session: Object.keys(window.sessionStorage),
    cookie: document.cookie,
  }));
  const cookies = await context.cookies(base);
  result.storage = { ...storage, cookies: cookies.map((c) => c.name), token_seen: bearer.length > 0 };
  if (!bearer) throw new Error('saw no bearer token on the console\'s API requests');
  const leaked = cookies.filter((c) => c.value.includes(bearer) || (bearer.length > 40 && c.value.includes(bearer.slice(0, 40))));
  if (storage.local.length || storage.session.length || storage.cookie || leaked.length) {
    throw new Error(`the console left something in browser storage: ${JSON.stringify(result.storage)}`);
  }

  step = 'find the pending approval';
  // The console opens on Activity; the held call is there too, and on the Approvals page.
  await page.locator('#page-activity').waitFor({ state: 'visible' });
  await page.locator(`tr[data-testid="activity-row"][data-call-id="${approvalId}"][data-decision="held"]`).waitFor({ state: 'visible' });
  await page.locator('[data-testid="nav-approvals"]').click();
  await page.locator('#page-approvals').waitFor({ state: 'visible' });
  const row = page.locator(`tr[data-testid="approval-row"][data-approval-id="${approvalId}"]`);
  await row.waitFor({ state: 'visible' });
  const shown = {
    command: await row.locator('[data-testid="approval-command"]').textContent(),
    target: (await row.locator('[data-testid="approval-target"]').textContent()).trim(),
    requester: (await row.locator('[data-testid="approval-requester"]').textContent()).trim(),
    rule: (await row.locator('[data-testid="approval-rule"]').textContent()).trim(),
    tier: (await row.locator('[data-testid="approval-tier"]').textContent()).trim(),
    expires_at: (await row.locator('[data-testid="approval-expires"]').textContent()).trim(),
  };
  result.row = shown;
  log(`pending: ${JSON.stringify(shown)}`);
  if (shown.command !== command) {
    throw new Error(`the approval shows ${JSON.stringify(shown.command)}, not ${JSON.stringify(command)}`);
  }

  step = 'approve';
  await row.locator('[data-testid="approval-reason"]').fill(reason);
  await page.screenshot({ path: screenshot, fullPage: true });
  log(`screenshot: ${screenshot}`);
  await row.locator('[data-testid="approve"]').click();
  const message = page.locator('#approvals-message');
  await message.filter({ hasText: `approved ${approvalId}` }).waitFor({ state: 'visible' });
  result.approved_message = (await message.textContent()).trim();
  await row.waitFor({ state: 'detached' });
  log(result.approved_message);

  step = 'approval detail';
  await go(`#/approvals/${encodeURIComponent(approvalId)}`);
  const status = page.locator('[data-testid="approval-status"]');
  await status.waitFor({ state: 'visible' });
  result.detail_status = (await status.textContent()).trim();
  result.detail_reason = (await page.locator('dd[data-field="reason"]').textContent()).trim();
  if (!['approved', 'consumed'].includes(result.detail_status)) {
    throw new Error(`the detail view says ${result.detail_status}`);
  }

  step = 'live feed';
  await page.locator('[data-testid="nav-feed"]').click();
  await page.locator('#page-feed').waitFor({ state: 'visible' });
  const event = page.locator(`li[data-testid="feed-event"][data-kind="approval"][data-approval-id="${approvalId}"]`);
  await event.first().waitFor({ state: 'visible' });
  result.feed = {
    state: await page.locator('#feed-status').getAttribute('data-state'),
    approval_events: await event.count(),
    first: (await event.first().textContent()).trim(),
  };

  step = 'audit search';
  await page.locator('[data-testid="nav-audit"]').click();
  await page.locator('#page-audit').waitFor({ state: 'visible' });
  await page.locator('#audit-approval-id').fill(approvalId);
  await page.locator('#audit-search').click();
  const auditRows = page.locator(`tr[data-testid="audit-row"]`);
  await page.locator(`tr[data-testid="audit-row"][data-kind="approval"]`).first().waitFor({ state: 'visible' });
  result.audit_kinds = await auditRows.evaluateAll((rows) => rows.map((r) => r.dataset.kind));
  const verify = page.locator('#audit-verify');
  await page.locator('#audit-verify[data-state="ok"], #audit-verify[data-state="broken"], #audit-verify[data-state="failed"]').waitFor();
  result.verify = { state: await verify.getAttribute('data-state'), text: (await verify.textContent()).trim() };
  if (result.verify.state !== 'ok') throw new Error(`the audit chain check says ${result.verify.text}`);
  await auditRows.first().locator('[data-testid="audit-link"]').click();
  await page.locator('#audit-record-fields dd[data-field="approval_id"]').filter({ hasText: approvalId }).waitFor({ state: 'visible' });
  // The raw record is behind its toggle.
  await page.locator('[data-testid="audit-record-raw-toggle"]').click();
  const record = page.locator('#audit-record');
  await record.filter({ hasText: approvalId }).waitFor({ state: 'visible' });
  result.audit_record = JSON.parse(await record.textContent());

  step = 'page health';
  if (problems.length) throw new Error(problems.join('; '));
  result.ok = true;
} catch (error) {
  result.step = step;
  result.error = String(error && error.message ? error.message : error).split('\n')[0];
  result.problems = problems;
  if (page) {
    result.url = page.url();
    const failure = join(dirname(screenshot), 'console-failure.png');
    try {
      await page.screenshot({ path: failure, fullPage: true });
      result.failure_screenshot = failure;
    } catch {
      // The browser is gone; the error says why.
    }
  }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);
