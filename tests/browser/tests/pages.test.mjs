// Every page in a phone (360 px) and a desktop viewport: axe-core finds no serious or critical
// violation, less than 100 KB is transferred, and a screenshot is written (tests/browser/
// screenshots). Also the English pages and the HTML error page.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEMO, DESKTOP, PHONE, api, checkPage, context, launch, newPerson, signIn, signUp, startVigia, token,
} from '../lib/harness.mjs';

test('every page passes axe, stays under 100 KB and is photographed on phone and desktop', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const person = newPerson();
    for (const viewport of [PHONE, DESKTOP]) {
      // A cold context per viewport: nothing cached, so sizes count every asset.
      const ctx = await context(browser, viewport);
      const page = await ctx.newPage();
      for (const [name, path] of [['home', '/'], ['signin', '/signin'], ['board-empty', '/board']]) {
        await page.goto(`${server.url}${path}`);
        await checkPage(page, name);
      }
      const missing = await page.goto(`${server.url}/no/such/page`);
      assert.equal(missing.status(), 404);
      await checkPage(page, 'not-found');
      if (viewport === PHONE) {
        await signUp(page, server.url, person);
      } else {
        await signIn(page, server.url, person);
      }
      const t = await token(server.url, { email: person.email, password: person.password });
      const r = await api(server.url, 'POST', '/api/v1/incidents', t, { category_id: 1, title: `Proyector sin señal (${viewport.width})`, description: 'El proyector del aula 201 no muestra nada.', visibility: 'public' });
      assert.equal(r.status, 201, r.text);
      for (const [name, path] of [['home-signed-in', '/'], ['mine-list', '/my'], ['incident-public', `/incidents/${r.body.code}`], ['board-list', '/board'], ['profile', '/profile'], ['password', '/password'], ['report-empty', '/report']]) {
        const response = await page.goto(`${server.url}${path}`);
        assert.equal(response.status(), 200, path);
        await checkPage(page, name);
      }
      if (viewport === DESKTOP) {
        // Password change (the API's rules), sign out, sign in with the new password.
        await page.goto(`${server.url}/password`);
        await page.fill('#f-current_password', 'not the password');
        await page.fill('#f-new_password', 'Otra clave bastante larga');
        await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
        assert.equal(await page.textContent('#f-current_password-error'), 'No es tu contraseña actual');
        await page.fill('#f-current_password', person.password);
        await page.fill('#f-new_password', 'Otra clave bastante larga');
        await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
        assert.match(await page.textContent('.notice'), /Contraseña cambiada/);
        await Promise.all([page.waitForNavigation(), page.click('header form[action="/signout"] button')]);
        const after = await page.goto(`${server.url}/my`);
        assert.equal(after.status(), 401, 'signed out: the sign-in form instead of the page');
        assert.ok(await page.$('form[action="/signin"]'));
        assert.equal((await api(server.url, 'POST', '/api/v1/auth/login', null, { email: person.email, password: person.password })).status, 401);
        await page.fill('#f-email', person.email);
        await page.fill('#f-password', 'Otra clave bastante larga');
        await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
        assert.match(page.url(), /\/my$/, 'back to the page that asked for a sign-in');
      }
      await ctx.close();
    }
    // English.
    const ctx = await context(browser, PHONE, { locale: 'en-GB' });
    const page = await ctx.newPage();
    await page.goto(`${server.url}/board`);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await checkPage(page, 'board-en');
    await signIn(page, server.url, DEMO.staff);
    // The staff member's account language is Spanish: it wins over the browser's.
    await page.goto(`${server.url}/profile`);
    assert.equal(await page.getAttribute('html', 'lang'), 'es');
    await page.selectOption('#f-locale', 'en');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await checkPage(page, 'profile-staff-en');
    // Staff mark themselves away (no automatic assignments), as PATCH /api/v1/me does.
    await page.check('#f-away');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    const staffToken = await token(server.url, DEMO.staff);
    const me = await api(server.url, 'GET', '/api/v1/me', staffToken);
    assert.equal(me.body.away, true);
    assert.equal(me.body.locale, 'en');
    await page.goto(`${server.url}/report`);
    await checkPage(page, 'report-en');
    await ctx.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});
