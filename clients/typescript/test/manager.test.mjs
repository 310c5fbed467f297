// WebSocketManager's rules with a scripted socket (no network): backoff up to max attempts,
// the connection timeout, heartbeat silence, resume by offset per subscription with
// duplicates dropped, the gateway's session restore (old_client_id, decision 0141), no retry
// on 4401, invalid messages counted and not delivered; the token offered as a subprotocol,
// never in the URL (also through the ws package, on loopback).
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket, { WebSocketServer } from "ws";

import { ProgressClient, SUBSCRIPTION_FRAMES_PER_SECOND, subscriptionFramesPerSecond, WebSocketManager } from "../dist/esm/index.js";
import { waitFor } from "./support/system.mjs";

/** A fake server: each new socket is handed to `script(socket)`. */
function fakeSockets(script) {
  const made = [];
  class FakeSocket {
    readyState = 0;
    onopen = null; onmessage = null; onclose = null; onerror = null;
    sent = [];
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      made.push(this);
      queueMicrotask(() => script(this, made.length));
    }
    open() { this.readyState = 1; this.onopen?.({}); }
    deliver(msg) { this.onmessage?.({ data: typeof msg === "string" ? msg : JSON.stringify(msg) }); }
    send(data) { this.sent.push(JSON.parse(data)); }
    close(code = 1000, reason = "") { this.drop(code, reason); }
    drop(code, reason = "") {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
  }
  return { FakeSocket, made };
}

const connected = (id) => ({ type: "connected", task_id: null, offset: null, payload: { client_id: id, heartbeat_interval: 30 } });
const state = { task_id: "t1", project_id: "p1", owner: "a", status: "running", progress: 10, stages: {} };
const update = (offset) => ({
  type: "progress", task_id: "t1", offset,
  payload: { ...state, offset, event_id: `e${offset}`, event_type: "stage.progress", occurred_at: "2026-01-01T00:00:00Z" },
});
const subscribed = (offset, epoch, recovered) => ({
  type: "subscribed", task_id: "t1", offset,
  payload: { task_id: "t1", offset, epoch, recovered, restored: false },
});
const snapshot = (offset, epoch) => ({ type: "snapshot", task_id: "t1", offset, payload: { ...state, offset, epoch } });

test("gives up after maxReconnectAttempts, with growing delays", async () => {
  const { FakeSocket, made } = fakeSockets((s) => s.drop(1006));
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, maxReconnectAttempts: 3, initialDelayMs: 10, maxDelayMs: 40 });
  const states = [];
  m.onConnectionState((st) => states.push(st));
  const started = Date.now();
  await assert.rejects(m.connect(), /failed/);
  assert.equal(made.length, 4, "the first try and three retries");
  assert.ok(Date.now() - started >= 10 + 20 + 40 - 5, "delays 10, 20, 40 ms");
  assert.equal(states.at(-1), "failed");
});

test("a connection that never says connected times out and is retried", async () => {
  const { FakeSocket, made } = fakeSockets((s, n) => { s.open(); if (n === 2) s.deliver(connected("c2")); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, connectionTimeoutMs: 50, initialDelayMs: 5 });
  await m.connect();
  assert.equal(made.length, 2);
  assert.equal(made[0].readyState, 3, "the silent socket was closed");
  assert.equal(m.clientId, "c2");
  m.disconnect();
});

test("silence for two heartbeat intervals reconnects; the client pings meanwhile", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected(`c${made.length}`)); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, heartbeatIntervalMs: 100, initialDelayMs: 5 });
  await m.connect();
  await waitFor(() => made.length >= 2 && m.isConnected(), { timeoutMs: 5000, what: "a reconnect after silence" });
  assert.equal(made[0].readyState, 3, "the silent socket was dropped");
  assert.ok(made.some((s) => s.sent.some((msg) => msg.action === "ping")), "pings while waiting");
  assert.ok(m.stats.reconnects >= 1);
  m.disconnect();
});

test("a pong echoes its ping's timestamp, after what came before the ping", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected("c1")); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(made[0].sent.length));
  await m.connect();
  m.subscribe("t1", 0);
  const sentBefore = made[0].sent.length;
  made[0].deliver(subscribed(0, "E", true));
  made[0].deliver(update(1));
  made[0].deliver({ type: "ping", task_id: null, offset: null, payload: { timestamp: 1764876543.123456 } });
  assert.deepEqual(made[0].sent.slice(sentBefore), [{ action: "pong", timestamp: 1764876543.123456 }]);
  assert.deepEqual(seen, [sentBefore], "the update before the ping was handled before the pong");
  m.disconnect();
});

test("resubscribes after the last offset delivered; duplicates and invalid messages are dropped", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected(`c${made.length}`)); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  assert.deepEqual(made[0].sent.at(-1), { action: "subscribe", task_id: "t1", since: -1, epoch: null });
  made[0].deliver({ type: "subscribed", task_id: "t1", offset: -1, payload: { task_id: "t1", offset: null, epoch: "E", recovered: true, restored: false } });
  for (const o of [3, 5, 5, 4]) made[0].deliver(update(o));
  made[0].deliver("{not json");
  made[0].deliver({ ...update(9), offset: "9" });
  made[0].drop(1006);
  await waitFor(() => made.length === 2 && m.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
  assert.deepEqual(made[1].sent.find((x) => x.action === "subscribe"), { action: "subscribe", task_id: "t1", since: 5, epoch: "E" });
  made[1].deliver(subscribed(5, "E", true));
  for (const o of [5, 6]) made[1].deliver(update(o));
  assert.deepEqual(seen, [3, 5, 6]);
  assert.equal(m.stats.duplicatesDropped, 3);
  assert.equal(m.stats.invalidMessages, 2);
  m.unsubscribe("t1");
  made[1].deliver(update(7));
  assert.deepEqual(seen, [3, 5, 6, 7], "an unfollowed task's update passes through, undeduplicated");
  m.disconnect();
});

test("the token goes in the subprotocols, never in the URL, asked for again at every connect", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected(`c${made.length}`)); });
  let issued = 0;
  const token = () => `hdr.claims${(issued += 1)}.sig`;
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", token, WebSocket: FakeSocket, initialDelayMs: 5 });
  await m.connect();
  made[0].drop(1006);
  await waitFor(() => made.length === 2 && m.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
  // The reconnect names the dropped connection for the gateway's session restore (0141).
  assert.deepEqual(made.map((s) => s.url), ["ws://x/api/v1/ws", "ws://x/api/v1/ws?old_client_id=c1"]);
  assert.ok(made.every((s) => !s.url.includes("claims")), "no token in any URL");
  assert.deepEqual(made.map((s) => s.protocols), [
    ["ytmaker.v1", "bearer.hdr.claims1.sig"],
    ["ytmaker.v1", "bearer.hdr.claims2.sig"],
  ]);
  m.disconnect();
  const anonymous = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket });
  await anonymous.connect();
  assert.equal(made[2].protocols, undefined, "no token, no subprotocols: as before");
  anonymous.disconnect();
});

