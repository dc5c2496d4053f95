// The staff side: the console shows a new incident (created through the API) without a
// reload, staff acknowledge it and comment publicly and internally from the incident page;
// the dashboard draws its charts with data; an admin creates a department and a category,
// sets an SLA, creates an API key (shown once), sees the actions in the audit log, and runs a
// report and downloads it as XLSX. Every
// staff page passes axe, stays under 100 KB and is photographed on phone and desktop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEMO, DESKTOP, PHONE, api, checkPage, context, launch, startVigia, token,
} from '../lib/harness.mjs';

/** A category routed to one of the demo staff member's departments. */
async function staffCategory(base) {
  const staffToken = await token(base, DEMO.staff);
  const me = await api(base, 'GET', '/api/v1/me', staffToken);
  const categories = await api(base, 'GET', '/api/v1/categories', staffToken);
  const category = categories.body.find((c) => me.body.departments.includes(c.default_department_id));
  assert.ok(category, 'a category of the staff member\'s departments');
  return category;
}

async function signInAs(page, base, who) {
  await page.goto(`${base}/signin`);
  await page.fill('#f-email', who.email);
  await page.fill('#f-password', who.password);
  await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
}

async function submit(page, formSelector) {
  await Promise.all([page.waitForNavigation(), page.click(`${formSelector} button[type=submit]`)]);
}

