// Video competitions: an admin opens one through the form; a participant uploads a real video
// (made with ffmpeg), watches its processing status refresh until it is ready, and it becomes
// playable on the public board (the <video> element loads its metadata: duration > 0); another
// person votes for the second entry and the ranking changes; the vote can be withdrawn. On
// SQLite, and on PostgreSQL when VIGIA_TEST_DATABASE_URL is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DEMO, DESKTOP, PHONE, api, checkPage, context, launch, newPerson, signIn, signUp, startVigia, token,
} from '../lib/harness.mjs';

function makeClip(dir, name) {
  const path = join(dir, name);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=25:duration=1',
    '-f', 'lavfi', '-i', 'sine=frequency=440:duration=1', '-c:v', 'mpeg4', '-c:a', 'aac', '-shortest', path]);
  return path;
}

const minute = (offset) => new Date(Date.now() + offset * 60_000).toISOString().slice(0, 16);
const order = (page) => page.$$eval('#ranking li[data-entry]', (items) => items.map((li) => li.getAttribute('data-entry')));

async function submitByApi(base, bearer, competition, title, file) {
  const form = new FormData();
  form.append('title', title);
  form.append('file', new Blob([readFileSync(file)], { type: 'video/mp4' }), 'clip.mp4');
  const r = await fetch(`${base}/api/v1/competitions/${competition}/entries`, {
    method: 'POST', headers: { authorization: `Bearer ${bearer}` }, body: form,
  });
  const text = await r.text();
  assert.equal(r.status, 201, text);
  return JSON.parse(text).id;
}

for (const backend of ['sqlite', 'postgres']) {
  test(`an uploaded video becomes playable on the board and a vote changes the ranking (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('VIGIA_TEST_DATABASE_URL is not set'); return; }
    // Pages are checked (axe, weight) and photographed once, on SQLite.
    const check = (page, name) => (backend === 'sqlite' ? checkPage(page, name) : Promise.resolve());
    const browser = await launch();
    const dir = mkdtempSync(join(tmpdir(), 'vigia-clips-'));
    try {
      // The admin opens a competition through the form.
      const adminCtx = await context(browser, DESKTOP);
      const admin = await adminCtx.newPage();
      await signIn(admin, server.url, DEMO.admin);
      await admin.goto(`${server.url}/competitions/new`);
      await check(admin, 'competition-new');
      await admin.fill('#f-title', 'Mejor video del campus');
      await admin.fill('#f-description', 'Un minuto sobre tu facultad.');
      await admin.fill('#f-submissions_open_at', minute(-5));
      await admin.fill('#f-submissions_close_at', minute(60));
      await admin.fill('#f-voting_open_at', minute(-5));
      await admin.fill('#f-voting_close_at', minute(120));
      await Promise.all([admin.waitForNavigation(), admin.click('main button[type=submit]')]);
      const competition = Number(new URL(admin.url()).pathname.split('/').pop());
      assert.ok(competition > 0, admin.url());
      await adminCtx.close();

      // A participant uploads a video on a phone and follows its processing.
      const phone = await context(browser, PHONE);
      const page = await phone.newPage();
      const participant = newPerson('autor');
      await signUp(page, server.url, participant);
      await page.goto(`${server.url}/competitions`);
      await check(page, 'competitions');
      await page.goto(`${server.url}/competitions/${competition}/enter`);
      await check(page, 'competition-enter');
      await page.fill('#f-title', 'Mi facultad');
      await page.setInputFiles('#f-file', makeClip(dir, 'mine.mp4'));
      await Promise.all([page.waitForNavigation(), page.click('main button[type=submit]')]);
      assert.equal(new URL(page.url()).pathname, `/competitions/${competition}/entry`);
      await check(page, 'competition-entry');
      // The page follows the entry's processing on the stream (competition:<id>) until it is ready.
      const pendingAtFirst = (await page.$('#entry[data-pending]')) !== null;
      await page.waitForSelector('#entry[data-status="ready"]', { timeout: 180_000 });
      if (pendingAtFirst) {
        assert.equal(await page.getAttribute('#entry-live', 'data-refreshed-by'), 'stream',
          'refreshed by video.* messages, not by polling');
      }
      await check(page, 'competition-entry-ready');

      // A second entry, through the API.
      const other = newPerson('otro');
      const reg = await api(server.url, 'POST', '/api/v1/auth/register', null, { email: other.email, password: other.password, display_name: other.name });
      assert.equal(reg.status, 201, reg.text);
      const otherToken = await token(server.url, { email: other.email, password: other.password });
      const second = await submitByApi(server.url, otherToken, competition, 'La biblioteca', makeClip(dir, 'other.mp4'));
      for (let i = 0; i < 360; i++) {
        const e = await api(server.url, 'GET', `/api/v1/competitions/${competition}/entries/${second}`, otherToken);
        if (e.body?.status === 'ready') break;
        assert.notEqual(e.body?.status, 'failed', e.text);
        await new Promise((r) => setTimeout(r, 500));
      }

      // The board, signed out: both videos play.
      const visitorCtx = await context(browser, DESKTOP);
      const visitor = await visitorCtx.newPage();
      await visitor.goto(`${server.url}/competitions/${competition}`);
      await check(visitor, 'competition-board-visitor');
      // The players load nothing but their posters until asked (preload="none", so the page stays
      // light); asked, as pressing play does, each loads the processed video.
      await visitor.evaluate(() => document.querySelectorAll('#ranking video').forEach((v) => { v.preload = 'metadata'; v.load(); }));
      await visitor.waitForFunction(() => {
        const videos = [...document.querySelectorAll('#ranking video')];
        return videos.length === 2 && videos.every((v) => v.readyState >= 1 && v.duration > 0);
      }, null, { timeout: 30_000 });
      const first = (await order(visitor))[0];
      assert.notEqual(first, String(second), 'no votes: the earlier entry leads');
      await visitorCtx.close();

      // Another person votes for the second entry: it now leads.
      const voterCtx = await context(browser, DESKTOP);
      const voter = await voterCtx.newPage();
      await signUp(voter, server.url, newPerson('votante'));
      await voter.goto(`${server.url}/competitions/${competition}`);
      await check(voter, 'competition-board');
      await Promise.all([voter.waitForNavigation(), voter.click(`#ranking li[data-entry="${second}"] button`)]);
      assert.deepEqual(await order(voter), [String(second), first]);
      assert.equal(await voter.getAttribute(`#ranking li[data-entry="${second}"] .votes`, 'data-votes'), '1');
      assert.equal(await voter.getAttribute(`#ranking li[data-entry="${second}"]`, 'data-place'), '1');
      // A vote for the other entry is refused while one stands.
      await Promise.all([voter.waitForNavigation(), voter.click(`#ranking li[data-entry="${first}"] button`)]);
      assert.match(await voter.textContent('[role=alert]'), /Ya votaste/);
      // Withdrawn: back to the first order.
      await Promise.all([voter.waitForNavigation(), voter.click(`#ranking li[data-entry="${second}"] button`)]);
      assert.equal(await voter.getAttribute(`#ranking li[data-entry="${second}"] .votes`, 'data-votes'), '0');
      assert.deepEqual(await order(voter), [first, String(second)]);
      await voterCtx.close();
      await phone.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await browser.close();
      await server.stop();
    }
  });
}
