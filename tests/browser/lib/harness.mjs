// Test harness: a real `vigia serve --demo` on a temporary data directory and port (SQLite,
// or a fresh PostgreSQL database), Debian's Chromium driven by playwright-core, and the checks
// every page gets: axe-core (no serious or critical violation), transferred size under
// 100 KB (user photos excluded), screenshots in a phone and a desktop viewport.
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
export const SCREENSHOTS = process.env.VIGIA_SCREENSHOTS || join(root, 'screenshots');
const AXE_SOURCE = readFileSync(join(root, 'node_modules', 'axe-core', 'axe.min.js'), 'utf8');

export const PHONE = { width: 360, height: 740 };
export const DESKTOP = { width: 1280, height: 860 };
export const MAX_PAGE_BYTES = 100 * 1024;

/** The demo accounts `vigia serve --demo` creates (crates/vigia/src/demo.rs). */
export const DEMO = {
  admin: { email: 'admin@demo.vigia.local', password: 'faro-norte-2026' },
  staff: { email: 'staff@demo.vigia.local', password: 'faro-sur-2026' },
  reporter: { email: 'reporter@demo.vigia.local', password: 'faro-este-2026' },
};

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A fresh PostgreSQL database named after this run, or null without VIGIA_TEST_DATABASE_URL. */
function freshPostgres() {
  const base = process.env.VIGIA_TEST_DATABASE_URL;
  if (!base) return null;
  const name = `vigia_browser_${process.pid}_${Date.now()}`;
  execFileSync('psql', [base, '-q', '-c', `CREATE DATABASE ${name}`], { stdio: 'pipe' });
  const url = new URL(base);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => {
    try { execFileSync('psql', [base, '-q', '-c', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'pipe' }); } catch { /* best effort */ }
  } };
}

/**
 * Starts `vigia serve --demo` (the binary in $VIGIA_BIN) and waits until it answers.
 * backend: 'sqlite' (default) or 'postgres' (skipped, returning null, without a database);
 * env: extra environment variables (configuration overrides such as
 * VIGIA_WEBHOOKS__ALLOW_PRIVATE_TARGETS). The result's `dataDir` is the server's data directory.
 */
export async function startVigia({ backend = 'sqlite', env: extraEnv = {} } = {}) {
  const bin = process.env.VIGIA_BIN;
  assert.ok(bin, 'set VIGIA_BIN to the vigia binary (scripts/browser-tests.sh does)');
  const dir = mkdtempSync(join(tmpdir(), 'vigia-browser-'));
  const port = await freePort();
  const args = ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--data-dir', dir];
  let pg = null;
  if (backend === 'postgres') {
    pg = freshPostgres();
    if (!pg) return null;
    args.push('--database-url', pg.url);
  }
  const env = {
    ...process.env,
    VIGIA_HTTP__LOGIN_PER_MINUTE: '10000',
    VIGIA_HTTP__REGISTER_PER_HOUR: '10000',
    RUST_LOG: process.env.RUST_LOG || 'warn',
    // PostgreSQL nodes must share a signing key; a fresh one per run.
    ...(backend === 'postgres' ? { VIGIA_AUTH__JWT_SECRET: randomBytes(48).toString('base64') } : {}),
    ...extraEnv,
  };
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => { output += d; });
  child.stderr.on('data', (d) => { output += d; });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`vigia serve exited: ${output}`);
    try {
      const r = await fetch(`${url}/health`);
      if (r.ok) break;
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url, output: () => output, backend, dataDir: dir,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      pg?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** A browser context (its own cookies) with a phone or desktop viewport. */
export async function context(browser, viewport = DESKTOP, extra = {}) {
  const phone = viewport.width < 600;
  return browser.newContext({
    viewport,
    isMobile: phone,
    hasTouch: phone,
    locale: 'es-PE',
    ...extra,
  });
}

/** Runs axe-core on the page; fails on any serious or critical violation. */
export async function axe(page, label) {
  await page.evaluate(AXE_SOURCE);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(bad, [], `axe on ${label}: ${JSON.stringify(bad, null, 1)}`);
  return result;
}

/** Bytes transferred for the page and everything it loaded, user photos (attachments, exam
 * captures) excluded. */
export async function transferred(page) {
  return page.evaluate(() => {
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    return entries
      .filter((e) => !/\/attachments\/|\/proctoring\/captures\/\d+\/image/.test(e.name))
      .reduce((sum, e) => sum + (e.transferSize || e.encodedBodySize || 0), 0);
  });
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const width = page.viewportSize()?.width ?? 0;
  const kind = width < 600 ? 'phone' : 'desktop';
  const file = join(SCREENSHOTS, `${name}-${kind}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Every page's checks: axe, size (first load, cold cache) and a screenshot.
 * Call right after a navigation that loaded the page.
 */
export async function checkPage(page, name) {
  await page.waitForLoadState('load');
  await axe(page, name);
  const bytes = await transferred(page);
  assert.ok(bytes > 0 && bytes < MAX_PAGE_BYTES, `${name}: ${bytes} bytes transferred`);
  const file = await screenshot(page, name);
  console.log(`# ${name}: ${bytes} bytes transferred, screenshot ${file}`);
  return bytes;
}

/** JSON API calls with a bearer token (staff acting from their own tools). */
export async function api(base, method, path, token, body) {
  const r = await fetch(`${base}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, body: json, text };
}

export async function token(base, who) {
  const r = await api(base, 'POST', '/api/v1/auth/login', null, who);
  assert.equal(r.status, 200, r.text);
  return r.body.access_token;
}

let counter = 0;
/** A new reporter's details. */
export function newPerson(prefix = 'rep') {
  counter += 1;
  const id = `${prefix}${process.pid}${Date.now() % 100000}${counter}`;
  return { name: `Prueba ${id}`, email: `${id}@campus.example.org`, password: `Faro sur ${counter} campus norte` };
}

/** Signs up through the form; ends on the page after sign-up. */
export async function signUp(page, base, person) {
  await page.goto(`${base}/signup`);
  await page.fill('#f-display_name', person.name);
  await page.fill('#f-email', person.email);
  await page.fill('#f-password', person.password);
  await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
}

export async function signIn(page, base, who) {
  await page.goto(`${base}/signin`);
  await page.fill('#f-email', who.email);
  await page.fill('#f-password', who.password);
  await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
}