test('a new incident appears in the open console; staff acknowledge it and comment in public and inside', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const category = await staffCategory(server.url);
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.staff);
    await page.goto(`${server.url}/console`);
    await checkPage(page, 'console');
    // Wait until the live stream is connected, then report through the API.
    await page.waitForSelector('body[data-live="on"]', { timeout: 15000 });
    const title = `Cortocircuito en el laboratorio ${Date.now() % 100000}`;
    const reporterToken = await token(server.url, DEMO.reporter);
    const created = await api(server.url, 'POST', '/api/v1/incidents', reporterToken, {
      category_id: category.id, title, description: 'Salen chispas del tomacorriente junto a la puerta.',
    });
    assert.equal(created.status, 201, created.text);
    const code = created.body.code;
    // No reload: the queue's rows are fetched again when the stream announces the incident.
    await page.waitForSelector(`#queue-rows a:text-is("${code}")`, { timeout: 15000 });
    assert.match(await page.textContent('#queue-rows'), new RegExp(title));

    await Promise.all([page.waitForNavigation(), page.click(`#queue-rows a:text-is("${code}")`)]);
    assert.match(page.url(), new RegExp(`/console/incidents/${code}$`));
    await checkPage(page, 'console-incident');
    // Only the moves the lifecycle allows are offered.
    const moves = await page.$$eval('#to option', (os) => os.map((o) => o.value));
    assert.ok(moves.includes('acknowledged') && !moves.includes('closed'), moves.join(','));
    await page.selectOption('#to', 'acknowledged');
    await submit(page, 'form[action$="/status"]');
    assert.match(await page.textContent('.facts'), /recibido/i);

    await page.fill('#body', 'Ya enviamos a un electricista.');
    await submit(page, 'form[action$="/comments"]');
    await page.fill('#body', 'Revisar el tablero del segundo piso.');
    await page.check('input[name=comment_visibility][value=internal]');
    await submit(page, 'form[action$="/comments"]');
    const comments = await page.textContent('.comments');
    assert.match(comments, /Ya enviamos a un electricista/);
    assert.match(comments, /Revisar el tablero del segundo piso/);
    // The reporter sees the public comment only.
    const seen = await api(server.url, 'GET', `/api/v1/incidents/${code}/comments`, reporterToken);
    assert.deepEqual(seen.body.map((c) => c.body), ['Ya enviamos a un electricista.']);
    await checkPage(page, 'console-incident-worked');

    // Someone else changes the incident through the API while the page is open and a comment
    // is half typed: the facts and the timeline follow without a reload, the typing stays.
    await page.waitForSelector('body[data-live="on"]', { timeout: 15000 });
    await page.fill('#body', 'Borrador que sigo escribiendo');
    const adminToken = await token(server.url, DEMO.admin);
    const moved = await api(server.url, 'POST', `/api/v1/incidents/${code}/transitions`, adminToken, { to: 'in_progress' });
    assert.equal(moved.status, 200, moved.text);
    const noted = await api(server.url, 'POST', `/api/v1/incidents/${code}/comments`, adminToken, {
      body: 'Llegó el repuesto del almacén.', visibility: 'internal',
    });
    assert.equal(noted.status, 201, noted.text);
    await page.waitForFunction(() => /en curso/i.test(document.querySelector('#incident-facts').textContent), null, { timeout: 15000 });
    await page.waitForFunction(() => /Llegó el repuesto del almacén/.test(document.querySelector('#incident-activity').textContent), null, { timeout: 15000 });
    assert.equal(await page.inputValue('#body'), 'Borrador que sigo escribiendo', 'the form being typed in is left alone');
    assert.ok((await page.textContent('#live-status')).length > 0, 'the change is announced');
    await checkPage(page, 'console-incident-live');

    // The forms still carry the version they were rendered from: "changed by someone else, reload".
    await page.selectOption('#to', { index: 0 });
    await submit(page, 'form[action$="/status"]');
    assert.match(await page.textContent('.alert.conflict'), /Otra persona cambió este incidente/);
    await ctx.close();

    // The phone viewport.
    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.staff);
    await small.goto(`${server.url}/console`);
    await checkPage(small, 'console');
    await small.goto(`${server.url}/console/incidents/${code}`);
    await checkPage(small, 'console-incident');
    await phone.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('the dashboard draws its charts with data, with every number in a table', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const category = await staffCategory(server.url);
    const reporterToken = await token(server.url, DEMO.reporter);
    for (const title of ['Fuga en el baño del pabellón B', 'Ventana rota en el aula 105']) {
      const r = await api(server.url, 'POST', '/api/v1/incidents', reporterToken, { category_id: category.id, title, description: 'Necesita atención.' });
      assert.equal(r.status, 201, r.text);
    }
    for (const viewport of [PHONE, DESKTOP]) {
      const ctx = await context(browser, viewport);
      const page = await ctx.newPage();
      await signInAs(page, server.url, DEMO.staff);
      await page.goto(`${server.url}/dashboard`);
      await checkPage(page, 'dashboard');
      const charts = await page.$$eval('figure.chart', (fs) => fs.map((f) => ({ id: f.id, svg: !!f.querySelector('svg'), rows: f.querySelectorAll('tbody tr').length })));
      assert.equal(charts.length, 7, JSON.stringify(charts));
      for (const c of charts) {
        assert.ok(c.svg && c.rows > 0, `chart ${c.id} drawn with data: ${JSON.stringify(c)}`);
      }
      const bars = await page.$$eval('#chart-category rect', (rs) => rs.map((r) => Number(r.getAttribute('width'))));
      assert.ok(bars.some((w) => w > 0), 'a category bar has length');
      const created = Number(await page.textContent('#kpi-created-today .kpi-value'));
      assert.ok(created >= 2, `created today: ${created}`);
      await ctx.close();
    }
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('an admin creates a department, a category with its SLA and an API key, and sees them in the audit log', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    await signInAs(page, server.url, DEMO.admin);
    await page.goto(`${server.url}/admin`);
    await checkPage(page, 'admin');

    await page.goto(`${server.url}/admin/departments`);
    await checkPage(page, 'admin-departments');
    // A bad address is refused next to its field.
    await page.fill('#d-name', 'Laboratorios');
    await page.fill('#d-contacts', 'no es un correo');
    await submit(page, 'main form.form');
    assert.ok(await page.isVisible('#d-contacts-e'), 'the error is next to the field');
    await checkPage(page, 'admin-departments-error');
    await page.fill('#d-contacts', 'laboratorios@campus.example.org');
    await page.fill('#d-escalation', 'jefatura@campus.example.org');
    await page.selectOption('#d-strategy', 'least_open');
    await submit(page, 'main form.form');
    assert.match(await page.textContent('main table'), /Laboratorios/);

    await page.goto(`${server.url}/admin/categories`);
    await checkPage(page, 'admin-categories');
    await page.fill('#c-es', 'Derrame químico');
    await page.fill('#c-en', 'Chemical spill');
    await page.selectOption('#c-dept', { label: 'Laboratorios' });
    await page.selectOption('#c-urgency', 'high');
    await submit(page, 'main form.form');
    await Promise.all([page.waitForNavigation(), page.click('main table a:text-is("Derrame químico")')]);
    await checkPage(page, 'admin-category');
    await page.fill('#ack-high', '10');
    await page.fill('#res-high', '2');
    await submit(page, 'form.sla:has(#ack-high)');
    assert.equal(await page.inputValue('#ack-high'), '10');
    assert.equal(await page.inputValue('#res-high'), '2');

    await page.goto(`${server.url}/admin/api-keys`);
    await checkPage(page, 'admin-api-keys');
    await page.fill('#k-name', 'Sensor de humo del laboratorio');
    await page.check('input[name=scopes][value="incidents:write"]');
    await page.check('input[name=scopes][value="catalog:read"]');
    await submit(page, 'main form.form');
    const secret = (await page.textContent('#new-key-secret')).trim();
    assert.match(secret, /^vak_/);
    await checkPage(page, 'admin-api-key-created');
    const works = await fetch(`${server.url}/api/v1/categories`, { headers: { 'x-api-key': secret } });
    assert.equal(works.status, 200);
    await page.goto(`${server.url}/admin/api-keys`);
    assert.equal(await page.$('#new-key-secret'), null, 'the secret is shown once');
    assert.ok(!(await page.content()).includes(secret));

    await page.goto(`${server.url}/admin/users`);
    await checkPage(page, 'admin-users');
    await Promise.all([page.waitForNavigation(), page.click('main table a >> nth=0')]);
    await checkPage(page, 'admin-user');

    await page.goto(`${server.url}/admin/audit`);
    await checkPage(page, 'admin-audit');
    const audit = await page.textContent('main table');
    for (const action of ['department.created', 'category.created', 'api_key.created']) {
      assert.match(audit, new RegExp(action.replace('.', '\\.')), `${action} in the audit log`);
    }
    await page.fill('#a-entity', 'department');
    await submit(page, 'form.filters');
    assert.doesNotMatch(await page.textContent('main table'), /api_key\.created/);
    // A report run now and downloaded as XLSX.
    await page.goto(`${server.url}/reports`);
    await checkPage(page, 'reports');
    await submit(page, 'form[action="/reports/run"]');
    assert.match(page.url(), /\/reports\/\d+\?ran=1$/);
    await checkPage(page, 'report');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('ul.downloads a:text-is("XLSX")')]);
    const file = await download.path();
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(file);
    assert.ok(bytes.length > 1000, `xlsx of ${bytes.length} bytes`);
    assert.equal(bytes.subarray(0, 2).toString(), 'PK', 'an XLSX file is a zip');
    assert.match(download.suggestedFilename(), /\.xlsx$/);
    await ctx.close();

    // Phone viewport of the admin pages.
    const phone = await context(browser, PHONE);
    const small = await phone.newPage();
    await signInAs(small, server.url, DEMO.admin);
    for (const [name, path] of [['admin', '/admin'], ['admin-departments', '/admin/departments'], ['admin-categories', '/admin/categories'], ['admin-api-keys', '/admin/api-keys'], ['admin-users', '/admin/users'], ['admin-audit', '/admin/audit'], ['dashboard-admin', '/dashboard'], ['reports', '/reports']]) {
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
