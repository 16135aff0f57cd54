// End-to-end test of `colorize turing serve` in a real browser.
//
// Usage: node session.mjs http://127.0.0.1:PORT/ SHOW_MS
//
// Two scripted participants, each in its own headless Chromium with a fresh
// profile, take a whole session at once. They tell the photos apart the way
// the test's photos are made (tests/test_turing_e2e.c): real photos are
// red, the method's colourisations are gray, and vigilance copies have their
// hue turned away from red. So each participant knows the fake side and
// answers by plan:
//   P1: wrong on practice trial 2 (checks the feedback), fooled on every
//       third test trial (12 of 36), misses one vigilance trial (allowed);
//   P2 (?code=e2e-two): never fooled, misses two vigilance trials (excluded).
// The report must then show, for the one method: 1 participant, 36 trials,
// 33.3% fooled, 1 excluded. Prints one JSON line per participant; exits
// non-zero on any deviation. Every request outside 127.0.0.1 is blocked and
// counted as a failure.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, showMsArg] = process.argv.slice(2);
const showMs = Number(showMsArg);
if (!url || !/^http:\/\/127\.0\.0\.1:\d+\/$/.test(url) || !(showMs > 0)) {
  console.error('usage: node session.mjs http://127.0.0.1:PORT/ SHOW_MS');
  process.exit(2);
}

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const args = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
  // Nothing but 127.0.0.1 resolves.
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
];
const STEP_TIMEOUT_MS = 20000; // any one step of a trial
const PRACTICE = 10, TESTS = 36, VIGILANCE = 4;

class Failure extends Error {}
function expect(cond, what) {
  if (!cond) throw new Failure(what);
}

// Runs in the page before its own script: measures each photo as it loads
// and how long the pair stays on screen.
function instrument() {
  window.__cz = { stats: {}, shown: [] };
  document.addEventListener('load', (e) => {
    const img = e.target;
    if (!(img instanceof HTMLImageElement) || !img.id.startsWith('img-')) return;
    const c = document.createElement('canvas');
    c.width = img.naturalWidth;
    c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let r = 0, gr = 0, b = 0;
    for (let i = 0; i < d.length; i += 4) { r += d[i]; gr += d[i + 1]; b += d[i + 2]; }
    const n = d.length / 4;
    window.__cz.stats[img.id] = { w: c.width, h: c.height, r: r / n, g: gr / n, b: b / n };
  }, true);
  let since = null;
  new MutationObserver(() => {
    const state = document.body && document.body.dataset.state;
    if (state === 'showing' && since === null) since = performance.now();
    if (state !== 'showing' && since !== null) {
      window.__cz.shown.push(performance.now() - since);
      since = null;
    }
  }).observe(document, {
    subtree: true, attributes: true, attributeFilter: ['data-state'],
  });
}

const redness = (s) => s.r - (s.g + s.b) / 2;
const isGray = (s) => Math.max(Math.abs(s.r - s.g), Math.abs(s.g - s.b), Math.abs(s.r - s.b)) < 12;

async function waitState(page, states) {
  await page.waitForFunction((s) => s.includes(document.body.dataset.state), states,
                             { timeout: STEP_TIMEOUT_MS });
  return page.evaluate(() => document.body.dataset.state);
}

