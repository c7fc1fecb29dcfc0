// roster's web UI in a real browser: Playwright (playwright-core, no
// browser download) driving Debian's chromium, with axe-core on every page.
//
//   node tests/browser/ui.mjs BASEURL
//
// Run by crates/web/tests/ui_browser.rs, which starts the UI (with sign-in
// through the Okta simulator's OpenID Connect provider) and passes the
// rest in the environment:
//
//   ROSTER_UI_LOCAL_USER / ROSTER_UI_LOCAL_PASSWORD   a local admin
//   ROSTER_UI_IDP_USER / ROSTER_UI_IDP_PASSWORD       an Okta user in roster-admins
//   ROSTER_UI_UNMAPPED_USER                          an Okta user whose groups map to no role
//   ROSTER_UI_LEAVER                                 a leaver's address
//   ROSTER_UI_PLAN                                   the plan waiting for approval
//   ROSTER_UI_TASK                                   an open task (a Spendesk offboarding)
//   ROSTER_UI_FRESH_SECS                             how long a sign-in counts as fresh
//   ROSTER_UI_SCREENSHOTS                            where to write the screenshots
//
// Exits non-zero on the first failure, naming the step.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = require.resolve('axe-core/axe.min.js');

const base = process.argv[2];
if (!base) {
  console.error('usage: node tests/browser/ui.mjs BASEURL');
  process.exit(2);
}
const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const cfg = {
  localUser: env('ROSTER_UI_LOCAL_USER'),
  localPassword: env('ROSTER_UI_LOCAL_PASSWORD'),
  idpUser: env('ROSTER_UI_IDP_USER'),
  idpPassword: env('ROSTER_UI_IDP_PASSWORD'),
  unmapped: env('ROSTER_UI_UNMAPPED_USER'),
  leaver: env('ROSTER_UI_LEAVER'),
  plan: env('ROSTER_UI_PLAN'),
  task: env('ROSTER_UI_TASK'),
  freshSecs: Number(env('ROSTER_UI_FRESH_SECS')),
  shots: env('ROSTER_UI_SCREENSHOTS'),
};
fs.mkdirSync(cfg.shots, { recursive: true });

const started = Date.now();
let steps = 0;
const checked = [];
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    console.error(`FAIL ${name}: ${e.message}`);
    const page = globalThis.currentPage;
    if (page) {
      console.error(`  at ${page.url()}`);
      await page.screenshot({ path: path.join(cfg.shots, 'FAILED.png'), fullPage: true }).catch(() => {});
      console.error(`  page text: ${(await page.textContent('body').catch(() => '')).slice(0, 600)}`);
    }
    throw e;
  }
  steps += 1;
  console.log(`ok ${name} (${Date.now() - t} ms)`);
}
function expect(cond, message) {
  if (!cond) throw new Error(message);
}

