// The administrators' operations pages: webhooks with their delivery log and replay (against
// a receiver this test runs on 127.0.0.1), jobs and schedules (pause, run now, retry of a dead
// job), zones drawn on the campus map, runtime settings and the custom report form. Every page
// passes axe, stays under 100 KB and is photographed on phone and desktop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  DEMO, DESKTOP, PHONE, api, checkPage, context, launch, startVigia, token,
} from '../lib/harness.mjs';

async function signInAs(page, base, who) {
  await page.goto(`${base}/signin`);
  await page.fill('#f-email', who.email);
  await page.fill('#f-password', who.password);
  await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
}

async function submit(page, formSelector) {
  await Promise.all([page.waitForNavigation(), page.click(`${formSelector} button[type=submit]`)]);
}

/** A webhook receiver on 127.0.0.1 that answers 200 and keeps what it received. */
async function receiver() {
  const received = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      received.push({ id: req.headers['webhook-id'], signature: req.headers['webhook-signature'], body: JSON.parse(body || 'null') });
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}/vigia`,
    received,
    close: () => new Promise((r) => server.close(r)),
  };
}

/** A test photo of scripts/media-setup.sh (the dlib models analyse captures in this test). */
const photo = (name) => readFileSync(join(process.env.VIGIA_MODELS_DIR || join(homedir(), '.cache', 'vigia-models'), 'test-images', name));

/** Sends bytes to the API (a reference photo, a capture). */
async function sendBytes(base, method, path, bearer, bytes) {
  const r = await fetch(`${base}${path}`, {
    method, headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream' }, body: bytes,
  });
  const text = await r.text();
  return { status: r.status, text, body: text ? JSON.parse(text) : null };
}

async function until(what, check, timeout = 20000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test('an admin registers a webhook, sees its deliveries in the log with their events and the receiver\'s answer, and replays one', async () => {
  const server = await startVigia({ env: { VIGIA_WEBHOOKS__ALLOW_PRIVATE_TARGETS: 'true' } });
  const browser = await launch();
  const hook = await receiver();
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);
    await page.goto(`${server.url}/admin`);
    await Promise.all([page.waitForNavigation(), page.click('nav.admin-nav a[href="/admin/webhooks"]')]);
    await checkPage(page, 'admin-webhooks');

    // Refused: not an http(s) URL, no type; each error next to its field, nothing registered.
    await page.fill('#w-url', 'ftp://127.0.0.1/vigia');
    await submit(page, 'main form.form');
    assert.match(await page.textContent('#w-url-e'), /URL completa http/);
    assert.ok(await page.isVisible('#w-types-e'), 'the types error is next to the types');
    await checkPage(page, 'admin-webhooks-error');

    await page.fill('#w-url', hook.url);
    await page.fill('#w-description', 'Tablero de operaciones');
    await page.check('input[name=event_types][value="incident.created"]');
    await page.check('input[name=event_types][value="media.analyzed"]');
    await submit(page, 'main form.form');
    const secret = (await page.textContent('#new-webhook-secret')).trim();
    assert.match(secret, /^whsec_/);
    await checkPage(page, 'admin-webhook-created');
    await page.goto(`${server.url}/admin/webhooks`);
    assert.equal(await page.$('#new-webhook-secret'), null, 'the secret is shown once');
    assert.ok(!(await page.content()).includes(secret));

    // An incident: the receiver gets it, and the endpoint's log shows the attempt.
    const reporter = await token(server.url, DEMO.reporter);
    const categories = await api(server.url, 'GET', '/api/v1/categories', reporter);
    const created = await api(server.url, 'POST', '/api/v1/incidents', reporter, {
      category_id: categories.body[0].id, title: 'Puerta de emergencia bloqueada', description: 'Hay cajas apiladas delante de la salida.',
    });
    assert.equal(created.status, 201, created.text);
    await until('the webhook delivery', () => hook.received.find((m) => m.body?.type === 'incident.created'));
    const first = hook.received.find((m) => m.body?.type === 'incident.created');
    assert.ok(first.signature, 'the delivery is signed');

    await Promise.all([page.waitForNavigation(), page.click(`main table a:text-is("${hook.url}")`)]);
    const logUrl = page.url();
    const delivered = await until('the delivery in the log', async () => {
      await page.goto(logUrl);
      const el = await page.$('li.delivery[data-status="delivered"]');
      return el;
    });
    const row = await delivered.textContent();
    assert.match(row, /incident\.created/);
    assert.match(row, /200/);
    assert.match(row, /entregado/);
    assert.match(await delivered.$eval('p.event[data-log="incident"]', (p) => p.textContent), /Evento de incidente #\d+ · incident\.created/);

    // A proctoring result (an exam event): its delivery names the exam event, its type and the exam.
    const admin = await token(server.url, DEMO.admin);
    const now = Date.now();
    const exam = await api(server.url, 'POST', '/api/v1/exams', admin, {
      code: 'EXW1', title: 'Cálculo I — final', category_id: categories.body[0].id,
      starts_at: new Date(now - 3600e3).toISOString(), ends_at: new Date(now + 3600e3).toISOString(),
    });
    assert.equal(exam.status, 201, exam.text);
    const participant = await api(server.url, 'POST', `/api/v1/exams/${exam.body.id}/participants`, admin, { external_id: 'user_456', name: 'Barack' });
    assert.equal(participant.status, 201, participant.text);
    const base = `/api/v1/exams/${exam.body.id}/participants/${participant.body.id}`;
    const enrolled = await sendBytes(server.url, 'PUT', `${base}/reference`, admin, photo('obama.jpg'));
    assert.equal(enrolled.status, 200, enrolled.text);
    const captured = await sendBytes(server.url, 'POST', `${base}/captures?name=cap_001.jpg`, admin, photo('obama2.jpg'));
    assert.equal(captured.status, 202, captured.text);
    await until('the proctoring result', () => hook.received.find((m) => m.body?.type === 'media.analyzed'), 60000);
    const result = await until('the exam event\'s delivery in the log', async () => {
      await page.goto(logUrl);
      return page.$('li.delivery[data-status="delivered"]:has(p.event[data-log="exam"])');
    });
    const examEvent = await result.$eval('p.event', (p) => p.textContent);
    assert.match(examEvent, /Evento de examen \(supervisión\) #\d+ · media\.analyzed · Examen #\d+/);
    assert.equal(await result.$eval('p.event a', (a) => a.getAttribute('href')), `/proctoring/exams/${exam.body.id}/live`);
    assert.match(await result.textContent(), /200/);
    await checkPage(page, 'admin-webhook');

    // Replay: the same message (same webhook-id) again.
    const before = hook.received.length;
    await submit(page, 'li.delivery[data-status="delivered"]:has(p.event[data-log="incident"]) form');
    assert.match(await page.textContent('main'), /Entrega puesta de nuevo en la cola/);
    await until('the replayed message', () => hook.received.length > before);
    assert.equal(hook.received.at(-1).id, first.id, 'a replay keeps the message id');
    await until('the replay in the log', async () => {
      await page.goto(logUrl);
      return (await page.$$('li.delivery[data-status="delivered"] table.attempts tbody tr')).length >= 1
        && !(await page.$('li.delivery[data-status="pending"]'));
    });

    // Disable it: the list says so; in English too.
    await page.uncheck('#w-enabled');
    await submit(page, 'main form.form');
    assert.match(await page.textContent('main'), /Guardado/);
    await page.goto(`${server.url}/admin/webhooks`);
    assert.match(await page.textContent('main table'), /Desactivado/);
    assert.match(await page.textContent('main table'), /Desactivado por un administrador/);
    await page.click('form.lang button');
    await page.waitForLoadState('load');
    assert.match(await page.textContent('main table'), /Disabled/);
    await ctx.close();

    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.admin);
    for (const [name, path] of [['admin-webhooks', '/admin/webhooks'], ['admin-webhook', new URL(logUrl).pathname]]) {
      const response = await small.goto(`${server.url}${path}`);
      assert.equal(response.status(), 200, path);
      await checkPage(small, name);
    }
    await phone.close();
  } finally {
    await hook.close();
    await browser.close();
    await server.stop();
  }
});

/** Adds a job straight to the server's SQLite queue (`fail` jobs: jobs.test_handlers). */
function enqueueFailingJob(dataDir, reason) {
  const now = Date.now();
  const payload = JSON.stringify({ type: 'fail', reason }).replaceAll("'", "''");
  const out = execFileSync('sqlite3', [join(dataDir, 'vigia.db'),
    `INSERT INTO jobs (kind, payload, state, attempts, run_at, created_at, updated_at) VALUES ('fail', '${payload}', 'queued', 0, ${now}, ${now}, ${now}) RETURNING id;`]);
  return Number(String(out).trim());
}

test('an admin pauses and resumes a schedule, runs one now and sees its history, and retries a dead job', async () => {
  const server = await startVigia({ env: { VIGIA_JOBS__TEST_HANDLERS: 'true' } });
  const browser = await launch();
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);

    // Schedules: pause one (it says so, and the API agrees), resume it.
    await page.goto(`${server.url}/admin/schedules`);
    await checkPage(page, 'admin-schedules');
    await submit(page, '#schedule-cleanup form[action$="/pause"]');
    assert.match(await page.textContent('#schedule-cleanup .state'), /en pausa/);
    const adminToken = await token(server.url, DEMO.admin);
    const paused = await api(server.url, 'GET', '/api/v1/schedules/cleanup', adminToken);
    assert.equal(paused.body.paused, true, paused.text);
    await submit(page, '#schedule-cleanup form[action$="/pause"]');
    assert.match(await page.textContent('#schedule-cleanup .state'), /activa/);

    // Run now: the history shows a manual run, which a worker finishes.
    await Promise.all([page.waitForNavigation(), page.click('#schedule-assignment_sweep th a')]);
    await submit(page, 'form[action$="/run"]');
    assert.match(await page.textContent('main'), /Ejecución puesta en la cola/);
    await until('the manual run to finish', async () => {
      await page.reload();
      return page.$('table.runs tr[data-status="succeeded"]:has-text("manual")');
    });
    await checkPage(page, 'admin-schedule');

    // A job that fails for good lands in the dead-letter list; retry runs it again.
    const id = enqueueFailingJob(server.dataDir, 'el receptor respondió 400');
    await until('the job to die', async () => (await api(server.url, 'GET', `/api/v1/jobs/${id}`, adminToken)).body?.state === 'dead');
    const died = await api(server.url, 'GET', `/api/v1/jobs/${id}`, adminToken);
    await page.goto(`${server.url}/admin/jobs`);
    await checkPage(page, 'admin-jobs');
    assert.match(await page.textContent(`#job-${id}`), /el receptor respondió 400/);
    assert.equal(await page.getAttribute(`#job-${id}`, 'data-state'), 'dead');
    await submit(page, `#job-${id} form[action$="/retry"]`);
    assert.match(await page.textContent('main'), /Tarea puesta de nuevo en la cola/);
    const again = await until('the retried job to run again', async () => {
      const job = (await api(server.url, 'GET', `/api/v1/jobs/${id}`, adminToken)).body;
      return job?.state === 'dead' && job.finished_at !== died.body.finished_at ? job : null;
    });
    assert.equal(again.attempts, 1, 'a retry starts with its attempts reset');

    // Filters: by kind and state; nothing of another kind is listed.
    await page.selectOption('#j-state', '');
    await page.selectOption('#j-kind', 'fail');
    await submit(page, 'form.filters');
    const kinds = await page.$$eval('table.jobs tbody tr td:nth-child(2)', (tds) => tds.map((td) => td.textContent.trim()));
    assert.ok(kinds.length >= 1 && kinds.every((k) => k === 'fail'), kinds.join(','));
    // Cancel a queued job (far in the future, so no worker takes it first).
    const later = Date.now() + 3600_000;
    const queued = Number(String(execFileSync('sqlite3', [join(server.dataDir, 'vigia.db'),
      `INSERT INTO jobs (kind, payload, state, attempts, run_at, created_at, updated_at) VALUES ('noop', '{"type":"noop"}', 'queued', 0, ${later}, ${later}, ${later}) RETURNING id;`])).trim());
    await page.goto(`${server.url}/admin/jobs?state=queued&kind=noop`);
    await submit(page, `#job-${queued} form[action$="/cancel"]`);
    assert.match(await page.textContent('main'), /Tarea cancelada/);
    const cancelled = await api(server.url, 'GET', `/api/v1/jobs/${queued}`, adminToken);
    assert.equal(cancelled.body.state, 'cancelled');
    await ctx.close();

    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.admin);
    for (const [name, path] of [['admin-jobs', '/admin/jobs?state='], ['admin-schedules', '/admin/schedules'], ['admin-schedule', '/admin/schedules/assignment_sweep']]) {
      const response = await small.goto(`${server.url}${path}`);
      assert.equal(response.status(), 200, path);
      await checkPage(small, name);
    }
    await phone.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('an admin draws a triangle zone by clicking on the campus map, saves it, and sees it on the map and the list', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);
    await page.goto(`${server.url}/admin/zones`);
    await checkPage(page, 'admin-zones');
    const before = await page.$$eval('svg.zone-editor .area', (shapes) => shapes.length);

    // Typed coordinates that are not a polygon: the API's rule, next to the field.
    await page.fill('#z-name', 'Patio de comidas');
    await page.fill('#z-polygon', '-12.1350, -77.0220\n-12.1352, -77.0210');
    await submit(page, 'form.zone-form');
    assert.match(await page.textContent('#z-polygon-e'), /al menos 3 vértices distintos/);
    assert.equal(await page.inputValue('#z-name'), 'Patio de comidas', 'what was typed is kept');
    await checkPage(page, 'admin-zones-error');

    // Three clicks on the map: three vertices, drawn as a draft.
    await page.click('#z-clear');
    assert.equal(await page.inputValue('#z-polygon'), '');
    const box = await (await page.$('svg.zone-editor')).boundingBox();
    for (const [fx, fy] of [[0.1, 0.1], [0.3, 0.1], [0.2, 0.3]]) {
      await page.click('svg.zone-editor', { position: { x: box.width * fx, y: box.height * fy } });
    }
    const lines = (await page.inputValue('#z-polygon')).split('\n');
    assert.equal(lines.length, 3, lines.join(' | '));
    for (const line of lines) assert.match(line, /^-?\d+\.\d{6}, -?\d+\.\d{6}$/);
    // Each vertex is the position under the click, by the map's own projection.
    const frame = await page.$eval('svg.zone-editor', (svg) => ({
      minLon: Number(svg.dataset.minLon), maxLat: Number(svg.dataset.maxLat), k: Number(svg.dataset.k),
      scale: Number(svg.dataset.scale), margin: Number(svg.dataset.margin), width: svg.viewBox.baseVal.width,
    }));
    const units = frame.width / box.width;
    const [lat0, lon0] = lines[0].split(', ').map(Number);
    const expectLat = frame.maxLat - (box.height * 0.1 * units - frame.margin) / frame.scale;
    const expectLon = frame.minLon + (box.width * 0.1 * units - frame.margin) / (frame.k * frame.scale);
    const tolerance = 2 * units / frame.scale;
    assert.ok(Math.abs(lat0 - expectLat) < tolerance && Math.abs(lon0 - expectLon) < tolerance / frame.k, `first vertex ${lines[0]} vs ${expectLat}, ${expectLon}`);
    assert.equal((await page.getAttribute('#draft-polygon', 'points')).split(' ').length, 3);
    await submit(page, 'form.zone-form');
    assert.match(page.url(), /\/admin\/zones\?saved=1/);

    const adminToken = await token(server.url, DEMO.admin);
    const zones = await api(server.url, 'GET', '/api/v1/zones', adminToken);
    const zone = zones.body.find((z) => z.name === 'Patio de comidas');
    assert.ok(zone, 'the zone was created');
    assert.equal(zone.polygon.length, 3);
    assert.deepEqual(zone.polygon.map((p) => `${p.lat.toFixed(6)}, ${p.lon.toFixed(6)}`), lines);
    assert.match(await page.textContent(`#zone-${zone.id}`), /Polígono/);
    assert.equal(await page.$$eval('svg.zone-editor .area', (shapes) => shapes.length), before + 1);
    assert.ok(await page.$(`svg.zone-editor polygon[data-zone="${zone.id}"]`), 'drawn on the map');

    // Edit it into a circle with typed coordinates.
    await Promise.all([page.waitForNavigation(), page.click(`#zone-${zone.id} a`)]);
    await checkPage(page, 'admin-zone');
    assert.equal((await page.inputValue('#z-polygon')).split('\n').length, 3);
    await page.check('#z-shape-circle');
    await page.fill('#z-lat', String(zone.polygon[0].lat));
    await page.fill('#z-lon', String(zone.polygon[0].lon));
    await page.fill('#z-radius', '0');
    await submit(page, 'form.zone-form');
    assert.match(await page.textContent('#z-radius-e'), /distancia en metros/);
    await page.fill('#z-radius', '25');
    await submit(page, 'form.zone-form');
    const edited = await api(server.url, 'GET', `/api/v1/zones/${zone.id}`, adminToken);
    assert.equal(edited.body.radius_m, 25);
    assert.equal(edited.body.polygon, null);
    assert.match(await page.textContent(`#zone-${zone.id}`), /Círculo/);
    await ctx.close();

    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.admin);
    for (const [name, path] of [['admin-zones', '/admin/zones'], ['admin-zone', `/admin/zones/${zone.id}`]]) {
      const response = await small.goto(`${server.url}${path}`);
      assert.equal(response.status(), 200, path);
      await checkPage(small, name);
    }
    await phone.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('an admin closes registration on the settings page; a value the API refuses is shown next to the field', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);
    await page.goto(`${server.url}/admin`);
    await Promise.all([page.waitForNavigation(), page.click('nav.admin-nav a[href="/admin/settings"]')]);
    await checkPage(page, 'admin-settings');
    assert.equal(await page.inputValue('#s-registration_enabled'), 'true');

    // A value that is not yes or no (a crafted option): refused by the API's check, unchanged.
    await page.$eval('#s-registration_enabled option[value="true"]', (o) => { o.value = 'quizás'; });
    await page.selectOption('#s-registration_enabled', 'quizás');
    await submit(page, 'form.setting');
    assert.match(await page.textContent('#s-registration_enabled-e'), /Debe ser sí o no/);
    await checkPage(page, 'admin-settings-error');
    const adminToken = await token(server.url, DEMO.admin);
    let setting = await api(server.url, 'GET', '/api/v1/settings/registration.enabled', adminToken);
    assert.equal(setting.body.value, true, 'nothing changed');

    await page.selectOption('#s-registration_enabled', 'false');
    await submit(page, 'form.setting');
    assert.match(await page.textContent('main'), /Guardado/);
    assert.equal(await page.inputValue('#s-registration_enabled'), 'false');
    setting = await api(server.url, 'GET', '/api/v1/settings/registration.enabled', adminToken);
    assert.equal(setting.body.value, false);
    const audit = await api(server.url, 'GET', '/api/v1/audit?entity=setting', adminToken);
    assert.ok(audit.body.items.length >= 1, `the change is audited: ${audit.text}`);
    await ctx.close();

    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.admin);
    await small.goto(`${server.url}/admin/settings`);
    await checkPage(small, 'admin-settings');
    await phone.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('staff run a custom report grouped by category and urgency, see the table, and download it as CSV', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const reporter = await token(server.url, DEMO.reporter);
    const categories = await api(server.url, 'GET', '/api/v1/categories', reporter);
    for (const [title, urgency] of [['Fuga de agua en el pabellón B', 'high'], ['Foco quemado en el pasillo', 'low']]) {
      const r = await api(server.url, 'POST', '/api/v1/incidents', reporter, { category_id: categories.body[0].id, title, description: 'Necesita atención.', urgency });
      assert.equal(r.status, 201, r.text);
    }
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);
    await page.goto(`${server.url}/reports`);
    await checkPage(page, 'reports-custom-form');

    // The same dimension twice: the API's rule, next to the group-by choice.
    await page.selectOption('#r-group-1', 'category');
    await page.selectOption('#r-group-2', 'category');
    await submit(page, 'form.custom-report');
    assert.match(await page.textContent('#r-group-e'), /categoría/);

    await page.selectOption('#r-group-2', 'urgency');
    await page.check('form.custom-report input[name=status][value=new]');
    await Promise.all([page.waitForNavigation(), page.click('form.custom-report button[value=json]')]);
    await checkPage(page, 'reports-custom-result');
    const headers = await page.$$eval('#custom-result thead th', (ths) => ths.map((th) => th.textContent.trim()));
    assert.deepEqual(headers.slice(0, 3), ['Categoría', 'Urgencia', 'Incidentes']);
    const rows = await page.$$eval('#custom-result tbody tr', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent.trim())));
    const urgencies = rows.map((r) => r[1]);
    assert.deepEqual(urgencies.map((u) => u.toLowerCase()).sort(), ['alta', 'baja'], JSON.stringify(rows));
    assert.ok(rows.every((r) => r[0] === categories.body[0].name_es), JSON.stringify(rows));
    assert.match(await page.textContent('#custom-result caption'), /Total: 2/);
    // The form keeps its choices, and downloads the same report as CSV.
    assert.equal(await page.inputValue('#r-group-2'), 'urgency');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('form.custom-report button[value=csv]')]);
    assert.match(download.suggestedFilename(), /\.csv$/);
    const { readFileSync } = await import('node:fs');
    const csv = readFileSync(await download.path(), 'utf8');
    assert.match(csv.split('\n')[0], /category/);
    assert.equal(csv.trim().split('\n').length, 3, csv);
    await ctx.close();

    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.staff);
    await small.goto(`${server.url}/reports`);
    await checkPage(small, 'reports-custom-form');
    await Promise.all([small.waitForNavigation(), small.click('form.custom-report button[value=json]')]);
    await checkPage(small, 'reports-custom-result');
    await phone.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});
