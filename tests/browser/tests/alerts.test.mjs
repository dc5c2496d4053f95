// The alerts page: staff have it open; a device posts the detections of a stress episode
// (the API batch with the device's own key) and the alert appears without a reload; staff
// acknowledge it and then resolve it, each with a note, and the history shows both; a silence
// on the subject is shown on the alert. Every page passes axe, stays under 100 KB and is
// photographed on phone and desktop. SQLite, and PostgreSQL when configured.
import { test } from 'node:test';
import assert from 'node:assert/strict';
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

/** A consenting subject in one of the demo staff member's departments, and a device's key. */
async function monitored(base) {
  const adminToken = await token(base, DEMO.admin);
  const staffToken = await token(base, DEMO.staff);
  const me = await api(base, 'GET', '/api/v1/me', staffToken);
  const department = me.body.departments[0];
  assert.ok(department, 'the demo staff member works a department');
  const suffix = `${process.pid % 1000}${Date.now() % 100000}`;
  const code = `EMP${suffix}`;
  const subject = await api(base, 'POST', '/api/v1/subjects', adminToken, {
    code, name: 'Ana Quispe', department_id: department, consent: true,
  });
  assert.equal(subject.status, 201, subject.text);
  const device = await api(base, 'POST', '/api/v1/devices', adminToken, { code: `cam-${suffix}`, name: 'Cámara del pasillo' });
  assert.equal(device.status, 201, device.text);
  return { code, subjectId: subject.body.id, key: device.body.key, staffToken };
}

/** A stress episode: `n` clear stress detections one second apart, ending now. */
function episode(code, n) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => ({
    client_id: `episode-${code}-${i}`, subject: code, label: i % 3 === 0 ? 'sad' : 'stress',
    confidence: 0.9, timestamp: new Date(now - (n - i) * 1000).toISOString(),
  }));
}

for (const backend of ['sqlite', 'postgres']) {
  test(`a stress episode raises an alert live on the open alerts page; staff acknowledge and resolve it (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('no PostgreSQL configured (VIGIA_TEST_DATABASE_URL)'); return; }
    const browser = await launch();
    try {
      const m = await monitored(server.url);
      const ctx = await context(browser, DESKTOP);
      const page = await ctx.newPage();
      await signInAs(page, server.url, DEMO.staff);
      await Promise.all([page.waitForNavigation(), page.click('nav a[href="/alerts"]')]);
      await checkPage(page, 'alerts');
      await page.waitForSelector('body[data-live="on"]', { timeout: 15000 });
      assert.ok(!(await page.textContent('#alert-rows')).includes(m.code), 'no alert yet');

      const sent = await api(server.url, 'POST', '/api/v1/detections/batch', m.key, { detections: episode(m.code, 12) });
      assert.equal(sent.status, 200, sent.text);
      assert.equal(sent.body.alerts_raised, 1, sent.text);
      // No reload: the rows are fetched again when the alerts topic announces the alert.
      await page.waitForFunction((code) => document.querySelector('#alert-rows').textContent.includes(code), m.code, { timeout: 15000 });
      const row = page.locator('#alert-rows tr[data-alert]', { hasText: m.code });
      assert.match(await row.textContent(), /alta/);
      assert.match(await row.textContent(), /pendiente/);
      await checkPage(page, 'alerts-live');

      await Promise.all([page.waitForNavigation(), row.locator('a').first().click()]);
      assert.match(page.url(), /\/alerts\/\d+$/);
      await checkPage(page, 'alert');
      // Another user acknowledges it through the API while the page is open: the status and
      // the history follow without a reload.
      await page.waitForSelector('body[data-live="on"]', { timeout: 15000 });
      const alertId = page.url().match(/\/alerts\/(\d+)$/)[1];
      const adminToken = await token(server.url, DEMO.admin);
      const acked = await api(server.url, 'POST', `/api/v1/alerts/${alertId}/acknowledge`, adminToken, { notes: 'Lo vi desde la central.' });
      assert.ok(acked.status < 300, acked.text);
      await page.waitForFunction(() => /reconocida/i.test(document.querySelector('#alert-status').textContent), null, { timeout: 15000 });
      await page.waitForFunction(() => /Lo vi desde la central/.test(document.querySelector('#history').textContent), null, { timeout: 15000 });
      assert.ok((await page.textContent('#live-status')).length > 0, 'the change is announced');
      await checkPage(page, 'alert-live');
      await page.reload();
      await page.fill('#resolve-notes', 'Se tomó la tarde libre.');
      await submit(page, 'form[action$="/resolve"]');
      assert.match(await page.textContent('#alert-status'), /resuelta/i);
      const history = await page.textContent('#history');
      assert.match(history, /Levantada/);
      assert.match(history, /Reconocida: Lo vi desde la central\./);
      assert.match(history, /Resuelta: Se tomó la tarde libre\./);
      assert.equal(await page.$('form[action$="/resolve"]'), null, 'a resolved alert takes no more changes');

      // A silence on the subject is shown on its alert and in the list.
      const until = new Date(Date.now() + 3600 * 1000).toISOString();
      const silence = await api(server.url, 'POST', '/api/v1/silences', m.staffToken, {
        subject_id: m.subjectId, ends_at: until, reason: 'Vacaciones de Ana',
      });
      assert.equal(silence.status, 201, silence.text);
      await page.reload();
      assert.match(await page.textContent('#silences'), /Vacaciones de Ana/);
      await checkPage(page, 'alert-silenced');
      const detail = page.url();
      await page.goto(`${server.url}/alerts?status=resolved`);
      assert.match(await page.locator('#alert-rows tr[data-alert]', { hasText: m.code }).textContent(), /Silenciada/);
      await ctx.close();

      const phone = await context(browser, PHONE);
      const small = await phone.newPage();
      await signInAs(small, server.url, DEMO.staff);
      await small.goto(`${server.url}/alerts`);
      await checkPage(small, 'alerts');
      await small.goto(detail);
      await checkPage(small, 'alert');
      await phone.close();
    } finally {
      await browser.close();
      await server.stop();
    }
  });
}
