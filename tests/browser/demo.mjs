// Drives stsgate's /demo page in a real Chromium (Debian's /usr/bin/chromium, through
// playwright-core; no browser download) and prints one line
//   STSGATE_DEMO_RESULT {json}
// that tests/it/browser.rs parses and asserts. This script only observes and reports; the
// assertions live in the Rust test (it also checks the ledger and the stored bytes).
//
// Environment:
//   STSGATE_DEMO_URL         base URL of the running stsgate (http://127.0.0.1:PORT)
//   STSGATE_DEMO_TOKEN       a JWT (`stsgate token --sub alice`)
//   STSGATE_DEMO_SMALL_FILE  a file the module accepts (uploaded: case a)
//   STSGATE_DEMO_LARGE_FILE  a file over the module's max_bytes (refused: case b)
//   STSGATE_DEMO_SCREENSHOT  where to write the screenshot of the finished page
//   STSGATE_DEMO_CLOUD       cloud type to pick (default 2)
//   STSGATE_DEMO_MODULE      upload module (default resource_image)
//   STSGATE_DEMO_CHROMIUM    browser executable (default /usr/bin/chromium)
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') {
    console.error(`demo.mjs: ${name} is not set`);
    process.exit(2);
  }
  return v;
};
const base = env('STSGATE_DEMO_URL').replace(/\/$/, '');
const token = env('STSGATE_DEMO_TOKEN');
const smallFile = env('STSGATE_DEMO_SMALL_FILE');
const largeFile = env('STSGATE_DEMO_LARGE_FILE');
const screenshot = env('STSGATE_DEMO_SCREENSHOT');
const cloud = env('STSGATE_DEMO_CLOUD', '2');
const module = env('STSGATE_DEMO_MODULE', 'resource_image');
const executablePath = env('STSGATE_DEMO_CHROMIUM', '/usr/bin/chromium');
const TIMEOUT_MS = 30_000;

// Values of the STS answer that must never appear in full on the page.
const SECRET_FIELD = /policy|signature|token|secret/i;
function secretsOf(answer) {
  const out = [['jwt', token]];
  const d = answer && answer.data;
  if (!d) return out;
  if (d.secretAccessKey) out.push(['secretAccessKey', d.secretAccessKey]);
  if (d.securityToken) out.push(['securityToken', d.securityToken]);
  if (d.policy) out.push(['policy', d.policy]);
  if (d.signature) out.push(['signature', d.signature]);
  for (const [k, v] of Object.entries((d.form && d.form.fields) || {})) {
    if (SECRET_FIELD.test(k) && v) out.push([`form.${k}`, v]);
  }
  return out;
}

async function uploadCase(browser, file) {
  const page = await browser.newPage();
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  const nav = await page.goto(`${base}/demo`, { waitUntil: 'load' });
  const headers = nav.headers();
  await page.fill('#token', token);
  const clouds = await page.$$eval('#cloud option', (os) => os.map((o) => o.value));
  await page.selectOption('#cloud', cloud);
  await page.selectOption('#module', module);
  await page.setInputFiles('#file', file);
  const stsAnswer = page.waitForResponse((r) => new URL(r.url()).pathname === '/upload/sts/info', { timeout: TIMEOUT_MS });
  await page.click('#upload');
  const sts = await stsAnswer;
  const answer = await sts.json().catch(() => null);
  await page.waitForSelector('body[data-state=done], body[data-state=error]', { timeout: TIMEOUT_MS });
  const seen = await page.evaluate(() => ({
    state: document.body.dataset.state,
    tokenInputType: document.getElementById('token').type,
    tokenInfo: document.getElementById('token-info').innerText,
    objectId: document.body.dataset.objectId || null,
    callback: document.body.dataset.callback === 'true',
    recordStatus: document.getElementById('record').dataset.status || null,
    record: document.getElementById('record').innerText,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').innerText,
    status: document.getElementById('status').innerText,
    progress: Number(document.getElementById('progress').value),
    text: document.body.innerText,
    html: document.documentElement.outerHTML,
  }));
  const secrets = secretsOf(answer);
  const leaked = secrets.filter(([, v]) => seen.text.includes(v) || seen.html.includes(v)).map(([k]) => k);
  return {
    page,
    result: {
      headers: {
        contentType: headers['content-type'] || null,
        csp: headers['content-security-policy'] || null,
        cacheControl: headers['cache-control'] || null,
      },
      clouds,
      stsStatus: sts.status(),
      answerObjectId: answer && answer.data ? answer.data.objectId : null,
      answerRelativePath: answer && answer.data ? answer.data.relativePath : null,
      formUrl: answer && answer.data && answer.data.form ? answer.data.form.url : null,
      state: seen.state,
      tokenInputType: seen.tokenInputType,
      tokenInfo: seen.tokenInfo,
      objectId: seen.objectId,
      callback: seen.callback,
      recordStatus: seen.recordStatus,
      record: seen.record,
      error: seen.error,
      status: seen.status,
      progress: seen.progress,
      secretsChecked: secrets.map(([k]) => k),
      leaked,
      problems,
    },
  };
}

const browser = await chromium.launch({ executablePath, headless: true });
let out;
try {
  const a = await uploadCase(browser, smallFile);
  mkdirSync(dirname(screenshot), { recursive: true });
  await a.page.screenshot({ path: screenshot, fullPage: true });
  console.error(`demo.mjs: screenshot of the finished page: ${screenshot}`);
  await a.page.close();
  const b = await uploadCase(browser, largeFile);
  await b.page.close();
  out = { uploaded: a.result, tooLarge: b.result, screenshot };
} finally {
  await browser.close();
}
console.log('STSGATE_DEMO_RESULT ' + JSON.stringify(out));