async function participant(name, query, plan) {
  const profile = mkdtempSync(join(tmpdir(), 'cz-e2e-profile-'));
  const blocked = [], pageErrors = [];
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath, headless: true, args, viewport: { width: 800, height: 700 },
  });
  const log = { name, practice: 0, tests: 0, vigilance: 0, fooled: 0, missed: 0,
                wrongFeedback: 0, minShownMs: Infinity, maxShownMs: 0 };
  try {
    await ctx.route('**/*', (route) => {
      const u = new URL(route.request().url());
      if (u.hostname === '127.0.0.1') return route.continue();
      blocked.push(u.href);
      return route.abort();
    });
    await ctx.addInitScript(instrument);
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(url + query);
    expect(await waitState(page, ['intro']) === 'intro', `${name}: no intro`);
    expect(await page.textContent('#n-practice') === String(PRACTICE) &&
           await page.textContent('#n-test') === String(TESTS + VIGILANCE),
           `${name}: intro does not announce 10 practice and 40 test trials`);
    await page.click('#start');

    for (let trial = 0; ; trial++) {
      // One round trip: wait for the question (or the end) and read the
      // page's state at that moment.
      const s = await (await page.waitForFunction(() => {
        const state = document.body.dataset.state;
        if (!['question', 'done', 'error'].includes(state)) return false;
        return {
          state,
          error: document.getElementById('error').textContent,
          progress: document.getElementById('progress').textContent,
          pairHidden: document.getElementById('pair').classList.contains('hidden'),
          srcA: document.getElementById('img-a').getAttribute('src'),
          stats: window.__cz.stats,
          shown: window.__cz.shown[window.__cz.shown.length - 1],
          shows: window.__cz.shown.length,
        };
      }, null, { timeout: STEP_TIMEOUT_MS })).jsonValue();
      if (s.state === 'done') break;
      expect(s.state === 'question', `${name}: ${s.error}`);
      const m = /^(Practice|Trial) (\d+) of (\d+)$/.exec(s.progress);
      expect(m && Number(m[2]) === trial + 1 && Number(m[3]) === 50,
             `${name}: progress "${s.progress}" at trial ${trial}`);
      expect(s.pairHidden && s.srcA === null, `${name}: photos still shown with the question`);
      expect(s.shows === trial + 1, `${name}: ${s.shows} displays for ${trial + 1} trials`);
      // The pair is on screen for the display time: not less, and not
      // much more (the page hides it on a timer). The observer notes the
      // start a microtask after the page starts its timer, late by as much
      // as the browser is loaded (96 ms of 100 seen beside a sanitizer
      // build, 86 ms with both builds' tests running on 2 cores), so it
      // may read a little short: 20 ms of slack.
      expect(s.shown >= showMs - 20 && s.shown < showMs + 1500,
             `${name}: pair shown for ${s.shown.toFixed(0)} ms, expected ${showMs}`);
      log.minShownMs = Math.min(log.minShownMs, s.shown);
      log.maxShownMs = Math.max(log.maxShownMs, s.shown);
      const A = s.stats['img-a'], B = s.stats['img-b'];
      expect(A && B && A.w === 256 && A.h === 256 && B.w === 256 && B.h === 256,
             `${name}: photos are not 256x256`);
      const fake = redness(A) < redness(B) ? 'a' : 'b';
      const real = fake === 'a' ? 'b' : 'a';
      const practice = m[1] === 'Practice';
      expect(practice === trial < PRACTICE, `${name}: trial ${trial} practice=${practice}`);
      let pick = fake;
      if (practice) {
        log.practice++;
        if (trial === 1) pick = real;
      } else if (isGray(A) || isGray(B)) {
        if (plan.foolEvery && log.tests % plan.foolEvery === 0) { pick = real; log.fooled++; }
        log.tests++;
      } else {
        if (log.missed < plan.miss) { pick = real; log.missed++; }
        log.vigilance++;
      }
      // Practice answers by the buttons, test answers by the arrow keys.
      if (practice) await page.click(pick === 'a' ? '#pick-a' : '#pick-b');
      else await page.keyboard.press(pick === 'a' ? 'ArrowLeft' : 'ArrowRight');
      if (practice) {
        expect(await waitState(page, ['feedback', 'error']) === 'feedback',
               `${name}: no feedback on practice trial ${trial}`);
        const text = await page.textContent('#feedback');
        expect(text.startsWith(pick === fake ? 'Correct' : 'Wrong'),
               `${name}: feedback "${text}" for ${pick === fake ? 'a right' : 'a wrong'} answer`);
        if (pick !== fake) log.wrongFeedback++;
        await page.click('#next');
      }
    }
    expect(log.practice === PRACTICE && log.tests === TESTS && log.vigilance === VIGILANCE,
           `${name}: ${log.practice} practice, ${log.tests} test, ${log.vigilance} vigilance trials`);
    expect(log.fooled === plan.fooled && log.missed === plan.miss && log.wrongFeedback === 1,
           `${name}: fooled ${log.fooled}, missed ${log.missed}`);
    expect(await page.isVisible('#done'), `${name}: no thank-you note`);

    // One session per participant and method: coming back is refused.
    await page.reload();
    expect(await waitState(page, ['error', 'intro']) === 'error' &&
           /already taken part/.test(await page.textContent('#error')),
           `${name}: a second session was offered`);
    expect(blocked.length === 0, `${name}: requests left 127.0.0.1: ${blocked.join(' ')}`);
    expect(pageErrors.length === 0, `${name}: page errors: ${pageErrors.join('; ')}`);
    return log;
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

try {
  const logs = await Promise.all([
    participant('P1', '', { foolEvery: 3, fooled: 12, miss: 1 }),
    participant('P2', '?code=e2e-two', { foolEvery: 0, fooled: 0, miss: 2 }),
  ]);
  for (const l of logs) console.log(JSON.stringify(l));
} catch (e) {
  console.error(e instanceof Failure ? `FAIL ${e.message}` : e);
  process.exit(1);
}
