/**
 * Follow tasks and projects with callbacks, on one `WebSocketManager` (docs/protocol.md).
 *
 * Every update of a followed task reaches `onEvent` once, in offset order, across reconnects.
 * When the server cannot replay what was missed (`recovered: false`: retention, a deleted
 * history, a recreated topic), `onSubscribed` says so and `onSnapshot` brings the current state.
 */
import {
  type ErrorPayload,
  type ProgressMessage,
  type StatusMessage,
  type ErrorMessage,
  type SubscribedPayload,
  type TaskState,
  type UpdatePayload,
  isUpdatePayload,
} from "./generated/contract.js";
import { RestClient, type FetchLike } from "./rest.js";
import {
  WebSocketManager,
  type ConnectionState,
  type WebSocketManagerOptions,
  type CloseDetail,
} from "./websocket-manager.js";

/** A `progress`, `status` or `error` message that is an update of the task. */
export type UpdateMessage = (ProgressMessage | StatusMessage | ErrorMessage) & {
  task_id: string;
  offset: number;
  payload: UpdatePayload;
};

export interface TaskHandlers {
  /** Every update of the task, once, in order. */
  onEvent?(update: UpdateMessage): void;
  /** The task's state when the stream starts from a snapshot (`since` null, or not recovered). */
  onSnapshot?(state: TaskState, offset: number | null): void;
  /** The answer to each (re)subscribe; `recovered: false` means updates were missed. */
  onSubscribed?(info: SubscribedPayload): void;
  onComplete?(state: UpdatePayload | TaskState): void;
  onFailed?(state: UpdatePayload | TaskState): void;
  onCancelled?(state: UpdatePayload | TaskState): void;
  /** A refused request about this task (forbidden, unavailable, replay_failed...). */
  onError?(error: ErrorPayload): void;
}

export interface TaskOptions {
  /** -1 (default): the whole run; null: from a snapshot; an offset: resume after it. */
  since?: number | null;
  epoch?: string | null;
}

export interface ProjectHandlers extends TaskHandlers {
  /** A task of the project is followed (those that exist, then each new run). */
  onTask?(taskId: string): void;
}

export interface ProgressClientOptions extends Omit<WebSocketManagerOptions, "url"> {
  /** http(s):// base of the gateway; "" in a page served by the gateway. */
  baseUrl: string;
  fetch?: FetchLike;
  /** The REST client's `timeoutMs` (default 30 s). */
  httpTimeoutMs?: number;
}

