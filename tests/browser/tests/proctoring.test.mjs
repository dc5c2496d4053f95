// Exam proctoring in the browser, with the real dlib models (scripts/media-setup.sh puts them
// and the test photos under ~/.cache/vigia-models): an admin creates an exam and a participant,
// a photo without a face is refused next to its field, the right photo is enrolled; the
// proctor's live view is open when a capture of another person is posted through the API; the
// alert appears on the open page without a reload, with the face box drawn over the capture;
// the proctor marks it confirmed. Every page passes axe, stays under 100 KB and is
// photographed (on SQLite; the same flow runs on PostgreSQL when VIGIA_TEST_DATABASE_URL is
// set).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  DEMO, DESKTOP, PHONE, checkPage, context, launch, signIn, startVigia, token,
} from '../lib/harness.mjs';

const PHOTOS = join(process.env.VIGIA_MODELS_DIR || join(homedir(), '.cache', 'vigia-models'), 'test-images');
const photo = (name) => readFileSync(join(PHOTOS, name));

/** A `datetime-local` value, in UTC as the form reads it. */
const utcLocal = (offsetMs) => new Date(Date.now() + offsetMs).toISOString().slice(0, 16);

async function submit(page, formSelector) {
  await Promise.all([page.waitForNavigation(), page.click(`${formSelector} button[type=submit]`)]);
}

for (const backend of ['sqlite', 'postgres']) {
  test(`a capture of the wrong person raises an alert on the open proctor page, and the proctor confirms it (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('VIGIA_TEST_DATABASE_URL is not set'); return; }
    // Pages are checked (axe, weight) and photographed once, on SQLite.
    const check = (page, name) => (backend === 'sqlite' ? checkPage(page, name) : Promise.resolve());
    const browser = await launch();
    try {
      const ctx = await context(browser, DESKTOP);
      const page = await ctx.newPage();
      await signIn(page, server.url, DEMO.admin);
      await page.goto(`${server.url}/proctoring`);
      await check(page, 'proctoring-exams');

      // The exam, through the form.
      const code = `EXB${Date.now() % 100000}`;
      await page.fill('#x-code', code);
      await page.fill('#x-title', 'Cálculo I — final');
      await page.fill('#x-starts_at', utcLocal(-3600e3));
      await page.fill('#x-ends_at', utcLocal(2 * 3600e3));
      await page.selectOption('#x-category', { index: 1 });
      await submit(page, 'form[action="/proctoring"]');
      const examUrl = page.url();
      const examId = Number(examUrl.match(/\/proctoring\/exams\/(\d+)$/)?.[1]);
      assert.ok(examId > 0, examUrl);
      assert.match(await page.textContent('h1'), new RegExp(code));

      // A participant, then a reference photo without a face: refused next to the file field.
      await page.fill('#p-external', 'user_456');
      await page.fill('#p-name', 'Barack');
      await submit(page, `form[action="/proctoring/exams/${examId}/participants"]`);
      const row = page.locator('tr', { hasText: 'user_456' });
      const fileInput = row.locator('input[type=file]');
      await fileInput.setInputFiles({ name: 'camara.png', mimeType: 'image/png', buffer: photo('camera.png') });
      await Promise.all([page.waitForNavigation(), row.locator('button[type=submit]').click()]);
      const refused = page.locator('tr', { hasText: 'user_456' }).locator('.field-error');
      assert.match(await refused.textContent(), /No se detecta ningún rostro en la foto/);
      assert.equal(await page.locator('tr', { hasText: 'user_456' }).locator('input[type=file]').getAttribute('aria-invalid'), 'true');
      await check(page, 'proctoring-exam-refused');

      // The right photo is enrolled.
      await page.locator('tr', { hasText: 'user_456' }).locator('input[type=file]')
        .setInputFiles({ name: 'obama.jpg', mimeType: 'image/jpeg', buffer: photo('obama.jpg') });
      await Promise.all([page.waitForNavigation(), page.locator('tr', { hasText: 'user_456' }).locator('button[type=submit]').click()]);
      assert.match(await page.textContent('tr:has-text("user_456")'), /Referencia registrada/);
      await check(page, 'proctoring-exam');

      // The proctor's live view, open and connected to the stream.
      await page.goto(`${server.url}/proctoring/exams/${examId}/live`);
      await check(page, 'proctoring-live-empty');
      await page.waitForSelector('body[data-live="on"]', { timeout: 15000 });

      // A capture of someone else arrives through the API.
      const adminToken = await token(server.url, DEMO.admin);
      const participants = await (await fetch(`${server.url}/api/v1/exams/${examId}/participants`, {
        headers: { authorization: `Bearer ${adminToken}` },
      })).json();
      const participantId = participants[0].id;
      const posted = await fetch(`${server.url}/api/v1/exams/${examId}/participants/${participantId}/captures?name=cap_001.jpg`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/octet-stream' },
        body: photo('biden.jpg'),
      });
      const postedText = await posted.text();
      assert.equal(posted.status, 202, postedText);
      const captureId = JSON.parse(postedText).id;

      // No reload: the alert appears when the stream announces the analysed capture.
      const alert = page.locator(`#alert-${captureId}`);
      await alert.waitFor({ timeout: 60000 });
      assert.match(await alert.textContent(), /Alerta: El rostro no coincide con la referencia/);
      assert.match(await page.textContent('#proctor-live tbody'), /Alerta/);
      const boxes = await page.$$eval(`#capture-${captureId} rect.face-box`, (rs) => rs.map((r) => Number(r.getAttribute('width'))));
      assert.equal(boxes.length, 1, 'one face box over the capture');
      assert.ok(boxes[0] > 0);
      await check(page, 'proctoring-live-alert');

      // The proctor confirms it.
      await Promise.all([page.waitForNavigation(), alert.locator('button[value=confirmed]').click()]);
      assert.match(await page.textContent(`#alert-${captureId}`), /Revisada: Confirmada/);
      const reviewed = await (await fetch(`${server.url}/api/v1/captures/${captureId}`, {
        headers: { authorization: `Bearer ${adminToken}` },
      })).json();
      assert.equal(reviewed.review, 'confirmed');
      await ctx.close();

      // The phone viewport.
      const phone = await context(browser, PHONE);
      const small = await phone.newPage();
      await signIn(small, server.url, DEMO.admin);
      await small.goto(`${server.url}/proctoring/exams/${examId}/live`);
      await check(small, 'proctoring-live');
      await phone.close();
    } finally {
      await browser.close();
      await server.stop();
    }
  });
}
