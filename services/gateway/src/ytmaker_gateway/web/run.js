// One run, live: bars, timeline, ETA, events, controls, the video, thumbnail and script.
// The SDK's ProgressClient follows the task from the start of the run (since -1) and resumes
// from the last offset it delivered after any disconnect (backoff 1, 2, 4 … 30 s), so the
// event list is the task's log: no update lost, none repeated.
import { ProgressClient } from "./sdk/index.js";
import { keepLinked } from "./links.js";
import { buildTimeline, formatDuration, STAGES } from "./timeline.js";

const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export function showRun(page, projectId, taskId) {
  $("run").hidden = false;
  Object.assign(page, { projectId, taskId, status: null, state: null, updates: [], done: false });
  const find = () =>
    page.rest.project(projectId).then(
      (found) => {
        page.taskId = found.tasks[0]?.task_id ?? null;
        if (page.taskId) follow(page);
        else $("message").textContent = "this project has no run yet";
      },
      (err) => {
        page.refused(err, find);
        $("message").textContent = `${err.code}: ${err.message}`;
      },
    );
  if (taskId) follow(page);
  else find();
  wireControls(page);
  setInterval(() => drawTimeline(page), 1000);
}

function follow(page) {
  $("task-id").textContent = page.taskId;
  const client = new ProgressClient({
    baseUrl: "",
    // Read at each connect: noted, so that a close refusing a token replaced since (4401 after
    // the user signed in) connects again with the new one instead of asking for it again.
    token: () => {
      page.signInsAtConnect = page.signIns();
      return page.token();
    },
    initialDelayMs: 1000,
    maxDelayMs: 30000,
    heartbeatIntervalMs: 20000,
    connectionTimeoutMs: 10000,
  });
  page.client = client;
  client.onConnectionState((state, detail) => showConnection(page, state, detail));
  client.subscribeToTask(page.taskId, {
    onSubscribed: (info) => {
      if (!info.recovered && page.updates.length) $("gap").hidden = false;
    },
    onSnapshot: (state) => render(page, state),
    onEvent: (update) => {
      page.updates.push(update);
      addEvent(update);
      render(page, update.payload);
    },
    onError: (error) => ($("control-result").textContent = `${error.code}: ${error.message}`),
  });
  client.connect().catch(() => undefined); // shown as a connection state
}

// --- rendering -----------------------------------------------------------------------------

function render(page, state) {
  page.state = state;
  page.status = state.status;
  $("title").textContent = state.title || "(untitled)";
  document.title = `${state.title || "run"} — ${state.status} — ytmaker`;
  $("status").textContent = state.status;
  $("status").dataset.status = state.status;
  const overall = Math.round((state.progress || 0) * 10) / 10;
  $("overall-bar").style.width = `${overall}%`;
  $("overall-text").textContent = `${overall} %`;
  $("message").textContent = state.error ? `${state.error.code}: ${state.error.message}` : state.message || "";
  $("eta").textContent = state.eta_seconds == null || TERMINAL.has(state.status) ? "—" : formatDuration(state.eta_seconds * 1000);
  $("updated").textContent = state.updated_at ? `updated ${new Date(state.updated_at).toLocaleTimeString()}` : "";
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
  drawTimeline(page);
  if (state.status === "completed" && !page.done) showResult(page);
}

