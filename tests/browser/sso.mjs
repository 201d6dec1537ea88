// The dashboard behind a single-sign-on proxy, in Debian's headless chromium
// (playwright-core): the browser sends what oauth2-proxy and the balancer
// would add to every request (the identity and the shared secret), so no
// token is ever typed. Run by tests/integration/test_sso.c from the project
// root:
//
//   node tests/browser/sso.mjs --url=URL --secret=S --email=E --user=NAME \
//        --staged=ID --out=DIR
//
// Checks: signed in as NAME through the proxy with nothing in storage, the
// event stream live, the staged emergency rollout ID approved with the
// dialog (the C test checks the server side); and without the secret the
// same headers are ignored (the page asks for a token). Exit 0 when every
// check passed; 1 otherwise (with DIR/failure.png).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const i = a.indexOf('=');
    return i < 0 ? [a.replace(/^--/, ''), '1'] : [a.slice(2, i), a.slice(i + 1)];
  }),
);
for (const k of ['url', 'secret', 'email', 'user', 'staged', 'out']) {
  if (!args[k]) {
    console.error(`sso.mjs: --${k}= is required`);
    process.exit(2);
  }
}
const WAIT = 60000;
let step = 'start';
const log = (msg) => console.log(`sso: ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(`${step}: ${msg}`);
}
const problems = [];
const profile = mkdtempSync(join(tmpdir(), 'fb-chromium-'));
let ctx, page;
const card = (id) => `article.card[data-rollout="${id}"]`;

async function open(headers) {
  if (ctx) await ctx.close();
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
    extraHTTPHeaders: headers,
  });
  page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const res = await page.goto(`${args.url}/`);
  check(res.status() === 200, `GET / answered ${res.status()}`);
}

async function main() {
  step = 'signed in by the proxy';
  await open({ 'X-Forwarded-Email': args.email, 'X-Firebreak-Proxy-Secret': args.secret });
  await page.locator('#who').getByText(args.user).waitFor({ timeout: WAIT });
  await page.locator('#who .via').getByText('single sign-on').waitFor({ timeout: WAIT });
  check((await page.locator('#login').count()) === 0, 'the page asks for a token');
  check((await page.evaluate(() => sessionStorage.length + localStorage.length)) === 0, 'something was stored');
  await page.locator('#live[data-state="live"]').waitFor({ timeout: WAIT });
  log(`signed in as ${args.user} through the proxy; the event stream is live`);

  step = 'approve through the proxy';
  await page.locator(`${card(args.staged)} button.approve`).waitFor({ timeout: WAIT });
  await page.click(`${card(args.staged)} button.approve`);
  await page.locator('#action-dialog[open]').waitFor({ timeout: WAIT });
  await page.fill('#action-reason', 'sso test: approved in the browser');
  await page.click('#action-confirm');
  await page.locator('#action-dialog:not([open])').waitFor({ state: 'attached', timeout: WAIT });
  await page.locator(`${card(args.staged)}[data-state="rolling"]`).waitFor({ timeout: WAIT });
  await page.screenshot({ path: join(args.out, 'sso.png'), fullPage: true });
  log(`approved #${args.staged} from the page: rolling`);

  step = 'without the secret the identity is ignored';
  await open({ 'X-Forwarded-Email': args.email });
  await page.locator('#login').waitFor({ timeout: WAIT });
  check((await page.locator('#who').isHidden()), 'someone is signed in');
  log('the same identity without the secret: asked for a token');

  check(problems.length === 0, `browser problems:\n  ${problems.join('\n  ')}`);
}

let rc = 0;
try {
  await main();
  log('all checks passed');
} catch (e) {
  rc = 1;
  console.log(`sso: FAILED: ${e.message}`);
  if (problems.length) console.log(`browser problems:\n  ${problems.join('\n  ')}`);
  if (page) await page.screenshot({ path: join(args.out, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(rc);
