// RestClient against answers no gateway should give, with a fake fetch (no network): a server
// that never answers, a 200 that is not JSON. Each is a GatewayError, as the Python SDK's
// TransportError / ApiError, never a promise that hangs or resolves to null.
import assert from "node:assert/strict";
import { test } from "node:test";

import { GatewayError, RestClient } from "../dist/esm/index.js";

test("a gateway that never answers fails the request after timeoutMs", async () => {
  let signal;
  const fetch = (_url, init) => {
    signal = init.signal;
    return new Promise(() => undefined); // accepted, never answered
  };
  const rest = new RestClient({ baseUrl: "http://x", fetch, timeoutMs: 50 });
  let deadline;
  const hung = new Promise((_, reject) => { deadline = setTimeout(() => reject(new Error("still waiting after 2 s")), 2000); });
  try {
    const err = await Promise.race([rest.progress("t1"), hung]).then(() => null, (e) => e);
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, "timeout");
    assert.equal(err.status, 0);
    assert.ok(signal?.aborted, "the request was aborted, not left running");
  } finally {
    clearTimeout(deadline);
  }
});

test("a 200 that is not JSON (a proxy's page) is a bad_answer, not null", async () => {
  const fetch = async () => new Response("<html>welcome to the hotel wifi</html>", { status: 200 });
  const rest = new RestClient({ baseUrl: "http://x", fetch });
  await assert.rejects(rest.progress("t1"), (err) => err instanceof GatewayError && err.code === "bad_answer" && err.status === 200);
});

test("a refusal whose body is not JSON keeps its status as its code", async () => {
  const fetch = async () => new Response("Bad Gateway", { status: 502, statusText: "Bad Gateway" });
  const rest = new RestClient({ baseUrl: "http://x", fetch, token: "s3cret-token" });
  await assert.rejects(rest.progress("t1"), (err) => err instanceof GatewayError && err.code === "http_502" && !String(err.message).includes("s3cret"));
});

test("artifactLink asks with the header and gives the link's URL and expiry, never the token in it", async () => {
  const asked = [];
  const fetch = async (url, init) => {
    asked.push({ url, auth: init.headers.authorization });
    return Response.json({ url: "/api/v1/artifacts/t%2F1/video?grant=g.r.ant", expires_at: "2030-01-01T00:00:00Z" });
  };
  const rest = new RestClient({ baseUrl: "http://gw:8080", fetch, token: "s3cret-token" });
  assert.deepEqual(await rest.artifactLink("t/1", "video"), {
    url: "http://gw:8080/api/v1/artifacts/t%2F1/video?grant=g.r.ant",
    expiresAt: new Date("2030-01-01T00:00:00Z"),
  });
  assert.deepEqual(asked, [{ url: "http://gw:8080/api/v1/artifacts/t%2F1/video/link", auth: "Bearer s3cret-token" }]);
  const page = new RestClient({ baseUrl: "", fetch, token: "s3cret-token" });
  assert.equal((await page.artifactLink("t/1", "video")).url, "/api/v1/artifacts/t%2F1/video?grant=g.r.ant"); // page-relative
  assert.equal(rest.artifactUrl, undefined, "no URL with the token in it any more");
});

test("a link that is not the gateway's path, or has no expiry, is a bad_answer", async () => {
  for (const answer of [
    { url: "https://elsewhere.example/x", expires_at: "2030-01-01T00:00:00Z" },
    { url: "/api/v1/artifacts/t1/thumbnail?grant=g", expires_at: "soon" },
    { url: "/api/v1/artifacts/t1/thumbnail?grant=g" },
  ]) {
    const rest = new RestClient({ baseUrl: "http://gw", fetch: async () => Response.json(answer) });
    await assert.rejects(rest.artifactLink("t1", "thumbnail"), (err) => err instanceof GatewayError && err.code === "bad_answer");
  }
});

test("the script is fetched with the header", async () => {
  const asked = [];
  const fetch = async (url, init) => {
    asked.push({ url, auth: init.headers.authorization });
    return Response.json({ title: "Tides", segments: [] });
  };
  const rest = new RestClient({ baseUrl: "http://gw", fetch, token: "s3cret-token" });
  assert.deepEqual(await rest.script("t1"), { title: "Tides", segments: [] });
  assert.deepEqual(asked, [{ url: "http://gw/api/v1/artifacts/t1/script", auth: "Bearer s3cret-token" }]);
});

/** A local HTTP server answering with `answer(req, res)`; resolves to its base URL and a stop. */
async function serve(answer) {
  const { createServer } = await import("node:http");
  const server = createServer(answer);
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => server.close(r)) };
}

test("a redirect is refused, not followed: the body and the token go to no other host", async () => {
  const elsewhere = [];
  const other = await serve((req, res) => {
    let body = "";
    req.on("data", (chunk) => { body += chunk; });
    req.on("end", () => { elsewhere.push({ url: req.url, body, auth: req.headers.authorization }); res.end("{}"); });
  });
  const gateway = await serve((_req, res) => { res.writeHead(307, { location: `${other.url}/collect` }); res.end(); });
  try {
    const rest = new RestClient({ baseUrl: gateway.url, token: "s3cret-token" });
    const err = await rest.createProject({ title: "T", content: "private text" }).then(() => null, (e) => e);
    assert.ok(err instanceof GatewayError, String(err));
    assert.equal(err.code, "transport");
    assert.equal(err.status, 0);
    assert.deepEqual(elsewhere, [], "the request went on to the other host");
    assert.ok(!String(err.message).includes("s3cret-token"));
  } finally {
    await gateway.stop();
    await other.stop();
  }
});

test("a gateway that cannot be reached is a GatewayError transport, not the runtime's TypeError", async () => {
  const gone = await serve((_req, res) => res.end());
  await gone.stop(); // nothing listens there now
  const rest = new RestClient({ baseUrl: gone.url, token: "s3cret-token" });
  const err = await rest.progress("t1").then(() => null, (e) => e);
  assert.ok(err instanceof GatewayError, String(err));
  assert.equal(err.code, "transport");
  assert.equal(err.status, 0);
});
