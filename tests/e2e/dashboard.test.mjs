// The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core,
// against the `steward` binary that `cargo test` built, on a fresh SQLite store.
// Run by `make test` (after the Rust suite) as `node --test tests/e2e/`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const password = 'e2e-admin-password';
let server, base, browser, work, hook;
// What the webhook channel received: { path, headers, body }.
const received = [];

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'steward-e2e-'));
  // A webhook receiver on loopback, the one notification channel: approval requests go to it.
  hook = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ path: req.url, headers: req.headers, body: JSON.parse(body) });
      res.end('ok');
    });
  });
  await new Promise((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const config = join(work, 'notify.toml');
  writeFileSync(config, [
    '[[notify.channels]]', 'kind = "webhook"', 'name = "e2e-hook"',
    `url = "http://127.0.0.1:${hook.address().port}/hook"`, 'secret = "e2e-secret"',
    '[[notify.routes]]', 'events = ["approval_needed"]', 'channels = ["e2e-hook"]',
    'min_severity = "info"', '',
  ].join('\n'));
  server = spawn(join(root, 'target', 'debug', 'steward'), ['--config', config, 'serve'], {
    cwd: root,
    env: {
      ...process.env,
      STEWARD__SERVER__PORT: '0',
      STEWARD__SERVER__WORKERS: '1',
      STEWARD__DATABASE__URL: `sqlite://${join(work, 'steward.db')}`,
      STEWARD__STORAGE__DIR: join(work, 'var'),
      STEWARD_ADMIN_PASSWORD: password,
      // Every test logs in; the throttle itself is tested in the Rust suite.
      STEWARD__AUTH__LOGIN_ATTEMPTS_PER_MINUTE: '60',
      // The agent's test approves a challenger whatever its margin (the Rust suite tests the
      // margin), and its passes come every second.
      STEWARD__AGENT__PROMOTION_MARGIN: '-1',
      STEWARD__AGENT__TICK_SECS: '1',
      // A decision that waited (too few labels when an earlier test's check raised the drift)
      // is taken again on the drift's next report, a second later rather than five minutes.
      STEWARD__AGENT__REDECIDE_AFTER_SECS: '1',
      STEWARD__NOTIFY__POLL_SECS: '1',
      RUST_LOG: 'info',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  base = await new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`steward did not start:\n${seen}`)), 30000);
    server.stderr.on('data', (chunk) => {
      seen += chunk;
      const m = seen.match(/steward is serving port=(\d+)/);
      if (m) { clearTimeout(timer); resolve(`http://127.0.0.1:${m[1]}`); }
    });
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    // The server writes its last state (the audit head, the prediction log) as it stops:
    // wait for it before removing its folder.
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15000))]);
  }
  hook?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function loggedIn() {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${base}/`);
  assert.match(page.url(), /\/login\?next=%2F$/, 'an anonymous visitor is sent to log in');
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', password);
  await page.click('button[type=submit]');
  await page.waitForSelector('h1:has-text("Overview")');
  return { page, errors };
}

test('a wrong password stays on the login page with the reason', async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/login`);
  await page.fill('input[name=username]', 'admin');
  await page.fill('input[name=password]', 'not-the-password');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error');
  assert.match(await page.textContent('.error'), /wrong user name or password/);
  await page.close();
});

test('log in, see the overview and the bundled dataset', async () => {
  const { page, errors } = await loggedIn();
  assert.match(await page.textContent('main'), /Dataset heart/);
  assert.equal(await page.evaluate(() => typeof window.htmx), 'object', 'htmx loaded (SRI accepted)');
  await page.goto(`${base}/datasets`);
  assert.match(await page.textContent('#versions'), /v1\s*current/);
  assert.deepEqual(errors, []);
  await page.close();
});