test("through the ws package, the handshake offers the token as a subprotocol and takes ytmaker.v1", async () => {
  const handshakes = [];
  const server = new WebSocketServer({
    port: 0,
    host: "127.0.0.1",
    handleProtocols: (offered, req) => {
      handshakes.push({ url: req.url, offered: [...offered] });
      return offered.has("ytmaker.v1") ? "ytmaker.v1" : false;
    },
  });
  server.on("connection", (socket) => socket.send(JSON.stringify(connected("c1"))));
  await new Promise((res) => server.once("listening", res));
  const m = new WebSocketManager({ url: `ws://127.0.0.1:${server.address().port}/api/v1/ws`, token: "hdr.claims.sig", WebSocket });
  try {
    await m.connect();
    assert.deepEqual(handshakes, [{ url: "/api/v1/ws", offered: ["ytmaker.v1", "bearer.hdr.claims.sig"] }]);
  } finally {
    m.disconnect();
    await new Promise((res) => server.close(res));
  }
});

test("4401 fails at once, without retrying", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.drop(4401, "invalid token"); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 1 });
  await assert.rejects(m.connect(), /4401/);
  assert.equal(made.length, 1);
  assert.equal(m.getState(), "failed");
});

test("a recreated log (another epoch, recovered: false) starts the subscription again from its snapshot", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected(`c${made.length}`)); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  made[0].deliver(subscribed(null, "E1", true));
  for (const o of [10, 11, 12]) made[0].deliver(update(o));
  made[0].drop(1006);
  await waitFor(() => made.length === 2 && m.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
  assert.deepEqual(made[1].sent.find((x) => x.action === "subscribe"), { action: "subscribe", task_id: "t1", since: 12, epoch: "E1" });
  // The topic was recreated: its offsets start again. The gateway sends a snapshot and
  // every update after it, which must all be delivered.
  made[1].deliver(subscribed(3, "E2", false));
  made[1].deliver(snapshot(3, "E2"));
  for (const o of [4, 5]) made[1].deliver(update(o));
  assert.deepEqual(seen, [10, 11, 12, 4, 5], "the updates of the new log are delivered");
  made[1].drop(1006);
  await waitFor(() => made.length === 3 && m.isConnected(), { timeoutMs: 2000, what: "the second reconnect" });
  assert.deepEqual(made[2].sent.find((x) => x.action === "subscribe"), { action: "subscribe", task_id: "t1", since: 5, epoch: "E2" });
  m.disconnect();
});

test("a replay the gateway could not read (error replay_failed) is asked for again", async () => {
  let refusals = 1;
  const { FakeSocket, made } = fakeSockets((s) => {
    s.open();
    const send = s.send.bind(s);
    s.send = (data) => {
      send(data);
      const msg = JSON.parse(data);
      if (msg.action !== "subscribe") return;
      queueMicrotask(() => {
        if (refusals > 0) {
          refusals -= 1;
          s.deliver({ type: "error", task_id: "t1", offset: null, payload: { code: "replay_failed", message: "could not read history", details: {} } });
          return;
        }
        s.deliver(subscribed(msg.since, "E1", true));
        for (const o of [1, 2, 3]) if (o > msg.since) s.deliver(update(o));
      });
    };
    s.deliver(connected("c1"));
  });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 20 });
  const seen = [];
  const errors = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  m.on("error", (msg) => errors.push(msg.payload.code));
  await m.connect();
  m.subscribe("t1", -1);
  await waitFor(() => seen.length === 3, { timeoutMs: 2000, what: "the updates after a replay_failed" });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.deepEqual(errors, ["replay_failed"], "the refusal is still reported");
  assert.equal(made.length, 1, "no reconnect was needed");
  m.disconnect();
});

