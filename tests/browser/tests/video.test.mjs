// A video attached to a report is processed by FFmpeg in the background; the incident page,
// open meanwhile, shows its status and progress change live from the real-time stream
// (`video.*` messages, not polling: the part says what refreshed it) and then a player for the
// processed video, which loads without a reload. On SQLite, and on PostgreSQL when
// VIGIA_TEST_DATABASE_URL is set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PHONE, checkPage, context, launch, newPerson, signUp, startVigia } from '../lib/harness.mjs';

/** A 1080p clip of 8 s: long enough for FFmpeg to report progress a few times. */
function makeClip(dir) {
  const path = join(dir, 'fuga.mp4');
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=1920x1080:rate=25:duration=8',
    '-f', 'lavfi', '-i', 'sine=frequency=440:duration=8', '-c:v', 'mpeg4', '-c:a', 'aac', '-shortest', path]);
  return readFileSync(path);
}

for (const backend of ['sqlite', 'postgres']) {
  test(`a reported video shows its processing live and becomes playable without a reload (${backend})`, async (t) => {
    const server = await startVigia({ backend });
    if (!server) { t.skip('VIGIA_TEST_DATABASE_URL is not set'); return; }
    const browser = await launch();
    const dir = mkdtempSync(join(tmpdir(), 'vigia-video-'));
    try {
      const ctx = await context(browser, PHONE);
      const page = await ctx.newPage();
      await signUp(page, server.url, newPerson('video'));
      await page.selectOption('#f-category_id', { label: 'Fuga de agua' });
      await page.fill('#f-title', 'Fuga grabada en el estacionamiento');
      await page.fill('#f-description', 'Adjunto un video de la fuga bajo la rampa.');
      await page.setInputFiles('#f-photo', { name: 'fuga.mp4', mimeType: 'video/mp4', buffer: makeClip(dir) });
      // Everything the attachments part shows from now on, as it changes.
      await page.addInitScript(() => {
        window.videoSeen = [];
        document.addEventListener('DOMContentLoaded', () => {
          const part = document.getElementById('incident-attachments');
          if (!part) return;
          const note = () => {
            const video = part.querySelector('.video');
            const percent = part.querySelector('.video .percent');
            window.videoSeen.push(`${video?.getAttribute('data-status')}:${percent ? percent.textContent : ''}`);
          };
          note();
          new MutationObserver(note).observe(part, { childList: true, subtree: true });
        });
      });
      await Promise.all([page.waitForNavigation(), page.click('main form button[type=submit]')]);
      assert.match(page.url(), /\/incidents\/INC-\d{6}\?new=1$/, page.url());
      await page.waitForFunction(() => document.body.getAttribute('data-live') === 'on');
      await page.evaluate(() => { window.notReloaded = true; });
      if (backend === 'sqlite') await checkPage(page, 'incident-video-processing');

      await page.waitForSelector('#incident-attachments .video[data-status="ready"] video', { timeout: 180_000 });
      const seen = await page.evaluate(() => window.videoSeen);
      assert.ok(seen.some((s) => s.startsWith('processing:')), `the page showed it processing: ${seen}`);
      const percents = seen.filter((s) => s.startsWith('processing:') && s.length > 'processing:'.length);
      assert.ok(percents.length >= 1, `and its progress: ${seen}`);
      assert.equal(await page.evaluate(() => window.notReloaded), true, 'no reload');
      assert.equal(await page.getAttribute('#incident-attachments', 'data-refreshed-by'), 'stream',
        'refreshed from the stream, not by polling');
      // The processed video plays.
      await page.waitForFunction(() => {
        const v = document.querySelector('#incident-attachments video');
        return v && v.readyState >= 1 && v.duration > 7;
      }, null, { timeout: 30_000 });
      if (backend === 'sqlite') await checkPage(page, 'incident-video-ready');
      await ctx.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await browser.close();
      await server.stop();
    }
  });
}
