// The stage timeline (a Gantt chart) of a run, from its updates. Pure: no DOM.
// Each stage has one bar per attempt: from its `stage.started` (or `stage.retrying`, which
// starts the next attempt) to its end (`stage.completed` / `failed` / `cancelled`, or the
// next retry); a running attempt ends "now". Without history (a snapshot only), the state's
// started_at / finished_at give one bar per stage.
export const STAGES = ["script", "images", "audio", "avatars", "render", "upload"];
const ENDS = { "stage.completed": "completed", "stage.failed": "failed", "stage.cancelled": "cancelled", "stage.skipped": "skipped" };

const ms = (iso) => (iso ? Date.parse(iso) : NaN);

/** {start, end, rows: [{stage, attempts: [{attempt, start, end, status}], retries}]} */
export function buildTimeline(updates, state, now = Date.now()) {
  const rows = new Map(STAGES.map((s) => [s, { stage: s, attempts: [], retries: 0 }]));
  let start = Infinity;
  for (const u of updates) {
    const p = u.payload;
    const at = ms(p.occurred_at);
    if (Number.isFinite(at)) start = Math.min(start, at);
    const row = rows.get(p.stage);
    if (!row || !Number.isFinite(at)) continue;
    const open = row.attempts.at(-1);
    const attempt = p.stages?.[p.stage]?.attempt || row.attempts.length + 1;
    if (p.event_type === "stage.started") {
      if (!open || open.end !== null) row.attempts.push({ attempt, start: at, end: null, status: "running" });
    } else if (p.event_type === "stage.retrying") {
      row.retries += 1;
      if (open && open.end === null) Object.assign(open, { end: at, status: "retrying" });
      row.attempts.push({ attempt: attempt + (open && open.attempt === attempt ? 1 : 0), start: at, end: null, status: "running" });
    } else if (ENDS[p.event_type]) {
      if (open && open.end === null) Object.assign(open, { end: at, status: ENDS[p.event_type] });
      else if (!open) row.attempts.push({ attempt, start: at, end: at, status: ENDS[p.event_type] });
    }
  }
  for (const row of rows.values()) {
    const s = state?.stages?.[row.stage];
    if (!row.attempts.length && s?.started_at) {
      const begin = ms(s.started_at);
      row.attempts.push({ attempt: s.attempt || 1, start: begin, end: s.finished_at ? ms(s.finished_at) : null, status: s.status });
      start = Math.min(start, begin);
    }
  }
  const terminal = ["completed", "failed", "cancelled"].includes(state?.status);
  let end = start;
  for (const row of rows.values()) {
    for (const a of row.attempts) {
      if (a.end === null) a.end = terminal ? ms(state?.updated_at) || now : now;
      end = Math.max(end, a.end);
    }
  }
  if (!Number.isFinite(start)) return { start: null, end: null, rows: [...rows.values()] };
  return { start, end: Math.max(end, start + 1000), rows: [...rows.values()] };
}

export function formatDuration(milliseconds) {
  const s = Math.max(0, Math.round(milliseconds / 100) / 10);
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
