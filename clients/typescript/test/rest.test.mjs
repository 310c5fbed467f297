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
