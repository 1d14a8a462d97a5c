/*
 * meho web console: one page, vanilla JavaScript, no build step. Served from /console/ under a
 * strict CSP (script-src 'self', no inline code, no eval).
 *
 * Security rules this file keeps:
 *  - The access token lives in this closure's memory only: never in localStorage, sessionStorage,
 *    cookies or the URL. Reloading the page means signing in again.
 *  - sessionStorage holds only the OIDC `state`, the PKCE `code_verifier` and the hash to return
 *    to, between the redirect to the identity provider and the way back; they are removed on
 *    return, and `code`/`state` are stripped from the address bar before the code is exchanged.
 *  - Data from the API is never parsed as HTML: every value reaches the page through
 *    `textContent`/text nodes (see `h()`), never `innerHTML`.
 *  - Nor does it reach the page as it is: `h()`, `setText()` and `setJson()` (and `svg()` for the
 *    chart) pass every text through `shown()`, which writes control and bidi characters as
 *    visible escapes (`\x1b`, `\u{202e}`), exactly as the CLI does (meho_core::display::escape).
 *    A U+202E in a command would otherwise reverse what follows it, so a held
 *    `touch /etc/cron.d/x` could read as something harmless. Text reaches the DOM through those
 *    functions only.
 *  - The chart is SVG built with createElementNS from the summary's numbers; no library, no
 *    markup from the server.
 *
 * Pages (location.hash): #/activity (default), #/calls/<id>, #/approvals, #/approvals/<id>,
 * #/freezes, #/grants, #/feed, #/audit, #/audit/<id>.
 *
 * Stable hooks for tests (tests/peers/browser/e2e.mjs drives these):
 *  login          #page-login [data-testid=login]; OIDC: #login-oidc [data-testid=login-oidc];
 *                 dev mode: #dev-token-form, #dev-token, #dev-token-submit; errors: #login-error
 *  header         #whoami [data-testid=whoami] ("<subject> · tenant <tenant> · <role>", with
 *                 data-subject, data-tenant, data-role), #logout, nav links
 *                 [data-testid=nav-activity|nav-approvals|nav-freezes|nav-grants|nav-audit|nav-feed]
 *  activity       #page-activity; counters [data-testid=counter-pending-value|counter-denials-value|
 *                 counter-freezes-value|counter-sessions-value]; #activity-chart > svg
 *                 [data-testid=activity-chart-svg] with rect[data-testid=chart-bar][data-minute]
 *                 [data-key][data-count] and #chart-legend; #chart-by-decision, #chart-by-tier;
 *                 filters #activity-agent, #activity-target, #activity-tier, #activity-decision,
 *                 #activity-apply, #activity-clear; #activity-rows > tr[data-testid=activity-row]
 *                 [data-call-id][data-decision][data-tier], per row a[data-testid=activity-link]
 *                 (the keyboard target: Enter opens the call), [data-testid=activity-command],
 *                 activity-agent-cell, activity-rule, activity-decision, activity-result;
 *                 #activity-more, #activity-empty, #activity-status ("updated HH:MM:SS UTC")
 *  call           #page-call; #call-id, #call-command, #call-badges, #call-verify[data-state=
 *                 ok|broken|failed], #call-fields (dd[data-field=<name>]), #call-approval,
 *                 #call-records > li[data-testid=call-record][data-seq][data-kind][data-linked-by]
 *                 each with details[data-testid=call-record-raw] > pre (JSON)
 *  freezes        #page-freezes; #freeze-form with #freeze-kind, #freeze-value, #freeze-reason,
 *                 #freeze-submit; #freezes-rows > tr[data-testid=freeze-row][data-freeze-id]
 *                 [data-active], per row input[data-testid=freeze-lift-reason],
 *                 button[data-testid=freeze-lift]; #freezes-message, #freezes-error (the API's
 *                 message, e.g. a role that may not freeze), #freezes-all
 *  grants         #page-grants; #grant-form with #grant-target, #grant-pattern, #grant-tier,
 *                 #grant-ttl, #grant-reason, #grant-submit; #grants-rows > tr[data-testid=grant-row]
 *                 [data-grant-id][data-active], per row button[data-testid=grant-revoke];
 *                 #grants-message, #grants-error, #grants-all
 *  approvals      #page-approvals; #approvals-rows > tr[data-testid=approval-row][data-approval-id];
 *                 per row: [data-testid=approval-command] (the command, or the arguments as
 *                 JSON, through `shown()`), approval-tool, approval-target, approval-requester, approval-rule,
 *                 approval-tier, approval-expires, approval-link, approval-preview-link (when the
 *                 approval has a preview); input[data-testid=approval-reason],
 *                 select[data-testid=approval-learn] (seconds, "" = no waiver),
 *                 button[data-testid=approve], button[data-testid=deny], [data-testid=approval-error]
 *                 (the API's message, e.g. four eyes); #approvals-message (after a decision:
 *                 "approved <id> …" / "denied <id> …"), #approvals-empty, #approvals-status
 *  approval       #page-approval; #approval-id, #approval-fields (dd[data-field=<name>]),
 *                 [data-testid=approval-status], #approval-preview-section (hidden without a
 *                 preview) with pre#approval-preview > span[data-testid=preview-line]
 *                 [data-kind=added|removed|hunk|header|context] (one per line, through
 *                 `shown()`), #approval-arguments, #approval-actions (the same
 *                 reason/approve/deny controls while pending)
 *  feed           #page-feed; #feed-status[data-state=idle|connecting|live|reconnecting];
 *                 #feed-list > li[data-testid=feed-event][data-seq][data-kind][data-approval-id]
 *  audit          #page-audit; #audit-form with #audit-principal, #audit-target, #audit-kind,
 *                 #audit-approval-id, #audit-call-id, #audit-since, #audit-until (UTC),
 *                 #audit-search; #audit-rows > tr[data-testid=audit-row][data-record-id][data-kind]
 *                 with [data-testid=audit-when] (relative, then absolute to the second, UTC),
 *                 audit-what, audit-outcome, and details[data-testid=audit-raw] > pre (the JSON);
 *                 #audit-more; #audit-verify[data-state=ok|broken|failed] and
 *                 #audit-verify-problems; record view #page-audit-record with #audit-record-fields,
 *                 #audit-record-call (its call) and details#audit-record-raw >
 *                 summary[data-testid=audit-record-raw-toggle] + pre#audit-record (JSON)
 */
'use strict';

