// The live page (docs/protocol.md "The live page"), on the TypeScript SDK's browser build
// (./sdk/, a copy of clients/typescript/dist/esm). `/`: my runs and the form; `/projects/{id}
// ?task=`: one run, live, resumed by offset after any disconnect (the SDK's WebSocketManager).
import { RestClient } from "./sdk/index.js";
import { showRun } from "./run.js";
import { showRuns } from "./runs.js";

const params = new URLSearchParams(location.search);
// A token given in the page's address: as its fragment, `#token=JWT`, which no request
// carries (so no proxy or server logs it), or as the older `?token=`, which the request for
// the page does.
const given = location.hash.startsWith("#token=") ? location.hash.slice(7) : params.get("token");
if (given) {
  localStorage.setItem("ytmaker.token", decodeURIComponent(given));
  // Kept now: out of the address bar, the history and any link copied from the page.
  const address = new URL(location.href);
  address.searchParams.delete("token");
  if (address.hash.startsWith("#token=")) address.hash = "";
  history.replaceState(history.state, "", address);
}
// Read at each use: a token given in the prompt below takes over from the next request on.
const token = () => localStorage.getItem("ytmaker.token") || undefined;

const $ = (id) => document.getElementById(id);

// What a refused token stopped, to do again once the user signed in (each once).
const afterSignIn = new Set();
// How many times the user signed in: a request notes it when sent, so that a refusal of a
// token replaced since (answered after the user signed in) is tried again, not asked for again.
let signIns = 0;

/** The SDK's REST client, its refusals marked with the sign-ins before their request. */
class PageRest extends RestClient {
  async request(method, path, body) {
    const signInsBefore = signIns;
    try {
      return await super.request(method, path, body);
    } catch (err) {
      if (err instanceof Error) err.signInsBefore = signInsBefore;
      throw err;
    }
  }
}

/** The gateway no longer takes the token (expired, or signed with an old secret): asks for a
 * new one; `retry` runs once the user gave it. */
function signIn(retry) {
  if (retry) afterSignIn.add(retry);
  $("signin").hidden = false;
}
/** Shows the sign-in prompt for a refusal of the token (401); true if it was one. A request
 * sent with a token the user replaced since is tried again at once (`retry`), no prompt. */
function refused(err, retry) {
  if (err?.status !== 401) return false;
  if (err.signInsBefore < signIns) retry?.();
  else signIn(retry);
  return true;
}
$("signin").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("ytmaker.token", String(new FormData(event.target).get("token")).trim());
  event.target.reset();
  signIns += 1;
  $("signin").hidden = true;
  // No reload: the run, its connection and the video's place go on with the new token.
  const waiting = [...afterSignIn];
  afterSignIn.clear();
  for (const retry of waiting) retry();
});

export const page = {
  token,
  signIn,
  refused,
  signIns: () => signIns,
  rest: new PageRest({ baseUrl: "", token }),
};
window.ytmaker = page; // for tests and curious people

function showForm() {
  $("create").hidden = false;
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    $("start").disabled = true;
    $("form-error").textContent = "";
    try {
      const started = await page.rest.createProject({
        title: String(form.get("title")),
        content: String(form.get("content")),
        settings: {
          language: String(form.get("language")),
          segments: Number(form.get("segments")),
          target_length_seconds: Number(form.get("target_length_seconds")),
        },
      });
      location.href = `/projects/${started.project_id}?task=${started.task_id}`;
    } catch (err) {
      refused(err);
      $("form-error").textContent = `${err.code}: ${err.message}`;
      $("start").disabled = false;
    }
  });
}

const match = location.pathname.match(/^\/projects\/([^/]+)$/);
if (match) {
  showRun(page, decodeURIComponent(match[1]), params.get("task"));
} else {
  $("connection").hidden = true; // the list polls REST; only a run has a live connection
  showForm();
  showRuns(page);
  if (location.hash === "#new") $("create").scrollIntoView();
}