/// axe-core on the page: no serious or critical violation.
async function axe(page, label) {
  await page.addScriptTag({ path: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    axe.run(document, { resultTypes: ['violations'] }),
  );
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  checked.push(label);
  expect(
    bad.length === 0,
    `axe on ${label}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`).join('; ')}`,
  );
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(cfg.shots, `${name}.png`), fullPage: true });
}

/// The page, checked and photographed.
async function visit(page, url, name) {
  const resp = await page.goto(url);
  expect(resp.ok(), `${url}: HTTP ${resp.status()}`);
  await axe(page, name);
  await shot(page, name);
}

/// Through the Okta simulator's sign-in form.
async function idpForm(page, user, password) {
  await page.waitForSelector('#okta-signin-username');
  await page.fill('#okta-signin-username', user);
  await page.fill('#okta-signin-password', password);
  await page.click('#okta-signin-submit');
}

async function noHorizontalScroll(page, label) {
  const [scroll, width] = await page.evaluate(() => [
    document.documentElement.scrollWidth,
    document.documentElement.clientWidth,
  ]);
  expect(scroll <= width + 1, `${label} scrolls sideways at ${width} px: ${scroll} px wide`);
}

const browser = await chromium.launch({
  executablePath: process.env.ROSTER_CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
// axe is injected as a script: the UI's Content-Security-Policy (scripts
// from 'self' only) would refuse it, so the test context bypasses it.
const desktop = { viewport: { width: 1280, height: 800 }, bypassCSP: true };

let code = 0;
try {
  const ctx = await browser.newContext(desktop);
  const page = await ctx.newPage();
  globalThis.currentPage = page;
  let signedInAt = 0;
  let before = {};

  await step('sign-in page lists the IdP and local users', async () => {
    await visit(page, `${base}/ui/signin`, 'signin');
    expect(await page.getByRole('link', { name: 'Sign in with your company account' }).count() === 1, 'no IdP link');
  });

  await step('sign in through OpenID Connect (Okta simulator)', async () => {
    await page.getByRole('link', { name: 'Sign in with your company account' }).click();
    await idpForm(page, cfg.idpUser, cfg.idpPassword);
    await page.waitForURL(`${base}/ui/**`);
    signedInAt = Date.now();
    expect((await page.textContent('h1')).includes('Dashboard'), `landed on ${page.url()}`);
    before = {
      plans: await page.locator(`a[href="/ui/plans/${cfg.plan}"]`).count(),
      body: await page.textContent('main'),
    };
    expect(before.plans === 1, 'the plan waiting for approval is on the dashboard');
    await axe(page, 'dashboard');
    await shot(page, 'dashboard');
  });

  await step('find a leaver', async () => {
    await page.goto(`${base}/ui/people`);
    await page.fill('#q', cfg.leaver);
    await page.press('#q', 'Enter');
    await page.waitForSelector(`#results td:has-text("${cfg.leaver}")`);
    await axe(page, 'people');
    await shot(page, 'people');
    await page.locator('#results tbody tr', { hasText: cfg.leaver }).locator('a').first().click();
    await page.waitForFunction(() => location.pathname.startsWith('/ui/people/'));
    await page.waitForSelector('h1');
    const text = await page.textContent('main');
    expect(text.includes(cfg.leaver), 'the person page names them');
    expect(/left|terminated/.test(text), 'the person page says they left');
    await axe(page, 'person');
    await shot(page, 'person');
  });

  await step('approve the plan after a fresh sign-in at the IdP', async () => {
    await visit(page, `${base}/ui/plans`, 'plans');
    // Let the sign-in grow stale, so approving asks for a fresh one.
    const wait = cfg.freshSecs * 1000 + 500 - (Date.now() - signedInAt);
    if (wait > 0) await page.waitForTimeout(wait);
    await visit(page, `${base}/ui/plans/${cfg.plan}`, 'plan');
    const confirm = page.getByRole('link', { name: 'confirm who you are' });
    expect(await confirm.count() === 1, 'a stale session is asked to confirm who it is');
    await confirm.click();
    const again = page.getByRole('link', { name: 'Sign in again with your company account' });
    await again.waitFor();
    await axe(page, 'reauth');
    await shot(page, 'reauth');
    await again.click();
    // prompt=login: the IdP asks for the password again.
    await idpForm(page, cfg.idpUser, cfg.idpPassword);
    await page.waitForURL(`${base}/ui/plans/${cfg.plan}`);
    expect(await confirm.count() === 0, 'the new session is fresh');
    await page.fill('#approve-reason', 'Leaver confirmed with HR');
    await page.getByRole('button', { name: /^Approve/ }).click();
    await page.waitForSelector('#approve-h', { state: 'detached' });
    await page.getByRole('button', { name: 'Apply this plan' }).click();
    await page.waitForFunction(() => !document.querySelector('.htmx-request'));
    await page.waitForLoadState('networkidle');
    await shot(page, 'plan-approved');
  });

  await step('complete the Spendesk task with evidence', async () => {
    await visit(page, `${base}/ui/tasks`, 'tasks');
    await visit(page, `${base}/ui/tasks/${cfg.task}`, 'task');
    await page.fill('#note', 'Deactivated in Spendesk Settings → Members');
    await page.setInputFiles('#file', {
      name: 'spendesk-members.png',
      mimeType: 'image/png',
      buffer: fs.readFileSync(path.join(cfg.shots, 'task.png')),
    });
    await Promise.all([page.waitForNavigation(), page.getByRole('button', { name: 'Report done' }).click()]);
    const text = await page.textContent('main');
    expect(text.includes('spendesk-members.png'), 'the evidence is recorded on the task');
    await shot(page, 'task-done');
  });

  await step('the dashboard changed', async () => {
    await page.goto(`${base}/ui/`);
    const after = await page.locator(`a[href="/ui/plans/${cfg.plan}"]`).count();
    expect(after === 0, 'the approved plan no longer waits on the dashboard');
    expect((await page.textContent('main')) !== before.body, 'the dashboard shows the change');
    await shot(page, 'dashboard-after');
  });

  await step('every other page reads and passes axe', async () => {
    for (const [p, name] of [
      ['/ui/apps', 'apps'],
      ['/ui/apps/expensify', 'app'],
      ['/ui/matches', 'matches'],
      ['/ui/audit', 'audit'],
      ['/ui/connections', 'connections'],
    ]) {
      await visit(page, `${base}${p}`, name);
    }
  });
  await ctx.close();

  await step('a person whose IdP groups map to no role gets no access', async () => {
    const c = await browser.newContext(desktop);
    const p = await c.newPage();
    globalThis.currentPage = p;
    await p.goto(`${base}/ui/auth/oidc/start`);
    await idpForm(p, cfg.unmapped, cfg.idpPassword);
    await p.waitForURL(`${base}/ui/auth/oidc/callback**`);
    const text = await p.textContent('main');
    expect(text.includes('holds no role'), `refusal page: ${text}`);
    await axe(p, 'signin-refused');
    await shot(p, 'signin-refused');
    const r = await p.goto(`${base}/ui/`);
    expect(p.url().includes('/ui/signin'), `without a session /ui/ goes to sign-in, not ${p.url()} (${r.status()})`);
    await c.close();
  });

  await step('a local user signs in on a 375 px wide phone', async () => {
    const c = await browser.newContext({ viewport: { width: 375, height: 812 }, bypassCSP: true, isMobile: true, hasTouch: true });
    const p = await c.newPage();
    globalThis.currentPage = p;
    await p.goto(`${base}/ui/signin`);
    await p.fill('#name', cfg.localUser);
    await p.fill('#password', cfg.localPassword);
    await Promise.all([p.waitForURL(`${base}/ui/`), p.getByRole('button', { name: 'Sign in' }).click()]);
    for (const [url, name] of [
      ['/ui/', 'dashboard-mobile'],
      ['/ui/people', 'people-mobile'],
      [`/ui/plans/${cfg.plan}`, 'plan-mobile'],
      [`/ui/tasks/${cfg.task}`, 'task-mobile'],
    ]) {
      await visit(p, `${base}${url}`, name);
      await noHorizontalScroll(p, name);
    }
    await c.close();
  });

  console.log(`browser: ${steps} steps, axe on ${checked.length} pages (${checked.join(', ')}), ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