(() => {
  const POLL_MS = 4000;
  const FEED_MAX = 500;
  const FEED_BACKOFF_MIN_MS = 1000;
  const FEED_BACKOFF_MAX_MS = 30000;
  // The server sends a heartbeat every 15 s; a stream silent for longer than this is dead.
  const FEED_STALE_MS = 45000;
  const OIDC_KEY = 'meho.console.oidc';
  const LEARN_CHOICES = [
    ['', 'no waiver'],
    ['3600', 'learn for 1 h'],
    ['7200', 'learn for 2 h'],
    ['28800', 'learn for 8 h'],
    ['86400', 'learn for 1 day'],
    ['604800', 'learn for 7 days'],
  ];
  const TIERS = new Set(['read', 'write', 'destructive']);
  const DECISIONS = ['allowed', 'denied', 'held', 'approved', 'rejected', 'expired', 'announced'];
  const DECISION_WORDS = {
    allowed: 'allowed',
    denied: 'denied',
    held: 'held for approval',
    approved: 'approved',
    rejected: 'rejected',
    expired: 'expired',
    announced: 'announced',
  };
  const TIER_KEYS = ['read', 'write', 'destructive', 'unknown'];
  // How often relative times ("3 min ago") are rewritten, and how soon after a feed event the
  // activity page asks again (events come in bursts: one call writes several records).
  const RELATIVE_MS = 15000;
  const ACTIVITY_DEBOUNCE_MS = 400;
  const SUMMARY_MIN_MS = 3000;
  const ACTIVITY_LIMIT = 50;

  // --- the session: in memory only -------------------------------------------------------------

  let config = null;
  let accessToken = null;
  let who = null;

  // --- DOM helpers ----------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  /**
   * The characters that let a text forge its own display (meho_core::display::is_deceptive):
   * C0 controls (tab and newline included: they fake rows and lines), DEL, C1 controls, the bidi
   * embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the bidi marks (U+200E,
   * U+200F, U+061C) and the line and paragraph separators (U+2028, U+2029).
   */
  const DECEPTIVE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u2028\u2029]/g;

  /**
   * `text` with every deceptive character written as a visible escape, in the format of
   * meho_core::display::escape: `\xHH` below U+0100 (`\x1b`, `\x7f`, `\x9b`), `\u{HHHH}` above
   * (`\u{202e}`), lowercase hex.
   */
  function shown(text) {
    return String(text).replace(DECEPTIVE, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100
        ? `\\x${code.toString(16).padStart(2, '0')}`
        : `\\u{${code.toString(16).padStart(4, '0')}}`;
    });
  }

  /** Attributes a person reads (a tooltip, a label); the others are for scripts and tests. */
  const SHOWN_ATTRIBUTES = new Set(['title', 'alt', 'placeholder', 'aria-label']);

  /**
   * Builds an element. Strings and numbers become text nodes through `shown()`; nothing is parsed
   * as HTML.
   */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') el.className = value;
      else if (name.startsWith('on') && typeof value === 'function') {
        el.addEventListener(name.slice(2), value);
      } else if (value === true) el.setAttribute(name, '');
      else el.setAttribute(name, SHOWN_ATTRIBUTES.has(name) ? shown(value) : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : shown(child));
    }
    return el;
  }

  function show(el, visible) {
    el.hidden = !visible;
  }

  function setText(el, text) {
    el.textContent = text === null || text === undefined ? '' : shown(text);
  }

  /**
   * `value` as indented JSON. JSON.stringify escapes C0 controls inside strings, so the only raw
   * newlines are its own line breaks; each line goes through `shown()` for what JSON leaves
   * raw (DEL, C1, bidi controls, U+2028/U+2029).
   */
  function setJson(el, value) {
    el.textContent = JSON.stringify(value, null, 2).split('\n').map(shown).join('\n');
  }

  function showError(el, error) {
    setText(el, error ? describe(error) : '');
    show(el, Boolean(error));
  }

  function describe(error) {
    if (error instanceof ApiError) {
      return `${error.message} (${error.code}, HTTP ${error.status})`;
    }
    return error && error.message ? error.message : String(error);
  }

  const sleep = (ms, signal) =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    });

  function isoTime(value) {
    if (typeof value === 'number') return new Date(value / 1000).toISOString();
    return value || '';
  }

  function relative(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return '';
    const seconds = Math.round((at - Date.now()) / 1000);
    const span = Math.abs(seconds);
    // The browser's clock and the server's differ by a little: now is now.
    if (span < 3) return 'just now';
    const text = span < 90 ? `${span} s`
      : span < 5400 ? `${Math.round(span / 60)} min`
        : span < 172800 ? `${Math.round(span / 3600)} h`
          : `${Math.round(span / 86400)} days`;
    return seconds >= 0 ? `in ${text}` : `${text} ago`;
  }

  /** `2026-12-07 12:43:06 UTC`: to the second, the zone stated. */
  function absolute(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return iso ? String(iso) : '';
    return `${new Date(at).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
  }

  /** A `<time>` saying how long ago (kept fresh), with the absolute time under it. */
  function when(iso, testid) {
    const rel = h('time', { datetime: iso || '', 'data-relative': iso || '', title: absolute(iso) }, relative(iso));
    return h('span', { class: 'when', 'data-testid': testid || null }, rel, h('span', { class: 'sub mono' }, absolute(iso)));
  }

  /** Rewrites every relative time on the page. */
  function refreshRelativeTimes() {
    for (const el of document.querySelectorAll('time[data-relative]')) {
      setText(el, relative(el.dataset.relative));
    }
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** An SVG element, built like `h()`: attributes as strings, text through `shown()`. */
  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      el.setAttribute(name, SHOWN_ATTRIBUTES.has(name) ? shown(value) : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : shown(child));
    }
    return el;
  }

  function tierBadgeOf(tier, testid) {
    const known = TIERS.has(tier) ? tier : '';
    return h('span', { class: known ? `tier tier-${known}` : 'tier', 'data-testid': testid || null }, tier || 'no tier');
  }

  function decisionBadge(decision, testid) {
    const known = DECISIONS.includes(decision) ? decision : '';
    return h(
      'span',
      { class: known ? `decision decision-${known}` : 'decision', 'data-testid': testid || null, 'data-decision': known || null },
      DECISION_WORDS[decision] || decision || '',
    );
  }

  // --- the REST API ---------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(method, path, body) {
    if (!accessToken) throw new ApiError(401, 'missing_token', 'not signed in');
    const headers = { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' };
    const init = { method, headers, cache: 'no-store', credentials: 'omit' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    let data = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      const error = new ApiError(
        response.status,
        (data && data.error) || `http_${response.status}`,
        (data && data.message) || response.statusText || 'request failed',
      );
      if (response.status === 401) signedOut(error);
      throw error;
    }
    return data;
  }

  // --- login ----------------------------------------------------------------------------------

  function b64url(bytes) {
    let text = '';
    for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function randomToken(bytes) {
    return b64url(crypto.getRandomValues(new Uint8Array(bytes)));
  }

  const trimSlash = (url) => String(url).replace(/\/+$/, '');

  async function discover() {
    const url = `${trimSlash(config.issuer)}/.well-known/openid-configuration`;
    const response = await fetch(url, { cache: 'no-store', credentials: 'omit' });
    if (!response.ok) throw new Error(`the identity provider's metadata answered HTTP ${response.status}`);
    const meta = await response.json();
    if (trimSlash(meta.issuer) !== trimSlash(config.issuer)) {
      throw new Error(`the identity provider calls itself ${meta.issuer}, not ${config.issuer}`);
    }
    if (!meta.authorization_endpoint || !meta.token_endpoint) {
      throw new Error("the identity provider's metadata lacks an authorization or token endpoint");
    }
    return meta;
  }

  function redirectUri() {
    return `${location.origin}/console/`;
  }

  async function startOidcLogin() {
    showError($('login-error'), null);
    try {
      if (!window.crypto || !crypto.subtle) {
        throw new Error('signing in needs a secure context: open the console over https (or on localhost)');
      }
      const meta = await discover();
      const verifier = randomToken(32);
      const state = randomToken(16);
      const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
      const returnTo = location.hash || '#/activity';
      sessionStorage.setItem(OIDC_KEY, JSON.stringify({ state, verifier, returnTo }));
      const url = new URL(meta.authorization_endpoint);
      const params = {
        client_id: config.client_id,
        redirect_uri: redirectUri(),
        response_type: 'code',
        scope: config.scopes.join(' '),
        state,
        code_challenge: b64url(digest),
        code_challenge_method: 'S256',
        resource: config.resource,
      };
      for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
      location.assign(url.toString());
    } catch (error) {
      showError($('login-error'), error);
    }
  }

  /** The way back from the identity provider: `?code=…&state=…` (or `?error=…`). */
  async function completeOidcLogin(params) {
    let saved = null;
    try {
      saved = JSON.parse(sessionStorage.getItem(OIDC_KEY) || 'null');
    } catch {
      saved = null;
    }
    sessionStorage.removeItem(OIDC_KEY);
    // The code is single-use and worthless after this, but it has no business in the history.
    const returnTo = saved && typeof saved.returnTo === 'string' && saved.returnTo.startsWith('#') ? saved.returnTo : '#/activity';
    history.replaceState(null, '', `${location.pathname}${returnTo}`);

    if (params.get('error')) {
      throw new Error(`the identity provider refused: ${params.get('error')}${params.get('error_description') ? `: ${params.get('error_description')}` : ''}`);
    }
    if (!saved || !saved.state || saved.state !== params.get('state')) {
      throw new Error('the sign-in answer does not belong to this tab (state mismatch); sign in again');
    }
    const meta = await discover();
    if (params.has('iss') && trimSlash(params.get('iss')) !== trimSlash(meta.issuer)) {
      throw new Error(`the sign-in answer came from ${params.get('iss')}, not ${meta.issuer}`);
    }
    const form = new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code') || '',
      redirect_uri: redirectUri(),
      client_id: config.client_id,
      code_verifier: saved.verifier,
      resource: config.resource,
    });
    const response = await fetch(meta.token_endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
      body: form,
      cache: 'no-store',
      credentials: 'omit',
    });
    let data = {};
    try {
      data = await response.json();
    } catch {
      data = {};
    }
    if (!response.ok || typeof data.access_token !== 'string') {
      throw new Error(`the token exchange failed: ${data.error || `HTTP ${response.status}`}${data.error_description ? `: ${data.error_description}` : ''}`);
    }
    accessToken = data.access_token;
  }

  async function useDevToken(event) {
    event.preventDefault();
    const input = $('dev-token');
    const token = input.value.trim();
    input.value = '';
    if (!token) return;
    accessToken = token;
    await signedIn();
  }

  function showLogin(message) {
    stopEverything();
    show($('nav'), false);
    show($('logout'), false);
    setText($('whoami'), '');
    showPage('login');
    const oidc = Boolean(config && config.issuer);
    show($('login-oidc-box'), oidc);
    setText($('login-issuer'), oidc ? config.issuer : '');
    show($('dev-token-form'), Boolean(config && config.dev));
    if (config && !config.dev && !config.issuer) {
      message = message || 'This server has no [auth] issuer and is not in dev mode: nobody can sign in.';
    }
    showError($('login-error'), message ? new Error(message) : null);
  }

  async function signedIn() {
    try {
      who = await api('GET', '/api/v1/whoami');
    } catch (error) {
      accessToken = null;
      showLogin(`The server did not accept the sign-in: ${describe(error)}`);
      return;
    }
    const whoami = $('whoami');
    setText(whoami, `${who.subject} · tenant ${who.tenant} · ${who.role}`);
    whoami.dataset.subject = who.subject || '';
    whoami.dataset.tenant = who.tenant || '';
    whoami.dataset.role = who.role || '';
    show($('nav'), true);
    show($('logout'), true);
    showError($('login-error'), null);
    startFeed();
    route();
  }

  /** The server refused the token (expired, revoked): back to the login page. */
  function signedOut(error) {
    if (!accessToken) return;
    accessToken = null;
    who = null;
    showLogin(`Your session ended (${error ? error.message : 'signed out'}). Sign in again.`);
  }

  function logout() {
    accessToken = null;
    who = null;
    showLogin(null);
  }

  function stopEverything() {
    stopFeed();
    stopPolling();
    stopActivity();
    approvals.rows.clear();
    $('approvals-rows').replaceChildren();
    $('audit-rows').replaceChildren();
    $('feed-list').replaceChildren();
    $('activity-rows').replaceChildren();
    $('freezes-rows').replaceChildren();
    $('grants-rows').replaceChildren();
    activity.rows.clear();
    activity.calls.clear();
    activity.touched.clear();
    activity.before = null;
    activity.summary = null;
    callPage.id = null;
    callPage.detail = null;
    feed.lastId = null;
    audit.loaded = false;
  }

  // --- pages ----------------------------------------------------------------------------------

  let currentPage = 'loading';
  const PAGES = [
    'loading', 'login', 'activity', 'call', 'approvals', 'approval', 'freezes', 'grants', 'feed',
    'audit', 'audit-record',
  ];
  const NAV_OF = {
    activity: 'activity',
    call: 'activity',
    approvals: 'approvals',
    approval: 'approvals',
    freezes: 'freezes',
    grants: 'grants',
    feed: 'feed',
    audit: 'audit',
    'audit-record': 'audit',
  };

  function showPage(name) {
    for (const page of PAGES) show($(`page-${page}`), page === name);
    for (const link of document.querySelectorAll('#nav a')) {
      const active = link.dataset.page === NAV_OF[name];
      link.classList.toggle('active', active);
      if (active) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (name !== 'approvals') stopPolling();
    if (name !== 'activity') stopActivity();
    currentPage = name;
  }

  function route() {
    if (!accessToken) return;
    const [page, ...rest] = location.hash.replace(/^#\/?/, '').split('/');
    let id = '';
    try {
      id = decodeURIComponent(rest.join('/'));
    } catch {
      id = '';
    }
    switch (page) {
      case 'feed':
        showFeedPage();
        break;
      case 'audit':
        if (id) showAuditRecord(id);
        else showAuditPage();
        break;
      case 'approvals':
        if (id) showApproval(id);
        else showApprovals();
        break;
      case 'calls':
        if (id) showCall(id);
        else showActivity();
        break;
      case 'freezes':
        showFreezes();
        break;
      case 'grants':
        showGrants();
        break;
      default:
        // The home page, named in the address bar (so Back returns to it).
        if (location.hash !== '#/activity') history.replaceState(null, '', `${location.pathname}${location.search}#/activity`);
        showActivity();
    }
  }

  // --- approvals ------------------------------------------------------------------------------

  const approvals = { rows: new Map(), timer: null, loading: false, queued: false };

  function commandText(approval) {
    const args = approval.arguments && typeof approval.arguments === 'object' ? approval.arguments : {};
    if (typeof args.command === 'string') return args.command;
    return JSON.stringify(args);
  }

  function argumentNotes(approval) {
    const args = approval.arguments && typeof approval.arguments === 'object' ? approval.arguments : {};
    const notes = [approval.tool || ''];
    if (args.sudo) notes.push(args.sudo_user ? `sudo -u ${args.sudo_user}` : 'sudo');
    for (const [key, value] of Object.entries(args)) {
      if (['server', 'command', 'sudo', 'sudo_user'].includes(key)) continue;
      if (value === null || value === undefined || value === false) continue;
      notes.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
    }
    return notes.filter(Boolean).join(' · ');
  }

  function tierBadge(tier) {
    return tierBadgeOf(tier, 'approval-tier');
  }

  /** The reason field, the learn-for select and the Approve / Deny buttons of one approval. */
  function decisionControls(approval, onDecided) {
    const reason = h('input', {
      type: 'text',
      maxlength: 1024,
      placeholder: 'Reason (required)',
      'aria-label': 'Reason',
      'data-testid': 'approval-reason',
    });
    const learn = h(
      'select',
      { 'aria-label': 'Approve and learn', 'data-testid': 'approval-learn' },
      LEARN_CHOICES.map(([value, label]) => h('option', { value }, label)),
    );
    const approve = h('button', { type: 'button', class: 'approve', 'data-testid': 'approve' }, 'Approve');
    const deny = h('button', { type: 'button', class: 'deny', 'data-testid': 'deny' }, 'Deny');
    const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'approval-error', hidden: true });
    const box = h('div', { class: 'decide' }, reason, h('div', { class: 'row' }, learn, approve, deny), error);

    async function decide(verb) {
      showError(error, null);
      const text = reason.value.trim();
      if (!text) {
        showError(error, new Error('a reason is required'));
        reason.focus();
        return;
      }
      const body = { reason: text };
      if (verb === 'approve' && learn.value) body.learn_ttl_seconds = Number(learn.value);
      approve.disabled = true;
      deny.disabled = true;
      box.dataset.busy = '1';
      try {
        const result = await api('POST', `/api/v1/approvals/${encodeURIComponent(approval.id)}/${verb}`, body);
        onDecided(result || approval, verb);
      } catch (failure) {
        showError(error, failure);
      } finally {
        approve.disabled = false;
        deny.disabled = false;
        delete box.dataset.busy;
      }
    }
    approve.addEventListener('click', () => decide('approve'));
    deny.addEventListener('click', () => decide('deny'));
    reason.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') event.preventDefault();
    });
    return box;
  }

  function decidedMessage(result, verb) {
    const word = verb === 'approve' ? 'approved' : 'denied';
    let text = `${word} ${result.id}: ${result.summary || commandText(result)}`;
    if (result.waiver && result.waiver.id) {
      text += ` (waiver ${result.waiver.id} until ${result.waiver.expires_at})`;
    }
    return text;
  }

  /** A list row's pointer to the preview on the detail page (the list has no room for it). */
  function previewLink(approval) {
    if (typeof approval.preview !== 'string' || !approval.preview) return null;
    let added = 0;
    let removed = 0;
    for (const line of approval.preview.split('\n')) {
      const kind = diffKind(line);
      if (kind === 'added') added += 1;
      if (kind === 'removed') removed += 1;
    }
    return h(
      'a',
      { class: 'sub', href: `#/approvals/${encodeURIComponent(approval.id)}`, 'data-testid': 'approval-preview-link' },
      `review the preview (+${added} −${removed} lines)`,
    );
  }

  function approvalRow(approval) {
    const expires = h('span', { class: 'sub' }, relative(approval.expires_at));
    const row = h(
      'tr',
      { 'data-testid': 'approval-row', 'data-approval-id': approval.id },
      h(
        'td',
        {},
        h('code', { class: 'command', 'data-testid': 'approval-command' }, commandText(approval)),
        h('span', { class: 'sub', 'data-testid': 'approval-tool' }, argumentNotes(approval)),
        h('a', { class: 'sub mono', href: `#/approvals/${encodeURIComponent(approval.id)}`, 'data-testid': 'approval-link' }, approval.id),
        previewLink(approval),
      ),
      h('td', { 'data-testid': 'approval-target' }, approval.target || ''),
      h('td', { 'data-testid': 'approval-requester' }, approval.requester || ''),
      h('td', {}, h('span', { class: 'mono', 'data-testid': 'approval-rule' }, approval.rule || ''), h('br'), tierBadge(approval.tier)),
      h('td', {}, h('span', { 'data-testid': 'approval-expires', title: approval.expires_at }, absolute(approval.expires_at)), expires),
      h(
        'td',
        {},
        decisionControls(approval, (result, verb) => {
          const message = $('approvals-message');
          setText(message, decidedMessage(result, verb));
          show(message, true);
          approvals.rows.delete(approval.id);
          row.remove();
          show($('approvals-empty'), approvals.rows.size === 0);
          refreshApprovals();
        }),
      ),
    );
    row.expiresHint = expires;
    return row;
  }

  function renderApprovals(list) {
    const body = $('approvals-rows');
    const seen = new Set();
    let previous = null;
    for (const approval of list) {
      if (!approval || typeof approval.id !== 'string') continue;
      seen.add(approval.id);
      let row = approvals.rows.get(approval.id);
      if (row) {
        setText(row.expiresHint, relative(approval.expires_at));
      } else {
        row = approvalRow(approval);
        approvals.rows.set(approval.id, row);
      }
      // Rows are kept, not rebuilt, so a reason being typed survives the refresh.
      const wanted = previous ? previous.nextSibling : body.firstChild;
      if (wanted !== row) body.insertBefore(row, wanted);
      previous = row;
    }
    for (const [id, row] of approvals.rows) {
      if (!seen.has(id) && !row.querySelector('[data-busy]')) {
        row.remove();
        approvals.rows.delete(id);
      }
    }
    show($('approvals-empty'), approvals.rows.size === 0);
  }

  async function refreshApprovals() {
    if (approvals.loading) {
      approvals.queued = true;
      return;
    }
    approvals.loading = true;
    try {
      const data = await api('GET', '/api/v1/approvals?status=pending&limit=500');
      renderApprovals(Array.isArray(data && data.approvals) ? data.approvals : []);
      setText($('approvals-status'), `updated ${new Date().toISOString().slice(11, 19)} UTC`);
    } catch (error) {
      if (accessToken) setText($('approvals-status'), `refresh failed: ${describe(error)}`);
    } finally {
      approvals.loading = false;
      if (approvals.queued && accessToken) {
        approvals.queued = false;
        refreshApprovals();
      }
    }
  }

  function stopPolling() {
    if (approvals.timer) clearInterval(approvals.timer);
    approvals.timer = null;
  }

  function showApprovals() {
    showPage('approvals');
    refreshApprovals();
    stopPolling();
    approvals.timer = setInterval(() => {
      if (document.visibilityState !== 'hidden') refreshApprovals();
    }, POLL_MS);
  }

  const APPROVAL_FIELDS = [
    'status', 'summary', 'tool', 'target', 'requester', 'rule', 'tier', 'created_at', 'expires_at',
    'decided_at', 'decided_by', 'reason', 'self_approved', 'learn_ttl_seconds', 'consumed_at',
    'tenant', 'call_hash',
  ];

  /**
   * What a line of a unified diff is, by its first characters: `+++ `/`--- ` are file headers,
   * then `+` added, `-` removed, `@@` a hunk, anything else context.
   */
  function diffKind(line) {
    if (line.startsWith('+++ ') || line.startsWith('--- ')) return 'header';
    if (line.startsWith('+')) return 'added';
    if (line.startsWith('-')) return 'removed';
    if (line.startsWith('@@')) return 'hunk';
    return 'context';
  }

  /**
   * A held call's preview (several lines, a diff say): one block per line, each through
   * `shown()` by `h()` (split on the line breaks first, so they stay line breaks and every other
   * control or bidi character shows as an escape), classed by its sign for colour.
   */
  function renderPreview(preview) {
    const section = $('approval-preview-section');
    const pre = $('approval-preview');
    pre.replaceChildren();
    const has = typeof preview === 'string' && preview.length > 0;
    show(section, has);
    if (!has) return;
    const text = preview.endsWith('\n') ? preview.slice(0, -1) : preview;
    for (const line of text.split('\n')) {
      const kind = diffKind(line);
      pre.append(h('span', { class: `line ${kind}`, 'data-testid': 'preview-line', 'data-kind': kind }, line));
    }
  }

  function renderApprovalDetail(approval, message) {
    setText($('approval-id'), approval.id);
    const fields = $('approval-fields');
    fields.replaceChildren();
    for (const name of APPROVAL_FIELDS) {
      const value = approval[name];
      let text = value === null || value === undefined ? '—' : typeof value === 'object' ? JSON.stringify(value) : String(value);
      if (name.endsWith('_at') && typeof value === 'string') text = `${absolute(value)} (${relative(value)})`;
      const attrs = { 'data-field': name };
      if (name === 'status') attrs['data-testid'] = 'approval-status';
      fields.append(h('dt', {}, name.replace(/_/g, ' ')), h('dd', attrs, text));
    }
    renderPreview(approval.preview);
    setJson($('approval-arguments'), approval.arguments ?? {});
    const actions = $('approval-actions');
    actions.replaceChildren();
    if (message) actions.append(h('p', { class: 'notice', 'data-testid': 'approval-decided' }, message));
    if (approval.status === 'pending') {
      actions.append(
        h('h2', {}, 'Decide'),
        decisionControls(approval, (result, verb) => renderApprovalDetail(result, decidedMessage(result, verb))),
      );
    }
  }

  async function showApproval(id) {
    showPage('approval');
    setText($('approval-id'), id);
    $('approval-fields').replaceChildren();
    renderPreview(null);
    setText($('approval-arguments'), '');
    $('approval-actions').replaceChildren();
    showError($('approval-error'), null);
    try {
      const approval = await api('GET', `/api/v1/approvals/${encodeURIComponent(id)}`);
      if (currentPage === 'approval') renderApprovalDetail(approval);
    } catch (error) {
      showError($('approval-error'), error);
    }
  }

  // --- live feed ------------------------------------------------------------------------------

  // `generation` tells a loop that was stopped (and maybe replaced by a new one) to end.
  const feed = { running: false, generation: 0, controller: null, lastId: null, backoff: FEED_BACKOFF_MIN_MS };

  function setFeedState(state, detail) {
    const el = $('feed-status');
    el.dataset.state = state;
    setText(el, detail ? `${state} ${detail}` : state);
  }

  function startFeed() {
    if (feed.running) return;
    feed.running = true;
    feed.backoff = FEED_BACKOFF_MIN_MS;
    feed.generation += 1;
    feedLoop(feed.generation);
  }

  function stopFeed() {
    feed.running = false;
    feed.generation += 1;
    if (feed.controller) feed.controller.abort();
    feed.controller = null;
    setFeedState('idle');
  }

  /**
   * Reads `/api/v1/feed` with fetch (EventSource cannot send the Authorization header), resuming
   * after a drop with `Last-Event-ID`, and backing off exponentially between attempts.
   */
  async function feedLoop(generation) {
    const current = () => feed.running && feed.generation === generation && Boolean(accessToken);
    if (feed.lastId === null) {
      // Start after the newest record, by its sequence number, so that even a reconnect before the
      // first event resumes exactly there (without an id the server starts at its head, which
      // moves while we are away).
      try {
        const page = await api('GET', '/api/v1/audit?limit=1');
        const newest = page && Array.isArray(page.records) ? page.records[0] : undefined;
        if (current()) feed.lastId = String(newest && Number.isInteger(newest.seq) ? newest.seq : 0);
      } catch {
        // Not allowed to read the audit log, or not there: start at the head.
      }
    }
    while (current()) {
      const controller = new AbortController();
      feed.controller = controller;
      let watchdog = null;
      const alive = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), FEED_STALE_MS);
      };
      setFeedState('connecting');
      try {
        alive();
        const headers = { Authorization: `Bearer ${accessToken}`, Accept: 'text/event-stream' };
        if (feed.lastId !== null) headers['Last-Event-ID'] = feed.lastId;
        const response = await fetch('/api/v1/feed', {
          headers,
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'omit',
        });
        if (response.status === 401) {
          clearTimeout(watchdog);
          if (current()) signedOut(new Error('the feed refused the token'));
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        setFeedState('live');
        await readEvents(response.body, (id) => {
          if (current() && id !== null) feed.lastId = id;
        }, (event) => {
          if (!current()) return;
          feed.backoff = FEED_BACKOFF_MIN_MS;
          onFeedEvent(event);
        }, alive);
      } catch {
        // Dropped, refused or stale: retried below.
      } finally {
        clearTimeout(watchdog);
      }
      if (!current()) break;
      const delay = Math.round(Math.min(feed.backoff, FEED_BACKOFF_MAX_MS) * (0.8 + Math.random() * 0.4));
      feed.backoff = Math.min(feed.backoff * 2, FEED_BACKOFF_MAX_MS);
      setFeedState('reconnecting', `in ${Math.ceil(delay / 1000)} s`);
      const waiting = new AbortController();
      feed.controller = waiting;
      await sleep(delay, waiting.signal);
    }
  }

  /** A server-sent-events parser over a byte stream (the WHATWG event-stream format). */
  async function readEvents(stream, onId, onEvent, onActivity) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let data = [];
    let type = '';
    let id = null;
    const line = (text) => {
      if (text === '') {
        onId(id);
        if (data.length) onEvent({ id, type: type || 'message', data: data.join('\n') });
        data = [];
        type = '';
        return;
      }
      if (text.startsWith(':')) return;
      const colon = text.indexOf(':');
      const field = colon < 0 ? text : text.slice(0, colon);
      let value = colon < 0 ? '' : text.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') data.push(value);
      else if (field === 'event') type = value;
      else if (field === 'id' && !value.includes('\0')) id = value;
      else if (field === 'retry' && /^\d+$/.test(value)) feed.backoff = Math.max(Number(value), FEED_BACKOFF_MIN_MS);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onActivity();
      buffer += value;
      for (;;) {
        const end = /\r\n|\r|\n/.exec(buffer);
        // A lone \r at the end may be the first half of \r\n.
        if (!end || (end[0] === '\r' && end.index === buffer.length - 1)) break;
        line(buffer.slice(0, end.index));
        buffer = buffer.slice(end.index + end[0].length);
      }
    }
  }

  function eventSummary(event) {
    const body = event.body && typeof event.body === 'object' ? event.body : {};
    const detail = commandOf(body) || body.summary || body.activity || body.reason || body.message || '';
    const parts = [event.principal || ''];
    if (event.action) parts.push(event.action);
    if (event.target) parts.push(`on ${event.target}`);
    if (event.outcome) parts.push(`→ ${event.outcome}`);
    if (typeof detail === 'string' && detail) parts.push(`: ${detail}`);
    return parts.join(' ');
  }

  function onFeedEvent(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!event || typeof event !== 'object') return;
    const kind = String(event.kind || message.type || '');
    const list = $('feed-list');
    const item = h(
      'li',
      {
        'data-testid': 'feed-event',
        'data-seq': event.seq ?? message.id ?? '',
        'data-kind': kind,
        'data-approval-id': event.approval_id || null,
      },
      h('span', { class: 'mono' }, `#${event.seq ?? message.id ?? ''}`),
      h('span', { class: 'mono' }, absolute(isoTime(event.ts))),
      h('span', { class: /^[a-z_]+$/.test(kind) ? `kind kind-${kind}` : 'kind' }, kind),
      h(
        'span',
        {},
        eventSummary(event),
        event.approval_id ? h('a', { class: 'sub mono', href: `#/approvals/${encodeURIComponent(event.approval_id)}` }, `approval ${event.approval_id}`) : null,
        typeof event.id === 'string' ? h('a', { class: 'sub mono', href: `#/audit/${encodeURIComponent(event.id)}` }, `record ${event.id}`) : null,
      ),
    );
    list.prepend(item);
    while (list.childElementCount > FEED_MAX) list.lastElementChild.remove();

    activityOnEvent(event, kind);
    if (kind === 'approval') {
      if (currentPage === 'approvals') refreshApprovals();
      if (currentPage === 'approval' && event.approval_id && $('approval-id').textContent === shown(event.approval_id)) {
        showApproval(event.approval_id);
      }
    }
  }

  function showFeedPage() {
    showPage('feed');
    if (!feed.running) startFeed();
  }

  // --- audit ----------------------------------------------------------------------------------

  const audit = { loaded: false, before: null, query: null };
  const AUDIT_FIELDS = [
    ['audit-principal', 'principal'],
    ['audit-target', 'target'],
    ['audit-kind', 'kind'],
    ['audit-approval-id', 'approval_id'],
    ['audit-call-id', 'call_id'],
  ];

  /** `datetime-local` input value, read as UTC, as RFC 3339. */
  function utc(value) {
    if (!value) return '';
    const at = new Date(`${value}Z`);
    if (Number.isNaN(at.getTime())) throw new Error(`\`${value}\` is not a time`);
    return at.toISOString();
  }

  function auditQuery() {
    const query = new URLSearchParams();
    for (const [id, name] of AUDIT_FIELDS) {
      const value = $(id).value.trim();
      if (value) query.set(name, value);
    }
    const since = utc($('audit-since').value);
    const until = utc($('audit-until').value);
    if (since) query.set('since', since);
    if (until) query.set('until', until);
    query.set('limit', '100');
    return query;
  }

  /** The command or action a record is about, for people: the command, a path, an activity. */
  function commandOf(body) {
    if (!body || typeof body !== 'object') return '';
    const args = body.arguments && typeof body.arguments === 'object' ? body.arguments : null;
    const intent = body.intent && typeof body.intent === 'object' ? body.intent : null;
    if (args && typeof args.command === 'string') return args.command;
    if (intent && typeof intent.command === 'string') return intent.command;
    if (typeof body.command === 'string') return body.command;
    if (args && typeof args.path === 'string') return args.path;
    if (intent && typeof intent.path === 'string') return `${intent.file_op || 'file'} ${intent.path}`;
    return '';
  }

  /** One line of what a record says, beyond its kind and outcome. */
  function recordWhat(record) {
    const body = record.body && typeof record.body === 'object' ? record.body : {};
    const command = commandOf(body);
    const parts = [];
    if (record.action) parts.push(record.action);
    if (command) parts.push(command);
    else if (typeof body.summary === 'string') parts.push(body.summary);
    else if (typeof body.activity === 'string') parts.push(body.activity);
    else if (typeof body.value === 'string') parts.push(`${body.kind || ''} ${body.value}`.trim());
    else if (typeof body.pattern === 'string') parts.push(body.pattern);
    return parts.join(' · ');
  }

  /** Why, when the record says: a reason, an error, a rule. */
  function recordWhy(record) {
    const body = record.body && typeof record.body === 'object' ? record.body : {};
    const decision = body.decision && typeof body.decision === 'object' ? body.decision : null;
    if (typeof body.reason === 'string' && body.reason) return `reason: ${body.reason}`;
    if (typeof body.error === 'string' && body.error) return body.error;
    if (record.kind === 'outcome' && (Number.isInteger(body.exit_status) || Number.isInteger(body.duration_ms))) {
      const parts = [];
      if (Number.isInteger(body.exit_status)) parts.push(`exit ${body.exit_status}`);
      if (Number.isInteger(body.duration_ms)) parts.push(`${body.duration_ms} ms`);
      if (Number.isInteger(body.output_bytes)) parts.push(`${body.output_bytes} bytes out`);
      return parts.join(' · ');
    }
    if (decision && decision.rule) return `rule ${decision.rule}${decision.tier ? ` · ${decision.tier}` : ''}`;
    return '';
  }

  /** The raw record behind a toggle. */
  function rawToggle(record, testid) {
    const pre = h('pre', { class: 'raw' });
    setJson(pre, record);
    return h('details', { class: 'raw', 'data-testid': testid }, h('summary', {}, 'JSON'), pre);
  }

  function auditRow(record) {
    const link = `#/audit/${encodeURIComponent(record.id)}`;
    const open = (event) => {
      // Links, the raw toggle and text selection keep their own meaning.
      if (event.target.closest('a, details, button') || String(window.getSelection() || '')) return;
      location.hash = link;
    };
    const why = recordWhy(record);
    return h(
      'tr',
      { class: 'clickable', 'data-testid': 'audit-row', 'data-record-id': record.id, 'data-kind': record.kind, onclick: open },
      h(
        'td',
        {},
        h('a', { href: link, class: 'mono', 'data-testid': 'audit-link', title: `record ${record.id}` }, `#${record.seq}`),
        ' ',
        when(record.time || isoTime(record.ts), 'audit-when'),
      ),
      h('td', { 'data-testid': 'audit-kind' }, record.kind || ''),
      h(
        'td',
        {},
        h('span', {}, record.principal || ''),
        record.target ? h('span', { class: 'sub' }, `on ${record.target}`) : null,
      ),
      h(
        'td',
        { class: 'what' },
        h('span', { class: 'mono', 'data-testid': 'audit-what' }, recordWhat(record)),
        why ? h('span', { class: 'sub' }, why) : null,
        record.approval_id ? h('a', { class: 'sub mono', href: `#/approvals/${encodeURIComponent(record.approval_id)}` }, `approval ${record.approval_id}`) : null,
      ),
      h('td', { 'data-testid': 'audit-outcome' }, record.outcome || '—'),
      h('td', {}, rawToggle(record, 'audit-raw')),
    );
  }

  async function searchAudit(more) {
    showError($('audit-error'), null);
    try {
      if (!more) {
        audit.query = auditQuery();
        audit.before = null;
      }
      const query = new URLSearchParams(audit.query);
      if (more && audit.before !== null) query.set('before', String(audit.before));
      const page = await api('GET', `/api/v1/audit?${query}`);
      const records = Array.isArray(page && page.records) ? page.records : [];
      const rows = $('audit-rows');
      if (!more) rows.replaceChildren();
      for (const record of records) rows.append(auditRow(record));
      audit.before = page && page.next_before !== undefined ? page.next_before : null;
      show($('audit-more'), audit.before !== null);
      show($('audit-empty'), rows.childElementCount === 0);
    } catch (error) {
      showError($('audit-error'), error);
    }
  }

  async function verifyChain() {
    const pill = $('audit-verify');
    const problems = $('audit-verify-problems');
    pill.dataset.state = 'checking';
    setText(pill, 'chain: checking…');
    problems.replaceChildren();
    show(problems, false);
    try {
      const result = await api('GET', '/api/v1/audit/verify');
      if (result.ok) {
        pill.dataset.state = 'ok';
        setText(pill, `chain ok · ${result.records} records · head #${result.head_seq ?? 0}`);
      } else {
        const list = Array.isArray(result.problems) ? result.problems : [];
        pill.dataset.state = 'broken';
        setText(pill, `chain BROKEN · ${list.length} problem(s)`);
        for (const problem of list) {
          problems.append(h('li', {}, `${problem.kind} at #${problem.seq}: ${problem.message}`));
        }
        show(problems, list.length > 0);
      }
    } catch (error) {
      pill.dataset.state = 'failed';
      setText(pill, `chain: ${describe(error)}`);
    }
  }

  function showAuditPage() {
    showPage('audit');
    if (!audit.loaded) {
      audit.loaded = true;
      searchAudit(false);
      verifyChain();
    }
  }

  const RECORD_FIELDS = [
    ['seq', 'chain position'],
    ['time', 'time'],
    ['kind', 'kind'],
    ['principal', 'principal'],
    ['target', 'target'],
    ['action', 'action'],
    ['outcome', 'outcome'],
    ['session_id', 'session'],
    ['approval_id', 'approval'],
    ['call_id', 'call'],
    ['hash', 'hash'],
  ];

  function renderRecordFields(el, record) {
    el.replaceChildren();
    const what = recordWhat(record);
    const why = recordWhy(record);
    for (const [name, label] of RECORD_FIELDS) {
      const value = record[name];
      let shownValue = value === null || value === undefined || value === '' ? '—' : String(value);
      if (name === 'time') shownValue = `${absolute(value)} (${relative(value)})`;
      el.append(h('dt', {}, label), h('dd', { 'data-field': name, class: name.endsWith('id') || name === 'hash' ? 'mono' : null }, shownValue));
      if (name === 'action' && what) el.append(h('dt', {}, 'what'), h('dd', { 'data-field': 'what', class: 'mono' }, what));
      if (name === 'outcome' && why) el.append(h('dt', {}, 'why'), h('dd', { 'data-field': 'why' }, why));
    }
  }

  async function showAuditRecord(id) {
    showPage('audit-record');
    setText($('audit-record-id'), id);
    setText($('audit-record'), '');
    $('audit-record-fields').replaceChildren();
    show($('audit-record-call'), false);
    showError($('audit-record-error'), null);
    try {
      const record = await api('GET', `/api/v1/audit/${encodeURIComponent(id)}`);
      renderRecordFields($('audit-record-fields'), record);
      setJson($('audit-record'), record);
      if (['intent', 'outcome', 'denial', 'approval', 'credential', 'announce', 'waiver'].includes(record.kind)) {
        $('audit-record-call').setAttribute('href', `#/calls/${encodeURIComponent(record.id)}`);
        show($('audit-record-call'), true);
      }
    } catch (error) {
      showError($('audit-record-error'), error);
    }
  }

  // --- activity -------------------------------------------------------------------------------

  const activity = {
    rows: new Map(),
    calls: new Map(),
    before: null,
    filters: {},
    loading: false,
    summary: null,
    by: 'decision',
    debounce: null,
    touched: new Set(),
    summaryAt: 0,
    summaryTimer: null,
    timer: null,
  };

  function activityFilters() {
    const filters = {};
    for (const [id, name] of [
      ['activity-agent', 'agent'],
      ['activity-target', 'target'],
      ['activity-tier', 'tier'],
      ['activity-decision', 'decision'],
    ]) {
      const value = $(id).value.trim();
      if (value) filters[name] = value;
    }
    return filters;
  }

  function activityQuery(before) {
    const query = new URLSearchParams(activity.filters);
    query.set('limit', String(ACTIVITY_LIMIT));
    if (before !== null && before !== undefined) query.set('before', String(before));
    return query;
  }

  function resultOf(call) {
    const ms = Number.isInteger(call.duration_ms) ? ` · ${call.duration_ms} ms` : '';
    switch (call.outcome) {
      case 'ok':
        return h('span', { class: 'result result-ok' }, Number.isInteger(call.exit_status) ? `exit ${call.exit_status}${ms}` : `ok${ms}`);
      case 'nonzero_exit':
        return h('span', { class: 'result result-bad' }, `exit ${call.exit_status}${ms}`);
      case 'error':
        return h('span', { class: 'result result-bad' }, `error${ms}`, call.error ? h('span', { class: 'sub' }, call.error) : null);
      case 'running':
        return h('span', { class: 'result' }, 'running…');
      default:
        break;
    }
    const words = { held: 'waiting for a human', approved: 'not run yet', announced: '—' };
    return h('span', { class: 'result muted' }, words[call.decision] || 'not run');
  }

  function approvalNote(call) {
    const step = call.approval;
    if (!step || typeof step !== 'object') return null;
    if (step.status === 'pending') {
      return h(
        'span',
        { class: 'sub' },
        step.expires_at ? `expires ${relative(step.expires_at)} · ` : '',
        h('a', { href: `#/approvals/${encodeURIComponent(step.id)}`, 'data-testid': 'activity-decide' }, 'decide'),
      );
    }
    return step.decided_by ? h('span', { class: 'sub' }, `by ${step.decided_by}`) : null;
  }

  function activityRow(call) {
    const link = `#/calls/${encodeURIComponent(call.id)}`;
    const open = (event) => {
      if (event.target.closest('a, button, details') || String(window.getSelection() || '')) return;
      location.hash = link;
    };
    const hasCommand = typeof call.command === 'string';
    const notes = [call.tool, call.serial ? `cert ${call.serial}` : null].filter(Boolean).join(' · ');
    const row = h(
      'tr',
      {
        class: 'clickable',
        'data-testid': 'activity-row',
        'data-call-id': call.id,
        'data-decision': call.decision,
        'data-tier': call.tier || '',
        onclick: open,
      },
      h(
        'td',
        {},
        h(
          'a',
          { href: link, class: 'row-link', 'data-testid': 'activity-link', 'aria-label': `${call.summary} by ${call.principal}: ${DECISION_WORDS[call.decision] || call.decision}` },
          when(call.started_at),
        ),
      ),
      h(
        'td',
        { 'data-testid': 'activity-agent-cell' },
        h('span', { 'data-testid': 'activity-agent' }, call.principal || ''),
        call.target ? h('span', { class: 'sub', 'data-testid': 'activity-target' }, `on ${call.target}`) : null,
        call.session_id ? h('span', { class: 'sub mono' }, `session ${call.session_id}`) : null,
      ),
      h(
        'td',
        { class: 'what' },
        hasCommand
          ? h('code', { class: 'command', 'data-testid': 'activity-command' }, call.command)
          : h('span', { class: 'mono', 'data-testid': 'activity-command' }, call.summary || ''),
        notes ? h('span', { class: 'sub' }, notes) : null,
      ),
      h(
        'td',
        {},
        h('span', { class: 'mono rule', 'data-testid': 'activity-rule' }, call.rule || call.reason_code || '—'),
        h('br'),
        tierBadgeOf(call.tier, 'activity-tier'),
      ),
      h('td', {}, decisionBadge(call.decision, 'activity-decision'), approvalNote(call)),
      h('td', { 'data-testid': 'activity-result' }, resultOf(call)),
    );
    row.callJson = JSON.stringify(call);
    return row;
  }

  /** Puts `call`'s row in place of the one shown, keeping keyboard focus on it. */
  function updateActivityRow(call) {
    const old = activity.rows.get(call.id);
    const json = JSON.stringify(call);
    if (old && old.callJson === json) return old;
    const row = activityRow(call);
    if (old) {
      const focused = old.contains(document.activeElement);
      old.replaceWith(row);
      if (focused) row.querySelector('a.row-link').focus();
    }
    activity.rows.set(call.id, row);
    activity.calls.set(call.id, call);
    return row;
  }

  function setActivityStatus(text) {
    setText($('activity-status'), text);
  }

  /** Loads the first page afresh (`more`: the next older page, appended). */
  async function loadActivity(more) {
    showError($('activity-error'), null);
    const body = $('activity-rows');
    try {
      const page = await api('GET', `/api/v1/activity?${activityQuery(more ? activity.before : null)}`);
      const calls = Array.isArray(page && page.calls) ? page.calls : [];
      if (!more) {
        body.replaceChildren();
        activity.rows.clear();
        activity.calls.clear();
      }
      for (const call of calls) {
        if (!call || typeof call.id !== 'string' || activity.rows.has(call.id)) continue;
        body.append(updateActivityRow(call));
      }
      activity.before = page && page.next_before !== undefined ? page.next_before : null;
      show($('activity-more'), activity.before !== null);
      show($('activity-empty'), activity.rows.size === 0);
      setActivityStatus(`updated ${new Date().toISOString().slice(11, 19)} UTC`);
    } catch (error) {
      showError($('activity-error'), error);
    }
  }

  /**
   * After feed events: the newest page again, merged into what is shown (rows are updated in
   * place, new calls go on top), and the calls the events named that lie further down.
   */
  async function refreshActivityTop() {
    if (activity.loading) {
      scheduleActivity();
      return;
    }
    activity.loading = true;
    const touched = [...activity.touched];
    activity.touched.clear();
    try {
      const page = await api('GET', `/api/v1/activity?${activityQuery(null)}`);
      if (currentPage !== 'activity') return;
      const calls = (Array.isArray(page && page.calls) ? page.calls : []).filter((c) => c && typeof c.id === 'string');
      const body = $('activity-rows');
      const onPage = new Set(calls.map((c) => c.id));
      const oldest = calls.length ? calls[calls.length - 1].ts : null;
      // Shown calls the newest page no longer holds though they are as new: they stopped
      // matching the filters (a held call was approved, say).
      for (const [id, row] of activity.rows) {
        const call = activity.calls.get(id);
        if (!onPage.has(id) && call && oldest !== null && call.ts > oldest) {
          row.remove();
          activity.rows.delete(id);
          activity.calls.delete(id);
        }
      }
      let previous = null;
      for (const call of calls) {
        const row = updateActivityRow(call);
        const wanted = previous ? previous.nextSibling : body.firstChild;
        if (wanted !== row) body.insertBefore(row, wanted);
        previous = row;
      }
      if (activity.before === null && calls.length >= ACTIVITY_LIMIT) {
        activity.before = page.next_before;
      }
      show($('activity-more'), activity.before !== null);
      for (const id of touched) {
        const shownRow = [...activity.calls.values()].find((c) => c.id === id || c.call_id === id || c.approval_id === id);
        if (!shownRow || onPage.has(shownRow.id)) continue;
        try {
          const detail = await api('GET', `/api/v1/calls/${encodeURIComponent(shownRow.id)}`);
          if (detail && detail.call) updateActivityRow(detail.call);
        } catch {
          // Gone from view or from the tenant: leave the row as it was.
        }
      }
      show($('activity-empty'), activity.rows.size === 0);
      setActivityStatus(`updated ${new Date().toISOString().slice(11, 19)} UTC`);
    } catch (error) {
      if (accessToken) setActivityStatus(`refresh failed: ${describe(error)}`);
    } finally {
      activity.loading = false;
    }
  }

  function scheduleActivity() {
    clearTimeout(activity.debounce);
    activity.debounce = setTimeout(() => {
      activity.debounce = null;
      if (currentPage !== 'activity') return;
      refreshActivityTop();
      loadSummary(false);
    }, ACTIVITY_DEBOUNCE_MS);
  }

  const CALL_KINDS = new Set(['intent', 'outcome', 'denial', 'approval', 'announce', 'credential', 'waiver']);

  /** A feed event: refresh what it changes on the activity or call page. */
  function activityOnEvent(event, kind) {
    if (currentPage === 'activity') {
      if (CALL_KINDS.has(kind)) {
        for (const id of [event.call_id, event.approval_id]) {
          if (typeof id === 'string' && id) activity.touched.add(id);
        }
        scheduleActivity();
      } else if (kind === 'freeze') {
        loadSummary(false);
      }
    }
    if (currentPage === 'call' && callPage.detail && CALL_KINDS.has(kind)) {
      const shownCall = callPage.detail.call || {};
      const ids = [shownCall.id, shownCall.call_id, shownCall.approval_id].filter(Boolean);
      if (ids.includes(event.call_id) || ids.includes(event.approval_id)) {
        clearTimeout(callPage.debounce);
        callPage.debounce = setTimeout(() => {
          if (currentPage === 'call' && callPage.id) showCall(callPage.id, true);
        }, ACTIVITY_DEBOUNCE_MS);
      }
    }
  }

  function chartLabel(key) {
    return activity.by === 'tier' ? (key === 'unknown' ? 'no tier' : key) : DECISION_WORDS[key] || key;
  }

  function renderChart() {
    const summary = activity.summary;
    const box = $('activity-chart');
    const legend = $('chart-legend');
    const buckets = summary && Array.isArray(summary.buckets) ? summary.buckets : [];
    const byTier = activity.by === 'tier';
    const keys = byTier ? TIER_KEYS : DECISIONS;
    const field = byTier ? 'by_tier' : 'by_decision';
    const width = 600;
    const height = 120;
    const slot = width / Math.max(buckets.length, 1);
    const max = Math.max(1, ...buckets.map((b) => Number(b && b.total) || 0));
    const totals = Object.fromEntries(keys.map((k) => [k, 0]));
    let all = 0;
    const bars = [];
    buckets.forEach((bucket, index) => {
      const counts = bucket && typeof bucket[field] === 'object' && bucket[field] ? bucket[field] : {};
      const minute = `${absolute(bucket.start).slice(11, 16)} UTC`;
      let top = height;
      for (const key of keys) {
        const count = Number(counts[key]) || 0;
        if (count <= 0) continue;
        totals[key] += count;
        all += count;
        const tall = (count / max) * (height - 6);
        top -= tall;
        bars.push(svg(
          'rect',
          {
            x: (index * slot + slot * 0.12).toFixed(2),
            y: top.toFixed(2),
            width: (slot * 0.76).toFixed(2),
            height: tall.toFixed(2),
            class: `seg seg-${key}`,
            'data-testid': 'chart-bar',
            'data-minute': bucket.start,
            'data-key': key,
            'data-count': count,
          },
          svg('title', {}, `${minute} · ${chartLabel(key)}: ${count}`),
        ));
      }
    });
    const described = keys.filter((k) => totals[k]).map((k) => `${totals[k]} ${chartLabel(k)}`).join(', ');
    const chart = svg(
      'svg',
      {
        viewBox: `0 0 ${width} ${height}`,
        preserveAspectRatio: 'none',
        class: 'chart-svg',
        role: 'img',
        'data-testid': 'activity-chart-svg',
        'data-total': all,
        'aria-label': `Calls per minute over the last hour, ${byTier ? 'by tier' : 'by decision'}: ${all} in all${described ? ` (${described})` : ''}; at most ${max} in one minute.`,
      },
      svg('line', { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: 'axis' }),
      svg('line', { x1: 0, x2: width, y1: 6, y2: 6, class: 'grid' }),
      bars,
    );
    box.replaceChildren(...[
      chart,
      h('span', { class: 'chart-max' }, `${max} / min`),
      all === 0 ? h('span', { class: 'chart-empty muted' }, 'No calls in the last hour.') : null,
      summary && summary.truncated ? h('span', { class: 'chart-note' }, 'busier than 20000 records: the oldest minutes are partial') : null,
    ].filter(Boolean));
    legend.replaceChildren(...keys.map((key) => h(
      'li',
      { 'data-key': key },
      h('span', { class: `swatch seg-${key}`, 'aria-hidden': 'true' }),
      `${chartLabel(key)} `,
      h('span', { class: 'muted' }, String(totals[key])),
    )));
    $('chart-by-decision').setAttribute('aria-pressed', String(!byTier));
    $('chart-by-tier').setAttribute('aria-pressed', String(byTier));
  }

  function renderCounters() {
    const counters = activity.summary && activity.summary.counters ? activity.summary.counters : {};
    const value = (n) => (Number.isInteger(n) ? String(n) : '–');
    setText($('counter-pending'), value(counters.pending_approvals));
    setText($('counter-denials'), value(counters.denials_last_hour));
    setText($('counter-freezes'), value(counters.active_freezes));
    setText($('counter-sessions'), value(counters.sessions_open));
    for (const [id, n] of [
      ['counter-pending', counters.pending_approvals],
      ['counter-denials', counters.denials_last_hour],
      ['counter-freezes', counters.active_freezes],
    ]) {
      $(id).closest('.counter').classList.toggle('attention', Number(n) > 0);
    }
  }

  /** The counters and the chart; `force` skips the rate limit. */
  async function loadSummary(force) {
    const wait = activity.summaryAt + SUMMARY_MIN_MS - Date.now();
    if (!force && wait > 0) {
      clearTimeout(activity.summaryTimer);
      activity.summaryTimer = setTimeout(() => loadSummary(true), wait);
      return;
    }
    activity.summaryAt = Date.now();
    try {
      const summary = await api('GET', '/api/v1/activity/summary');
      if (currentPage !== 'activity') return;
      activity.summary = summary;
      renderCounters();
      renderChart();
    } catch (error) {
      if (accessToken) setActivityStatus(`summary failed: ${describe(error)}`);
    }
  }

  function stopActivity() {
    clearInterval(activity.timer);
    clearTimeout(activity.summaryTimer);
    clearTimeout(activity.debounce);
    activity.timer = null;
    activity.summaryTimer = null;
    activity.debounce = null;
  }

  function showActivity() {
    showPage('activity');
    activity.filters = activityFilters();
    loadActivity(false);
    loadSummary(true);
    stopActivity();
    // The hour moves on even when nothing happens.
    activity.timer = setInterval(() => {
      if (document.visibilityState === 'hidden') return;
      if (Date.now() - activity.summaryAt > 30000) loadSummary(false);
    }, RELATIVE_MS);
  }

  function applyActivityFilters(event) {
    if (event) event.preventDefault();
    activity.filters = activityFilters();
    loadActivity(false);
  }

  function clearActivityFilters() {
    for (const id of ['activity-agent', 'activity-target', 'activity-tier', 'activity-decision']) $(id).value = '';
    applyActivityFilters(null);
  }

  function showDenials() {
    $('activity-decision').value = 'denied';
    applyActivityFilters(null);
  }

  function chartBy(by) {
    activity.by = by;
    renderChart();
  }

  // --- one call -------------------------------------------------------------------------------

  const callPage = { id: null, detail: null, debounce: null };

  const LINK_WORDS = {
    call_id: 'carries the call id',
    approval_id: 'carries the approval id',
    record: 'the call itself',
    held_call: 'the refusal the approval request held',
    credential_serial: 'the certificate the outcome names (serial)',
    signer_decision: "the signer's decision on the same command",
  };

  function fieldList(el, rows) {
    el.replaceChildren();
    for (const [name, label, value, mono] of rows) {
      if (value === null || value === undefined || value === '') continue;
      el.append(h('dt', {}, label), h('dd', { 'data-field': name, class: mono ? 'mono' : null }, value));
    }
  }

  /**
   * A session's recording (asciicast v2) as a file download. The API serves it only when it is
   * the file its closing audit record names by sha256; it needs the bearer token, so it is
   * fetched here and handed to the browser as a blob, never as a link that would carry no token.
   */
  async function downloadRecording(sessionId, button, status) {
    button.disabled = true;
    setText(status, 'fetching…');
    try {
      const response = await fetch(`/api/v1/recordings/${encodeURIComponent(sessionId)}`, {
        headers: { Authorization: `Bearer ${accessToken}` },
        cache: 'no-store',
        credentials: 'omit',
      });
      if (!response.ok) {
        let data = null;
        try {
          data = await response.json();
        } catch {
          data = null;
        }
        throw new ApiError(response.status, (data && data.error) || `http_${response.status}`,
          (data && data.message) || response.statusText || 'request failed');
      }
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: `${sessionId}.cast` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setText(status, `downloaded ${blob.size} bytes, sha256 verified by the server`);
    } catch (error) {
      setText(status, describe(error));
    } finally {
      button.disabled = false;
    }
  }

  function at(iso) {
    return iso ? `${absolute(iso)} (${relative(iso)})` : null;
  }

  function renderCall(detail) {
    const call = detail.call || {};
    callPage.detail = detail;
    setText($('call-id'), call.id);
    setText($('call-command'), typeof call.command === 'string' ? call.command : call.summary || '');
    $('call-badges').replaceChildren(
      decisionBadge(call.decision, 'call-decision'),
      ' ',
      tierBadgeOf(call.tier, 'call-tier'),
      ' ',
      resultOf(call),
    );
    const result = [];
    if (Number.isInteger(call.exit_status)) result.push(`exit status ${call.exit_status}`);
    if (Number.isInteger(call.duration_ms)) result.push(`${call.duration_ms} ms`);
    fieldList($('call-fields'), [
      ['principal', 'agent', call.principal],
      ['target', 'target', call.target],
      ['tool', 'tool', call.tool],
      ['summary', 'action', typeof call.command === 'string' ? null : call.summary],
      ['started_at', 'started', at(call.started_at)],
      ['updated_at', 'last record', at(call.updated_at)],
      ['rule', 'rule', call.rule, true],
      ['reason_code', 'reason code', call.reason_code, true],
      ['result', 'result', result.join(' · ')],
      ['error', 'error', call.error],
      ['serial', 'certificate serial', call.serial, true],
      ['output_bytes', 'output', Number.isInteger(call.output_bytes) ? `${call.output_bytes} bytes` : null],
      ['output_sha256', 'output sha256', call.output_sha256, true],
      ['session_id', 'session', call.session_id, true],
      ['recording_sha256', 'recording sha256', call.recording_sha256, true],
      ['call_id', 'call id', call.call_id, true],
      ['chain', 'chain position', `#${call.first_seq}–#${call.last_seq} (${call.records} records)`],
    ]);
    if (call.recording_sha256 && call.session_id) {
      const status = h('span', { class: 'sub', role: 'status', 'data-testid': 'call-recording-status' });
      const button = h('button', { type: 'button', 'data-testid': 'call-recording' }, 'Download the recording');
      button.addEventListener('click', () => downloadRecording(call.session_id, button, status));
      $('call-fields').append(h('dt', {}, 'recording'), h('dd', {}, button, ' ', status));
    }
    const step = call.approval;
    show($('call-approval-box'), Boolean(step));
    if (step) {
      fieldList($('call-approval'), [
        ['id', 'approval', step.id, true],
        ['status', 'status', step.status],
        ['requested_by', 'requested by', step.requested_by],
        ['requested_at', 'requested', at(step.requested_at)],
        ['expires_at', 'expires', step.status === 'pending' ? at(step.expires_at) : null],
        ['decided_by', 'decided by', step.decided_by],
        ['decided_at', 'decided', at(step.decided_at)],
        ['reason', 'why', step.reason],
        ['self_approved', 'self-approved', step.self_approved ? 'yes (allow_self_approval)' : null],
        ['waiver_id', 'waiver', step.waiver_id, true],
        ['consumed_at', 'ran', at(step.consumed_at)],
      ]);
      $('call-approval').append(
        h('dt', {}, ''),
        h('dd', {}, h('a', { href: `#/approvals/${encodeURIComponent(step.id)}` }, step.status === 'pending' ? 'decide on the approvals page' : 'the approval')),
      );
    }
    const list = $('call-records');
    list.replaceChildren();
    for (const record of Array.isArray(detail.records) ? detail.records : []) {
      const what = recordWhat(record);
      const why = recordWhy(record);
      list.append(h(
        'li',
        { 'data-testid': 'call-record', 'data-seq': record.seq, 'data-kind': record.kind, 'data-linked-by': record.linked_by },
        h(
          'div',
          { class: 'record-head' },
          h('a', { href: `#/audit/${encodeURIComponent(record.id)}`, class: 'mono' }, `#${record.seq}`),
          h('span', { class: 'mono' }, absolute(record.time)),
          h('span', { class: `kind kind-${/^[a-z_]+$/.test(record.kind) ? record.kind : 'other'}` }, record.kind),
          h('span', {}, record.principal),
          h('span', { class: 'mono' }, what),
          h('span', {}, record.outcome ? `→ ${record.outcome}` : ''),
        ),
        h('span', { class: 'sub' }, `${LINK_WORDS[record.linked_by] || record.linked_by}${why ? ` · ${why}` : ''}`),
        rawToggle(record, 'call-record-raw'),
      ));
    }
  }

  async function verifyCall(detail) {
    const pill = $('call-verify');
    pill.dataset.state = 'checking';
    setText(pill, 'chain: checking…');
    try {
      const result = await api('GET', '/api/v1/audit/verify');
      const call = detail.call || {};
      if (result.ok) {
        pill.dataset.state = 'ok';
        setText(pill, `chain verified: #${call.first_seq}–#${call.last_seq} are in your tenant's intact chain (head #${result.head_seq}, ${result.records} records)`);
      } else {
        const problems = Array.isArray(result.problems) ? result.problems : [];
        pill.dataset.state = 'broken';
        const first = problems[0];
        setText(pill, `chain BROKEN: ${problems.length} problem(s)${first ? `, first at #${first.seq}: ${first.message}` : ''}`);
      }
    } catch (error) {
      pill.dataset.state = 'failed';
      setText(pill, `chain: ${describe(error)}`);
    }
  }

  async function showCall(id, quiet) {
    showPage('call');
    if (!quiet || callPage.id !== id) {
      callPage.id = id;
      callPage.detail = null;
      setText($('call-id'), id);
      setText($('call-command'), '');
      for (const el of ['call-badges', 'call-fields', 'call-approval', 'call-records']) $(el).replaceChildren();
      show($('call-approval-box'), false);
    }
    showError($('call-error'), null);
    try {
      const detail = await api('GET', `/api/v1/calls/${encodeURIComponent(id)}`);
      if (currentPage !== 'call' || callPage.id !== id) return;
      renderCall(detail);
      verifyCall(detail);
    } catch (error) {
      showError($('call-error'), error);
    }
  }

  // --- freezes --------------------------------------------------------------------------------

  function freezeRow(freeze) {
    const reason = h('input', { type: 'text', maxlength: 1024, placeholder: 'Why (optional)', 'aria-label': `Why lift ${freeze.kind} ${freeze.value}`, 'data-testid': 'freeze-lift-reason' });
    const lift = h('button', { type: 'button', 'data-testid': 'freeze-lift' }, 'Lift');
    const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'freeze-row-error', hidden: true });
    lift.addEventListener('click', async () => {
      showError(error, null);
      lift.disabled = true;
      try {
        const text = reason.value.trim();
        const lifted = await api('POST', `/api/v1/freezes/${encodeURIComponent(freeze.id)}/lift`, text ? { reason: text } : {});
        const message = $('freezes-message');
        setText(message, `lifted ${lifted.kind} ${lifted.value} (${lifted.id})`);
        show(message, true);
        await loadFreezes();
      } catch (failure) {
        showError(error, failure);
        lift.disabled = false;
      }
    });
    reason.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        lift.click();
      }
    });
    return h(
      'tr',
      { 'data-testid': 'freeze-row', 'data-freeze-id': freeze.id, 'data-active': String(Boolean(freeze.active)) },
      h('td', {}, h('span', { class: 'tier' }, freeze.kind), ' ', h('span', { class: 'mono', 'data-testid': 'freeze-value-cell' }, freeze.value), h('span', { class: 'sub mono' }, freeze.id)),
      h('td', {}, freeze.reason),
      h('td', {}, when(freeze.created_at), h('span', { class: 'sub' }, `by ${freeze.created_by}`)),
      h(
        'td',
        { 'data-testid': 'freeze-state' },
        freeze.active
          ? h('span', { class: 'decision decision-denied' }, 'in force')
          : h('span', {}, h('span', { class: 'block' }, `lifted by ${freeze.lifted_by || '?'}`), when(freeze.lifted_at), freeze.lift_reason ? h('span', { class: 'sub' }, `why: ${freeze.lift_reason}`) : null),
      ),
      h('td', {}, freeze.active ? h('div', { class: 'decide' }, h('div', { class: 'row' }, reason, lift), error) : '—'),
    );
  }

  // The freezes and grants pages list the same way: `/api/v1/<kind>?all=…`, one row each.
  async function loadList(kind, row) {
    showError($(`${kind}-error`), null);
    try {
      const all = $(`${kind}-all`).checked;
      const data = await api('GET', `/api/v1/${kind}?all=${all}&limit=500`);
      const list = Array.isArray(data && data[kind]) ? data[kind] : [];
      $(`${kind}-rows`).replaceChildren(...list.map(row));
      show($(`${kind}-empty`), list.length === 0);
      show($(`${kind}-table`), list.length > 0);
    } catch (error) {
      showError($(`${kind}-error`), error);
    }
  }

  function loadFreezes() {
    return loadList('freezes', freezeRow);
  }

  async function createFreeze(event) {
    event.preventDefault();
    showError($('freezes-error'), null);
    show($('freezes-message'), false);
    const body = {
      kind: $('freeze-kind').value,
      value: $('freeze-value').value.trim(),
      reason: $('freeze-reason').value.trim(),
    };
    const submit = $('freeze-submit');
    submit.disabled = true;
    try {
      const frozen = await api('POST', '/api/v1/freezes', body);
      const closed = Number.isInteger(frozen.closed_sessions) && frozen.closed_sessions > 0 ? `; closed ${frozen.closed_sessions} session(s)` : '';
      setText($('freezes-message'), `froze ${frozen.kind} ${frozen.value} (${frozen.id})${closed}`);
      show($('freezes-message'), true);
      $('freeze-value').value = '';
      $('freeze-reason').value = '';
      await loadFreezes();
    } catch (error) {
      showError($('freezes-error'), error);
    } finally {
      submit.disabled = false;
    }
  }

  function showFreezes() {
    showPage('freezes');
    loadFreezes();
  }

  // --- grants ---------------------------------------------------------------------------------

  function grantRow(grant) {
    const revoke = h('button', { type: 'button', class: 'deny', 'data-testid': 'grant-revoke' }, 'Revoke');
    const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'grant-row-error', hidden: true });
    revoke.addEventListener('click', async () => {
      showError(error, null);
      revoke.disabled = true;
      try {
        const revoked = await api('DELETE', `/api/v1/grants/${encodeURIComponent(grant.id)}`);
        const message = $('grants-message');
        setText(message, `revoked ${revoked.id} (${revoked.target}: ${revoked.pattern})`);
        show(message, true);
        await loadGrants();
      } catch (failure) {
        showError(error, failure);
        revoke.disabled = false;
      }
    });
    let state;
    if (grant.revoked_at) state = h('span', {}, h('span', { class: 'block' }, `revoked by ${grant.revoked_by || '?'}`), when(grant.revoked_at));
    else if (!grant.active) state = h('span', {}, h('span', { class: 'block' }, 'expired'), when(grant.expires_at));
    else state = h('span', {}, h('span', { class: 'decision decision-allowed' }, 'in force'), h('span', { class: 'sub' }, `until ${absolute(grant.expires_at)} (${relative(grant.expires_at)})`));
    return h(
      'tr',
      { 'data-testid': 'grant-row', 'data-grant-id': grant.id, 'data-active': String(Boolean(grant.active)) },
      h('td', {}, h('span', {}, grant.target), h('code', { class: 'command', 'data-testid': 'grant-pattern-cell' }, grant.pattern), h('span', { class: 'sub mono' }, grant.id)),
      h('td', {}, tierBadgeOf(grant.tier)),
      h('td', {}, grant.reason),
      h('td', {}, when(grant.created_at), h('span', { class: 'sub' }, `by ${grant.created_by}`)),
      h('td', { 'data-testid': 'grant-state' }, state),
      h('td', {}, grant.active ? h('div', { class: 'decide' }, revoke, error) : '—'),
    );
  }

  function loadGrants() {
    return loadList('grants', grantRow);
  }

  async function createGrant(event) {
    event.preventDefault();
    showError($('grants-error'), null);
    show($('grants-message'), false);
    const body = {
      target: $('grant-target').value.trim(),
      pattern: $('grant-pattern').value,
      tier: $('grant-tier').value,
      ttl_seconds: Number($('grant-ttl').value),
      reason: $('grant-reason').value.trim(),
    };
    const submit = $('grant-submit');
    submit.disabled = true;
    try {
      const grant = await api('POST', '/api/v1/grants', body);
      const warnings = Array.isArray(grant.warnings) && grant.warnings.length ? ` (warning: ${grant.warnings.join('; ')})` : '';
      setText($('grants-message'), `granted ${grant.id} on ${grant.target}: ${grant.pattern} until ${absolute(grant.expires_at)}${warnings}`);
      show($('grants-message'), true);
      $('grant-pattern').value = '';
      $('grant-reason').value = '';
      await loadGrants();
    } catch (error) {
      showError($('grants-error'), error);
    } finally {
      submit.disabled = false;
    }
  }

  function showGrants() {
    showPage('grants');
    loadGrants();
  }

  // --- start ----------------------------------------------------------------------------------

  async function boot() {
    $('login-oidc').addEventListener('click', startOidcLogin);
    $('dev-token-form').addEventListener('submit', useDevToken);
    $('logout').addEventListener('click', logout);
    $('approvals-refresh').addEventListener('click', refreshApprovals);
    $('feed-clear').addEventListener('click', () => $('feed-list').replaceChildren());
    $('audit-form').addEventListener('submit', (event) => {
      event.preventDefault();
      searchAudit(false);
    });
    $('audit-more').addEventListener('click', () => searchAudit(true));
    $('audit-verify-run').addEventListener('click', verifyChain);
    $('activity-filters').addEventListener('submit', applyActivityFilters);
    $('activity-clear').addEventListener('click', clearActivityFilters);
    $('activity-refresh').addEventListener('click', () => { loadActivity(false); loadSummary(true); });
    $('activity-more').addEventListener('click', () => loadActivity(true));
    $('counter-denials-button').addEventListener('click', showDenials);
    $('chart-by-decision').addEventListener('click', () => chartBy('decision'));
    $('chart-by-tier').addEventListener('click', () => chartBy('tier'));
    $('freeze-form').addEventListener('submit', createFreeze);
    $('freezes-refresh').addEventListener('click', loadFreezes);
    $('freezes-all').addEventListener('change', loadFreezes);
    $('grant-form').addEventListener('submit', createGrant);
    $('grants-refresh').addEventListener('click', loadGrants);
    $('grants-all').addEventListener('change', loadGrants);
    window.addEventListener('hashchange', route);
    // "3 min ago" stays true on every page.
    setInterval(() => {
      if (accessToken && document.visibilityState !== 'hidden') refreshRelativeTimes();
    }, RELATIVE_MS);

    try {
      const response = await fetch('/api/v1/console/config', { cache: 'no-store', credentials: 'omit' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      config = await response.json();
      if (!Array.isArray(config.scopes)) config.scopes = ['openid'];
    } catch (error) {
      showPage('login');
      showError($('login-error'), new Error(`cannot load the console configuration: ${describe(error)}`));
      return;
    }

    const params = new URLSearchParams(location.search);
    if (params.has('code') || params.has('error')) {
      try {
        await completeOidcLogin(params);
      } catch (error) {
        accessToken = null;
        showLogin(describe(error));
        return;
      }
    }
    if (accessToken) await signedIn();
    else showLogin(null);
  }

  boot();
})();
