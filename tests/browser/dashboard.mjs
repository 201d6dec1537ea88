// The SOC dashboard in a real browser: Debian's headless chromium driven by
// playwright-core (never a downloaded browser). Run by
// tests/integration/test_dashboard.c, which builds the world (agents, three
// live rollouts) and checks the database afterwards; run from the project
// root:
//
//   node tests/browser/dashboard.mjs --url=URL --soc=TOKEN --agent=TOKEN \
//        --plan=plan.json --out=DIR [--doc=docs/dashboard.png]
//
// plan.json: {"crashing": A, "halt": B, "other": C, "crashes": [{agent_id,
// token, channel, content, boot_id}]}. A is halted by the controller when
// this script posts the canary agents' crash reports while the page is open;
// B is halted with the halt button as soc; C must survive the halt attempted
// with an agent's token. Exit 0 when every check passed; 1 otherwise (with
// DIR/failure.png).
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { chromium } from 'playwright-core';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const i = a.indexOf('=');
    return i < 0 ? [a.replace(/^--/, ''), '1'] : [a.slice(2, i), a.slice(i + 1)];
  }),
);
for (const k of ['url', 'soc', 'release', 'agent', 'plan', 'out']) {
  if (!args[k]) {
    console.error(`dashboard.mjs: --${k}= is required`);
    process.exit(2);
  }
}
const plan = JSON.parse(readFileSync(args.plan, 'utf8'));
const A = plan.crashing, B = plan.halt, C = plan.other, D = plan.staged;
const origin = new URL(args.url).origin;
const WAIT = 60000; // generous: the server is a sanitizer build

let step = 'start';
const log = (msg) => console.log(`dashboard: ${msg}`);
function check(cond, msg) {
  if (!cond) throw new Error(`${step}: ${msg}`);
}

const problems = []; // console errors, CSP violations, foreign requests
const profile = mkdtempSync(join(tmpdir(), 'fb-chromium-'));
let ctx, page;

async function text(sel) {
  return (await page.locator(sel).first().textContent({ timeout: WAIT })).trim();
}
const card = (id) => `article.card[data-rollout="${id}"]`;

