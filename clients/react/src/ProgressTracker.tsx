/**
 * `<ProgressTracker taskId … />`: a run's overall and per-stage bars, status, ETA, message and
 * history, live (useTaskProgress). Bare apart from the bars (inline defaults): style it by its class
 * names (`ytm-tracker`, `ytm-bar`, `ytm-stage` with `data-stage` and `data-status`...).
 */
import type { ReactElement } from "react";
import type { TaskState, UpdatePayload } from "@ytmaker/sdk";
import { useTaskProgress, type UseTaskProgressOptions } from "./useTaskProgress.js";

export const STAGES = ["script", "images", "audio", "avatars", "render", "upload"] as const;

export interface ProgressTrackerProps extends UseTaskProgressOptions {
  taskId: string;
  /** Show the history list (default true). */
  showHistory?: boolean;
  className?: string;
}

function Bar({ value, label }: { value: number; label: string }): ReactElement {
  const pct = Math.max(0, Math.min(100, value));
  return (
    <div
      className="ytm-bar"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(pct * 10) / 10}
      style={{ height: 10, background: "#e6e8f0", borderRadius: 5, overflow: "hidden", minWidth: 120 }}
    >
      <div className="ytm-bar-fill" style={{ width: `${pct}%`, height: "100%", background: "#2f6fed", transition: "width .3s" }} />
    </div>
  );
}

export function formatEta(state: TaskState | UpdatePayload | null): string {
  if (!state || state.eta_seconds == null || ["completed", "failed", "cancelled"].includes(state.status ?? "")) return "—";
  const s = Math.ceil(state.eta_seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

export function ProgressTracker({ taskId, showHistory = true, className, ...options }: ProgressTrackerProps): ReactElement {
  const { state, history, connection, recovered, error, reconnects } = useTaskProgress(taskId, options);
  const overall = Math.round((state?.progress ?? 0) * 10) / 10;
  return (
    <section className={["ytm-tracker", className].filter(Boolean).join(" ")} data-task={taskId} data-status={state?.status ?? "unknown"}>
      <header>
        <strong className="ytm-title">{state?.title || taskId}</strong>{" "}
        <span className="ytm-status">{state?.status ?? "…"}</span>{" "}
        <span className="ytm-connection" data-state={connection}>{connection}</span>{" "}
        <span className="ytm-eta">ETA {formatEta(state)}</span>
      </header>
      <Bar value={overall} label="overall" />
      <span className="ytm-overall">{overall} %</span>
      <p className="ytm-message">{state?.error ? `${state.error.code}: ${state.error.message}` : state?.message ?? ""}</p>
      {recovered === false && <p className="ytm-gap" role="status">Some updates were missed: showing the current state.</p>}
      {error && <p className="ytm-error" role="alert">{error.code}: {error.message}</p>}
      <ul className="ytm-stages">
        {STAGES.map((name) => {
          const stage = state?.stages?.[name];
          return (
            <li key={name} className="ytm-stage" data-stage={name} data-status={stage?.status ?? "pending"}>
              <span>{name}</span> <Bar value={stage?.progress ?? 0} label={name} />{" "}
              <small>
                {stage?.status ?? "pending"} · {Math.round(stage?.progress ?? 0)} %
                {stage && stage.attempt && stage.attempt > 1 ? ` · attempt ${stage.attempt}` : ""}
              </small>
            </li>
          );
        })}
      </ul>
      {showHistory && (
        <ol className="ytm-history" data-reconnects={reconnects}>
          {history.map((u) => (
            <li key={u.offset} data-offset={u.offset} data-kind={u.type}>
              {u.payload.event_type}
              {u.payload.stage ? ` [${u.payload.stage}]` : ""} {Math.round(u.payload.progress ?? 0)} %
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