test("connect() on a connected manager leaves no listener behind and no unhandled rejection", async () => {
  const { FakeSocket } = fakeSockets((s) => { s.open(); s.deliver(connected("c1")); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
  const unhandled = [];
  const onUnhandled = (reason) => unhandled.push(reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    await m.connect();
    await m.connect();
    await m.connect();
    m.disconnect();
    await new Promise((resolve) => setImmediate(resolve)); // rejections are reported by then
    assert.deepEqual(unhandled, []);
    assert.equal(m.stateHandlers?.size ?? 0, 0, "every connect() listener is gone");
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("a project's runs started while its stream was down are followed after the reconnect", async () => {
  let tasks = ["A"]; // the project's tasks, oldest first
  const taskState = (id) => ({ ...state, task_id: id });
  const { FakeSocket, made } = fakeSockets((s) => {
    s.open();
    s.deliver(connected(`c${made.length}`));
    if (s.url.includes("/projects/")) {
      s.deliver({ type: "initial", task_id: null, offset: null, payload: { project_id: "p1", state: taskState(tasks.at(-1)) } });
    }
  });
  const fetch = async () => new Response(JSON.stringify({
    project: { project_id: "p1", owner: "a", title: "T", content: "c", settings: {}, created_at: "2026-01-01T00:00:00Z" },
    tasks: [...tasks].reverse().map(taskState),
  }), { status: 200 });
  const client = new ProgressClient({ baseUrl: "http://x", WebSocket: FakeSocket, fetch, initialDelayMs: 5 });
  await client.connect();
  const followed = [];
  const stop = client.subscribeToProject("p1", { onTask: (id) => followed.push(id) });
  await waitFor(() => followed.includes("A"), { timeoutMs: 2000, what: "the first run followed" });
  const feed = made.find((s) => s.url.includes("/projects/"));
  tasks = ["A", "B", "C"]; // two runs start while the project stream is down
  feed.drop(1006);
  await waitFor(() => made.filter((s) => s.url.includes("/projects/")).length === 2, { timeoutMs: 2000, what: "the stream's reconnect" });
  await waitFor(() => followed.includes("B") && followed.includes("C"), { timeoutMs: 2000, what: `runs B and C followed (followed: ${followed})` }).catch((err) => {
    stop();
    client.disconnect();
    throw err;
  });
  assert.deepEqual([...followed].sort(), ["A", "B", "C"]);
  stop();
  client.disconnect();
});

test("a task subscribed again after unsubscribe gets its replay in order, not the old stream's leftovers", async () => {
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected("c1")); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  made[0].deliver(subscribed(null, "E1", true));
  for (const o of [0, 2, 4]) made[0].deliver(update(o));
  m.unsubscribe("t1");
  m.subscribe("t1", 2, "E1");
  seen.length = 0;
  await waitFor(() => made[0].sent.length === 3, { timeoutMs: 2000, what: "the paced frames" });
  assert.deepEqual(made[0].sent.slice(-2), [
    { action: "unsubscribe", task_id: "t1" },
    { action: "subscribe", task_id: "t1", since: 2, epoch: "E1" },
  ]);
  // Live updates the gateway queued for the old subscription before it read the unsubscribe
  // arrive first, then its answers, then the new subscription's replay after 2.
  for (const o of [6, 8]) made[0].deliver(update(o));
  made[0].deliver({ type: "unsubscribed", task_id: "t1", offset: null, payload: { task_id: "t1" } });
  made[0].deliver(subscribed(2, "E1", true));
  for (const o of [4, 6, 8, 10]) made[0].deliver(update(o));
  assert.deepEqual(seen, [4, 6, 8, 10], "the new subscription's updates after 2, once, in order");
  assert.equal(m.subscription("t1").lastOffset, 10);
  assert.equal(m.stats.staleDropped, 2, "the old stream's 6 and 8");
  m.disconnect();
});

/** A fake server that answers each subscribe of t1 with `answer(msg, socket)`. */
function answeringSockets(answer) {
  return fakeSockets((s) => {
    s.open();
    const send = s.send.bind(s);
    s.send = (data) => {
      send(data);
      const msg = JSON.parse(data);
      if (msg.action === "subscribe") queueMicrotask(() => answer(msg, s));
    };
    s.deliver(connected("c1"));
  });
}
const forbidden = { type: "error", task_id: "t1", offset: null, payload: { code: "forbidden", message: "no such task or project for you", details: {} } };

test("a task refused as forbidden (not yet known to this replica) is asked for again, and followed once known", async () => {
  let refusals = 2;
  const { FakeSocket, made } = answeringSockets((msg, s) => {
    if (refusals > 0) {
      refusals -= 1;
      s.deliver(forbidden);
      return;
    }
    s.deliver(subscribed(msg.since, "E1", true));
    for (const o of [1, 2, 3]) if (o > msg.since) s.deliver(update(o));
  });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 20 });
  const seen = [];
  const errors = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  m.on("error", (msg) => errors.push(msg.payload.code));
  await m.connect();
  m.subscribe("t1", -1);
  try {
    await waitFor(() => seen.length === 3, { timeoutMs: 2000, what: "the updates after two forbidden answers" });
    assert.deepEqual(seen, [1, 2, 3]);
    assert.equal(made[0].sent.filter((x) => x.action === "subscribe").length, 3, "asked three times");
    assert.deepEqual(errors, [], "a refusal within the window is not final: not reported");
    assert.equal(made.length, 1, "no reconnect was needed");
  } finally {
    m.disconnect();
  }
});

test("a task still forbidden after refusalWindowMs is given up: one error, no more subscribes", async () => {
  const { FakeSocket, made } = answeringSockets((msg, s) => s.deliver(forbidden));
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 20, refusalWindowMs: 150 });
  const errors = [];
  m.on("error", (msg) => errors.push(msg.payload.code));
  await m.connect();
  const started = Date.now();
  m.subscribe("t1", -1);
  try {
    await waitFor(() => errors.length > 0, { timeoutMs: 2000, what: "the final forbidden" });
    assert.ok(Date.now() - started >= 150, "refused for the whole window first");
    assert.deepEqual(errors, ["forbidden"]);
    const asked = made[0].sent.filter((x) => x.action === "subscribe").length;
    assert.ok(asked >= 3, `asked again during the window (${asked} subscribes)`);
    assert.equal(m.subscription("t1"), undefined, "the subscription was given up");
    assert.equal(m.retries.size, 0, "no retry pending");
  } finally {
    m.disconnect();
  }
});

test("the default refusal window is Python's 15 s", async () => {
  const { FakeSocket } = answeringSockets((msg, s) => s.deliver(forbidden));
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 10 });
  const errors = [];
  m.on("error", (msg) => errors.push(msg.payload.code));
  await m.connect();
  m.subscribe("t1", -1);
  try {
    await waitFor(() => m.retries.size === 1, { timeoutMs: 2000, what: "a retry after forbidden" });
    assert.deepEqual(errors, []);
    assert.ok(m.subscription("t1"));
  } finally {
    m.disconnect();
  }
});

const malformedGreetings = {
  "no client_id": { type: "connected", task_id: null, offset: null, payload: { heartbeat_interval: 30 } },
  "a numeric client_id": { type: "connected", task_id: null, offset: null, payload: { client_id: 5, heartbeat_interval: 30 } },
  "a string heartbeat_interval": { type: "connected", task_id: null, offset: null, payload: { client_id: "c1", heartbeat_interval: "30" } },
  "a payload that is not an object": { type: "connected", task_id: null, offset: null, payload: "c1" },
  "a reconnected without client_id": { type: "reconnected", task_id: null, offset: null, payload: { old_client_id: "c0", subscribed: [], heartbeat_interval: 30 } },
};

for (const [what, greeting] of Object.entries(malformedGreetings)) {
  test(`a malformed connected message (${what}) fails the first connect() at once`, async () => {
    const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(greeting); });
    const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, connectionTimeoutMs: 50, initialDelayMs: 5 });
    let deadline;
    const hung = new Promise((_, reject) => { deadline = setTimeout(() => reject(new Error("connect() neither resolved nor rejected within 2 s")), 2000); });
    try {
      await assert.rejects(Promise.race([m.connect(), hung]), /malformed/);
      assert.equal(m.getState(), "failed");
      assert.equal(made.length, 1, "not retried");
      assert.equal(made[0].readyState, 3, "the socket was closed");
      assert.equal(m.stats.invalidMessages, 1);
    } finally {
      clearTimeout(deadline);
      m.disconnect();
    }
  });
}

test("a malformed connected message on a later reconnect is retried", async () => {
  const { FakeSocket, made } = fakeSockets((s, n) => {
    s.open();
    s.deliver(n === 2 ? malformedGreetings["no client_id"] : connected(`c${n}`));
  });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, connectionTimeoutMs: 5000, initialDelayMs: 5 });
  await m.connect();
  made[0].drop(1006);
  try {
    await waitFor(() => made.length === 3 && m.isConnected(), { timeoutMs: 2000, what: "a reconnect past the malformed greeting" });
    assert.equal(m.clientId, "c3");
    assert.equal(made[1].readyState, 3, "the socket that greeted badly was closed");
  } finally {
    m.disconnect();
  }
});