// Post one crash report as a canary agent (what fb-agent sends after the
// boot that crashed on the new content).
async function postCrash(c, n) {
  const body = {
    agent_id: c.agent_id,
    events: [{
      id: `dash-crash-${n}`, kind: 'crash', at: Math.floor(Date.now() / 1000), channel: c.channel,
      content: c.content, boot_id: c.boot_id, code: '0xC0000005', module: 'csagent.sys',
    }],
  };
  const res = await fetch(`${args.url}/v1/events`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${c.token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const j = await res.json();
  check(res.status === 200 && j.accepted === 1, `crash report of agent ${c.agent_id}: ${res.status} ${JSON.stringify(j)}`);
}

async function login(token) {
  await page.locator('#login').waitFor({ timeout: WAIT });
  await page.fill('#token', token);
  await page.click('#login-submit');
}

async function main() {
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1440, height: 1000 },
  });
  page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 40[13]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.protocol !== 'data:' && u.origin !== origin) problems.push(`request outside the server: ${r.url()}`);
    if (/fb_|fa_/.test(r.url())) problems.push(`a token in a URL: ${r.url()}`);
  });

  step = 'the page loads';
  const res = await page.goto(`${args.url}/`);
  check(res.status() === 200, `GET / answered ${res.status()}`);
  check(/default-src 'self'/.test(res.headers()['content-security-policy'] || ''), 'no strict CSP on /');
  await page.locator('#login').waitFor({ timeout: WAIT });
  check((await page.title()).includes('firebreak'), 'title');
  log('the page loads and asks for a token');

  step = 'soc login shows live progress';
  await login(args.soc);
  await page.locator('#who').getByText('soc-one').waitFor({ timeout: WAIT });
  check(!page.url().includes(args.soc), 'the token is in the URL');
  check((await page.evaluate(() => sessionStorage.getItem('firebreak.token'))) === args.soc, 'token not in sessionStorage');
  check((await page.evaluate(() => localStorage.length)) === 0, 'something was put in localStorage');
  await page.locator('#live[data-state="live"]').waitFor({ timeout: WAIT });
  await page.locator('#ctl[data-state="ok"]').getByText(/^controller: replica .+:[0-9]+, last cycle [0-9]+ s ago$/).waitFor({ timeout: WAIT });
  for (const id of [A, B, C]) await page.locator(`${card(id)}[data-state="rolling"]`).waitFor({ timeout: WAIT });
  check((await text(`${card(A)} .badge`)) === 'ROLLING', 'A badge');
  check((await text(`${card(A)} .ring-where`)).startsWith('Ring 1 of 4: canary'), `A ring: ${await text(`${card(A)} .ring-where`)}`);
  check((await text(`${card(C)} .ring-where`)).startsWith('Ring 2 of 4: early'), `C ring: ${await text(`${card(C)} .ring-where`)}`);
  check((await text(`${card(A)} .counts[data-ring="canary"] .cnt-treated dd`)) === '3', 'A canary treated');
  check((await text(`${card(A)} .counts[data-ring="canary"] .cnt-crashed dd`)) === '0', 'A canary crashed');
  check((await text(`${card(C)} .counts[data-ring="early"] .cnt-treated dd`)) === '2', 'C early treated');
  check((await page.locator(`${card(A)} svg.plot path.line-healthy`).count()) === 1, 'A has no health plot');
  check((await text(`${card(A)} .decision`)).toLowerCase() === 'waiting', `A gate decision: ${await text(`${card(A)} .decision`)}`);
  check((await text(`${card(A)} .gate-reason`)).startsWith('WAIT for:'), 'A gate reason');
  await page.locator(`${card(D)}[data-state="staged"]`).waitFor({ timeout: WAIT });
  check((await page.locator('button.halt').count()) === 4, 'soc sees four halt buttons');
  check((await page.locator('button.act').count()) === 0, 'soc sees pause, resume or approve (release and admin only)');
  log(`soc sees rollouts ${A}, ${B}, ${C} rolling with ring, counts, gate reason and plots; stream live`);

  step = 'the live events are back-filled on load';
  // Nothing has been streamed since the page opened: what the list shows
  // came from GET /v1/events/recent (the rollouts' starts, the promotions).
  await page.locator('#events .ev-kind', { hasText: 'started #' }).first().waitFor({ timeout: WAIT });
  const evs = await page.locator('#events .ev').count();
  check(evs >= 3, `only ${evs} events on arrival`);
  log(`the live-event list holds ${evs} events on arrival`);

  step = 'liveness now, apart from what the gate saw';
  await page.locator(`${card(C)} .liveness[data-ring="early"][data-live="online"]`).waitFor({ timeout: WAIT });
  check(/^2 of 2 online/.test(await text(`${card(C)} .liveness[data-ring="early"] .live-said`)), 'C early liveness');
  check((await page.locator(`${card(C)} .ring-health[data-ring="early"] .now .counts`).count()) === 1, 'exposure counts not under "Now"');
  check((await page.locator(`${card(C)} .ring-health[data-ring="early"] .saw svg.plot-counts`).count()) === 1, 'gate inputs not under "What the gate saw"');
  check(/^[0-9]+ (s|min)$/.test(await text('#fleet-age .stat-n')), `fleet heartbeat age: ${await text('#fleet-age .stat-n')}`);
  check(/2 never heard from|median of 8 agents/.test(await text('#fleet-age .stat-l')), `fleet heartbeat label: ${await text('#fleet-age .stat-l')}`);
  log(`C's early ring: ${await text(`${card(C)} .liveness[data-ring="early"] .live-said`)}; fleet heartbeat age ${await text('#fleet-age .stat-n')}`);

  step = 'a halt appears without reload';
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  const navigations = [];
  page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations.push(f.url()); });
  let n = 0;
  for (const c of plan.crashes) await postCrash(c, ++n);
  log(`posted ${n} crash reports as the canary agents of rollout ${A}`);
  await page.locator(`${card(A)}[data-state="halted"], ${card(A)}[data-state="reverted"]`).waitFor({ timeout: WAIT });
  check(/^(HALTED|REVERTED)$/.test(await text(`${card(A)} .badge`)), 'A badge after the halt');
  check(/hard cap 3 reached/.test(await text(`${card(A)} .halt-reason`)), `A halt reason: ${await text(`${card(A)} .halt-reason`)}`);
  await page.locator(`#events .ev-kind`, { hasText: `halted #${A}` }).waitFor({ timeout: WAIT });
  await page.locator(`${card(A)} .counts[data-ring="canary"] .cnt-crashed dd`, { hasText: '3' }).waitFor({ timeout: WAIT });
  check((await page.evaluate(() => window.__sameDocument)) === 'yes', 'the page was reloaded');
  check(navigations.length === 0, `the page navigated: ${navigations.join(', ')}`);
  check((await page.locator(`${card(A)} button.halt`).count()) === 0, 'a halted rollout still offers the halt button');
  log(`rollout ${A} shows HALTED (hard cap) from the event stream, same document, no reload`);
  await page.waitForTimeout(600); // let the flash and plots settle for the picture
  // and each ring's health signals, naming the worst: canary agent 0 of A is
  // degraded on agent CPU (the C test made it so with real heartbeats)
  const sigLine = await text(`${card(A)} .ring-health[data-ring="canary"] .signals-fold summary`);
  check(/^Signals: worst agent CPU: 1 of 3 degraded vs 0 of [0-9]+ in control; log-LR [0-9.-]+ of [0-9.]+$/.test(sigLine), `A's folded signals: ${sigLine}`);
  check((await page.getAttribute(`${card(A)} .ring-health[data-ring="canary"] .signals-fold`, 'data-worst')) === 'agent_cpu', 'the worst signal');
  // the board folds the statistics into one line; open A's for the picture
  check(/^Statistics: treated [0-9.]+ vs control [0-9.]+ per 1000 host-hours; log-LR [0-9.-]+ of [0-9.]+$/.test(await text(`${card(A)} .stats-fold summary`)), `A's folded statistics: ${await text(`${card(A)} .stats-fold summary`)}`);
  await page.click(`${card(A)} .stats-fold summary`);
  await page.locator(`${card(A)} .stats-fold[open] figure[data-stat="test"] svg`).waitFor({ timeout: WAIT });
  // the picture shows the halt: its section at the top, under the sticky bar
  await page.evaluate(() => {
    document.querySelector('.board h2.section-bad').scrollIntoView();
    window.scrollBy(0, -70);
  });
  await page.screenshot({ path: join(args.out, 'dashboard.png') });
  await page.screenshot({ path: join(args.out, 'dashboard-full.png'), fullPage: true });
  if (args.doc) { // the README's picture: a little taller, then back
    mkdirSync(dirname(args.doc), { recursive: true });
    await page.setViewportSize({ width: 1440, height: 1240 });
    await page.waitForTimeout(300);
    await page.screenshot({ path: args.doc });
    await page.setViewportSize({ width: 1440, height: 1000 });
    log(`screenshot for the README: ${args.doc}`);
  }
  log(`screenshot: ${join(args.out, 'dashboard.png')}`);

  step = 'the stream resumes with Last-Event-ID';
  // window.stop() aborts the page's open fetches, the event stream among
  // them, as a dropped connection would; the page must come back by itself
  // and say where it left off.
  const streams = [];
  page.on('request', (r) => { if (new URL(r.url()).pathname === '/v1/events') streams.push(r.headers()); });
  await page.evaluate(() => window.stop());
  await page.locator('#live[data-state="live"]').waitFor({ state: 'detached', timeout: WAIT });
  await page.locator('#live[data-state="live"]').waitFor({ timeout: WAIT });
  const resumed = streams.filter((hd) => hd['last-event-id']);
  check(resumed.length >= 1, `no reconnect carried Last-Event-ID: ${JSON.stringify(streams)}`);
  check(resumed.every((hd) => /^[0-9]+$/.test(hd['last-event-id']) && hd.authorization === `Bearer ${args.soc}`), `reconnect headers: ${JSON.stringify(resumed)}`);
  check((await page.evaluate(() => window.__sameDocument)) === 'yes', 'the page was reloaded');
  log(`the stream was cut and came back by itself with Last-Event-ID ${resumed[resumed.length - 1]['last-event-id']}`);

  step = 'the halt needs a reason and shows a refusal';
  await page.click(`${card(C)} button.halt`);
  await page.locator('#halt-dialog[open]').waitFor({ timeout: WAIT });
  check((await text('#halt-title')).includes(`#${C}`), 'dialog names the rollout');
  await page.click('#halt-confirm');
  check(/reason is required/.test(await text('#halt-error')), 'an empty reason was not refused');
  check((await page.locator('#halt-dialog[open]').count()) === 1, 'dialog closed without a reason');
  await page.fill('#halt-reason', 'an agent token tries to halt');
  // The session's token is replaced by an agent's (as if the tab's token had
  // been swapped): the button stays, the server must refuse, the UI must say so.
  await page.evaluate((t) => sessionStorage.setItem('firebreak.token', t), args.agent);
  await page.click('#halt-confirm');
  await page.locator('#halt-error', { hasText: 'HTTP 403' }).waitFor({ timeout: WAIT });
  const refusal = await text('#halt-error');
  check(refusal.includes("role 'agent' may not do this"), `refusal text: ${refusal}`);
  await page.screenshot({ path: join(args.out, 'halt-refused.png') });
  await page.evaluate((t) => sessionStorage.setItem('firebreak.token', t), args.soc);
  await page.click('#halt-cancel');
  check((await page.locator('#halt-dialog[open]').count()) === 0, 'dialog did not close');
  // (a refresh that ran with the agent's token may have marked the board stale)
  await page.locator(`${card(C)}[data-state="rolling"]`).waitFor({ timeout: WAIT });
  await page.locator('#board-error').waitFor({ state: 'detached', timeout: WAIT });
  log(`halt of ${C} with an agent token refused; the dialog shows: ${refusal}`);

  step = 'soc halts B with the button';
  await page.click(`${card(B)} button.halt`);
  await page.locator('#halt-dialog[open]').waitFor({ timeout: WAIT });
  await page.fill('#halt-reason', 'dashboard test: DNS rules look wrong');
  await page.click('#halt-confirm');
  await page.locator('#halt-dialog:not([open])').waitFor({ state: 'attached', timeout: WAIT });
  await page.locator(`${card(B)}[data-state="halted"]`).waitFor({ timeout: WAIT });
  check(/manual halt by soc-one: dashboard test: DNS rules look wrong/.test(await text(`${card(B)} .halt-reason`)), 'B halt reason');
  check((await page.locator(`${card(C)}[data-state="rolling"]`).count()) === 1, 'C stopped rolling');
  log(`soc halted rollout ${B} from the dialog`);

  step = "a rollout's page";
  await page.evaluate((id) => { location.hash = `#/rollouts/${id}`; }, A);
  await page.locator('#timeline .tl-item').first().waitFor({ timeout: WAIT });
  await page.locator('#content .keyid').first().waitFor({ timeout: WAIT });
  const tl = await text('#timeline');
  check(/halt/i.test(tl) && /start/i.test(tl) && /hard cap/.test(tl), `timeline: ${tl.slice(0, 300)}`);
  check((await page.locator('#timeline .tl-gate').count()) >= 1, 'no gate evaluations in the timeline');
  check((await page.locator('#content .keyid').count()) === 2, 'two signers expected');
  check(/marked BAD/.test(await text('#content')), 'content not shown as bad');
  check(/ok/.test(await text('#content .pf')), 'preflight');
  check((await page.locator(`${card(A)} .counts`).count()) === 4, 'exposure for every ring of the plan');

  step = 'a dead ring shows as dead';
  // Two agents of ga were last heard from two hours ago (the C test set it).
  const dead = `${card(A)} .liveness[data-ring="ga"]`;
  await page.locator(`${dead}[data-live="dead"]`).waitFor({ timeout: WAIT });
  check((await text(`${dead} .live-tag`)) === 'DEAD', `ga tag: ${await text(`${dead} .live-tag`)}`);
  check(/^0 of 2 online .*heard from 2 h ago$/.test(await text(`${dead} .live-said`)), `ga: ${await text(`${dead} .live-said`)}`);
  check((await page.locator(`${card(A)} .ring-health-dead[data-ring="ga"]`).count()) === 1, 'the dead ring is not marked');
  check((await text(`${dead} .seen-key-old b`)) === '2', 'last-seen distribution');
  log(`ring ga: DEAD, ${await text(`${dead} .live-said`)}`);

  step = 'statistics plots';
  const st = await (await fetch(`${args.url}/v1/rollouts/${A}/statistics`, { headers: { Authorization: `Bearer ${args.soc}` } })).json();
  const fig = (k) => `${card(A)} .ring-health[data-ring="canary"] figure[data-stat="${k}"]`;
  for (const k of ['rates', 'excess', 'test']) {
    check((await page.locator(`${fig(k)} svg.plot-stat path.line`).count()) === 2, `plot ${k}: two lines`);
  }
  const evalId = Number(await page.getAttribute(fig('rates'), 'data-eval'));
  const pt = st.points.find((p) => p.id === evalId);
  check(pt && pt.ring === 'canary', `evaluation ${evalId} not in the API's canary points`);
  const same = async (k, attr, v) => {
    const got = await page.getAttribute(fig(k), `data-${attr}`);
    check(v !== null && v !== undefined && Number(got) === v, `${k} ${attr}: page ${got}, API ${v}`);
  };
  await same('rates', 'treated', pt.relative.treated_rate);
  await same('rates', 'control', pt.relative.control_rate);
  await same('excess', 'bound', pt.excess_upper);
  await same('excess', 'limit', pt.max_excess);
  await same('test', 'statistic', pt.relative.statistic);
  await same('test', 'threshold', pt.relative.threshold);
  check(pt.relative.treated_rate > 0, `the halting evaluation has no treated failures: ${JSON.stringify(pt)}`);
  const tlabels = await page.locator(`${card(A)} .ring-health[data-ring="canary"] svg.plot-counts text.axis-t`).allTextContents();
  check(tlabels.length >= 3, `time axis labels: ${JSON.stringify(tlabels)}`);
  for (const sel of ['svg.plot-counts', `figure[data-stat="rates"] svg`]) {
    const ylabels = await page.locator(`${card(A)} .ring-health[data-ring="canary"] ${sel} text.axis-y`).allTextContents();
    check(new Set(ylabels).size === ylabels.length, `repeated y labels in ${sel}: ${JSON.stringify(ylabels)}`);
  }
  log(`canary statistics at evaluation ${evalId}: treated ${pt.relative.treated_rate}/h vs control ${pt.relative.control_rate}/h, `
    + `excess bound ${pt.excess_upper} vs ${pt.max_excess}, log-LR ${pt.relative.statistic} vs ${pt.relative.threshold}; time axis ${tlabels.join(' ')}`);
  check((await page.evaluate(() => window.__sameDocument)) === 'yes', 'the page was reloaded');

  step = 'signal plots';
  // per signal: treated vs control degraded rate and the test statistic vs
  // its threshold, carrying the values of GET /v1/rollouts/A/signals
  const sg = await (await fetch(`${args.url}/v1/rollouts/${A}/signals`, { headers: { Authorization: `Bearer ${args.soc}` } })).json();
  const sring = sg.rings.find((r) => r.ring === 'canary');
  check(sring && sring.worst && sring.worst.signal === 'agent_cpu' && sring.worst.degraded === 1, `the API's worst canary signal: ${JSON.stringify(sring && sring.worst)}`);
  const sfig = (k) => `${card(A)} .ring-health[data-ring="canary"] figure.sig-plot[data-signal="${k}"]`;
  check((await page.locator(`${card(A)} .ring-health[data-ring="canary"] figure.sig-plot`).count()) === sg.signal_names.length, 'a figure per signal');
  for (const k of sg.signal_names) {
    const pts = sring.signals[k].points;
    const lp = pts[pts.length - 1];
    check(lp, `no ${k} points in the API`);
    for (const cls of ['plot-sig-rate', 'plot-sig-test']) {
      check((await page.locator(`${sfig(k)} svg.${cls} path.line`).count()) === 2, `${k} ${cls}: two lines`);
    }
    check(Number(await page.getAttribute(sfig(k), 'data-at')) === lp.at, `${k}: the page shows minute ${await page.getAttribute(sfig(k), 'data-at')}, the API's last is ${lp.at}`);
    for (const [attr, v] of [['degraded', lp.degraded], ['treated', lp.treated], ['control', lp.control], ['control-degraded', lp.control_degraded],
      ['treated-rate', lp.treated_per_1000h], ['control-rate', lp.control_per_1000h], ['statistic', lp.statistic], ['threshold', lp.threshold]]) {
      const got = await page.getAttribute(sfig(k), `data-${attr}`);
      check(v !== null && v !== undefined && Number(got) === v, `${k} ${attr}: page ${got}, API ${v}`);
    }
  }
  check((await page.locator(`${sfig('agent_cpu')}.sig-worst`).count()) === 1, 'agent CPU not marked worst');
  check(/^agent CPU \(worst\)$/.test(await text(`${sfig('agent_cpu')} .stat-title`)), 'worst signal title');
  check(/^treated [0-9.]+ vs control [0-9.]+ per 1000 host-hours · 1 of 3 degraded vs 0 of [0-9]+ in control; log-LR [0-9.-]+ of [0-9.]+$/.test(await text(`${sfig('agent_cpu')} .stat-now`)), `agent CPU in words: ${await text(`${sfig('agent_cpu')} .stat-now`)}`);
  const slabels = await page.locator(`${sfig('agent_cpu')} svg.plot-sig-rate text.axis-t`).allTextContents();
  check(slabels.length >= 3, `signal time axis labels: ${JSON.stringify(slabels)}`);
  for (const cls of ['plot-sig-rate', 'plot-sig-test']) {
    const ylabels = await page.locator(`${sfig('agent_cpu')} svg.${cls} text.axis-y`).allTextContents();
    check(ylabels.length >= 2 && new Set(ylabels).size === ylabels.length, `y labels in ${cls}: ${JSON.stringify(ylabels)}`);
  }
  const cw = sring.worst;
  log(`canary agent CPU at ${cw.at}: ${cw.degraded} of ${cw.treated} degraded vs ${cw.control_degraded} of ${cw.control}, `
    + `${cw.treated_per_1000h} vs ${cw.control_per_1000h} per 1000 host-hours, log-LR ${cw.statistic} of ${cw.threshold}; time axis ${slabels.join(' ')}`);
  await page.screenshot({ path: join(args.out, 'rollout.png'), fullPage: true });
  log(`rollout ${A}'s page: timeline, exposure per ring, manifest and signers`);

  step = 'customers: groups, content modes, exposure';
  // Two tenants (the C test's world): "default" (early; the six live agents)
  // and "acme", whose group "branch" (the two dead ga agents) is delayed 2 h
  // on every channel but 292, which it paused; its group "default" is at GA.
  // Every number on the page must be the API's, and the API's must be these.
  const asSoc = async (path) => {
    const r = await fetch(`${args.url}${path}`, { headers: { Authorization: `Bearer ${args.soc}` } });
    check(r.status === 200, `GET ${path}: ${r.status}`);
    return r.json();
  };
  const tsel = (t) => `#customers details.tenant[data-tenant="${t}"]`;
  await page.click('#nav a[data-view="customers"]');
  // two tenants: both open on arrival (their detail fetched)
  for (const t of ['default', 'acme']) await page.locator(`${tsel(t)}[open] table.exposure`).waitFor({ timeout: WAIT });
  const tl0 = (await asSoc('/v1/tenants')).tenants;
  check(JSON.stringify(tl0.map((t) => t.name)) === '["default","acme"]', `tenants: ${JSON.stringify(tl0)}`);
  for (const t of tl0) {
    const want = `${t.groups} group${t.groups === 1 ? '' : 's'} · ${t.agents} agent${t.agents === 1 ? '' : 's'}`;
    check((await text(`${tsel(t.name)} .tenant-counts`)) === want, `${t.name}: ${await text(`${tsel(t.name)} .tenant-counts`)}, the API: ${want}`);
  }
  check(tl0[1].groups === 2 && tl0[1].agents === 2 && tl0[0].agents === 6, `the API's tenants: ${JSON.stringify(tl0)}`);
  // the groups' mode per channel, resolved by the page from the policies
  const mode = async (t, g, ch) => {
    const sel = `${tsel(t)} table.modes tr[data-group="${g}"] td[data-channel="${ch}"]`;
    return [await page.getAttribute(sel, 'data-mode', { timeout: WAIT }), await text(sel)];
  };
  for (const ch of [291, 292, 293, 294]) {
    const [m, words] = await mode('acme', 'branch', ch);
    const want = ch === 292 ? ['paused', 'paused'] : ['delayed', 'delayed 2 h'];
    check(m === want[0] && words === want[1], `acme/branch on ${ch}: ${m} "${words}", want ${want.join(' ')}`);
    check((await mode('acme', 'default', ch)).join() === 'ga,ga', `acme/default on ${ch}: ${await mode('acme', 'default', ch)}`);
    check((await mode('default', 'default', ch)).join() === 'early,early', `default/default on ${ch}: ${await mode('default', 'default', ch)}`);
  }
  check((await page.getAttribute(`${tsel('acme')} table.modes tr[data-group="branch"]`, 'data-agents')) === '2', 'acme/branch agents');
  // each active rollout: the tenant's hosts, those on its content, by mode;
  // as the API says (asked until the two agree: A may turn from halted to
  // reverted meanwhile and leave the list)
  // (what the operator reads: "3 of 6 hosts", "delayed 2"; the data-*
  // attributes must say the same)
  const exposure = async (t) => page.locator(`${tsel(t)} table.exposure tr.tx`).evaluateAll((els) => els.map((e) => {
    const on = /^([0-9]+) of ([0-9]+) hosts?/.exec(e.querySelector('.tx-on').textContent) || [];
    const modes = [...e.querySelectorAll('.mode-n')].map((m) => [m.dataset.mode, Number(m.dataset.n), m.textContent]);
    const same = Number(on[1]) === Number(e.dataset.exposed) && Number(on[2]) === Number(e.dataset.agents)
      && modes.every(([k, n, words]) => words === `${k} ${n}`);
    return { id: Number(e.dataset.rollout), agents: Number(on[2]), exposed: Number(on[1]), modes: Object.fromEntries(modes.map((m) => [m[0], m[1]])), ...(same ? {} : { attrs: 'differ from the text' }) };
  }));
  const seen = {};
  for (const t of ['default', 'acme']) {
    let last = '';
    for (const end = Date.now() + WAIT; ;) {
      const api = (await asSoc(`/v1/tenants/${t}/rollouts`)).rollouts.map((r) => ({ id: r.id, agents: r.agents, exposed: r.exposed, modes: r.modes }));
      const shown = await exposure(t);
      const norm = (xs) => JSON.stringify(xs.map((x) => ({ ...x, modes: Object.fromEntries(Object.entries(x.modes).sort()) })));
      if (api.length && norm(api) === norm(shown)) { seen[t] = api; break; }
      last = `page ${norm(shown)}, API ${norm(api)}`;
      check(Date.now() < end, `${t}'s exposure: ${last}`);
      await page.waitForTimeout(500);
    }
  }
  const row = (t, id) => seen[t].find((r) => r.id === id);
  check(row('acme', C) && row('acme', C).exposed === 0 && row('acme', C).agents === 2 && JSON.stringify(row('acme', C).modes) === '{"delayed":2}', `acme on C: ${JSON.stringify(row('acme', C))}`);
  check(row('acme', B) && row('acme', B).exposed === 0 && JSON.stringify(row('acme', B).modes) === '{"paused":2}', `acme on B: ${JSON.stringify(row('acme', B))}`);
  check(row('default', C) && row('default', C).exposed === 5 && row('default', C).agents === 6 && JSON.stringify(row('default', C).modes) === '{"early":6}', `default on C: ${JSON.stringify(row('default', C))}`);
  const onC = await text(`${tsel('acme')} tr.tx[data-rollout="${C}"] .tx-on`);
  check(onC === '0 of 2 hosts · 2 held back by the customer', `acme on C in words: ${onC}`);
  check((await text(`${tsel('default')} tr.tx[data-rollout="${C}"] .tx-on`)) === '5 of 6 hosts', 'default on C in words');
  await page.screenshot({ path: join(args.out, 'customers.png'), fullPage: true });
  // only open tenants are fetched: closed, acme is not asked for on the
  // next refreshes; opened again, it is at once
  const asked = [];
  const onReq = (r) => { const u = new URL(r.url()).pathname; if (u.startsWith('/v1/tenants')) asked.push(u); };
  page.on('request', onReq);
  await page.click(`${tsel('acme')} summary`);
  await page.locator(`${tsel('acme')}:not([open])`).waitFor({ timeout: WAIT });
  const t0 = asked.length;
  for (const end = Date.now() + WAIT; asked.slice(t0).filter((u) => u === '/v1/tenants').length < 2;) {
    check(Date.now() < end, `no two refreshes of the list: ${JSON.stringify(asked)}`);
    await page.waitForTimeout(250);
  }
  const closed = asked.slice(t0);
  check(!closed.some((u) => u.startsWith('/v1/tenants/acme')) && closed.includes('/v1/tenants/default/rollouts'), `requests while acme was closed: ${JSON.stringify(closed)}`);
  await page.click(`${tsel('acme')} summary`);
  await page.locator(`${tsel('acme')}[open] tr.tx[data-rollout="${C}"]`).waitFor({ timeout: WAIT });
  page.off('request', onReq);
  log(`customers: default ${seen.default.map((r) => `#${r.id} ${r.exposed}/${r.agents}`).join(', ')}; acme ${seen.acme.map((r) => `#${r.id} ${r.exposed}/${r.agents} ${JSON.stringify(r.modes)}`).join(', ')}; `
    + `a closed tenant is not fetched (${closed.length} requests in two refreshes)`);

  step = 'a controller that stopped turns the top bar red';
  const stopped = { leader: null, epoch: 3, lease_expires_in_s: -5.2, lease_ms: 400, last_cycle_at: '2026-01-01T00:00:00.000Z',
    last_cycle_age_s: 9.4, interval_ms: 200, healthy: false, lost: true, this_replica: 'x:1', this_replica_leads: false };
  await page.route('**/v1/controller', (r) => r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(stopped) }));
  await page.locator('#ctl[data-state="down"]').getByText('controller: no replica, last cycle 9 s ago').waitFor({ timeout: WAIT });
  await page.unroute('**/v1/controller');
  await page.locator('#ctl[data-state="ok"]').waitFor({ timeout: WAIT });
  log('the controller line: replica and last cycle; red when the server says no cycle for 3 intervals');

  step = 'release pauses, resumes and approves with reasons';
  await page.click('#logout');
  await login(args.release);
  await page.locator('#who').getByText('rel-one').waitFor({ timeout: WAIT });
  await page.evaluate(() => { location.hash = '#/'; });
  await page.locator(`${card(C)} button.pause`).waitFor({ timeout: WAIT });
  check((await page.locator(`${card(C)} button.resume, ${card(C)} button.approve`).count()) === 0, 'C (rolling) offers resume or approve');
  check((await page.locator(`${card(D)} button.approve`).count()) === 1, 'D (staged) offers no approve');
  const act = async (id, verb, reason, state) => {
    await page.click(`${card(id)} button.${verb}`);
    await page.locator('#action-dialog[open]').waitFor({ timeout: WAIT });
    check((await text('#action-title')).includes(`#${id}`), `${verb} dialog names the rollout`);
    await page.click('#action-confirm');
    check(/reason is required/.test(await text('#action-error')), `${verb}: an empty reason was not refused`);
    await page.fill('#action-reason', reason);
    await page.click('#action-confirm');
    await page.locator('#action-dialog:not([open])').waitFor({ state: 'attached', timeout: WAIT });
    await page.locator(`${card(id)}[data-state="${state}"]`).waitFor({ timeout: WAIT });
    const api = await (await fetch(`${args.url}/v1/rollouts/${id}`, { headers: { Authorization: `Bearer ${args.release}` } })).json();
    check(api.state === state, `${verb} ${id}: the server says ${api.state}`);
    log(`release: ${verb} #${id} -> ${state} (the server agrees)`);
  };
  await act(C, 'pause', 'dashboard test: hold early over the weekend', 'paused');
  check((await text(`${card(C)} .badge`)) === 'PAUSED', 'C badge');
  await act(C, 'resume', 'dashboard test: the weekend is over', 'rolling');
  await act(D, 'approve', 'dashboard test: approved after review', 'rolling');
  // A refusal is shown, not swallowed: pause what is no longer rolling.
  await page.click(`${card(C)} button.pause`);
  await page.locator('#action-dialog[open]').waitFor({ timeout: WAIT });
  await page.fill('#action-reason', 'a token without the role');
  await page.evaluate((t) => sessionStorage.setItem('firebreak.token', t), args.soc);
  await page.click('#action-confirm');
  await page.locator('#action-error', { hasText: 'HTTP 403' }).waitFor({ timeout: WAIT });
  await page.evaluate((t) => sessionStorage.setItem('firebreak.token', t), args.release);
  await page.click('#action-cancel');
  await page.screenshot({ path: join(args.out, 'release.png'), fullPage: true });
  log('the server\'s 403 shows in the action dialog');

  step = 'active first, history, audit';
  await page.locator(`${card(D)}[data-state="rolling"]`).waitFor({ timeout: WAIT });
  const titles = await page.locator('.board h2.section-title').allTextContents();
  check(titles[0] === 'Active rollouts' && titles[1] === 'Halted in the last hour', `board sections: ${JSON.stringify(titles)}`);
  check((await page.locator('#ended[open]').count()) === 0, 'the ended rollouts are not collapsed');
  await page.click('#nav a[data-view="history"]');
  await page.locator('#hist-count').waitFor({ timeout: WAIT });
  const hist = await page.locator('#history .row').evaluateAll((els) => els.map((e) => `${e.dataset.rollout}:${e.dataset.state}`));
  check(JSON.stringify(hist) === JSON.stringify([`${D}:rolling`, `${C}:rolling`, `${B}:halted`, `${A}:${hist[3].split(':')[1]}`]), `history: ${JSON.stringify(hist)}`);
  await page.selectOption('#hist-state', 'halted');
  await page.locator('#history .row[data-state="rolling"]').first().waitFor({ state: 'detached', timeout: WAIT });
  await page.click('#nav a[data-view="audit"]');
  await page.locator('#audit .audit-item').first().waitFor({ timeout: WAIT });
  await page.fill('#audit-action', 'rollout.halt');
  await page.click('#audit-apply');
  await page.locator('#audit-note', { hasText: /^2 records shown/ }).waitFor({ timeout: WAIT });
  const acts = await page.locator('#audit .audit-item').evaluateAll((els) => els.map((e) => e.dataset.action));
  check(acts.length === 2 && acts.every((a) => a === 'rollout.halt'), `audit filtered: ${JSON.stringify(acts)}`);
  check(/soc:soc-one/.test(await text('#audit-list')), 'the soc halt is not in the audit view');
  await page.screenshot({ path: join(args.out, 'audit.png'), fullPage: true });
  await page.click('#nav a[data-view="board"]');
  await page.locator(`${card(C)}`).waitFor({ timeout: WAIT });
  log(`board: ${titles.join(' / ')}; history lists ${hist.join(', ')}; audit filtered to rollout.halt: ${acts.length} records`);

  step = 'logout';
  await page.click('#logout');
  await page.locator('#login').waitFor({ timeout: WAIT });
  check((await page.evaluate(() => sessionStorage.getItem('firebreak.token'))) === null, 'token kept after logout');

  step = 'agent token';
  await login(args.agent);
  await page.locator('#refused').waitFor({ timeout: WAIT });
  check((await text('#refused')).includes("role 'agent' may not do this"), `agent view: ${await text('#refused')}`);
  check((await page.locator('button.halt').count()) === 0, 'an agent sees a halt button');
  log('an agent token gets the server\'s 403 and no halt button');

  check(problems.length === 0, `browser problems:\n  ${problems.join('\n  ')}`);
}

let rc = 0;
try {
  await main();
  log('all checks passed');
} catch (e) {
  rc = 1;
  console.log(`dashboard: FAILED: ${e.message}`); // stdout: the C test prints it whole
  console.error(`dashboard: FAILED: ${e.message}`);
  if (problems.length) console.error(`browser problems:\n  ${problems.join('\n  ')}`);
  if (page) await page.screenshot({ path: join(args.out, 'failure.png'), fullPage: true }).catch(() => {});
} finally {
  if (ctx) await ctx.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(rc);
