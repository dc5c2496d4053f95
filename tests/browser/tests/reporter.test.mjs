// The main flow: a reporter signs up on a phone, reports an incident with a photo and a zone
// picked on the map, and sees its page; staff (the demo staff account, through the API)
// acknowledges it and comments publicly and internally; the reporter's open pages show the new
// status and the public comment live, never the internal note. On SQLite, and on PostgreSQL
// when VIGIA_TEST_DATABASE_URL is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEMO, PHONE, api, checkPage, context, launch, newPerson, signUp, startVigia, token,
} from '../lib/harness.mjs';

for (const backend of ['sqlite', 'postgres']) {
  test(`a reporter follows their report live while staff work it (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('VIGIA_TEST_DATABASE_URL is not set'); return; }
    const browser = await launch();
    const shots = backend === 'sqlite';
    const check = (page, name) => (shots ? checkPage(page, name) : Promise.resolve());
    try {
      const ctx = await context(browser, PHONE);
      const page = await ctx.newPage();
      const person = newPerson();

      await page.goto(`${server.url}/signup`);
      await check(page, 'signup');
      await signUp(page, server.url, person);
      assert.match(page.url(), /\/report$/, 'a new account goes straight to the report form');
      await check(page, 'report');

      await page.selectOption('#f-category_id', { label: 'Fuga de agua' });
      await page.fill('#f-title', 'Fuga en el baño de la biblioteca');
      await page.fill('#f-description', 'Sale agua bajo el lavadero del segundo piso.');
      await page.fill('#f-location_text', 'Segundo piso, baño de mujeres');
      // The zone, picked on the map: the shape named Biblioteca checks its radio button.
      const zoneId = await page.getAttribute('label:text-is("Biblioteca")', 'for');
      const id = zoneId.replace('zone-', '');
      await page.click(`svg.map [data-zone="${id}"]`);
      assert.equal(await page.isChecked(`#zone-${id}`), true, 'clicking the map picks the zone');
      assert.equal(await page.getAttribute(`svg.map [data-zone="${id}"]`, 'class'), 'zone selected');
      // A real PNG (a screenshot of the page), previewed before it is sent.
      const png = await page.screenshot({ clip: { x: 0, y: 0, width: 120, height: 90 } });
      await page.setInputFiles('#f-photo', { name: 'fuga.png', mimeType: 'image/png', buffer: png });
      await page.waitForSelector('#photo-preview img');
      if (shots) await page.screenshot({ path: `${process.env.VIGIA_SCREENSHOTS || 'screenshots'}/report-filled-phone.png`, fullPage: true });

      await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
      const match = page.url().match(/\/incidents\/(INC-\d{6})\?new=1$/);
      assert.ok(match, `lands on the new incident's page: ${page.url()}`);
      const code = match[1];
      assert.match(await page.textContent('.notice'), new RegExp(code));
      assert.equal(await page.textContent('h1'), 'Fuga en el baño de la biblioteca');
      assert.match(await page.textContent('.facts'), /Biblioteca/);
      assert.match(await page.textContent('.facts'), /Nuevo/);
      // The photo is attached, with its thumbnail.
      await page.waitForSelector('.attachments img');
      const thumbOk = await page.$eval('.attachments img', (img) => img.complete && img.naturalWidth > 0);
      assert.ok(thumbOk, 'the thumbnail loads');
      await check(page, 'incident');

      // My incidents, open in a second tab.
      const mine = await ctx.newPage();
      await mine.goto(`${server.url}/my`);
      await check(mine, 'mine');
      assert.equal(await mine.getAttribute(`[data-code="${code}"] [data-status]`, 'data-status'), 'new');
      // Both pages are live (their EventSource is open) before staff act.
      await page.waitForFunction(() => document.body.getAttribute('data-live') === 'on');
      await mine.waitForFunction(() => document.body.getAttribute('data-live') === 'on');
      await page.evaluate(() => { window.notReloaded = true; });
      await mine.evaluate(() => { window.notReloaded = true; });

      const staff = await token(server.url, DEMO.staff);
      let r = await api(server.url, 'POST', `/api/v1/incidents/${code}/transitions`, staff, { to: 'acknowledged' });
      assert.equal(r.status, 200, r.text);
      r = await api(server.url, 'POST', `/api/v1/incidents/${code}/comments`, staff, { body: 'NOTA INTERNA: revisar la tubería principal', visibility: 'internal' });
      assert.equal(r.status, 201, r.text);
      r = await api(server.url, 'POST', `/api/v1/incidents/${code}/comments`, staff, { body: 'Un técnico va en camino.', visibility: 'public' });
      assert.equal(r.status, 201, r.text);

      await page.waitForFunction(() => document.querySelector('#incident-facts [data-status]')?.getAttribute('data-status') === 'acknowledged', null, { timeout: 15000 });
      await page.waitForFunction(() => document.querySelector('#incident-live .comments')?.textContent.includes('Un técnico va en camino.'), null, { timeout: 15000 });
      await mine.waitForFunction((c) => document.querySelector(`[data-code="${c}"] [data-status]`)?.getAttribute('data-status') === 'acknowledged', code, { timeout: 15000 });
      assert.equal(await page.evaluate(() => window.notReloaded), true, 'the incident page changed without a reload');
      assert.equal(await mine.evaluate(() => window.notReloaded), true, 'my incidents changed without a reload');
      assert.match(await page.textContent('#incident-facts .facts'), /Recibido/);
      // The internal note never reaches the reporter: not live, not on a reload.
      await page.waitForTimeout(500);
      assert.ok(!(await page.content()).includes('NOTA INTERNA'), 'no internal note on the live page');
      await page.reload();
      assert.ok(!(await page.content()).includes('NOTA INTERNA'), 'no internal note after a reload');
      assert.match(await page.textContent('.timeline'), /Estado: Recibido/);
      if (shots) await checkPage(page, 'incident-acknowledged');
      await ctx.close();
    } finally {
      await browser.close();
      await server.stop();
    }
  });
}
