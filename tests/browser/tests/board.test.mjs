// The public board: readable without signing in; a second reporter's "me too" vote changes an
// incident's count and its place in the zone and category rankings; a second vote is not
// counted; the vote can be taken back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DESKTOP, PHONE, api, checkPage, context, launch, newPerson, signIn, startVigia, token,
} from '../lib/harness.mjs';

async function reporterToken(base) {
  const p = newPerson('first');
  const r = await api(base, 'POST', '/api/v1/auth/register', null, { email: p.email, password: p.password, display_name: p.name });
  assert.equal(r.status, 201, r.text);
  return token(base, { email: p.email, password: p.password });
}

const votesOf = (page, code) => page.getAttribute(`#board-list [data-code="${code}"] .votes`, 'data-votes');
const rankOf = (page, section, code) => page.$$eval(`#${section} li[data-code]`, (items, c) => items.map((li) => li.getAttribute('data-code')).indexOf(c), code);

test('a second reporter votes on a public incident once; counts and rankings follow', async () => {
  const server = await startVigia();
  const browser = await launch();
  try {
    const first = await reporterToken(server.url);
    const zones = (await api(server.url, 'GET', '/api/v1/zones', first)).body;
    const cafeteria = zones.find((z) => z.name === 'Cafetería').id;
    const categories = (await api(server.url, 'GET', '/api/v1/categories', first)).body;
    const cleaning = categories.find((c) => c.name_es === 'Limpieza').id;
    const codes = [];
    for (const title of ['Mesas sucias en la cafetería', 'Basurero lleno en la cafetería']) {
      const r = await api(server.url, 'POST', '/api/v1/incidents', first, { category_id: cleaning, title, description: 'Desde la mañana.', zone_id: cafeteria, visibility: 'public' });
      assert.equal(r.status, 201, r.text);
      codes.push(r.body.code);
    }
    const [older, newer] = codes;

    // Readable without signing in.
    const visitor = await context(browser, PHONE);
    const anon = await visitor.newPage();
    await anon.goto(`${server.url}/board`);
    assert.equal(anon.url(), `${server.url}/board`);
    await checkPage(anon, 'board-visitor');
    assert.equal(await votesOf(anon, older), '0');
    await visitor.close();

    const ctx = await context(browser, DESKTOP);
    const page = await ctx.newPage();
    const second = newPerson('second');
    const r = await api(server.url, 'POST', '/api/v1/auth/register', null, { email: second.email, password: second.password, display_name: second.name });
    assert.equal(r.status, 201, r.text);
    await signIn(page, server.url, second);
    await page.goto(`${server.url}/board`);
    // Equal votes: the newer one ranks first.
    assert.ok(await rankOf(page, 'rank-zone', newer) < await rankOf(page, 'rank-zone', older));
    await checkPage(page, 'board');

    await Promise.all([page.waitForNavigation(), page.click(`#board-list [data-code="${older}"] button`)]);
    assert.equal(await votesOf(page, older), '1');
    assert.ok(await rankOf(page, 'rank-zone', older) < await rankOf(page, 'rank-zone', newer), 'the voted incident now leads its zone');
    assert.ok(await rankOf(page, 'rank-category', older) < await rankOf(page, 'rank-category', newer), 'and its category');
    assert.match(await page.textContent(`#board-list [data-code="${older}"] button`), /Quitar mi voto/);

    // A second vote (the same form posted again) is not counted.
    const csrf = await page.getAttribute('input[name=csrf]', 'value');
    const again = await page.request.post(`${server.url}/incidents/${older}/vote`, {
      form: { csrf, vote: '1', back: 'board' }, headers: { origin: server.url }, maxRedirects: 0,
    });
    assert.equal(again.status(), 303);
    await page.goto(`${server.url}/board`);
    assert.equal(await votesOf(page, older), '1', 'a second vote is not counted');
    const publicList = await api(server.url, 'GET', '/api/v1/public/incidents', null);
    assert.equal(publicList.body.items.find((i) => i.code === older).votes, 1);

    // Undo.
    await Promise.all([page.waitForNavigation(), page.click(`#board-list [data-code="${older}"] button`)]);
    assert.equal(await votesOf(page, older), '0');
    await ctx.close();
  } finally {
    await browser.close();
    await server.stop();
  }
});
