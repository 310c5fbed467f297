// The network-cut proxy the system tests rely on (support/system.mjs) behaves as a load
// balancer would: data passes both ways, a refused or killed upstream closes the client's
// connection at once, and cut() drops every connection. A client left on a dead link would
// only notice through its heartbeat (a minute for Socket.IO's defaults): the system tests
// would then fail on the proxy, not on what they test.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";

import { startProxy, waitFor } from "./support/system.mjs";

let server;
let port;
const accepted = [];

before(async () => {
  server = net.createServer((socket) => {
    accepted.push(socket);
    socket.on("error", () => undefined);
    socket.on("data", (data) => socket.write(`echo:${data}`));
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  port = server.address().port;
});

after(() => new Promise((res) => server.close(res)));

/** A client through `proxy`: its received text and whether it saw its connection close. */
async function dial(proxy) {
  const socket = net.connect(Number(new URL(proxy.base).port), "127.0.0.1");
  const seen = { text: "", closed: false, socket };
  socket.on("data", (data) => (seen.text += data));
  socket.on("error", () => undefined);
  socket.on("close", () => (seen.closed = true));
  await new Promise((res) => socket.once("connect", res));
  return seen;
}

test("forwards both ways, and a killed upstream closes the client's connection", async () => {
  const proxy = await startProxy(`http://127.0.0.1:${port}`);
  const before = accepted.length;
  const client = await dial(proxy);
  client.socket.write("hello");
  await waitFor(() => client.text === "echo:hello", { timeoutMs: 5000, what: "the echo" });
  assert.equal(accepted.length, before + 1);
  accepted.at(-1).resetAndDestroy(); // the server's process dies: a reset, no goodbye
  await waitFor(() => client.closed, { timeoutMs: 5000, what: "the client's connection to close" });
  await proxy.close();
});

test("a refused upstream closes the client's connection", async () => {
  const closed = net.createServer();
  await new Promise((res) => closed.listen(0, "127.0.0.1", res));
  const deadPort = closed.address().port;
  await new Promise((res) => closed.close(res)); // nothing listens there any more
  const proxy = await startProxy(`http://127.0.0.1:${deadPort}`);
  const client = await dial(proxy);
  await waitFor(() => client.closed, { timeoutMs: 5000, what: "the client's connection to close" });
  await proxy.close();
});

test("cut() drops every connection; new ones pass again", async () => {
  const proxy = await startProxy(`http://127.0.0.1:${port}`);
  const clients = [await dial(proxy), await dial(proxy)];
  await waitFor(() => proxy.connections === 2, { timeoutMs: 5000, what: "both connections" });
  assert.equal(proxy.cut(), 2);
  await waitFor(() => clients.every((c) => c.closed), { timeoutMs: 5000, what: "both to close" });
  const again = await dial(proxy);
  again.socket.write("back");
  await waitFor(() => again.text === "echo:back", { timeoutMs: 5000, what: "the echo after the cut" });
  again.socket.destroy();
  await proxy.close();
});