test("a forbidden answer to a control request of a followed task is reported at once, the subscription kept", async () => {
  const { FakeSocket, made } = answeringSockets((msg, s) => s.deliver(subscribed(msg.since, "E1", true)));
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 10 });
  const errors = [];
  m.on("error", (msg) => errors.push(msg.payload.code));
  await m.connect();
  m.subscribe("t1", -1);
  try {
    await waitFor(() => m.awaitingAnswer.size === 0, { timeoutMs: 2000, what: "the subscribe answered" });
    m.send({ action: "cancel", task_id: "t1" });
    made[0].deliver(forbidden);
    assert.deepEqual(errors, ["forbidden"]);
    assert.ok(m.subscription("t1"), "still followed");
    assert.equal(m.retries.size, 0, "no subscribe retry");
  } finally {
    m.disconnect();
  }
});

test("a gateway that greets and drops at once gets growing delays and maxReconnectAttempts, as Python's", async () => {
  // Each connection said `connected`, which set the attempt count back to 0: the manager
  // reconnected every initialDelayMs for ever, whatever maxReconnectAttempts said.
  const { FakeSocket, made } = fakeSockets((s) => { s.open(); s.deliver(connected(`c${made.length}`)); s.drop(1011, "internal error"); });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, maxReconnectAttempts: 3, initialDelayMs: 10, maxDelayMs: 40 });
  const delays = [];
  m.onConnectionState((st) => { if (st === "reconnecting" && m.nextAttemptAt) delays.push(m.nextAttemptAt - Date.now()); });
  try {
    await m.connect();
    await waitFor(() => m.getState() === "failed" || made.length > 10, { timeoutMs: 2000, what: "giving up" });
    assert.equal(m.getState(), "failed");
    assert.equal(made.length, 4, "the first connection and three retries");
    assert.ok(delays.at(-1) > 20, `the delays grew (${delays})`);
  } finally {
    m.disconnect();
  }
});

test("a connection that delivered an update counts the attempts afresh", async () => {
  let n = 0;
  const { FakeSocket, made } = answeringSockets((msg, s) => {
    n += 1;
    s.deliver(subscribed(msg.since, "E1", true));
    if (n <= 5) s.deliver(update(n));
    s.drop(1013, "too slow");
  });
  const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, maxReconnectAttempts: 2, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  try {
    await waitFor(() => m.getState() === "failed", { timeoutMs: 2000, what: "giving up once nothing comes" });
    assert.deepEqual(seen, [1, 2, 3, 4, 5], "five useful connections were not given up");
    assert.equal(made.length, 5 + 2, "then two retries that delivered nothing");
  } finally {
    m.disconnect();
  }
});

/**
 * A gateway that keeps its limits as the real one does (rules/session.py): `limit`
 * subscriptions a connection (an unsubscribe frees one), 50 messages a second in a burst of
 * 50 (a message within it forgives the violations before it), and a close with 1008 past 5
 * limit errors in a row. Frames are read ahead of their handling, as the gateway's receiver
 * does. `statusOf(taskId)` is the state a subscribe's snapshot carries.
 */
function limitedGateway({ limit = 100, rate = 50, statusOf = () => "running" } = {}) {
  const closes = [];
  const refusedAt = [];
  const sockets = fakeSockets((s) => {
    const held = new Set();
    let tokens = rate;
    let refilled = Date.now();
    let violations = 0;
    const violate = (code, taskId) => {
      violations += 1;
      if (violations > 5) {
        closes.push(1008);
        s.drop(1008, `${code}: closing`);
        return;
      }
      if (code === "too_many_subscriptions") refusedAt.push(taskId);
      s.deliver({ type: "error", task_id: taskId, offset: null, payload: { code, message: code, details: {} } });
    };
    s.open();
    const send = s.send.bind(s);
    s.send = (data) => {
      send(data);
      if (s.readyState === 3) return;
      const now = Date.now();
      tokens = Math.min(rate, tokens + ((now - refilled) / 1000) * rate);
      refilled = now;
      if (tokens < 1) return violate("rate_limited", null);
      tokens -= 1;
      violations = 0;
      const msg = JSON.parse(data);
      setTimeout(() => {
        if (s.readyState === 3) return;
        const id = msg.task_id;
        if (msg.action === "unsubscribe") {
          held.delete(id);
          s.deliver({ type: "unsubscribed", task_id: id, offset: null, payload: { task_id: id } });
        } else if (msg.action === "subscribe") {
          if (!held.has(id) && held.size >= limit) return violate("too_many_subscriptions", id);
          held.add(id);
          s.deliver({ type: "subscribed", task_id: id, offset: 5, payload: { task_id: id, offset: 5, epoch: "E1", recovered: false, restored: false } });
          s.deliver({ type: "snapshot", task_id: id, offset: 5, payload: { ...state, task_id: id, status: statusOf(id), offset: 5, epoch: "E1" } });
        }
      }, 0);
    };
    const hello = connected(`c${sockets.made.length}`);
    s.deliver({ ...hello, payload: { ...hello.payload, limits: { messages_per_second: rate, subscriptions: limit } } });
  });
  return { ...sockets, closes, refusedAt };
}

test("the pace is half the announced rate, within bounds; the default without one", () => {
  const pace = (limits) => subscriptionFramesPerSecond(limits === undefined ? {} : { limits });
  assert.equal(pace({ messages_per_second: 8 }), 4);
  assert.equal(pace({ messages_per_second: 1000 }), SUBSCRIPTION_FRAMES_PER_SECOND);
  assert.equal(pace({ messages_per_second: 0.2 }), 0.5);
  for (const bad of [undefined, null, {}, { messages_per_second: "8" }, { messages_per_second: 0 }, { messages_per_second: -1 }, { messages_per_second: Infinity }, { messages_per_second: NaN }]) {
    assert.equal(pace(bad), SUBSCRIPTION_FRAMES_PER_SECOND, JSON.stringify(bad));
  }
});

// At the default 50 a second, 60 subscribes at once broke it (decision 0135); at an operator's
// 8, announced in the greeting, 20 at the pace of then, 25 a second (decision 0140).
for (const [rate, count] of [[50, 60], [8, 20]]) {
  test(`${count} subscribes at once keep to a gateway's ${rate} messages a second: no rate_limited, no 1008`, async () => {
    const { FakeSocket, made, closes } = limitedGateway({ rate });
    const m = new WebSocketManager({ url: "ws://x/", WebSocket: FakeSocket, initialDelayMs: 5 });
    const snapshots = new Set();
    const errors = [];
    m.on("snapshot", (msg) => snapshots.add(msg.task_id));
    m.on("error", (msg) => errors.push(msg.payload.code));
    await m.connect();
    for (let i = 0; i < count; i += 1) m.subscribe(`t${i}`, null);
    try {
      await waitFor(() => snapshots.size === count || closes.length, { timeoutMs: 10000, what: `${count} snapshots` });
      assert.deepEqual(closes, []);
      assert.deepEqual(errors, []);
      assert.equal(made.length, 1);
    } finally {
      m.disconnect();
    }
  });
}

