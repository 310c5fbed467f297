// The live page (issue 5): start a project, watch its run, control it. Plain JS, no build.
// Protocol: DESIGN §5. The page keeps the last offset it saw and resumes from it after any
// disconnect (exponential backoff 1, 2, 4 … 30 s), so its event list is the task's log.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get("token") || localStorage.getItem("ytmaker.token") || "";
if (params.get("token")) localStorage.setItem("ytmaker.token", params.get("token"));
const STAGES = ["script", "images", "audio", "avatars", "render", "upload"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

const page = {
  projectId: null, taskId: null, lastOffset: -1, epoch: null, clientId: null,
  ws: null, awaitingReply: false, attempt: 0, retryTimer: null, countdown: null, status: null, done: false,
};
window.ytmaker = page; // for tests and curious people

function api(path, options = {}) {
  const headers = { "content-type": "application/json", ...(options.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(`/api/v1${path}`, { ...options, headers }).then(async (response) => {
    const body = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const err = (body && body.error) || { code: "http_" + response.status, message: response.statusText };
      throw Object.assign(new Error(err.message), { code: err.code, status: response.status });
    }
    return body;
  });
}

// --- the form ------------------------------------------------------------------------------

function showForm() {
  $("create").hidden = false;
  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    $("start").disabled = true;
    $("form-error").textContent = "";
    try {
      const started = await api("/projects", {
        method: "POST",
        body: JSON.stringify({
          title: form.get("title"),
          content: form.get("content"),
          settings: {
            language: form.get("language"),
            segments: Number(form.get("segments")),
            target_length_seconds: Number(form.get("target_length_seconds")),
          },
        }),
      });
      location.href = `/projects/${started.project_id}?task=${started.task_id}`;
    } catch (err) {
      $("form-error").textContent = `${err.code}: ${err.message}`;
      $("start").disabled = false;
    }
  });
}

// --- rendering -----------------------------------------------------------------------------

function render(state) {
  if (!state) return;
  $("title").textContent = state.title || "(untitled)";
  $("task-id").textContent = state.task_id;
  $("status").textContent = state.status;
  page.status = state.status;
  const overall = Math.round((state.progress || 0) * 10) / 10;
  $("overall-bar").style.width = `${overall}%`;
  $("overall-text").textContent = `${overall} %`;
  $("message").textContent = state.error ? `${state.error.code}: ${state.error.message}` : state.message || "";
  $("eta").textContent = state.eta_seconds == null || TERMINAL.has(state.status) ? "—" : `${Math.ceil(state.eta_seconds)} s`;
  for (const name of STAGES) {
    const el = document.querySelector(`.stage[data-stage="${name}"]`);
    const stage = (state.stages || {})[name] || { status: "pending", progress: 0, attempt: 0 };
    el.dataset.status = stage.status;
    el.querySelector(".bar > div").style.width = `${stage.progress}%`;
    el.querySelector("small").textContent =
      `${stage.status} · ${Math.round(stage.progress)} %` + (stage.attempt > 1 ? ` · attempt ${stage.attempt}` : "");
  }
  const active = !TERMINAL.has(state.status);
  $("pause").disabled = !(state.status === "running" || state.status === "queued");
  $("resume").disabled = state.status !== "paused";
  $("cancel").disabled = !active;
  $("rerun").hidden = active;
  if (state.status === "completed" && !page.done) showResult(state.task_id);
}

function showResult(taskId) {
  page.done = true;
  const q = token ? `?token=${encodeURIComponent(token)}` : "";
  $("video").src = `/api/v1/artifacts/${taskId}/video${q}`;
  $("thumbnail").src = `/api/v1/artifacts/${taskId}/thumbnail${q}`;
  $("result").hidden = false;
}

