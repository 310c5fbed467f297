// The contract: the generated guards accept what the gateway sends and refuse what it does not;
// a change of the gateway's schema fails the build (the generated file is stale) and, once
// regenerated, fails the compile of code that used what changed. Backoff, pure.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { backoffDelay, isServerMessage, isClientMessage, isUpdatePayload } from "../dist/esm/index.js";

const PKG = resolve(fileURLToPath(import.meta.url), "../..");
const SCHEMA = resolve(PKG, "../../shared/schemas/gateway.schema.json");
const TSC = resolve(PKG, "../node_modules/typescript/bin/tsc");

const state = {
  task_id: "t1", project_id: "p1", owner: "alice", title: "x", status: "running", stage: "script",
  progress: 12.5, sub_progress: 50, current_step: null, total_steps: null, completed_steps: null,
  message: "", error: null, result: null, stages: { script: { status: "running", progress: 50, attempt: 1, started_at: null, finished_at: null } },
  eta_seconds: null, created_at: null, updated_at: null, last_event_id: null, offset: 7, epoch: "e",
};

test("the guards accept the gateway's messages and refuse others", () => {
  const update = { ...state, event_id: "e1", event_type: "stage.progress", occurred_at: "2026-01-01T00:00:00Z" };
  assert.ok(isServerMessage({ type: "progress", task_id: "t1", offset: 7, payload: update }));
  assert.ok(isUpdatePayload(update));
  assert.ok(isServerMessage({ type: "error", task_id: null, offset: null, payload: { code: "forbidden", message: "no", details: {} } }));
  assert.ok(isServerMessage({ type: "subscribed", task_id: "t1", offset: null, payload: { task_id: "t1", offset: null, epoch: null, recovered: false, restored: false } }));
  assert.ok(isServerMessage({ type: "snapshot", task_id: "t1", offset: 7, payload: state, extra: "ignored" }));
  assert.ok(!isServerMessage({ type: "progress", task_id: "t1", offset: "7", payload: update }), "offset must be an integer");
  assert.ok(!isServerMessage({ type: "progress", task_id: "t1", offset: 7, payload: { ...update, status: "sleeping" } }), "unknown status");
  assert.ok(!isServerMessage({ type: "progress", task_id: "t1", offset: 7, payload: { ...update, stages: { dancing: {} } } }), "unknown stage");
  assert.ok(!isServerMessage({ type: "teleport", task_id: null, offset: null, payload: {} }));
  assert.ok(!isServerMessage(null) && !isServerMessage([]) && !isServerMessage("progress"));
  assert.ok(isClientMessage({ action: "subscribe", task_id: "t1", since: -1 }));
  assert.ok(!isClientMessage({ action: "subscribe" }));
});

test("a changed contract fails the build, then the compile of what used it", () => {
  const dir = mkdtempSync(join(tmpdir(), "ytmaker-contract-"));
  const schema = JSON.parse(readFileSync(SCHEMA, "utf8"));
  const payload = schema.$defs.SubscribedPayload;
  payload.properties.position = payload.properties.offset; // the gateway renames a field
  delete payload.properties.offset;
  payload.required = payload.required.map((f) => (f === "offset" ? "position" : f));
  writeFileSync(join(dir, "schema.json"), JSON.stringify(schema));

  const env = { ...process.env, YTMAKER_SCHEMA: join(dir, "schema.json") };
  const check = spawnSync(process.execPath, ["scripts/generate.mjs", "--check"], { cwd: PKG, env, encoding: "utf8" });
  assert.equal(check.status, 1);
  assert.match(check.stderr, /contract changed/);

  cpSync(resolve(PKG, "src"), join(dir, "src"), { recursive: true });
  const out = join(dir, "src/generated/contract.ts");
  execFileSync(process.execPath, ["scripts/generate.mjs"], { cwd: PKG, env: { ...env, YTMAKER_CONTRACT_OUT: out }, stdio: "ignore" });
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({ extends: resolve(PKG, "tsconfig.json"), compilerOptions: { rootDir: "src", noEmit: true }, include: ["src"] }));
  writeFileSync(join(dir, "src/uses.ts"), 'import type { SubscribedPayload } from "./index.js";\nexport const after = (p: SubscribedPayload): number | null => p.offset;\n');
  const compile = spawnSync(process.execPath, [TSC, "-p", dir], { encoding: "utf8" });
  assert.notEqual(compile.status, 0);
  assert.match(compile.stdout, /Property 'offset' does not exist on type 'SubscribedPayload'/);
});

test("backoff grows exponentially up to its cap, with jitter below the delay", () => {
  const opts = { initialDelayMs: 100, maxDelayMs: 1000, factor: 2 };
  assert.deepEqual([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, opts)), [100, 200, 400, 800, 1000, 1000]);
  assert.equal(backoffDelay(2, { ...opts, jitter: 0.5 }, () => 1), 200);
  assert.equal(backoffDelay(2, { ...opts, jitter: 0.5 }, () => 0), 400);
});