test("a subscription past the gateway's limit ends with onError too_many_subscriptions, asked once", async () => {
  const { FakeSocket, made, closes, refusedAt } = limitedGateway({ limit: 3 });
  const client = new ProgressClient({ baseUrl: "http://x", WebSocket: FakeSocket, initialDelayMs: 5, retryDelayMs: 20 });
  await client.connect();
  const errors = [];
  const snapshots = [];
  for (let i = 0; i < 8; i += 1) {
    client.subscribeToTask(`t${i}`, { onError: (e) => errors.push([`t${i}`, e.code]), onSnapshot: (s) => snapshots.push(s.task_id) }, { since: null });
  }
  try {
    await waitFor(() => errors.length === 5 || closes.length, { timeoutMs: 5000, what: "five refusals" });
    assert.deepEqual(errors.map(([, code]) => code), Array(5).fill("too_many_subscriptions"));
    assert.deepEqual(snapshots, ["t0", "t1", "t2"]);
    assert.equal(client.getSubscriptionCount(), 3, "the refused ones are gone");
    client.manager.reconnect(); // the refused ones are not asked for again, here or after it
    await waitFor(() => made.length === 2 && made[1].sent.filter((x) => x.action === "subscribe").length === 3, { timeoutMs: 2000, what: "the resume" });
    assert.deepEqual(made[1].sent.filter((x) => x.action === "subscribe").map((x) => x.task_id), ["t0", "t1", "t2"]);
    assert.equal(refusedAt.length, 5);
    assert.deepEqual(closes, []);
  } finally {
    client.disconnect();
  }
});

test("a project with more runs than the limit is followed whole: finished runs let go, the others wait for room", async () => {
  const runs = Array.from({ length: 12 }, (_, i) => `r${i}`); // oldest first
  const running = new Set(["r10", "r11"]);
  const taskState = (id) => ({ ...state, task_id: id, status: running.has(id) ? "running" : "completed" });
  const gateway = limitedGateway({ limit: 3, statusOf: (id) => taskState(id).status });
  const fetch = async () => new Response(JSON.stringify({
    project: { project_id: "p1", owner: "a", title: "T", content: "c", settings: {}, created_at: "2026-01-01T00:00:00Z" },
    tasks: [...runs].reverse().map(taskState),
  }), { status: 200 });
  const client = new ProgressClient({ baseUrl: "http://x", WebSocket: gateway.FakeSocket, fetch, initialDelayMs: 5 });
  await client.connect();
  const seen = new Set();
  const complete = new Set();
  const errors = [];
  const stop = client.subscribeToProject("p1", {
    onSnapshot: (s) => seen.add(s.task_id),
    onComplete: (s) => complete.add(s.task_id),
    onError: (e) => errors.push(e.code),
  });
  try {
    await waitFor(() => seen.size === 12 || gateway.closes.length, { timeoutMs: 5000, what: `every run (seen ${[...seen]})` });
    assert.equal(complete.size, 10);
    assert.deepEqual(errors, [], "waiting for room is not an error");
    assert.deepEqual(gateway.closes, []);
    assert.equal(gateway.made.filter((s) => !s.url.includes("/projects/")).length, 1, "one connection");
    assert.equal(client.getSubscriptionCount(), 2, "only the running ones are held");
  } finally {
    stop();
    client.disconnect();
  }
});

// --- Session restore (decision 0141): a reconnect sends `old_client_id`; the streams the
// gateway restores that resume a subscription exactly are kept, the others subscribed again.

const taskUpdate = (taskId, offset) => ({
  type: "progress", task_id: taskId, offset,
  payload: { ...state, task_id: taskId, offset, event_id: `${taskId}-e${offset}`, event_type: "stage.progress", occurred_at: "2026-01-01T00:00:00Z" },
});
const subscribedTo = (taskId, offset, { epoch = "E", recovered = true, restored = false, ...extra } = {}) => ({
  type: "subscribed", task_id: taskId, offset: Number.isInteger(offset) ? offset : null,
  payload: { task_id: taskId, offset, epoch, recovered, restored, ...extra },
});
const reconnected = (id, old, subscribed) => ({
  type: "reconnected", task_id: null, offset: null,
  payload: { client_id: id, old_client_id: old, subscribed, heartbeat_interval: 30 },
});
const notRestored = (id) => ({ ...connected(id), payload: { ...connected(id).payload, restored: false } });
const pong = { type: "pong", task_id: null, offset: null, payload: { timestamp: 1764876543.5 } };

/**
 * A gateway that restores sessions as the real one does (api/connection.py `_greet`): the
 * n-th connection is greeted with `greet(n)`, its streams restored by `restore(socket, n)`,
 * and only then are the client's messages read: a subscribe answered by `answer(msg, socket)`,
 * an unsubscribe with `unsubscribed`, a ping by `onPing(socket)` (a `pong`).
 */
function sessionGateway({ greet, restore = () => {}, answer = () => {}, onPing = (s) => s.deliver(pong) }) {
  return fakeSockets((s, n) => {
    s.open();
    let reading = false;
    const unread = [];
    const handle = (msg) => {
      if (s.readyState === 3) return;
      if (msg.action === "ping") onPing(s);
      else if (msg.action === "unsubscribe") s.deliver({ type: "unsubscribed", task_id: msg.task_id, offset: null, payload: { task_id: msg.task_id } });
      else if (msg.action === "subscribe") answer(msg, s);
    };
    const send = s.send.bind(s);
    s.send = (data) => {
      send(data);
      const msg = JSON.parse(data);
      if (reading) queueMicrotask(() => handle(msg));
      else unread.push(msg);
    };
    s.deliver(greet(n));
    restore(s, n);
    reading = true;
    for (const msg of unread.splice(0)) handle(msg);
  });
}

/** Answers a subscribe with every update after its `since` up to `history[task]` (offsets from 1). */
const replayFrom = (history) => (msg, s) => {
  const after = msg.since ?? -1;
  s.deliver(subscribedTo(msg.task_id, after >= 0 ? after : null));
  for (let o = Math.max(after + 1, 1); o <= history[msg.task_id]; o += 1) s.deliver(taskUpdate(msg.task_id, o));
};
const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const settle = (ms = 100) => new Promise((resolve) => setTimeout(resolve, ms));

