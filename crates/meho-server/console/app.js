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
 *  - Nor does it reach the page as it is: `h()`, `setText()` and `setJson()` pass every text
 *    through `shown()`, which writes control and bidi characters as visible escapes (`\x1b`,
 *    `\u{202e}`), exactly as the CLI does (meho_core::display::escape). A U+202E in a command
 *    would otherwise reverse what follows it, so a held `touch /etc/cron.d/x` could read as
 *    something harmless. Text reaches the DOM through those three functions only.
 *
 * Pages (location.hash): #/approvals (default), #/approvals/<id>, #/feed, #/audit, #/audit/<id>.
 *
 * Stable hooks for tests (tests/peers/browser/e2e.mjs drives these):
 *  login          #page-login [data-testid=login]; OIDC: #login-oidc [data-testid=login-oidc];
 *                 dev mode: #dev-token-form, #dev-token, #dev-token-submit; errors: #login-error
 *  header         #whoami [data-testid=whoami] ("<subject> · tenant <tenant> · <role>", with
 *                 data-subject, data-tenant, data-role), #logout, nav links
 *                 [data-testid=nav-approvals|nav-feed|nav-audit]
 *  approvals      #page-approvals; #approvals-rows > tr[data-testid=approval-row][data-approval-id];
 *                 per row: [data-testid=approval-command] (the command, or the arguments as
 *                 JSON, through `shown()`), approval-tool, approval-target, approval-requester, approval-rule,
 *                 approval-tier, approval-expires, approval-link; input[data-testid=approval-reason],
 *                 select[data-testid=approval-learn] (seconds, "" = no waiver),
 *                 button[data-testid=approve], button[data-testid=deny], [data-testid=approval-error]
 *                 (the API's message, e.g. four eyes); #approvals-message (after a decision:
 *                 "approved <id> …" / "denied <id> …"), #approvals-empty, #approvals-status
 *  approval       #page-approval; #approval-id, #approval-fields (dd[data-field=<name>]),
 *                 [data-testid=approval-status], #approval-arguments, #approval-actions (the same
 *                 reason/approve/deny controls while pending)
 *  feed           #page-feed; #feed-status[data-state=idle|connecting|live|reconnecting];
 *                 #feed-list > li[data-testid=feed-event][data-seq][data-kind][data-approval-id]
 *  audit          #page-audit; #audit-form with #audit-principal, #audit-target, #audit-kind,
 *                 #audit-approval-id, #audit-call-id, #audit-since, #audit-until (UTC),
 *                 #audit-search; #audit-rows > tr[data-testid=audit-row][data-record-id][data-kind];
 *                 #audit-more; #audit-verify[data-state=ok|broken|failed] and
 *                 #audit-verify-problems; record view #page-audit-record with #audit-record (JSON)
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
    const text = span < 90 ? `${span} s`
      : span < 5400 ? `${Math.round(span / 60)} min`
        : span < 172800 ? `${Math.round(span / 3600)} h`
          : `${Math.round(span / 86400)} days`;
    return seconds >= 0 ? `in ${text}` : `${text} ago`;
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
      const returnTo = location.hash || '#/approvals';
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
    const returnTo = saved && typeof saved.returnTo === 'string' && saved.returnTo.startsWith('#') ? saved.returnTo : '#/approvals';
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
    approvals.rows.clear();
    $('approvals-rows').replaceChildren();
    $('audit-rows').replaceChildren();
    $('feed-list').replaceChildren();
    feed.lastId = null;
    audit.loaded = false;
  }

  // --- pages ----------------------------------------------------------------------------------

  let currentPage = 'loading';
  const PAGES = ['loading', 'login', 'approvals', 'approval', 'feed', 'audit', 'audit-record'];
  const NAV_OF = { approvals: 'approvals', approval: 'approvals', feed: 'feed', audit: 'audit', 'audit-record': 'audit' };

  function showPage(name) {
    for (const page of PAGES) show($(`page-${page}`), page === name);
    for (const link of document.querySelectorAll('#nav a')) {
      link.classList.toggle('active', link.dataset.page === NAV_OF[name]);
    }
    if (name !== 'approvals') stopPolling();
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
      default:
        showApprovals();
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
    const known = TIERS.has(tier) ? tier : '';
    return h('span', { class: known ? `tier tier-${known}` : 'tier', 'data-testid': 'approval-tier' }, tier || '');
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
      ),
      h('td', { 'data-testid': 'approval-target' }, approval.target || ''),
      h('td', { 'data-testid': 'approval-requester' }, approval.requester || ''),
      h('td', {}, h('span', { class: 'mono', 'data-testid': 'approval-rule' }, approval.rule || ''), h('br'), tierBadge(approval.tier)),
      h('td', {}, h('span', { 'data-testid': 'approval-expires', title: approval.expires_at }, approval.expires_at || ''), expires),
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

  function renderApprovalDetail(approval, message) {
    setText($('approval-id'), approval.id);
    const fields = $('approval-fields');
    fields.replaceChildren();
    for (const name of APPROVAL_FIELDS) {
      const value = approval[name];
      const text = value === null || value === undefined ? '—' : typeof value === 'object' ? JSON.stringify(value) : String(value);
      const attrs = { 'data-field': name };
      if (name === 'status') attrs['data-testid'] = 'approval-status';
      fields.append(h('dt', {}, name.replace(/_/g, ' ')), h('dd', attrs, text));
    }
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
    const detail = body.command || body.summary || body.activity || body.reason || body.message || '';
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
      h('span', { class: 'mono' }, isoTime(event.ts)),
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

  function auditRow(record) {
    const open = () => { location.hash = `#/audit/${encodeURIComponent(record.id)}`; };
    return h(
      'tr',
      { class: 'clickable', 'data-testid': 'audit-row', 'data-record-id': record.id, 'data-kind': record.kind, onclick: open },
      h('td', {}, h('a', { href: `#/audit/${encodeURIComponent(record.id)}`, class: 'mono' }, record.seq)),
      h('td', { class: 'mono' }, record.time || isoTime(record.ts)),
      h('td', {}, record.kind || ''),
      h('td', {}, record.principal || ''),
      h('td', {}, record.target || ''),
      h('td', {}, record.action || ''),
      h('td', {}, record.outcome || ''),
      h('td', { class: 'mono' }, record.approval_id || ''),
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

  async function showAuditRecord(id) {
    showPage('audit-record');
    setText($('audit-record-id'), id);
    setText($('audit-record'), '');
    showError($('audit-record-error'), null);
    try {
      const record = await api('GET', `/api/v1/audit/${encodeURIComponent(id)}`);
      setJson($('audit-record'), record);
    } catch (error) {
      showError($('audit-record-error'), error);
    }
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
    window.addEventListener('hashchange', route);

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
