// `npm pack` makes a package that installs and loads as an ES module and as CommonJS, with
// type declarations, and whose browser build imports nothing but its own files.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const PKG = resolve(fileURLToPath(import.meta.url), "../..");

const files = (dir) =>
  readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath ?? d.path, d.name));

test("the browser build has no runtime dependencies", () => {
  const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
  assert.equal(pkg.dependencies, undefined);
  for (const file of files(join(PKG, "dist/esm")).filter((f) => f.endsWith(".js"))) {
    for (const [, spec] of readFileSync(file, "utf8").matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)) {
      assert.ok(spec.startsWith("./") || spec.startsWith("../"), `${file} imports ${spec}`);
    }
  }
});

test("npm pack installs and loads as ESM and CommonJS, with declarations", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "ytmaker-pack-"));
  const [{ filename, files: packed }] = JSON.parse(
    execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: PKG, encoding: "utf8" }),
  );
  const names = packed.map((f) => f.path);
  for (const f of ["dist/esm/index.js", "dist/esm/index.d.ts", "dist/cjs/index.js", "dist/cjs/index.d.ts", "dist/cjs/package.json"]) {
    assert.ok(names.includes(f), `${f} is packed`);
  }
  assert.ok(!names.some((f) => f.startsWith("src/") || f.startsWith("test/")));
  const app = join(dir, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(join(app, "package.json"), '{"name":"app","private":true}');
  execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", join(dir, filename)], { cwd: app, stdio: "ignore" });
  const esm = execFileSync(process.execPath, ["--input-type=module", "-e",
    'import * as sdk from "@ytmaker/sdk"; console.log(typeof sdk.ProgressClient, typeof sdk.isServerMessage)'], { cwd: app, encoding: "utf8" });
  assert.equal(esm.trim(), "function function");
  const cjs = execFileSync(process.execPath, ["-e",
    'const sdk = require("@ytmaker/sdk"); console.log(typeof sdk.WebSocketManager, sdk.backoffDelay(1))'], { cwd: app, encoding: "utf8" });
  assert.equal(cjs.trim(), "function 2000");
  const dts = readFileSync(join(app, "node_modules/@ytmaker/sdk/dist/cjs/index.d.ts"), "utf8");
  assert.match(dts, /ProgressClient/);
});

test("the gateway's live page serves the current browser build", async () => {
  const { differences } = await import("../scripts/copy-web.mjs");
  assert.deepEqual(differences(), [], "run: npm run web (in clients/typescript)");
});