test("a reconnect sends old_client_id and keeps the streams the gateway restores exactly: no subscribe, each update once", async () => {
  const history = { t1: 5, t2: 3 };
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => (n === 1 ? connected("c1") : n === 2 ? reconnected("c2", "c1", ["t1", "t2"]) : notRestored("c3")),
    // After what the client acknowledged by its last pong: t1's 3 and t2's 2 (it read 5 and 3).
    restore: (s, n) => {
      if (n !== 2) return;
      s.deliver(subscribedTo("t1", 3, { restored: true }));
      for (const o of range(4, history.t1)) s.deliver(taskUpdate("t1", o));
      s.deliver(subscribedTo("t2", 2, { restored: true }));
      for (const o of range(3, history.t2)) s.deliver(taskUpdate("t2", o));
    },
    answer: replayFrom(history),
  });
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = { t1: [], t2: [] };
  m.on("progress", (msg) => seen[msg.task_id].push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  m.subscribe("t2", -1);
  try {
    await waitFor(() => seen.t1.length === 5 && seen.t2.length === 3, { timeoutMs: 2000, what: "the first connection's updates" });
    assert.equal(made[0].url, "ws://x/api/v1/ws", "a first connection restores nothing");
    history.t1 = 7; // written while the connection is down
    history.t2 = 4;
    made[0].drop(1006);
    await waitFor(() => made.length === 2 && m.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
    await settle();
    assert.equal(made[1].url, "ws://x/api/v1/ws?old_client_id=c1");
    assert.deepEqual(made[1].sent, [{ action: "ping" }], "no subscribe frame, only the sentinel ping");
    assert.deepEqual(seen, { t1: range(1, 7), t2: range(1, 4) }, "each update once, in order");
    assert.equal(m.stats.duplicatesDropped, 3, "t1's 4 and 5, t2's 3: repeated by the restore");
    assert.equal(m.stats.staleDropped, 0);
    assert.equal(m.stats.sessionsRestored, 1);
    assert.equal(m.stats.streamsRestored, 2);
    assert.equal(m.stats.reconnects, 1);
    made[1].deliver(taskUpdate("t1", 8)); // the restored stream goes on live
    assert.deepEqual(seen.t1.slice(-2), [7, 8]);

    // The next drop names this connection; a gateway without the session (`restored: false`)
    // gets every subscription again, as before.
    history.t1 = 9;
    made[1].drop(1006);
    await waitFor(() => made.length === 3 && made[2].sent.filter((x) => x.action === "subscribe").length === 2, { timeoutMs: 2000, what: "the resubscribes" });
    assert.equal(made[2].url, "ws://x/api/v1/ws?old_client_id=c2");
    assert.deepEqual(made[2].sent.filter((x) => x.action === "subscribe"), [
      { action: "subscribe", task_id: "t1", since: 8, epoch: "E" },
      { action: "subscribe", task_id: "t2", since: 4, epoch: "E" },
    ]);
    await waitFor(() => seen.t1.length === 9, { timeoutMs: 2000, what: "t1's 9" });
    assert.deepEqual(seen, { t1: range(1, 9), t2: range(1, 4) });
    assert.equal(m.stats.sessionsRestored, 1);
    assert.equal(m.stats.streamsRestored, 2);
  } finally {
    m.disconnect();
  }
});

/** A manager on `FakeSocket` following t1 from the start of its run; the offsets it delivers. */
async function followingT1(FakeSocket) {
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = [];
  m.on("progress", (msg) => seen.push(msg.offset));
  await m.connect();
  m.subscribe("t1", -1);
  return { m, seen };
}

test("a gateway that knows no epochs restores a stream the manager keeps: neither side has one", async () => {
  const history = { t1: 5 };
  const noEpoch = (msg) => ({ ...msg, payload: { ...msg.payload, epoch: null } });
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => (n === 1 ? connected("c1") : reconnected("c2", "c1", ["t1"])),
    restore: (s, n) => {
      if (n === 1) return;
      s.deliver(noEpoch(subscribedTo("t1", 4, { restored: true })));
      for (const o of range(5, history.t1)) s.deliver(taskUpdate("t1", o));
    },
    answer: (msg, s) => {
      s.deliver(noEpoch(subscribedTo(msg.task_id, null)));
      for (const o of range(1, history.t1)) s.deliver(taskUpdate(msg.task_id, o));
    },
  });
  const { m, seen } = await followingT1(FakeSocket);
  try {
    await waitFor(() => seen.length === 5, { timeoutMs: 2000, what: "the first connection's updates" });
    assert.equal(m.subscription("t1").epoch, null);
    history.t1 = 6;
    made[0].drop(1006);
    await waitFor(() => seen.length === 6, { timeoutMs: 2000, what: "the update written while away" });
    await settle();
    assert.deepEqual(made[1].sent, [{ action: "ping" }], "kept: no subscribe");
    assert.deepEqual(seen, range(1, 6));
    assert.equal(m.stats.streamsRestored, 1);
  } finally {
    m.disconnect();
  }
});

test("an epoch the updates name after a subscribed without one is the subscription's, for the next resume", async () => {
  const history = { t1: 3 };
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => connected(`c${n}`),
    answer: (msg, s) => {
      s.deliver({ ...subscribedTo(msg.task_id, msg.since >= 0 ? msg.since : null), payload: { ...subscribedTo(msg.task_id, null).payload, epoch: null } });
      for (const o of range(Math.max(1, (msg.since ?? 0) + 1), history.t1)) {
        const update = taskUpdate(msg.task_id, o);
        s.deliver({ ...update, payload: { ...update.payload, epoch: "E9" } });
      }
    },
  });
  const { m, seen } = await followingT1(FakeSocket);
  try {
    await waitFor(() => seen.length === 3, { timeoutMs: 2000, what: "the updates" });
    assert.equal(m.subscription("t1").epoch, "E9");
    made[0].drop(1006);
    await waitFor(() => made.length === 2 && made[1].sent.some((x) => x.action === "subscribe"), { timeoutMs: 2000, what: "the resubscribe" });
    assert.deepEqual(made[1].sent.find((x) => x.action === "subscribe"), { action: "subscribe", task_id: "t1", since: 3, epoch: "E9" });
  } finally {
    m.disconnect();
  }
});

