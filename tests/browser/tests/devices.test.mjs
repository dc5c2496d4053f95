// The devices pages: an admin registers a monitored subject with consent and a device (its key
// shown once), the device posts detections with that key through the API, and the live
// detections dashboard shows them — and, open, shows the next ones without a reload, from the
// real-time stream (at most one refresh a second; the poll only without EventSource); the admin
// creates an alert rule and a silence, and ends the silence. A rejected form keeps its values
// and shows the message next to the field. Every page passes axe, stays under 100 KB and is
// photographed on phone and desktop (SQLite); the same flow runs on PostgreSQL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEMO, DESKTOP, PHONE, api, checkPage, context, launch, startVigia,
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

function detections(prefix, subject, labels, n) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    client_id: `${prefix}-${i}`,
    subject,
    label: labels[i % labels.length],
    confidence: 0.7,
    timestamp: new Date(now - (n - i) * 1000).toISOString(),
  }));
}

for (const backend of ['sqlite', 'postgres']) {
  test(`an admin registers a subject with consent and a device, whose detections appear on the live dashboard; then a rule and a silence (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('VIGIA_TEST_DATABASE_URL is not set'); return; }
    const browser = await launch();
    // Axe, sizes and screenshots once (SQLite); the flow on both databases.
    const shots = backend === 'sqlite';
    const check = (page, name) => (shots ? checkPage(page, name) : Promise.resolve());
    try {
      const ctx = await context(browser, DESKTOP);
      const page = await ctx.newPage();
      await signInAs(page, server.url, DEMO.admin);
      const code = `EMP-${Date.now() % 100000}`;

      // A subject: a refused form first (no code), then the real one with consent.
      await page.goto(`${server.url}/admin/subjects`);
      await check(page, 'devices-subjects');
      await page.fill('#s-name', 'Ana Quispe');
      await page.selectOption('#s-department', { index: 1 });
      await submit(page, 'main form.form');
      assert.ok(await page.isVisible('#s-code-e'), 'the error is next to the code');
      assert.equal(await page.inputValue('#s-name'), 'Ana Quispe', 'what was typed is kept');
      await page.fill('#s-code', code);
      await page.check('#s-consent');
      await submit(page, 'main form.form');
      assert.match(page.url(), /\/admin\/subjects\/\d+\?saved=1$/);
      assert.match(await page.textContent('#consent-state'), /Consentimiento registrado/);
      await check(page, 'devices-subject');

      // A device: its key is shown once, on the answer to the form.
      const deviceCode = `cam-${Date.now() % 100000}`;
      await page.goto(`${server.url}/admin/devices`);
      await check(page, 'devices-devices');
      await page.fill('#d-code', deviceCode);
      await page.fill('#d-name', 'Cámara de la línea 1');
      await page.fill('#d-location', 'Nave 2, puerta norte');
      await submit(page, 'main form.form');
      const key = (await page.textContent('#new-key-secret')).trim();
      assert.match(key, /^vak_/);
      await check(page, 'devices-device-created');
      await page.goto(`${server.url}/admin/devices`);
      assert.equal(await page.$('#new-key-secret'), null, 'the key is shown once');
      assert.ok(!(await page.content()).includes(key));
      assert.match(await page.textContent('main table'), new RegExp(deviceCode));

      // The device sends detections with its key.
      const sent = await api(server.url, 'POST', '/api/v1/detections/batch', key, { detections: detections('a', code, ['stress', 'happy', 'neutral'], 6) });
      assert.equal(sent.status, 200, sent.text);
      assert.equal(sent.body.accepted, 6, sent.text);

      // The dashboard shows them: KPIs, label mix, per-hour chart, top subjects.
      await page.goto(`${server.url}/detections`);
      await check(page, 'devices-dashboard');
      const count = async () => Number((await page.textContent('#kpi-detections .kpi-value')).replace(/\D/g, ''));
      assert.ok(await count() >= 6, `detections in the last hour: ${await count()}`);
      const charts = await page.$$eval('figure.chart', (fs) => fs.map((f) => ({ id: f.id, svg: !!f.querySelector('svg'), rows: f.querySelectorAll('tbody tr').length })));
      assert.deepEqual(charts.map((c) => c.id), ['chart-labels', 'chart-per-hour']);
      for (const c of charts) {
        assert.ok(c.svg && c.rows > 0, `chart ${c.id} drawn with data: ${JSON.stringify(c)}`);
      }
      assert.match(await page.textContent('#top-subjects'), new RegExp(code));
      assert.match(await page.textContent('#per-device'), new RegExp(deviceCode));
      // Open, it shows the next detections without a reload: the stream's detections.tick
      // makes it fetch its content again within a few seconds (the 10 s poll is only the
      // fallback without EventSource, and does not run while the stream does).
      await page.waitForFunction(() => document.body.getAttribute('data-live') === 'on', null, { timeout: 5000 });
      const liveFetches = [];
      page.on('request', (r) => { if (new URL(r.url()).pathname === '/detections/live') { liveFetches.push(Date.now()); } });
      const before = await count();
      const postedAt = Date.now();
      const more = await api(server.url, 'POST', '/api/v1/detections/batch', key, { detections: detections('b', code, ['sad'], 4) });
      assert.equal(more.body.accepted, 4, more.text);
      await page.waitForFunction((n) => {
        const el = document.querySelector('#kpi-detections .kpi-value');
        return el && Number(el.textContent.replace(/\D/g, '')) >= n;
      }, before + 4, { timeout: 5000 });
      assert.ok(Date.now() - postedAt < 5000, 'the refresh came from the stream, well before a poll');
      assert.equal(await page.getAttribute('#detections-board', 'data-refreshed-by'), 'stream');
      // A steady flow (a batch every 250 ms for 3 s, so a tick every second) refetches the
      // content about once a second, not once per event.
      const flowStart = Date.now();
      for (let i = 0; i < 12; i += 1) {
        const r = await api(server.url, 'POST', '/api/v1/detections/batch', key, { detections: detections(`f${i}`, code, ['happy'], 2) });
        assert.equal(r.body.accepted, 2, r.text);
        await new Promise((done) => { setTimeout(done, 250); });
      }
      await new Promise((done) => { setTimeout(done, 1500); });
      const duringFlow = liveFetches.filter((at) => at >= flowStart);
      const flowSecs = (Date.now() - flowStart) / 1000;
      assert.ok(duringFlow.length >= 2, `the flow refreshed the page: ${duringFlow.length}`);
      assert.ok(duringFlow.length <= Math.ceil(flowSecs) + 1, `${duringFlow.length} fetches in ${flowSecs} s`);
      for (let i = 1; i < duringFlow.length; i += 1) {
        assert.ok(duringFlow[i] - duringFlow[i - 1] >= 900, `fetches ${duringFlow[i] - duringFlow[i - 1]} ms apart`);
      }

      // Without EventSource the page falls back to its 10 s poll (SQLite only: it takes 10 s).
      if (shots) {
        const fallbackCtx = await context(browser, DESKTOP);
        await fallbackCtx.addInitScript(() => { delete window.EventSource; });
        const old = await fallbackCtx.newPage();
        await signInAs(old, server.url, DEMO.admin);
        await old.goto(`${server.url}/detections`);
        const oldCount = async () => Number((await old.textContent('#kpi-detections .kpi-value')).replace(/\D/g, ''));
        const shown = await oldCount();
        const extra = await api(server.url, 'POST', '/api/v1/detections/batch', key, { detections: detections('c', code, ['neutral'], 3) });
        assert.equal(extra.body.accepted, 3, extra.text);
        await old.waitForFunction((n) => {
          const el = document.querySelector('#kpi-detections .kpi-value');
          return el && Number(el.textContent.replace(/\D/g, '')) >= n;
        }, shown + 3, { timeout: 15000 });
        assert.equal(await old.getAttribute('#detections-board', 'data-refreshed-by'), 'poll');
        assert.equal(await old.evaluate(() => document.body.getAttribute('data-live')), null, 'no stream without EventSource');
        await fallbackCtx.close();
      }

      // An alert rule.
      await page.goto(`${server.url}/admin/alert-rules`);
      await check(page, 'devices-rules');
      await page.fill('#r-name', 'Fatiga sostenida');
      await page.uncheck('input[name=labels][value=stress]');
      await page.uncheck('input[name=labels][value=sad]');
      await page.check('input[name=labels][value=fatigue]');
      await page.fill('#r-min-count', '5');
      await page.fill('#r-window', '10');
      await page.fill('#r-floor', '1.5');
      await submit(page, 'main form.form');
      assert.ok(await page.isVisible('#r-floor-e'), 'a floor above 1 is refused next to its field');
      assert.equal(await page.inputValue('#r-name'), 'Fatiga sostenida');
      await page.fill('#r-floor', '0.6');
      await submit(page, 'main form.form');
      assert.match(page.url(), /\/admin\/alert-rules\?saved=1$/);
      assert.match(await page.textContent('main table'), /Fatiga sostenida/);
      const rules = await api(server.url, 'GET', '/api/v1/alert-rules', (await api(server.url, 'POST', '/api/v1/auth/login', null, DEMO.admin)).body.access_token);
      const rule = rules.body.find((r) => r.name === 'Fatiga sostenida');
      assert.deepEqual([rule.labels, rule.min_count, rule.window_secs, rule.confidence_floor], [['fatigue'], 5, 600, 0.6]);
      await Promise.all([page.waitForNavigation(), page.click('main table a:text-is("Fatiga sostenida")')]);
      await check(page, 'devices-rule');

      // A silence of the subject, with a reason; then ended.
      await page.goto(`${server.url}/silences`);
      await check(page, 'devices-silences');
      await page.selectOption('#x-subject', { label: `${code} · Ana Quispe` });
      await page.fill('#x-reason', 'Capacitación en sala de reuniones');
      await submit(page, 'main form.form');
      assert.match(page.url(), /\/silences\?saved=1$/);
      assert.match(await page.textContent('#silences'), /Capacitación en sala de reuniones/);
      await check(page, 'devices-silences-one');
      await Promise.all([page.waitForNavigation(), page.click('#silences button:has-text("Terminar ahora")')]);
      assert.doesNotMatch(await page.textContent('#silences'), /Capacitación/);
      await page.goto(`${server.url}/silences?all=1`);
      assert.match(await page.textContent('#silences'), /Capacitación en sala de reuniones/);
      await ctx.close();

      // The phone viewport of every page.
      if (!shots) { return; }
      const phone = await context(browser, PHONE);
      const small = await phone.newPage();
      await signInAs(small, server.url, DEMO.admin);
      for (const [name, path] of [['devices-dashboard', '/detections'], ['devices-subjects', '/admin/subjects'], ['devices-devices', '/admin/devices'], ['devices-rules', '/admin/alert-rules'], ['devices-silences', '/silences?all=1']]) {
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
}
