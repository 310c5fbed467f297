// The real ytmaker system for the clients' Node tests: every service started by
// `python -m tests.e2e.serve_system` (the repository's venv), on KAFKA_BOOTSTRAP_SERVERS or a
// broker of its own. Also: a development token, a TCP proxy that can cut the network, and
// waiting with a deadline.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** True in CI (CI=true): a missing component fails instead of skipping. */
export const inCI = (process.env.CI ?? "").trim().toLowerCase() === "true";

/** Start the system; resolves with {base, jwt_secret, kill(name), start(name), logs(), stop()}. */
export async function startSystem() {
  const python = resolve(REPO, ".venv/bin/python");
  if (!existsSync(python)) throw new Error(`no ${python}: run make setup first`);
  const child = spawn(python, ["-m", "tests.e2e.serve_system"], {
    cwd: REPO,
    stdio: ["pipe", "pipe", "inherit"],
    env: { ...process.env, PYTHONUNBUFFERED: "1" },
  });
  const lines = createInterface({ input: child.stdout });
  const pending = [];
  const waiters = [];
  lines.on("line", (line) => (waiters.length ? waiters.shift()(line) : pending.push(line)));
  const exited = new Promise((_, reject) =>
    child.on("exit", (code) => reject(new Error(`the system exited with ${code}`))),
  );
  exited.catch(() => undefined);
  const nextLine = () =>
    Promise.race([
      new Promise((res) => (pending.length ? res(pending.shift()) : waiters.push(res))),
      exited,
    ]);
  const ready = JSON.parse(await nextLine());
  const command = async (text) => {
    child.stdin.write(`${text}\n`);
    const answer = await nextLine();
    if (answer !== "ok") throw new Error(`${text}: ${answer}`);
  };
  return {
    ...ready,
    kill: (name) => command(`kill ${name}`),
    start: (name) => command(`start ${name}`),
    logs: () => command("logs"),
    stop: () =>
      new Promise((res) => {
        child.once("exit", res);
        child.stdin.end();
      }),
  };
}

/** An HS256 JWT the gateway accepts (what `python -m ytmaker_gateway.token` prints). */
export function mintToken(secret, user, roles = [], ttlSeconds = 3600) {
  const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({
    sub: user, roles, iss: "ytmaker", aud: "ytmaker-gateway", iat: now, exp: now + ttlSeconds,
  })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

/** Poll `condition` until it returns something truthy; throws after `timeoutMs`. */
export async function waitFor(condition, { timeoutMs = 30000, intervalMs = 50, what = "" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * A TCP proxy to `target` (host:port) on a free port; `cut()` destroys every connection
 * (a network cut: no close frame, both sides just lose the socket). As a load balancer does,
 * a side that fails takes the other with it: a refused or killed upstream closes the client's
 * connection at once (else the client would sit on a dead link until its heartbeat noticed).
 */
export async function startProxy(targetUrl) {
  const target = new URL(targetUrl);
  const sockets = new Set();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const [s, other] of [[client, upstream], [upstream, client]]) {
      sockets.add(s);
      s.on("close", (hadError) => {
        sockets.delete(s);
        if (hadError) other.destroy(); // a clean end is passed on by pipe(), after the data
      });
      s.on("error", () => s.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  const { port } = server.address();
  return {
    base: `http://127.0.0.1:${port}`,
    get connections() {
      return sockets.size / 2;
    },
    cut() {
      const n = sockets.size / 2;
      for (const s of sockets) s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
      return n;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((res) => server.close(res));
    },
  };
}