const withoutRecovered = (msg) => {
  const { recovered, ...payload } = msg.payload;
  return { ...msg, payload };
};
/** Restored `subscribed` messages that do not resume t1 (5 delivered, epoch E) exactly. */
const inexactRestores = {
  "another epoch": subscribedTo("t1", 3, { epoch: "E2", restored: true }),
  "recovered: false (a snapshot)": subscribedTo("t1", 7, { recovered: false, restored: true }),
  "an offset past ours": subscribedTo("t1", 6, { restored: true }),
  "no offset": subscribedTo("t1", null, { restored: true }),
  "a negative offset": subscribedTo("t1", -2, { restored: true }),
  "an offset as a string": subscribedTo("t1", "3", { restored: true }),
  "recovered as a string": subscribedTo("t1", 3, { recovered: "true", restored: true }),
  "no recovered": withoutRecovered(subscribedTo("t1", 3, { restored: true })),
};

for (const [what, restoredAnswer] of Object.entries(inexactRestores)) {
  test(`a restored stream with ${what} is replaced by the manager's own subscribe, its messages dropped until the answer`, async () => {
    const history = { t1: 5 };
    const { FakeSocket, made } = sessionGateway({
      greet: (n) => (n === 1 ? connected("c1") : reconnected("c2", "c1", ["t1"])),
      restore: (s, n) => {
        if (n === 1) return;
        s.deliver(restoredAnswer);
        if (restoredAnswer.payload.recovered === false) s.deliver(snapshot(7, "E"));
        else for (const o of [6, 7]) s.deliver(taskUpdate("t1", o)); // the restored stream's, not to be trusted
      },
      answer: replayFrom(history),
    });
    const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
    const seen = [];
    const snapshots = [];
    const infos = [];
    m.on("progress", (msg) => seen.push(msg.offset));
    m.on("snapshot", (msg) => snapshots.push(msg.offset));
    m.on("subscribed", (msg) => infos.push(msg.payload));
    await m.connect();
    m.subscribe("t1", -1);
    try {
      await waitFor(() => seen.length === 5, { timeoutMs: 2000, what: "the first connection's updates" });
      history.t1 = 7;
      made[0].drop(1006);
      await waitFor(() => seen.length === 7, { timeoutMs: 2000, what: `updates after the reconnect (seen ${seen})` });
      await settle();
      assert.equal(made[1].url, "ws://x/api/v1/ws?old_client_id=c1");
      assert.deepEqual(made[1].sent, [
        { action: "ping" },
        { action: "subscribe", task_id: "t1", since: 5, epoch: "E" },
      ], "its own subscribe, from its own offset and epoch");
      assert.deepEqual(seen, range(1, 7), "each update once, from the manager's own stream");
      assert.deepEqual(snapshots, [], "the restored snapshot is not delivered");
      assert.ok(m.stats.staleDropped >= 2, `the restored stream's messages dropped (${m.stats.staleDropped})`);
      assert.equal(m.stats.streamsRestored, 0);
      assert.equal(m.stats.sessionsRestored, 1);
      assert.ok(infos.every((i) => !i.restored), "the replaced restored answer is not delivered");
      assert.equal(m.subscription("t1").epoch, "E");
    } finally {
      m.disconnect();
    }
  });
}

test("a listed task the gateway did not restore is subscribed after the pong to the sentinel ping; a refused restore at once; a listed task no longer followed is unsubscribed", async () => {
  const history = { t1: 5, t2: 5, t3: 5, t9: 5 };
  const held = []; // sockets whose pong is held back
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => (n === 1 ? connected("c1") : reconnected("c2", "c1", ["t1", "t3", "t9"])),
    restore: (s, n) => {
      if (n === 1) return;
      // t1 skipped (as the gateway skips a task id that is not a uuid); t3's restore refused.
      s.deliver({ type: "error", task_id: "t3", offset: null, payload: { code: "forbidden", message: "no", details: { restored: true } } });
      s.deliver(subscribedTo("t9", 5, { restored: true }));
    },
    answer: replayFrom(history),
    onPing: (s) => (s === made[0] ? s.deliver(pong) : held.push(s)),
  });
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
  const seen = { t1: [], t2: [], t3: [], t9: [] };
  const errors = [];
  m.on("progress", (msg) => seen[msg.task_id].push(msg.offset));
  m.on("error", (msg) => errors.push([msg.task_id, msg.payload.details]));
  await m.connect();
  for (const id of ["t1", "t2", "t3", "t9"]) m.subscribe(id, -1);
  try {
    await waitFor(() => Object.values(seen).every((s) => s.length === 5), { timeoutMs: 2000, what: "the first connection's updates" });
    for (const id of ["t1", "t2", "t3"]) history[id] = 6;
    made[0].drop(1006);
    m.unsubscribe("t9"); // while the connection is down
    await waitFor(() => made.length === 2 && made[1].sent.length >= 4, { timeoutMs: 2000, what: "the frames before the pong" });
    await settle();
    assert.equal(made[1].url, "ws://x/api/v1/ws?old_client_id=c1");
    assert.deepEqual(made[1].sent, [
      { action: "ping" },
      { action: "unsubscribe", task_id: "t9" },
      { action: "subscribe", task_id: "t2", since: 5, epoch: "E" },
      { action: "subscribe", task_id: "t3", since: 5, epoch: "E" },
    ], "t1 waits for the pong; t2 was not listed; t3's restore was refused");
    assert.equal(held.length, 1, "the sentinel ping is unanswered so far");
    held[0].deliver(pong);
    await waitFor(() => made[1].sent.length === 5, { timeoutMs: 2000, what: "t1's subscribe after the pong" });
    assert.deepEqual(made[1].sent[4], { action: "subscribe", task_id: "t1", since: 5, epoch: "E" });
    await waitFor(() => seen.t1.length === 6, { timeoutMs: 2000, what: "t1's 6" });
    assert.deepEqual(seen, { t1: range(1, 6), t2: range(1, 6), t3: range(1, 6), t9: range(1, 5) });
    assert.deepEqual(errors, [["t3", { restored: true }]], "the refused restore, dispatched as any message; nothing else");
    assert.equal(m.stats.streamsRestored, 0);
    assert.equal(m.stats.sessionsRestored, 1);
    await settle();
    assert.equal(made[1].sent.length, 5, "nothing asked twice");
  } finally {
    m.disconnect();
  }
});