test('htmx mutations carry the CSRF token, and errors come back as toasts', async () => {
  const { page, errors } = await loggedIn();
  await page.goto(`${base}/access`);
  await page.fill('input[name=name]', 'laptop');
  await page.click('form.inline:has(input[name=name]) button');
  await page.waitForSelector('.secret .token');
  assert.match(await page.textContent('.secret .token'), /^stw_[A-Za-z0-9]{40}$/);

  await page.fill('input[name=username]', 'bad name');
  await page.fill('input[name=password]', 'long-enough-password');
  await page.click('form.inline:has(input[name=username]) button');
  await page.waitForSelector('#toasts .toast');
  assert.match(await page.textContent('#toasts .toast'), /username/);
  // Kept for people to look at: target/e2e-access.png.
  await page.screenshot({ path: join(root, 'target', 'e2e-access.png') });
  assert.deepEqual(errors, []);
  await page.close();
});

test('logging out ends the session', async () => {
  const { page } = await loggedIn();
  await page.click('button:has-text("Log out")');
  await page.waitForURL(/\/login/);
  await page.goto(`${base}/activity`);
  assert.match(page.url(), /\/login\?next=%2Factivity$/);
  await page.close();
});

test('the first model is in production; a run is registered, promoted and rolled back', async () => {
  const { page, errors } = await loggedIn();
  // Prompts (the reason) and confirmations are answered like a person would.
  page.on('dialog', (d) => d.accept(d.type() === 'prompt' ? 'e2e check' : undefined));

  await page.goto(`${base}/performance`);
  assert.match(await page.textContent('main'), /heart-disease v1/);
  assert.ok(await page.locator('.charts svg').count() >= 3, 'confusion matrix, ROC and importance');
  assert.match(await page.textContent('main'), /female/);
  await page.screenshot({ path: join(root, 'target', 'e2e-performance.png'), fullPage: true });

  await page.goto(`${base}/experiments`);
  assert.equal(await page.locator('tr.run-row').count(), 3, 'the first start trained three candidates');
  await page.click('button:has-text("Train now")');
  await page.waitForSelector('#runs p.ok');
  assert.match(await page.textContent('#runs p.ok'), /Trained 3 of 3 candidates/);
  assert.equal(await page.locator('tr.run-row').count(), 6);
  // Sorting by a column swaps in the table.
  await page.click('th a:has-text("CV F1")');
  await page.waitForSelector('th:has-text("CV F1 ▾")');
  await page.screenshot({ path: join(root, 'target', 'e2e-experiments.png'), fullPage: true });

  // Register an unregistered run from its page, then promote it and roll it back.
  const unregistered = page.locator('tr.run-row', { has: page.locator('td:last-child:empty') }).first();
  await unregistered.locator('a').first().click();
  await page.waitForSelector('button:has-text("Register")');
  await page.click('button:has-text("Register")');
  await page.waitForURL(/\/models$/);
  await page.click('#versions-table tr:has-text("v2") button:has-text("Promote")');
  await page.waitForSelector('#registry p.ok');
  assert.match(await page.textContent('#registry p.ok'), /v2 moved to Production\. v1 archived/);
  await page.click('#rollback');
  await page.waitForSelector('#registry p.ok:has-text("Rolled back")');
  assert.match(await page.textContent('#transitions-table'), /rollback from v2: e2e check/);
  assert.match(await page.textContent('#versions-table tr.current'), /v1/);
  await page.screenshot({ path: join(root, 'target', 'e2e-models.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a prediction and its feedback show up on the Predictions page', async () => {
  const { page, errors } = await loggedIn();
  const patient = { age: 63, sex: 1, cp: 1, trestbps: 145, chol: 233, fbs: 1, restecg: 2,
    thalach: 150, exang: 0, oldpeak: 2.3, slope: 3, ca: 0, thal: 6 };
  const answer = await (await page.request.post(`${base}/predict`, { data: patient })).json();
  // Feedback needs a caller (serving.feedback_requires_token): this session, with its CSRF
  // token as htmx would send it.
  const csrf = await page.evaluate(() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']);
  const forged = await page.request.post(`${base}/feedback`, { data: { request_id: answer.request_id, label: 1 } });
  assert.equal(forged.status(), 403, 'a session without its CSRF token is refused');
  const feedback = await page.request.post(`${base}/feedback`, {
    data: { request_id: answer.request_id, label: 1 },
    headers: { 'X-CSRF-Token': csrf },
  });
  assert.equal(feedback.status(), 201);
  assert.equal((await feedback.json()).actor, 'user:admin');
  await page.goto(`${base}/predictions`);
  const row = page.locator('#predictions-table tr', { hasText: answer.request_id });
  assert.equal(await row.count(), 1);
  assert.match(await row.textContent(), /age=63/);
  await page.screenshot({ path: join(root, 'target', 'e2e-predictions.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('/docs is Swagger UI from the binary, listing the prediction endpoints', async () => {
  const page = await browser.newPage();
  const external = [];
  page.on('request', (r) => { if (!r.url().startsWith(base)) external.push(r.url()); });
  await page.goto(`${base}/docs/`);
  await page.waitForSelector('.opblock-summary-path');
  const paths = await page.locator('.opblock-summary-path').allTextContents();
  for (const p of ['/predict', '/invocations', '/model/info', '/feedback']) {
    assert.ok(paths.some((t) => t.includes(p)), `${p} in ${paths}`);
  }
  assert.deepEqual(external, [], 'no asset comes from outside the server');
  await page.screenshot({ path: join(root, 'target', 'e2e-docs.png') });
  await page.close();
});

test('repeated rollbacks walk back the history, and each confirmation names its target', async () => {
  const { page, errors } = await loggedIn();
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(d.type() === 'prompt' ? 'e2e walk back' : undefined); });
  // A third version: register a run nobody registered yet, promote it.
  await page.goto(`${base}/experiments`);
  const unregistered = page.locator('tr.run-row', { has: page.locator('td:last-child:empty') }).first();
  await unregistered.locator('a').first().click();
  await page.click('button:has-text("Register")');
  await page.waitForURL(/\/models$/);
  const newest = await page.locator('#versions-table tbody tr').first().locator('td').first().textContent();
  await page.click(`#versions-table tr:has-text("${newest.trim()}") button:has-text("Promote")`);
  await page.waitForSelector('#registry p.ok');
  // v2 was rolled back from earlier: the rollback skips it and names v1, with its figures.
  assert.match(await page.textContent('#rollback'), /Roll back to v1/);
  await page.click('#rollback');
  await page.waitForSelector('#registry p.ok:has-text("Rolled back")');
  const confirmation = dialogs.find((m) => m.startsWith('Roll back Production'));
  assert.match(confirmation, new RegExp(`from ${newest.trim()} to v1 \\(\\w+, CV ROC-AUC 0\\.\\d{3}`));
  assert.match(await page.textContent('#versions-table tr.current'), /v1/);
  assert.equal(await page.locator('#rollback').count(), 0, 'nothing earlier that was not rolled back from');
  await page.screenshot({ path: join(root, 'target', 'e2e-rollback.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test('a version that failed its validation is shown with its failures before it is made current or trained on', async () => {
  const { page, errors } = await loggedIn();
  const csrf = await page.evaluate(() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']);
  const { readFileSync } = await import('node:fs');
  const hungary = readFileSync(join(root, 'data', 'uci-heart-disease', 'processed.hungarian.data'));
  const added = await page.request.post(`${base}/api/v1/datasets/heart/versions?file_name=hungarian.data&message=Hungary`, {
    data: hungary, headers: { 'X-CSRF-Token': csrf, 'Content-Type': 'text/csv' },
  });
  assert.equal(added.status(), 201);
  const version = (await added.json()).version.version;
  // Hungary failed its validation: added, but not made current.
  assert.equal((await added.json()).current, false);
  const dialogs = [];
  page.on('dialog', (d) => { dialogs.push(d.message()); d.accept(); });
  await page.goto(`${base}/datasets`);
  assert.match(await page.textContent('#versions tr.current'), /v1/);
  // Making it current shows its failures and asks again, once (no generic question first).
  await page.click(`#versions tr:has-text("v${version}") button:has-text("Make current")`);
  await page.waitForSelector('#current-confirm');
  assert.match(await page.textContent('#current-confirm'), /expect_column_values_to_not_be_null\(ca\)/);
  await page.screenshot({ path: join(root, 'target', 'e2e-current-confirm.png'), fullPage: true });
  await page.click('#current-confirm button:has-text("Make current anyway")');
  await page.waitForSelector(`#versions p.ok:has-text("now uses v${version}")`);
  assert.deepEqual(dialogs, [], 'the card is the one question');
  // Train now on it: the same question first.
  await page.goto(`${base}/experiments`);
  await page.click('button:has-text("Train now")');
  await page.waitForSelector('#train-confirm');
  assert.match(await page.textContent('#train-confirm'), /not_be_null\(thal\)/);
  await page.click('#train-confirm button:has-text("Train anyway")');
  await page.waitForSelector('#runs p.ok:has-text("Trained")');
  assert.deepEqual(errors, []);
  await page.close();
});

test('a monitoring check runs from the Drift page and shows drift, a histogram and trends', async () => {
  const { page, errors } = await loggedIn();
  // Hungary's patients as traffic for the Production model (trained on Cleveland).
  const names = ['age', 'sex', 'cp', 'trestbps', 'chol', 'fbs', 'restecg', 'thalach', 'exang',
    'oldpeak', 'slope', 'ca', 'thal'];
  const { readFileSync } = await import('node:fs');
  const instances = readFileSync(join(root, 'data', 'uci-heart-disease', 'processed.hungarian.data'), 'utf8')
    .trim().split('\n').map((line) => {
      const cells = line.split(',');
      return Object.fromEntries(names.map((n, i) => [n, cells[i] === '?' ? null : Number(cells[i])]));
    });
  const scored = await page.request.post(`${base}/predict`, { data: { instances } });
  assert.equal(scored.status(), 200);
  await page.goto(`${base}/drift`);
  await page.click('button:has-text("Run a check now")');
  await page.waitForSelector('#drift-features');
  assert.match(await page.locator('[role=status]').textContent(), /Check completed: drift share/);
  assert.ok(await page.locator('#drift-features .badge:has-text("drifted")').count() >= 4,
    'Hungary drifts from Cleveland');
  assert.equal(await page.locator('svg.chart-wide').count(), 1, 'a histogram of one feature');
  await page.screenshot({ path: join(root, 'target', 'e2e-drift.png'), fullPage: true });
  await page.click('#drift-features a:has-text("thalach")');
  await page.waitForSelector('svg.chart-wide title:has-text("thalach: reference against current")', { state: 'attached' });
  await page.goto(`${base}/trends`);
  assert.ok(await page.locator('.charts svg').count() >= 4);
  await page.screenshot({ path: join(root, 'target', 'e2e-trends.png'), fullPage: true });
  await page.goto(`${base}/`);
  assert.ok(await page.locator('#open-alerts tr').count() >= 2, 'open alerts on the Overview');
  assert.deepEqual(errors, []);
  await page.close();
});

test('the agent retrains on labelled traffic, and its request is approved in place', async () => {
  const { page, errors } = await loggedIn();
  page.on('dialog', (d) => d.accept(d.type() === 'prompt' ? 'e2e approves' : undefined));
  const csrf = await page.evaluate(() => JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']);
  const names = ['age', 'sex', 'cp', 'trestbps', 'chol', 'fbs', 'restecg', 'thalach', 'exang',
    'oldpeak', 'slope', 'ca', 'thal'];
  const { readFileSync } = await import('node:fs');
  const rows = readFileSync(join(root, 'data', 'uci-heart-disease', 'processed.hungarian.data'), 'utf8')
    .trim().split('\n').map((line) => line.split(','));
  const instances = rows.map((cells) =>
    Object.fromEntries(names.map((n, i) => [n, cells[i] === '?' ? null : Number(cells[i])])));
  const scored = await (await page.request.post(`${base}/predict`, { data: { instances } })).json();
  // Labels for the first 80 patients, posted by this session as a person would.
  for (let i = 0; i < 80; i++) {
    const label = Number(rows[i][13]) > 0 ? 1 : 0;
    const r = await page.request.post(`${base}/feedback`, {
      data: { request_id: scored[i].request_id, label }, headers: { 'X-CSRF-Token': csrf },
    });
    assert.equal(r.status(), 201);
  }
  await page.goto(`${base}/drift`);
  await page.click('button:has-text("Run a check now")');
  await page.waitForSelector('#drift-features');
  // Alertmanager's word for the same drift, from this session: it joins monitoring's incident,
  // whose decision (too few labels before) is taken again now that 80 are in.
  const alert = await page.request.post(`${base}/agent/alerts`, {
    headers: { 'X-CSRF-Token': csrf },
    data: { version: '4', status: 'firing', alerts: [{ status: 'firing',
      labels: { alertname: 'StewardDrift', alert_type: 'drift' },
      annotations: { summary: 'drift share above 0.5 (e2e)' }, fingerprint: 'e2e0000000000001' }] },
  });
  assert.equal(alert.status(), 200, await alert.text());
  await page.goto(`${base}/approvals`);
  await page.waitForSelector('section.approval', { timeout: 240000 });
  assert.match(await page.textContent('section.approval'), /Challenger/);
  assert.equal(await page.locator('section.approval table.scores tr').count(), 7, 'six metrics, both models');
  await page.screenshot({ path: join(root, 'target', 'e2e-approvals.png'), fullPage: true });
  await page.click('section.approval button:has-text("Approve")');
  await page.waitForSelector('#approvals p.ok:has-text("approved")');
  assert.match(await page.textContent('#approval-history'), /e2e approves/);
  await page.goto(`${base}/agent`);
  assert.match(await page.textContent('#agent-feed'), /retrain/);
  await page.screenshot({ path: join(root, 'target', 'e2e-agent.png'), fullPage: true });
  await page.click('#agent-feed a:has-text("timeline") >> nth=0');
  await page.waitForSelector('#incident-timeline');
  await page.screenshot({ path: join(root, 'target', 'e2e-incident.png'), fullPage: true });
  // The kill switch, pulled and released from the page.
  await page.goto(`${base}/agent`);
  await page.click('button:has-text("Pause (kill switch)")');
  await page.waitForSelector('#agent-switch .value:has-text("paused")');
  await page.click('button:has-text("Resume")');
  await page.waitForSelector('#agent-switch .value:has-text("running")');
  await page.goto(`${base}/`);
  assert.ok(await page.locator('#open-incidents tr').count() >= 2, 'open incidents on the Overview');
  assert.deepEqual(errors, []);
  await page.close();
});

test('notifications: a test sent from the page, an approval opened from its message, reports downloaded', async () => {
  const { page, errors } = await loggedIn();
  page.on('dialog', (d) => d.accept());
  await page.goto(`${base}/notifications`);
  assert.match(await page.textContent('#notify-channels'), /e2e-hook/);
  await page.click('#notify-channels button:has-text("Send a test")');
  await page.waitForSelector('#outbox .status.sent');
  // (The agent's approval request, from the test before, may be the delivery shown sent: the
  // test message is waited for by itself.)
  const sent = Date.now() + 30000;
  while (!received.some((r) => r.body.kind === 'test') && Date.now() < sent) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.ok(received.some((r) => r.body.kind === 'test'), 'the receiver got the test');
  // The agent's request (the test before) went out with a signed link; it opens the request.
  const deadline = Date.now() + 30000;
  while (!received.some((r) => r.body.kind === 'approval_needed') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const asked = received.find((r) => r.body.kind === 'approval_needed');
  assert.ok(asked, 'the approval request was sent to the webhook');
  assert.match(asked.headers['x-steward-signature'], /^sha256=[0-9a-f]{64}$/);
  const link = new URL(asked.body.link);
  assert.match(link.pathname, /^\/approvals\/open\//);
  await page.goto(`${base}${link.pathname}${link.search}`);
  assert.match(page.url(), new RegExp(`/approvals#approval-${asked.body.approval_id}$`));
  await page.waitForSelector('h1:has-text("Approvals")');
  // A changed link opens nothing.
  const forged = await page.request.get(`${base}${link.pathname}${link.search.replace(/sig=[0-9a-f]+/, `sig=${'0'.repeat(64)}`)}`, { maxRedirects: 0 });
  assert.equal(forged.status(), 403);
  // The reports behind the page's links.
  await page.goto(`${base}/notifications`);
  const weekly = await page.request.get(`${base}${await page.getAttribute('#report-links a:has-text("PDF") >> nth=0', 'href')}`);
  assert.equal(weekly.headers()['content-type'], 'application/pdf');
  assert.equal((await weekly.body()).subarray(0, 5).toString(), '%PDF-');
  await page.screenshot({ path: join(root, 'target', 'e2e-notifications.png'), fullPage: true });
  await page.goto(`${base}/models`);
  const card = await page.request.get(`${base}${await page.getAttribute('#versions-table a:has-text("PDF") >> nth=0', 'href')}`);
  assert.equal(card.status(), 200);
  assert.equal(card.headers()['content-type'], 'application/pdf');
  assert.deepEqual(errors, []);
  await page.close();
});

test("a session of MLflow's own client shows on the Experiments, run and Models pages", async () => {
  // tests/mlflow/test_mlflow_client.py's session, with the real client (mlflow-skinny) signed
  // in as the admin by user name and password (MLflow's Basic auth).
  const python = join(root, 'tests', 'mlflow', '.venv', 'bin', 'python');
  const { stdout } = await promisify(execFile)(python, [join(root, 'tests', 'mlflow', 'test_mlflow_client.py'), 'session'], {
    env: { ...process.env, MLFLOW_TRACKING_URI: base, MLFLOW_TRACKING_USERNAME: 'admin',
      MLFLOW_TRACKING_PASSWORD: password, MLFLOW_TRACKING_TOKEN: '' },
    timeout: 180000,
  });
  const session = JSON.parse(stdout.trim().split('\n').pop());
  const { page, errors } = await loggedIn();
  await page.goto(`${base}/experiments?experiment=mlflow-client`);
  assert.match(await page.textContent('#runs h2'), /mlflow-client/);
  assert.ok(await page.locator(`tr.run-row a[href="/runs/${session.run_id}"]`).count() >= 1, 'the run is listed');
  await page.goto(`${base}/runs/${session.run_id}`);
  const run = await page.textContent('main');
  assert.match(run, /logged by an MLflow client/);
  assert.match(run, /mlflow\.runName = mlflow-client-lr/);
  assert.match(run, /"model": "lr"/);
  assert.ok(await page.locator('h2:has-text("Metric histories") + .charts svg').count() >= 1, 'the loss curve over its steps');
  assert.match(run, new RegExp(`${session.model} v${session.version} \\(Staging\\)`));
  await page.screenshot({ path: join(root, 'target', 'e2e-mlflow-run.png'), fullPage: true });
  await page.click(`a:has-text("${session.model} v${session.version}")`);
  await page.waitForURL(/\/models\?model=/);
  assert.match(await page.textContent('#registry h2'), new RegExp(session.model));
  assert.match(await page.textContent('#versions-table'), /mlflow:sklearn/);
  assert.match(await page.textContent('#versions-table'), /Staging/);
  assert.equal(await page.locator('#versions-table button').count(), 0, 'no stage buttons on a model Steward does not serve');
  await page.screenshot({ path: join(root, 'target', 'e2e-mlflow-models.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
