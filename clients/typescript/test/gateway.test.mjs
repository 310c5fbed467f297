// The SDK against the real gateway (the whole system, started here): a full run followed with
// ProgressClient through a network cut (its session restored by old_client_id) and a gateway
// restart (SIGKILL) while the run is paused; what it received equals the stored history, once
// each, in order. socket.io-client (npm) follows the same run on the /progress namespace and
// recovers from both drops by Socket.IO's connection state recovery, just as exactly. Then: a
// late subscriber, a snapshot subscriber (recovered: false surfaced), a project subscription,
// a refused token.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { io } from "socket.io-client";
import WebSocket from "ws";

import { ProgressClient, RestClient, WebSocketManager, isTaskState } from "../dist/esm/index.js";
import { mintToken, startProxy, startSystem, waitFor } from "./support/system.mjs";

let system;
let proxy;
let token;
const opened = []; // every client a test made: closed in after(), whatever happened

before(async () => {
  system = await startSystem();
  proxy = await startProxy(system.base);
  token = mintToken(system.jwt_secret, "ts-sdk");
}, { timeout: 240_000 });

after(async () => {
  for (const c of opened) c.disconnect?.() ?? c.close?.();
  await proxy?.close();
  await system?.stop();
});

const client = (base = proxy.base, extra = {}) => keep(
  new ProgressClient({
    baseUrl: base,
    token,
    WebSocket,
    initialDelayMs: 200,
    maxDelayMs: 2000,
    heartbeatIntervalMs: 5000,
    connectionTimeoutMs: 5000,
    ...extra,
  }));
const keep = (c) => (opened.push(c), c);

const storedOffsets = async (rest, taskId) =>
  (await rest.history(taskId, { source: "database" })).items.map((item) => item.offset);

let run; // {taskId, projectId, offsets}

test("a full run, through a network cut and a gateway restart, equals the stored history", { timeout: 300_000 }, async () => {
  const progress = client();
  const states = [];
  progress.onConnectionState((state) => states.push(state));
  await progress.connect();
  const started = await progress.rest.createProject({
    title: "SDK run",
    content: "The Moon's gravity pulls on the oceans, raising two bulges of water.",
    settings: { language: "en", segments: 1, target_length_seconds: 10 },
  });
  const events = [];
  const subscribed = [];
  let completed = null;
  const stop = progress.subscribeToTask(started.task_id, {
    onEvent: (update) => events.push(update),
    onSubscribed: (info) => subscribed.push(info),
    onComplete: (state) => (completed = state),
    onFailed: (state) => assert.fail(`the run failed: ${JSON.stringify(state.error)}`),
  });
  assert.equal(progress.getSubscriptionCount(), 1);

  const sock = keep(io(`${proxy.base}/progress`, {
    auth: { token }, transports: ["websocket"], reconnectionDelay: 200, reconnectionDelayMax: 1000,
  }));
  const sioOffsets = [];
  const sioConnects = [];
  sock.on("connect", () => sioConnects.push(sock.recovered));
  for (const kind of ["progress", "status", "error"]) {
    sock.on(kind, (msg) => msg.offset !== null && msg.task_id === started.task_id && sioOffsets.push(msg.offset));
  }
  await waitFor(() => sioConnects.length === 1, { what: "socket.io to connect" });
  assert.deepEqual(await sock.emitWithAck("join", { task_id: started.task_id, since: -1 }), { ok: true, task_id: started.task_id });

  await waitFor(() => events.length >= 3, { timeoutMs: 120_000, what: "the first updates" });
  // Paused (the step in hand finishes, nothing new starts), the run waits for both drops
  // below, however fast the pipeline is: they happen mid-run.
  assert.equal((await progress.rest.control(started.task_id, "pause")).accepted, true);
  assert.ok(proxy.cut() >= 1, "the network cut closed the socket");
  await waitFor(() => states.includes("reconnecting"), { what: "reconnecting" });
  await waitFor(() => progress.manager.stats.reconnects >= 1, { what: "the reconnect" });
  // The same gateway restores the session the cut ended (old_client_id, decision 0141).
  await waitFor(() => progress.manager.stats.sessionsRestored >= 1, { what: "the session restored after the cut" });
  await waitFor(() => events.some((e) => e.payload.status === "paused"), { timeoutMs: 120_000, what: "the pause" });

  await system.kill("gateway");
  await system.start("gateway");
  assert.equal(completed, null, "still mid-run");
  const seen = events.length;
  assert.equal((await progress.rest.control(started.task_id, "resume")).accepted, true);
  await waitFor(() => events.length > seen, { timeoutMs: 120_000, what: "updates after both drops" });
  await waitFor(() => completed, { timeoutMs: 240_000, what: "the run to complete" });
  assert.equal(completed.status, "completed");
  assert.equal(completed.progress, 100);

  const received = events.map((e) => e.offset);
  assert.deepEqual(received, [...received].sort((a, b) => a - b), "in order");
  assert.equal(new Set(received).size, received.length, "no duplicates");
  await waitFor(async () => JSON.stringify(await storedOffsets(progress.rest, started.task_id)) === JSON.stringify(received), {
    timeoutMs: 30_000,
    what: "the stored history to equal what was received",
  });
  assert.ok(subscribed.length >= 2 && subscribed.every((s) => s.recovered), "every resume was exact");
  await waitFor(() => sioOffsets.length >= received.length, { what: "socket.io-client to catch up" }).catch((err) => {
    throw new Error(`${err.message}: connects ${JSON.stringify(sioConnects)}, got ${JSON.stringify(sioOffsets)}, want ${JSON.stringify(received)}`);
  });
  assert.deepEqual(sioOffsets, received, "socket.io-client received exactly the same updates");
  assert.ok(sioConnects.length >= 2, "socket.io-client reconnected");
  assert.deepEqual(sioConnects, [false, ...sioConnects.slice(1).map(() => true)], "and recovered every time");
  sock.close();
  assert.ok(progress.manager.stats.reconnects >= 1);
  stop();
  assert.equal(progress.getSubscriptionCount(), 0);
  progress.disconnect();
  assert.equal(progress.getState(), "disconnected");
  run = { taskId: started.task_id, projectId: started.project_id, offsets: received };
});