function addEvent(msg) {
  const p = msg.payload;
  const li = document.createElement("li");
  li.value = msg.offset;
  li.dataset.offset = msg.offset;
  li.dataset.kind = msg.type;
  const stage = p.stage ? ` [${p.stage}]` : "";
  li.textContent = `${p.event_type}${stage} ${Math.round(p.progress)} % ${p.message || ""}`;
  const list = $("events");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.appendChild(li);
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function setConnection(state, text) {
  $("connection").dataset.state = state;
  $("connection").textContent = text;
}

// --- the socket ----------------------------------------------------------------------------

function connect() {
  const url = new URL("/api/v1/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (token) url.searchParams.set("token", token);
  if (page.clientId) url.searchParams.set("old_client_id", page.clientId);
  setConnection("connecting", "connecting…");
  const ws = new WebSocket(url);
  page.ws = ws;
  ws.onmessage = (event) => onMessage(JSON.parse(event.data));
  ws.onclose = (event) => {
    if (page.ws !== ws) return;
    page.ws = null;
    scheduleReconnect(event.code);
  };
}

function subscribe() {
  // From the start of the run (-1) the first time, then from the last offset we saw. Until
  // the answer arrives, updates of the task belong to a subscription the server restored from
  // our old session (it resumes from what it wrote, not from what we read): ignore them.
  page.awaitingReply = true;
  send({ action: "subscribe", task_id: page.taskId, since: page.lastOffset, epoch: page.epoch });
}

function send(message) {
  if (page.ws && page.ws.readyState === WebSocket.OPEN) page.ws.send(JSON.stringify(message));
}

function onMessage(msg) {
  switch (msg.type) {
    case "connected":
      page.attempt = 0;
      page.clientId = msg.payload.client_id;
      setConnection("connected", "connected");
      subscribe();
      break;
    case "reconnected": // the server restored our session; we resume from our own offset
      page.attempt = 0;
      page.clientId = msg.payload.client_id;
      setConnection("connected", "connected");
      subscribe();
      break;
    case "subscribed":
      if (msg.payload.epoch) page.epoch = msg.payload.epoch;
      if (!msg.payload.restored) page.awaitingReply = false;
      break;
    case "snapshot":
      if (page.awaitingReply) break;
      render(msg.payload);
      if (msg.offset != null && msg.offset > page.lastOffset) page.lastOffset = msg.offset;
      break;
    case "progress":
    case "status":
    case "error":
      if (msg.task_id !== page.taskId) {
        if (msg.type === "error") $("control-result").textContent = `${msg.payload.code}: ${msg.payload.message}`;
        break;
      }
      if (msg.offset == null) { // an error about our request, not an update
        $("control-result").textContent = `${msg.payload.code}: ${msg.payload.message}`;
        break;
      }
      if (page.awaitingReply) break;
      if (msg.offset <= page.lastOffset) break; // already seen: offsets only grow
      page.lastOffset = msg.offset;
      addEvent(msg);
      render(msg.payload);
      break;
    case "ack":
      $("control-result").textContent = `${msg.payload.action} requested`;
      break;
    case "ping":
      send({ action: "pong" });
      break;
  }
}

function scheduleReconnect(code) {
  const delay = Math.min(30, 2 ** page.attempt);
  page.attempt += 1;
  let left = delay;
  setConnection("reconnecting", `reconnecting in ${left} s (code ${code})`);
  clearInterval(page.countdown);
  page.countdown = setInterval(() => {
    left -= 1;
    if (left > 0) setConnection("reconnecting", `reconnecting in ${left} s (code ${code})`);
  }, 1000);
  page.retryTimer = setTimeout(() => { clearInterval(page.countdown); connect(); }, delay * 1000);
}

// --- controls ------------------------------------------------------------------------------

for (const action of ["pause", "resume", "cancel"]) {
  $(action).addEventListener("click", async () => {
    try {
      await api(`/tasks/${page.taskId}/${action}`, { method: "POST", body: "{}" });
      $("control-result").textContent = `${action} requested`;
    } catch (err) {
      $("control-result").textContent = `${err.code}: ${err.message}`;
    }
  });
}
$("rerun").addEventListener("click", async () => {
  const started = await api(`/projects/${page.projectId}/tasks`, { method: "POST", body: "{}" });
  location.href = `/projects/${page.projectId}?task=${started.task_id}`;
});

async function showRun(projectId) {
  $("run").hidden = false;
  page.projectId = projectId;
  page.taskId = params.get("task");
  if (!page.taskId) {
    try {
      const found = await api(`/projects/${projectId}`);
      page.taskId = found.tasks.length ? found.tasks[0].task_id : null;
    } catch (err) {
      $("message").textContent = `${err.code}: ${err.message}`;
      return;
    }
  }
  $("task-id").textContent = page.taskId || "—";
  if (page.taskId) connect();
}

const match = location.pathname.match(/^\/projects\/([^/]+)$/);
if (match) showRun(decodeURIComponent(match[1]));
else showForm();
