// Forms rejected by the server show the error next to the field, in Spanish and in English;
// a form posted from another origin is refused and changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import {
  DESKTOP, PHONE, api, checkPage, context, launch, newPerson, signUp, startVigia,
} from '../lib/harness.mjs';

test('a rejected form shows each error next to its field, in Spanish and in English', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const ctx = await context(browser, PHONE);
    const page = await ctx.newPage();
    await page.goto(`${server.url}/signup`);
    await page.fill('#f-display_name', 'Ana');
    await page.fill('#f-email', 'no-es-un-correo');
    await page.fill('#f-password', 'corta');
    await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
    assert.equal(await page.textContent('#f-email-error'), 'Debe ser un correo como ana@example.org');
    assert.equal(await page.textContent('#f-password-error'), 'Es demasiado corta: usa al menos 10 caracteres');
    assert.equal(await page.getAttribute('#f-email', 'aria-invalid'), 'true');
    assert.equal(await page.getAttribute('#f-email', 'aria-describedby'), 'f-email-error');
    assert.equal(await page.inputValue('#f-email'), 'no-es-un-correo', 'the values are kept');
    assert.equal(await page.$('#f-display_name-error'), null, 'a valid field has no error');
    await checkPage(page, 'signup-errors-es');

    // The switch to English, then the same mistakes.
    await Promise.all([page.waitForNavigation(), page.click('form.lang button')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.fill('#f-display_name', 'Ana');
    await page.fill('#f-email', 'no-es-un-correo');
    await page.fill('#f-password', 'corta');
    await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
    assert.equal(await page.textContent('#f-email-error'), 'Must be an e-mail address such as ana@example.org');
    assert.equal(await page.textContent('#f-password-error'), 'Is too short: use at least 10 characters');
    await checkPage(page, 'signup-errors-en');

    // The report form: a missing category and title, in English then Spanish.
    const person = newPerson();
    await signUp(page, server.url, person);
    await page.goto(`${server.url}/report`);
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    assert.equal(await page.textContent('#f-category_id-error'), 'Is required');
    assert.equal(await page.textContent('#f-title-error'), 'Must not be empty');
    await page.goto(`${server.url}/profile`);
    await page.selectOption('#f-locale', 'es');
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    await page.goto(`${server.url}/report`);
    await page.fill('#f-title', 'x'.repeat(201));
    await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
    assert.equal(await page.textContent('#f-category_id-error'), 'Es obligatorio');
    assert.equal(await page.textContent('#f-title-error'), 'Debe tener como máximo 200 caracteres');
    await checkPage(page, 'report-errors');
    const mine = await page.request.get(`${server.url}/my`);
    assert.ok(!(await mine.text()).includes('xxxxxxxxxx'), 'a rejected report creates nothing');
    await ctx.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});

test('a form posted from another origin is refused and changes nothing', async () => {
  const server = await startVigia();
  const browser = await launch();
  // Another site, with forms aimed at Vigía.
  const evil = createServer((req, res) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html lang="en"><title>evil</title>
      <form id="signup" method="post" action="${server.url}/signup">
        <input name="display_name" value="Mallory"><input name="email" value="mallory@evil.example.org">
        <input name="password" value="una-clave-larga-123"><button>go</button></form>
      <form id="profile" method="post" action="${server.url}/profile">
        <input name="display_name" value="Hacked"><input name="locale" value="en"><button>go</button></form>`);
  });
  await new Promise((r) => evil.listen(0, '127.0.0.1', r));
  const evilUrl = `http://127.0.0.1:${evil.address().port}`;
  try {
    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    const person = newPerson();
    await signUp(page, server.url, person);

    await page.goto(evilUrl);
    const [response] = await Promise.all([page.waitForNavigation(), page.click('#signup button')]);
    assert.equal(response.status(), 403);
    assert.match(await page.textContent('main'), /no vino de esta página|did not come from this/);
    const login = await api(server.url, 'POST', '/api/v1/auth/login', null, { email: 'mallory@evil.example.org', password: 'una-clave-larga-123' });
    assert.equal(login.status, 401, 'no account was created');

    await page.goto(evilUrl);
    const [second] = await Promise.all([page.waitForNavigation(), page.click('#profile button')]);
    assert.equal(second.status(), 403);
    await page.goto(`${server.url}/profile`);
    assert.equal(await page.inputValue('#f-display_name'), person.name, 'the profile is unchanged');

    // Same origin but without the form's CSRF token: refused too.
    const forged = await page.request.post(`${server.url}/profile`, {
      form: { display_name: 'Hacked', locale: 'es' }, headers: { origin: server.url }, maxRedirects: 0,
    });
    assert.equal(forged.status(), 403);
    await ctx.close();
  } finally {
    evil.close();
    await browser.close();
    await server.stop();
  }
});