test("a late subscriber replays the whole run; a snapshot subscriber is told recovered: false", { timeout: 60_000 }, async (t) => {
  if (!run) return t.skip("needs the full run");
  const progress = client(system.base);
  await progress.connect();
  const replayed = [];
  let done = false;
  progress.subscribeToTask(run.taskId, { onEvent: (u) => replayed.push(u.offset), onComplete: () => (done = true) });
  await waitFor(() => done, { what: "the replay to reach the end" });
  assert.deepEqual(replayed, run.offsets);

  const infos = [];
  let snapshot = null;
  const other = client(system.base);
  await other.connect();
  other.subscribeToTask(run.taskId, { onSubscribed: (i) => infos.push(i), onSnapshot: (s) => (snapshot = s) }, { since: null });
  await waitFor(() => snapshot, { what: "the snapshot" });
  assert.equal(infos[0].recovered, false);
  assert.ok(isTaskState(snapshot) && snapshot.status === "completed");
  progress.disconnect();
  other.disconnect();
});

test("a project subscription follows its runs exactly, a new run included", { timeout: 240_000 }, async (t) => {
  if (!run) return t.skip("needs the full run");
  const progress = client(system.base);
  await progress.connect();
  const byTask = new Map();
  const completed = new Set();
  const stop = progress.subscribeToProject(run.projectId, {
    onTask: (id) => byTask.set(id, byTask.get(id) ?? []),
    onEvent: (u) => byTask.get(u.task_id).push(u.offset),
    onComplete: (s) => completed.add(s.task_id),
  });
  await waitFor(() => completed.has(run.taskId), { what: "the first run replayed" });
  assert.deepEqual(byTask.get(run.taskId), run.offsets);
  const again = await progress.rest.startRun(run.projectId);
  await waitFor(() => (byTask.get(again.task_id) ?? []).length >= 3, { timeoutMs: 120_000, what: "the new run" });
  stop();
  const seen = byTask.get(again.task_id);
  const last = seen.at(-1);
  await waitFor(async () => {
    const stored = (await storedOffsets(progress.rest, again.task_id)).filter((o) => o <= last);
    return JSON.stringify(stored) === JSON.stringify(seen);
  }, { what: "the new run's updates to equal its stored history" });
  await progress.rest.control(again.task_id, "cancel", "test done");
  progress.disconnect();
});

test("a forged token fails the connection with 4401 and no retry", { timeout: 30_000 }, async () => {
  const manager = keep(new WebSocketManager({ url: `${system.base.replace("http", "ws")}/api/v1/ws`, token: "forged", WebSocket, initialDelayMs: 50 }));
  const details = [];
  manager.onConnectionState((state, detail) => details.push([state, detail?.code]));
  await assert.rejects(manager.connect(), /failed: 4401/);
  assert.equal(manager.getState(), "failed");
  assert.deepEqual(details.at(-1), ["failed", 4401]);
  const rest = new RestClient({ baseUrl: system.base, token: "forged" });
  await assert.rejects(rest.runs(), (err) => err.status === 401 && err.code === "unauthorized");
});