function addEvent(update) {
  const p = update.payload;
  const li = document.createElement("li");
  li.value = update.offset;
  li.dataset.offset = update.offset;
  li.dataset.kind = update.type;
  const time = new Date(p.occurred_at).toLocaleTimeString();
  li.textContent = `${time} ${p.event_type}${p.stage ? ` [${p.stage}]` : ""} ${Math.round(p.progress)} % ${p.message || ""}`;
  const list = $("events");
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.appendChild(li);
  $("event-count").textContent = `${list.children.length}`;
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function drawTimeline(page) {
  if (!page.state) return;
  const model = buildTimeline(page.updates, page.state);
  const box = $("timeline");
  if (model.start === null) {
    box.textContent = "no stage has started yet";
    return;
  }
  const span = model.end - model.start;
  const rows = model.rows.map((row) => {
    const line = document.createElement("div");
    line.className = "tl-row";
    line.dataset.stage = row.stage;
    line.dataset.attempts = row.attempts.length;
    line.dataset.retries = row.retries;
    const label = document.createElement("span");
    label.className = "tl-label";
    label.textContent = row.stage;
    const track = document.createElement("div");
    track.className = "tl-track";
    for (const a of row.attempts) {
      const bar = document.createElement("div");
      bar.className = "tl-bar";
      bar.dataset.status = a.status;
      bar.dataset.attempt = a.attempt;
      bar.style.left = `${((a.start - model.start) / span) * 100}%`;
      bar.style.width = `${Math.max(0.5, ((a.end - a.start) / span) * 100)}%`;
      bar.title = `attempt ${a.attempt}: ${formatDuration(a.start - model.start)} → ${formatDuration(a.end - model.start)} (${formatDuration(a.end - a.start)}, ${a.status})`;
      track.append(bar);
    }
    const info = document.createElement("small");
    info.className = "tl-info";
    const total = row.attempts.reduce((sum, a) => sum + (a.end - a.start), 0);
    info.textContent = row.attempts.length
      ? `${formatDuration(total)}${row.attempts.length > 1 ? ` · ${row.attempts.length} attempts` : ""}${row.retries ? ` · ${row.retries} retries` : ""}`
      : "—";
    line.append(label, track, info);
    return line;
  });
  const axis = document.createElement("div");
  axis.className = "tl-axis";
  axis.textContent = `0 s … ${formatDuration(span)}`;
  box.replaceChildren(...rows, axis);
}

function showResult(page) {
  page.done = true;
  $("result").hidden = false;
  // <video> and <img> cannot send the token: they load links whose grant opens that artifact
  // alone for a while, renewed before then (links.js); the script comes with the header.
  keepLinked(page, "video", [$("video"), $("download")]);
  keepLinked(page, "thumbnail", [$("thumbnail")]);
  showScript(page);
}

async function showScript(page) {
  try {
    const script = await page.rest.script(page.taskId);
    const heading = document.createElement("h4");
    heading.textContent = script.title || "Script";
    const list = document.createElement("ol");
    for (const segment of script.segments || []) {
      const li = document.createElement("li");
      li.textContent = segment.narration;
      li.title = segment.caption || "";
      list.append(li);
    }
    $("script").replaceChildren(heading, list);
  } catch (err) {
    page.refused(err, () => showScript(page));
    $("script").textContent = `no script: ${err.message}`;
  }
}

function showConnection(page, state, detail) {
  const el = $("connection");
  el.dataset.state = state;
  clearInterval(page.countdown);
  if (state === "reconnecting" && page.client.manager.nextAttemptAt) {
    const tick = () => {
      const left = Math.max(0, Math.ceil((page.client.manager.nextAttemptAt - Date.now()) / 1000));
      el.textContent = left > 0 ? `reconnecting in ${left} s${detail ? ` (code ${detail.code})` : ""}` : "reconnecting…";
    };
    tick();
    page.countdown = setInterval(tick, 500);
  } else {
    // Refused the token: connect again, resuming after the last update shown, once signed in
    // (at once when the user signed in since this connection's token was read).
    if (state === "failed" && detail?.code === 4401) {
      const connect = () => page.client.connect().catch(() => undefined);
      if (page.signInsAtConnect < page.signIns()) connect();
      else page.signIn(connect);
    }
    el.textContent = { connected: "connected", connecting: "connecting…", failed: `failed${detail ? ` (${detail.code})` : ""}` }[state] || state;
  }
}

// --- controls ------------------------------------------------------------------------------

function wireControls(page) {
  for (const action of ["pause", "resume", "cancel"]) {
    $(action).addEventListener("click", async () => {
      try {
        await page.rest.control(page.taskId, action);
        $("control-result").textContent = `${action} requested`;
      } catch (err) {
        page.refused(err);
        $("control-result").textContent = `${err.code}: ${err.message}`;
      }
    });
  }
  $("rerun").addEventListener("click", async () => {
    try {
      const started = await page.rest.startRun(page.projectId);
      location.href = `/projects/${page.projectId}?task=${started.task_id}`;
    } catch (err) {
      page.refused(err);
      $("control-result").textContent = `${err.code}: ${err.message}`;
    }
  });
}