type Listener = TaskHandlers & { done: boolean };

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export class ProgressClient {
  readonly manager: WebSocketManager;
  readonly rest: RestClient;
  private readonly options: ProgressClientOptions;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly projectFeeds = new Map<string, WebSocketManager>();

  constructor(options: ProgressClientOptions) {
    this.options = options;
    this.manager = new WebSocketManager({ ...options, url: wsUrl(options.baseUrl, "/api/v1/ws") });
    this.rest = new RestClient({
      baseUrl: options.baseUrl,
      token: options.token,
      fetch: options.fetch,
      timeoutMs: options.httpTimeoutMs,
    });
    this.manager.on("subscribed", (msg) => this.each(msg.payload.task_id, (l) => l.onSubscribed?.(msg.payload)));
    this.manager.on("snapshot", (msg) => {
      if (!msg.task_id) return;
      this.each(msg.task_id, (l) => { l.onSnapshot?.(msg.payload, msg.offset); this.terminal(l, msg.payload); });
      this.letGo(msg.task_id, msg.payload);
    });
    const update = (msg: ProgressMessage | StatusMessage | ErrorMessage): void => {
      if (msg.task_id === null) return;
      if (msg.offset === null || !isUpdatePayload(msg.payload)) {
        const error = msg.payload as ErrorPayload;
        // A stream the gateway could not restore for `old_client_id`: the manager subscribes
        // it on its own, and a refusal of that comes as any other (decision 0141).
        if (error.details?.["restored"] === true) return;
        this.each(msg.task_id, (l) => l.onError?.(error));
        // Refused for good: the manager dropped it, and nothing more will come.
        if (!this.manager.subscription(msg.task_id)) this.listeners.delete(msg.task_id);
        return;
      }
      const full = msg as UpdateMessage;
      this.each(msg.task_id, (l) => { l.onEvent?.(full); this.terminal(l, full.payload); });
      this.letGo(msg.task_id, full.payload);
    };
    this.manager.on("progress", update);
    this.manager.on("status", update);
    this.manager.on("error", update);
  }

  connect(): Promise<void> {
    return this.manager.connect();
  }

  disconnect(): void {
    this.manager.disconnect();
    for (const feed of this.projectFeeds.values()) feed.disconnect();
    this.projectFeeds.clear();
  }

  getState(): ConnectionState {
    return this.manager.getState();
  }

  onConnectionState(handler: (state: ConnectionState, detail?: CloseDetail) => void): () => void {
    return this.manager.onConnectionState(handler);
  }

  /** How many task subscriptions are open (each `subscribeToTask` that was not undone). */
  getSubscriptionCount(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }

  /**
   * Follow a task; returns the function that stops following it. Once its final state is
   * delivered, the task is let go (the gateway's subscription freed). Refused for good
   * (`forbidden` after `refusalWindowMs`, `too_many_subscriptions`: the connection holds as
   * many as the gateway allows), `onError` gets the refusal and the subscription ends.
   */
  subscribeToTask(taskId: string, handlers: TaskHandlers, options: TaskOptions = {}): () => void {
    return this.follow(taskId, handlers, options, false);
  }

  private follow(taskId: string, handlers: TaskHandlers, options: TaskOptions, waitsForRoom: boolean): () => void {
    const listener: Listener = { ...handlers, done: false };
    let set = this.listeners.get(taskId);
    if (!set) {
      this.listeners.set(taskId, (set = new Set()));
      const since = options.since === undefined ? -1 : options.since;
      this.manager.subscribe(taskId, since, options.epoch ?? null, { waitsForRoom });
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(taskId);
      if (!current?.delete(listener) || current.size > 0) return;
      this.listeners.delete(taskId);
      this.manager.unsubscribe(taskId);
    };
  }

  /**
   * Follow every run of a project, each exactly like `subscribeToTask` (whole runs), the
   * existing ones and every new one as it starts (the project stream announces it). Runs
   * beyond the gateway's subscriptions per connection wait until one ends (finished runs are
   * let go); a run refused for good goes to `onError` and the others go on (decision 0135).
   */
  subscribeToProject(projectId: string, handlers: ProjectHandlers): () => void {
    const undo = new Map<string, () => void>();
    let stopped = false;
    const follow = (taskId: string | null): void => {
      if (stopped || !taskId || undo.has(taskId)) return;
      undo.set(taskId, this.follow(taskId, handlers, {}, true));
      handlers.onTask?.(taskId);
    };
    const feed = new WebSocketManager({
      ...this.options,
      url: wsUrl(this.options.baseUrl, `/api/v1/projects/${encodeURIComponent(projectId)}/progress`),
      restoreSession: false, // the gateway restores no project stream
    });
    const key = `${projectId}#${Math.random()}`;
    this.projectFeeds.set(key, feed);
    feed.on("initial", (msg) => follow(msg.payload.state?.task_id ?? null));
    feed.on("*", (msg) => follow(msg.task_id));
    // The project's tasks, oldest first: at the start, and after every reconnect of the
    // stream (which says nothing of the runs started while it was down but the latest).
    const list = (): void => {
      this.rest.project(projectId).then(
        (found) => { for (const task of [...found.tasks].reverse()) follow(task.task_id); },
        (err: { code?: string; message?: string }) =>
          stopped || handlers.onError?.({ code: err.code ?? "unavailable", message: err.message ?? String(err), details: {} }),
      );
    };
    feed.onConnectionState((state) => {
      if (state === "connected" && feed.stats.connects > 1) list();
    });
    feed.connect().catch((err: unknown) => handlers.onError?.({ code: "unavailable", message: String(err), details: {} }));
    list();
    return () => {
      stopped = true;
      feed.disconnect();
      this.projectFeeds.delete(key);
      for (const stop of undo.values()) stop();
    };
  }

  private each(taskId: string, call: (listener: Listener) => void): void {
    for (const listener of [...(this.listeners.get(taskId) ?? [])]) call(listener);
  }

  /** After a task's final state was delivered: nothing follows, free its subscription. */
  private letGo(taskId: string, state: UpdatePayload | TaskState): void {
    if (!state.status || !TERMINAL.has(state.status) || !this.listeners.delete(taskId)) return;
    this.manager.unsubscribe(taskId);
  }

  private terminal(listener: Listener, state: UpdatePayload | TaskState): void {
    if (listener.done || !state.status || !TERMINAL.has(state.status)) return;
    listener.done = true;
    if (state.status === "completed") listener.onComplete?.(state);
    else if (state.status === "failed") listener.onFailed?.(state);
    else listener.onCancelled?.(state);
  }
}

/** ws(s)://… of a path on the gateway at `baseUrl` ("" : this page's origin). */
export function wsUrl(baseUrl: string, path: string): string {
  const origin = baseUrl || (globalThis as { location?: { origin: string } }).location?.origin || "";
  const url = new URL(path, origin);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}
