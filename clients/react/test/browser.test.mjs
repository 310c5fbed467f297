// <ProgressTracker/> in real Chromium (Debian's, driven by playwright-core) against the real
// system started here: a whole run with a network cut mid-run (the component reconnects and
// resumes; its history equals the stored history, once each, in order); a bad token reaches
// onError; autoReconnect off stays down. Screenshot in test-artifacts/.
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { build } from "esbuild";
import { chromium } from "playwright-core";
import { RestClient } from "@ytmaker/sdk";

import { REPO, inCI, mintToken, startProxy, startSystem, waitFor } from "../../typescript/test/support/system.mjs";

const CHROMIUM = "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run"];
const here = fileURLToPath(new URL(".", import.meta.url));

let system, proxy, server, page_url, browser, token, rest;

before(async () => {
  if (!existsSync(CHROMIUM)) {
    if (inCI) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
    return;
  }
  const bundle = await build({
    entryPoints: [resolve(here, "app.jsx")], bundle: true, write: false, format: "iife",
    jsx: "automatic", minify: true, define: { "process.env.NODE_ENV": '"production"' },
  });
  const js = bundle.outputFiles[0].text;
  server = createServer((req, res) => {
    if (req.url.startsWith("/app.js")) {
      res.writeHead(200, { "content-type": "text/javascript" }).end(js);
    } else {
      res.writeHead(200, { "content-type": "text/html" })
        .end('<!doctype html><meta charset="utf-8"><div id="root"></div><script src="/app.js"></script>');
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  page_url = `http://127.0.0.1:${server.address().port}/`;
  system = await startSystem();
  proxy = await startProxy(system.base);
  token = mintToken(system.jwt_secret, "react");
  rest = new RestClient({ baseUrl: system.base, token });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}, { timeout: 240_000 });

after(async () => {
  await browser?.close();
  await proxy?.close();
  await system?.stop();
  server?.close();
});

const open = async (query) => {
  const page = await browser.newPage({ viewport: { width: 900, height: 1100 } });
  await page.goto(`${page_url}?${new URLSearchParams(query)}`);
  return page;
};

test("a whole run, through a network cut, shows every update once", { timeout: 300_000 }, async (t) => {
  if (!browser) return t.skip("no Chromium");
  const started = await rest.createProject({
    title: "React run", content: "Tides rise and fall twice a day.",
    settings: { language: "en", segments: 1, target_length_seconds: 10 },
  });
  const page = await open({ task: started.task_id, base: proxy.base, token });
  const history = () => page.$$eval(".ytm-history li", (lis) => lis.map((li) => Number(li.dataset.offset)));
  await waitFor(async () => (await history()).length >= 3, { timeoutMs: 120_000, what: "the first updates" });
  assert.ok(proxy.cut() >= 1);
  await page.waitForSelector(".ytm-connection[data-state=reconnecting]", { timeout: 15_000 });
  await page.waitForSelector(".ytm-connection[data-state=connected]", { timeout: 30_000 });
  await page.waitForSelector(".ytm-tracker[data-status=completed]", { timeout: 240_000 });
  assert.equal(await page.textContent(".ytm-overall"), "100 %");
  assert.equal(await page.getAttribute('.ytm-stage[data-stage="render"]', "data-status"), "completed");

  const seen = await page.evaluate(() => window.tracker);
  assert.equal(seen.completed, "completed");
  assert.deepEqual(seen.reconnects, [1]);
  await waitFor(async () => {
    const stored = (await rest.history(started.task_id)).items.map((i) => i.offset);
    return JSON.stringify(stored) === JSON.stringify(await history());
  }, { what: "the page's history to equal the stored history" });
  assert.deepEqual(seen.progress, await history(), "onProgress saw exactly the history");
  mkdirSync(resolve(REPO, "test-artifacts"), { recursive: true });
  await page.screenshot({ path: resolve(REPO, "test-artifacts/react-progress-tracker.png"), fullPage: true });
  await page.close();
});

test("a bad token reaches onError; with autoReconnect off a cut stays down", { timeout: 120_000 }, async (t) => {
  if (!browser) return t.skip("no Chromium");
  const bad = await open({ task: "whatever", base: system.base, token: "forged" });
  await bad.waitForSelector(".ytm-connection[data-state=failed]", { timeout: 15_000 });
  assert.deepEqual(await bad.evaluate(() => window.tracker.errors), ["connection_failed"]);
  await bad.close();

  const runs = (await rest.runs()).items;
  const page = await open({ task: runs[0].task_id, base: proxy.base, token, reconnect: "off" });
  await page.waitForSelector(".ytm-tracker[data-status=completed]", { timeout: 30_000 });
  proxy.cut();
  await page.waitForSelector(".ytm-connection[data-state=disconnected]", { timeout: 15_000 });
  const forbidden = await open({ task: runs[0].task_id, base: system.base, token: mintToken(system.jwt_secret, "mallory") });
  // A forbidden subscribe is asked again for the SDK's refusal window (15 s: the task may be
  // new to this replica), each refusal after the gateway's wait for an unknown task (3 s).
  await forbidden.waitForSelector(".ytm-error", { timeout: 45_000 });
  assert.match(await forbidden.textContent(".ytm-error"), /^forbidden:/);
  await page.close();
  await forbidden.close();
});