test("a task unsubscribed while its stream is being restored is let go, not subscribed after the pong", async () => {
  const history = { t1: 3, t2: 3 };
  const held = [];
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => (n === 1 ? connected("c1") : reconnected("c2", "c1", ["t1", "t2"])),
    answer: replayFrom(history),
    onPing: (s) => (s === made[0] ? s.deliver(pong) : held.push(s)),
  });
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
  await m.connect();
  m.subscribe("t1", -1);
  m.subscribe("t2", -1);
  try {
    await waitFor(() => m.awaitingAnswer.size === 0, { timeoutMs: 2000, what: "both answered" });
    made[0].drop(1006);
    await waitFor(() => made.length === 2 && held.length === 1, { timeoutMs: 2000, what: "the reconnect" });
    assert.deepEqual([...m.restoring].sort(), ["t1", "t2"]);
    m.unsubscribe("t1");
    assert.deepEqual([...m.restoring], ["t2"]);
    held[0].deliver(pong);
    await settle();
    assert.deepEqual(made[1].sent, [
      { action: "ping" },
      { action: "unsubscribe", task_id: "t1" },
      { action: "subscribe", task_id: "t2", since: 3, epoch: "E" },
    ]);
    assert.equal(m.restoring.size, 0);
  } finally {
    m.disconnect();
  }
});

test("no old_client_id on a project stream, after disconnect(), with restoreSession false, or for a client_id that is not a short string", async () => {
  let greetingId = (n) => `c${n}`;
  const { FakeSocket, made } = fakeSockets((s, n) => {
    s.open();
    s.deliver(connected(greetingId(n)));
    if (s.url.includes("/projects/")) s.deliver({ type: "initial", task_id: null, offset: null, payload: { project_id: "p1", state: null } });
  });
  const urls = (from) => made.slice(from).map((s) => s.url);
  const fetch = async () => new Response(JSON.stringify({
    project: { project_id: "p1", owner: "a", title: "T", content: "c", settings: {}, created_at: "2026-01-01T00:00:00Z" },
    tasks: [],
  }), { status: 200 });

  // ProgressClient: its task stream restores, its project feed never does.
  const client = new ProgressClient({ baseUrl: "http://x", WebSocket: FakeSocket, fetch, initialDelayMs: 5 });
  await client.connect();
  const stop = client.subscribeToProject("p1", {});
  const feeds = () => made.filter((s) => s.url.includes("/projects/"));
  const tasks = () => made.filter((s) => !s.url.includes("/projects/"));
  try {
    await waitFor(() => feeds().length === 1, { timeoutMs: 2000, what: "the project feed" });
    feeds()[0].drop(1006);
    tasks()[0].drop(1006);
    await waitFor(() => feeds().length === 2 && tasks().length === 2 && client.getState() === "connected", { timeoutMs: 2000, what: "both reconnects" });
    assert.ok(feeds().every((s) => !s.url.includes("old_client_id")), `the project feed: ${feeds().map((s) => s.url)}`);
    assert.equal(tasks()[1].url, "ws://x/api/v1/ws?old_client_id=c1");
  } finally {
    stop();
    client.disconnect();
  }

  // A fresh connect() after disconnect() is a new client; reconnect() restores.
  let from = made.length;
  const m = new WebSocketManager({ url: "ws://x/api/v1/ws?v=1", WebSocket: FakeSocket, initialDelayMs: 5 });
  await m.connect();
  const first = m.clientId;
  m.disconnect();
  await m.connect();
  const second = m.clientId;
  m.reconnect();
  await waitFor(() => made.length === from + 3 && m.isConnected(), { timeoutMs: 2000, what: "the reconnect()" });
  assert.deepEqual(urls(from), ["ws://x/api/v1/ws?v=1", "ws://x/api/v1/ws?v=1", `ws://x/api/v1/ws?v=1&old_client_id=${second}`]);
  assert.notEqual(first, second);
  m.disconnect();

  // restoreSession: false.
  from = made.length;
  const plain = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5, restoreSession: false });
  await plain.connect();
  made.at(-1).drop(1006);
  await waitFor(() => made.length === from + 2 && plain.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
  assert.deepEqual(urls(from), ["ws://x/api/v1/ws", "ws://x/api/v1/ws"]);
  plain.disconnect();

  // A client_id that is empty or longer than 128 characters is not sent back; 128 is.
  for (const [id, sent] of [["", false], ["c".repeat(129), false], ["c".repeat(128), true]]) {
    from = made.length;
    greetingId = () => id;
    const odd = new WebSocketManager({ url: "ws://x/api/v1/ws", WebSocket: FakeSocket, initialDelayMs: 5 });
    await odd.connect();
    made.at(-1).drop(1006);
    await waitFor(() => made.length === from + 2 && odd.isConnected(), { timeoutMs: 2000, what: "the reconnect" });
    assert.equal(made.at(-1).url, sent ? `ws://x/api/v1/ws?old_client_id=${id}` : "ws://x/api/v1/ws", `client_id of ${id.length} characters`);
    odd.disconnect();
  }
});

test("ProgressClient: a restore the manager replaces reaches no callback; a kept one is announced once", async () => {
  const history = { t1: 4, t2: 4 };
  const { FakeSocket, made } = sessionGateway({
    greet: (n) => (n === 1 ? connected("c1") : reconnected("c2", "c1", ["t1", "t2"])),
    restore: (s, n) => {
      if (n === 1) return;
      s.deliver(subscribedTo("t1", 2, { restored: true })); // kept
      s.deliver(subscribedTo("t2", 4, { recovered: false, restored: true })); // a snapshot: replaced
      s.deliver({ type: "snapshot", task_id: "t2", offset: 4, payload: { ...state, task_id: "t2", offset: 4, epoch: "E" } });
    },
    answer: replayFrom(history),
  });
  const client = new ProgressClient({ baseUrl: "http://x", WebSocket: FakeSocket, initialDelayMs: 5 });
  await client.connect();
  const infos = { t1: [], t2: [] };
  const events = { t1: [], t2: [] };
  const other = [];
  for (const id of ["t1", "t2"]) {
    client.subscribeToTask(id, {
      onSubscribed: (i) => infos[id].push([i.recovered, i.restored]),
      onEvent: (u) => events[id].push(u.offset),
      onSnapshot: () => other.push(`${id} snapshot`),
      onError: (e) => other.push(`${id} ${e.code}`),
    });
  }
  try {
    await waitFor(() => events.t1.length === 4 && events.t2.length === 4, { timeoutMs: 2000, what: "the first connection's updates" });
    made[0].drop(1006);
    await waitFor(() => made.length === 2 && client.getState() === "connected", { timeoutMs: 2000, what: "the reconnect" });
    await settle();
    assert.deepEqual(infos, { t1: [[true, false], [true, true]], t2: [[true, false], [true, false]] });
    assert.deepEqual(other, []);
    assert.deepEqual(events, { t1: range(1, 4), t2: range(1, 4) });
    assert.equal(client.manager.stats.streamsRestored, 1);
  } finally {
    client.disconnect();
  }
});
