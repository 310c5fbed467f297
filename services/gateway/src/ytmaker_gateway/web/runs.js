// "My runs": the caller's runs (GET /api/v1/runs), newest first, with status, progress and
// age; filtered by status (server) and title (here); refreshed every few seconds.
const $ = (id) => document.getElementById(id);
const REFRESH_MS = 5000;

export function age(iso, now = Date.now()) {
  const t = Date.parse(iso ?? "");
  if (!Number.isFinite(t)) return "—";
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function row(run) {
  const tr = document.createElement("tr");
  tr.dataset.task = run.task_id;
  tr.dataset.status = run.status;
  const link = document.createElement("a");
  link.href = `/projects/${encodeURIComponent(run.project_id)}?task=${encodeURIComponent(run.task_id)}`;
  link.textContent = run.title || run.task_id;
  const cells = [document.createElement("td"), document.createElement("td"), document.createElement("td"), document.createElement("td")];
  cells[0].append(link);
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.dataset.status = run.status;
  badge.textContent = run.status;
  cells[1].append(badge);
  const bar = document.createElement("div");
  bar.className = "bar small";
  const fill = document.createElement("div");
  fill.style.width = `${run.progress ?? 0}%`;
  bar.append(fill);
  const pct = document.createElement("small");
  pct.textContent = `${Math.round(run.progress ?? 0)} %`;
  cells[2].append(bar, pct);
  cells[3].textContent = age(run.created_at ?? run.updated_at);
  cells[3].title = run.created_at ?? "";
  tr.append(...cells);
  return tr;
}

export function showRuns(page) {
  $("runs").hidden = false;
  let runs = [];
  const render = () => {
    const text = $("runs-filter").value.trim().toLowerCase();
    const shown = runs.filter((r) => !text || (r.title || "").toLowerCase().includes(text));
    $("runs-body").replaceChildren(...shown.map(row));
    $("runs-count").textContent = `${shown.length} of ${runs.length}`;
    $("runs-empty").hidden = runs.length > 0;
  };
  const load = async () => {
    try {
      const status = $("runs-status").value || undefined;
      runs = (await page.rest.runs({ status, limit: 200 })).items;
      $("runs-error").textContent = "";
      render();
    } catch (err) {
      page.refused(err, load); // signed in again: the list at once, not at the next refresh
      $("runs-error").textContent = `${err.code}: ${err.message}`;
    }
  };
  $("runs-filter").addEventListener("input", render);
  $("runs-status").addEventListener("change", load);
  page.runs = { load, get items() { return runs; } };
  load();
  setInterval(load, REFRESH_MS);
}
