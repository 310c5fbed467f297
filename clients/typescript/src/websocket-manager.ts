/**
 * One WebSocket to the gateway (docs/protocol.md "WebSocket"), kept open: reconnects with
 * exponential backoff, heartbeats, a connection timeout, and resumes every subscription from
 * the last offset it delivered, so that a listener sees each update of a task once, in order,
 * across any number of disconnects. A reconnect asks the gateway to restore the old
 * connection's streams (`old_client_id`); a restored stream that resumes a subscription
 * exactly is kept, any other is subscribed again (decision 0141). No dependencies: give it a
 * WebSocket constructor where there is no global one (Node 20: the `ws` package).
 */
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import {
  isServerMessage,
  type ClientMessage,
  type ErrorPayload,
  type ServerMessage,
} from "./generated/contract.js";

export type ConnectionState =
  | "idle"
  | "connecting"
  | "connected"
  | "reconnecting"
  | "disconnected"
  | "failed";

/** What the manager needs of a WebSocket (the browser's, or Node's `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
/** The browser's `WebSocket(url, protocols)`; `ws` and Node's own take the same arguments. */
export type WebSocketConstructor = new (url: string, protocols?: string[]) => WebSocketLike;

export interface WebSocketManagerOptions extends BackoffOptions {
  /** ws:// or wss:// URL of `/api/v1/ws` (or a project stream). */
  url: string;
  /**
   * A JWT, or a function returning the current one (called at every connect). Sent as the
   * subprotocol `bearer.<JWT>` beside `ytmaker.v1`, which the gateway selects: a browser's
   * WebSocket cannot set an Authorization header, and a URL ends up in logs.
   */
  token?: string | (() => string | undefined);
  WebSocket?: WebSocketConstructor;
  /** Reconnect after a drop; default true. */
  autoReconnect?: boolean;
  /** Give up (state `failed`) after this many failed attempts in a row; default Infinity. */
  maxReconnectAttempts?: number;
  /**
   * A connection counts as a success (the attempts count afresh, the delay starts again from
   * `initialDelayMs`) once it delivered an update or a snapshot, or stayed up this long: a
   * gateway that greets and drops at once is a failed attempt. Default 10 s (Python's
   * `stable_after`).
   */
  stableAfterMs?: number;
  /** The client pings this often; silence for two intervals counts as a drop. Default 25 s. */
  heartbeatIntervalMs?: number;
  /** No `connected` within this long counts as a failed attempt. Default 10 s. */
  connectionTimeoutMs?: number;
  /**
   * A subscribe the gateway could not serve for now (`error` `unavailable`, `replay_failed`,
   * `rate_limited` for a followed task) is sent again after this long. Default 1 s.
   */
  retryDelayMs?: number;
  /**
   * A subscribe refused as `forbidden` is sent again (every `retryDelayMs`) for this long
   * after its first refusal, then given up: a task created a moment ago on another gateway
   * replica may not be known to this one yet, and the gateway answers an unknown task
   * `forbidden`. Only the final refusal reaches the `error` listeners. Default 15 s.
   */
  refusalWindowMs?: number;
  /**
   * Reconnect with `old_client_id` (the `client_id` of the connection that dropped), so that
   * the gateway restores its streams in the handshake; each one that resumes a subscription
   * exactly is kept, the others are subscribed again (decision 0141). Default true; false for
   * a project stream, which the gateway never restores (`ProgressClient` does so).
   */
  restoreSession?: boolean;
}

export type MessageType = ServerMessage["type"];
export type MessageOf<T extends MessageType> = Extract<ServerMessage, { type: T }>;
type Handler = (msg: ServerMessage) => void;

export interface Subscription {
  taskId: string;
  /**
   * Refused as `too_many_subscriptions` (the connection holds as many as the gateway allows),
   * wait until one of this connection's subscriptions ends and ask again (a project's run);
   * otherwise the refusal is final (decision 0135).
   */
  waitsForRoom?: boolean;
  /** What the first subscribe asked for: -1 the whole run, null a snapshot, or an offset. */
  since: number | null;
  /** The last offset delivered to listeners (-1: none yet). */
  lastOffset: number;
  epoch: string | null;
}

export interface ManagerStats {
  connects: number;
  reconnects: number;
  duplicatesDropped: number;
  /**
   * Messages of a task that came before the `subscribed` answering a fresh subscribe (a
   * restored stream's, its `subscribed` included, when ours replaces it).
   */
  staleDropped: number;
  invalidMessages: number;
  /** Reconnects the gateway answered `reconnected` (it restored the old connection's session). */
  sessionsRestored: number;
  /** Streams the gateway restored that were kept (not subscribed again). */
  streamsRestored: number;
}

const OPEN = 1;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_FORBIDDEN = 4403;
/** The protocol's subprotocol, and the prefix of the one that carries the token (never selected). */
const SUBPROTOCOL = "ytmaker.v1";
const BEARER_SUBPROTOCOL = "bearer.";
const UPDATE_TYPES = new Set(["progress", "status", "error"]);
/** The longest `client_id` sent back as `old_client_id` (the gateway's: `c-` and 32 hex digits). */
const LONGEST_CLIENT_ID = 128;
/**
 * Refusals after which the subscription is asked for again. Not `too_many_subscriptions`:
 * on the same connection it can only be refused again, and the gateway closes a connection
 * after a few limit errors in a row (decision 0135).
 */
const RETRYABLE = new Set(["unavailable", "replay_failed", "rate_limited"]);
/**
 * Subscribes and unsubscribes go out paced (decision 0135): at most this many subscribes
 * waiting for their answer (the gateway closes a connection with 1008 after more than
 * `YTMAKER_MAX_VIOLATIONS`, 5, limit errors in a row, and may read that many before it
 * answers them), and at most SUBSCRIPTION_FRAMES_PER_SECOND (its rate limit is 50 messages
 * a second, in a burst of at most 50), or half the rate its greeting announces when that is
 * lower (`subscriptionFramesPerSecond`). As Python's.
 */
export const SUBSCRIBES_IN_FLIGHT = 4;
export const SUBSCRIPTION_FRAMES_PER_SECOND = 25;
/** The slowest pace a greeting can set: a frame every 2 s. */
export const SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND = 0.5;

/**
 * The pace of subscription frames on the connection a greeting (`connected`, `reconnected`)
 * opened: half the `limits.messages_per_second` it announces (pings, pongs and controls share
 * the rate), between SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND and
 * SUBSCRIPTION_FRAMES_PER_SECOND; the most without the field (a gateway from before it).
 */
export function subscriptionFramesPerSecond(greeting: { limits?: { messages_per_second?: unknown } | null }): number {
  const rate = greeting.limits?.messages_per_second;
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate <= 0) return SUBSCRIPTION_FRAMES_PER_SECOND;
  return Math.min(SUBSCRIPTION_FRAMES_PER_SECOND, Math.max(SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND, rate / 2));
}

export class WebSocketManager {
  private readonly options: WebSocketManagerOptions;
  private readonly Ctor: WebSocketConstructor;
  private ws: WebSocketLike | null = null;
  private state: ConnectionState = "idle";
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private lastMessageAt = 0;
  private everConnected = false;
  /** When the current connection was greeted, and whether it delivered anything. */
  private connectedAt: number | null = null;
  private delivered = false;
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly stateHandlers = new Set<(state: ConnectionState, detail?: CloseDetail) => void>();
  private readonly subs = new Map<string, Subscription>();
  private readonly retries = new Map<string, ReturnType<typeof setTimeout>>();
  /** When each subscription was first refused as `forbidden` (since its last `subscribed`). */
  private readonly refusedSince = new Map<string, number>();
  /** Subscription frames waiting for their turn (`pace`), unsubscribes first. */
  private readonly toSubscribe = new Set<string>();
  private readonly toUnsubscribe: string[] = [];
  /** Subscribes sent and not answered yet. */
  private readonly asked = new Set<string>();
  /** Refused for room: asked for again, one by one, as this connection's subscriptions end. */
  private readonly waiting = new Set<string>();
  private paceTimer: ReturnType<typeof setTimeout> | null = null;
  /** The pace of subscription frames this connection's greeting allows. */
  private framesPerSecond = SUBSCRIPTION_FRAMES_PER_SECOND;
  /** A `connect()` is waiting for the first connection: its failure is the caller's error. */
  private firstConnect = false;
  /**
   * Tasks subscribed afresh (no subscription of theirs on the server: a first subscribe, one
   * after `unsubscribe`, every one after a connect) whose `subscribed` has not come yet. What
   * comes for them before it is an older subscription's (updates still in flight when the
   * client unsubscribed): not this stream's, and it would move `lastOffset` past the replay.
   */
  private readonly awaitingAnswer = new Set<string>();
  /**
   * Tasks of ours the gateway restores for `old_client_id` (`reconnected.subscribed`) whose
   * restored `subscribed` has not come yet: not subscribed again unless that stream does not
   * resume them exactly (decision 0141). They stay in `awaitingAnswer` meanwhile.
   */
  private readonly restoring = new Set<string>();
  /** The sentinel `ping` after `reconnected` is not answered yet: its `pong` ends the restore. */
  private restorePending = false;
  /**
   * The `client_id` of the last greeted connection, sent as `old_client_id` by the next one;
   * null after `disconnect()` (a later `connect()` is a new client).
   */
  private sessionToRestore: string | null = null;
  readonly stats: ManagerStats = {
    connects: 0,
    reconnects: 0,
    duplicatesDropped: 0,
    staleDropped: 0,
    invalidMessages: 0,
    sessionsRestored: 0,
    streamsRestored: 0,
  };
  /** The client id the server gave this connection. */
  clientId: string | null = null;
  /** When the next reconnect attempt starts (ms since the epoch), while reconnecting. */
  nextAttemptAt: number | null = null;

  constructor(options: WebSocketManagerOptions) {
    this.options = options;
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) throw new Error("no WebSocket: pass options.WebSocket (e.g. the ws package)");
    this.Ctor = Ctor;
  }

  // --- state -------------------------------------------------------------------------------

  getState(): ConnectionState {
    return this.state;
  }

  isConnected(): boolean {
    return this.state === "connected";
  }

  /** Listen to state changes; returns the function that stops listening. */
  onConnectionState(handler: (state: ConnectionState, detail?: CloseDetail) => void): () => void {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  private setState(state: ConnectionState, detail?: CloseDetail): void {
    if (state === this.state && detail === undefined) return;
    this.state = state;
    for (const handler of [...this.stateHandlers]) handler(state, detail);
  }

  // --- messages ----------------------------------------------------------------------------

  /** Listen to one type of server message (`"*"`: every message). */
  on<T extends MessageType>(type: T, handler: (msg: MessageOf<T>) => void): void;
  on(type: "*", handler: (msg: ServerMessage) => void): void;
  on(type: string, handler: (msg: never) => void): void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler as Handler);
  }

  off(type: MessageType | "*", handler: (msg: never) => void): void {
    this.handlers.get(type)?.delete(handler as Handler);
  }

  /** Send a client message; false when not connected (subscriptions are re-sent anyway). */
  send(msg: ClientMessage): boolean {
    if (!this.ws || this.ws.readyState !== OPEN || this.state !== "connected") return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  // --- subscriptions -----------------------------------------------------------------------

  /**
   * Follow a task: `since` -1 replays the whole run, null starts from a snapshot, an offset
   * resumes after it. After a reconnect the subscription resumes after the last offset
   * delivered; updates at or below it are dropped, so each is delivered once.
   */
  subscribe(
    taskId: string,
    since: number | null = -1,
    epoch: string | null = null,
    { waitsForRoom = false }: { waitsForRoom?: boolean } = {},
  ): Subscription {
    const sub: Subscription = { taskId, since, lastOffset: since ?? -1, epoch, waitsForRoom };
    this.cancelRetry(taskId);
    this.refusedSince.delete(taskId);
    // Replacing a subscription the server holds continues it (docs/protocol.md): what is in
    // flight is still due. Otherwise the stream starts at its `subscribed`.
    if (!this.subs.has(taskId)) this.awaitingAnswer.add(taskId);
    this.subs.set(taskId, sub);
    this.sendSubscribe(sub);
    return sub;
  }

  unsubscribe(taskId: string): void {
    this.forget(taskId);
    if (this.subs.delete(taskId) && this.state === "connected") {
      this.toUnsubscribe.push(taskId);
      this.makeRoom();
    }
  }

  /** What is kept about a subscription beside it (its retry, refusals, awaited answer). */
  private forget(taskId: string): void {
    this.cancelRetry(taskId);
    this.awaitingAnswer.delete(taskId);
    this.restoring.delete(taskId);
    this.refusedSince.delete(taskId);
    this.toSubscribe.delete(taskId);
    this.waiting.delete(taskId);
  }

  /** A subscription was let go: one waiting for room is asked for again (after the unsubscribe). */
  private makeRoom(): void {
    for (const taskId of this.waiting) {
      this.waiting.delete(taskId);
      const sub = this.subs.get(taskId);
      if (sub) {
        this.sendSubscribe(sub);
        break;
      }
    }
    this.pace();
  }

  subscription(taskId: string): Subscription | undefined {
    return this.subs.get(taskId);
  }

  private cancelRetry(taskId: string): void {
    const timer = this.retries.get(taskId);
    if (timer) clearTimeout(timer);
    this.retries.delete(taskId);
  }

  /** The gateway dropped (or never made) the subscription for now: ask again soon. */
  private retrySubscribe(sub: Subscription): void {
    this.cancelRetry(sub.taskId);
    this.restoring.delete(sub.taskId); // subscribed on our own, then
    const timer = setTimeout(() => {
      this.retries.delete(sub.taskId);
      if (this.subs.get(sub.taskId) === sub) this.sendSubscribe(sub);
    }, this.options.retryDelayMs ?? 1000);
    this.retries.set(sub.taskId, timer);
  }

  private sendSubscribe(sub: Subscription): void {
    this.restoring.delete(sub.taskId); // ours replaces a restored stream
    this.toSubscribe.delete(sub.taskId); // asked again: in order, behind the others
    this.toSubscribe.add(sub.taskId);
    this.pace();
  }

  /**
   * Send the next subscription frame when its turn has come: unsubscribes first (they make
   * room), subscribes while fewer than SUBSCRIBES_IN_FLIGHT wait for their answer; at the
   * pace the greeting allows (`subscriptionFramesPerSecond`).
   */
  private pace(): void {
    if (this.paceTimer !== null || this.state !== "connected") return;
    let msg: ClientMessage | null = null;
    const unsubscribe = this.toUnsubscribe.shift();
    if (unsubscribe !== undefined) msg = { action: "unsubscribe", task_id: unsubscribe };
    else if (this.asked.size < SUBSCRIBES_IN_FLIGHT) {
      for (const taskId of this.toSubscribe) {
        this.toSubscribe.delete(taskId);
        const sub = this.subs.get(taskId);
        if (!sub) continue;
        this.asked.add(taskId);
        const since = sub.lastOffset >= 0 ? sub.lastOffset : sub.since;
        msg = { action: "subscribe", task_id: taskId, since, epoch: sub.epoch };
        break;
      }
    }
    if (msg === null || !this.send(msg)) return;
    this.paceTimer = setTimeout(() => {
      this.paceTimer = null;
      this.pace();
    }, 1000 / this.framesPerSecond);
  }

  /** The answer to a subscribe of ours came (its `subscribed`, or a refusal). */
  private answered(taskId: string): void {
    if (this.asked.delete(taskId)) this.pace();
  }

  // --- connecting --------------------------------------------------------------------------

  /** Open the connection; resolves once the server said `connected`. */
  connect(): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    const ready = new Promise<void>((resolve, reject) => {
      const stop = this.onConnectionState((state, detail) => {
        if (state === "connected") {
          stop();
          resolve();
        } else if (state === "failed" || state === "disconnected") {
          stop();
          const code = detail?.code ? `${detail.code} ` : "";
          reject(new Error(`connection ${state}${detail ? `: ${code}${detail.reason}` : ""}`));
        }
      });
    });
    if (this.state !== "connecting" && this.state !== "reconnecting") {
      this.attempt = 0;
      this.firstConnect = true;
      this.open();
    }
    return ready;
  }

  /** Close for good (no reconnect); a later `connect()` is a new client (no session restored). */
  disconnect(): void {
    this.firstConnect = false;
    this.sessionToRestore = null;
    this.clearTimers();
    this.drop(1000, "client disconnect");
    this.setState("disconnected");
  }

  /** Drop the connection now and open a new one (subscriptions resume, the session restored). */
  reconnect(): void {
    this.clearTimers();
    this.drop(4000, "client reconnect");
    this.attempt = 0;
    this.open();
  }

  private open(): void {
    this.clearTimers();
    this.nextAttemptAt = null;
    this.connectedAt = null;
    this.delivered = false;
    this.setState(this.everConnected ? "reconnecting" : "connecting");
    const url = this.connectUrl();
    const token = typeof this.options.token === "function" ? this.options.token() : this.options.token;
    let ws: WebSocketLike;
    try {
      // Without a token, no subprotocols: a gateway before ytmaker.v1 selects none, and a
      // browser fails a connection whose server selected none of those offered.
      ws = token ? new this.Ctor(url, [SUBPROTOCOL, `${BEARER_SUBPROTOCOL}${token}`]) : new this.Ctor(url);
    } catch (err) {
      this.scheduleReconnect({ code: 0, reason: String(err) });
      return;
    }
    this.ws = ws;
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.receive(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.endRestore();
      this.lost({ code: ev.code, reason: ev.reason });
    };
    ws.onerror = () => undefined; // a close follows
    this.connectTimer = setTimeout(() => {
      if (this.ws === ws && this.state !== "connected") this.lost({ code: 0, reason: "connection timeout" }, true);
    }, this.options.connectionTimeoutMs ?? 10000);
  }

  /**
   * The URL of the next connection: with `old_client_id`, the last greeted connection's
   * `client_id`, after a drop (decision 0141); without it at the first connect, after
   * `disconnect()`, and with `restoreSession: false`.
   */
  private connectUrl(): string {
    const url = new URL(this.options.url);
    const id = this.sessionToRestore;
    if (this.options.restoreSession !== false && id !== null) url.searchParams.set("old_client_id", id);
    return url.toString();
  }

  /** A connection ended: nothing of it is restored any more. */
  private endRestore(): void {
    this.restoring.clear();
    this.restorePending = false;
  }

  private drop(code: number, reason: string): void {
    const ws = this.ws;
    this.ws = null;
    this.endRestore();
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try {
        ws.close(code, reason);
      } catch {
        /* already closed */
      }
    }
  }

  private lost(detail: CloseDetail, dropSocket = false): void {
    this.clearTimers();
    if (dropSocket) this.drop(4000, detail.reason);
    if (detail.code === CLOSE_UNAUTHORIZED || detail.code === CLOSE_FORBIDDEN) {
      this.setState("failed", detail);
      return;
    }
    this.scheduleReconnect(detail);
  }

  private scheduleReconnect(detail: CloseDetail): void {
    if (this.served()) this.attempt = 0;
    const max = this.options.maxReconnectAttempts ?? Infinity;
    if (this.options.autoReconnect === false || this.attempt >= max) {
      this.setState(this.options.autoReconnect === false ? "disconnected" : "failed", detail);
      return;
    }
    const delay = backoffDelay(this.attempt, this.options);
    this.attempt += 1;
    this.nextAttemptAt = Date.now() + delay;
    this.setState("reconnecting", detail);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  /** Whether the connection that just ended had served (`stableAfterMs`); forgets it. */
  private served(): boolean {
    const since = this.connectedAt;
    const delivered = this.delivered;
    this.connectedAt = null;
    this.delivered = false;
    if (since === null) return false;
    return delivered || Date.now() - since >= (this.options.stableAfterMs ?? 10000);
  }

  private clearTimers(): void {
    for (const timer of [this.retryTimer, this.connectTimer, this.paceTimer]) if (timer) clearTimeout(timer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.retryTimer = this.connectTimer = this.heartbeatTimer = this.paceTimer = null;
    // Every subscription is sent again at the next `connected`.
    for (const timer of this.retries.values()) clearTimeout(timer);
    this.retries.clear();
  }

  private startHeartbeat(): void {
    const interval = this.options.heartbeatIntervalMs ?? 25000;
    this.heartbeatTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > 2 * interval) {
        this.lost({ code: 4408, reason: "no message for two heartbeat intervals" }, true);
        return;
      }
      this.send({ action: "ping" });
    }, interval);
  }

  // --- receiving ---------------------------------------------------------------------------

  private receive(data: unknown): void {
    this.lastMessageAt = Date.now();
    let msg: unknown;
    try {
      msg = JSON.parse(typeof data === "string" ? data : String(data));
    } catch {
      this.stats.invalidMessages += 1;
      return;
    }
    if (!isServerMessage(msg)) {
      this.stats.invalidMessages += 1;
      if (this.state !== "connected" && isRecord(msg) && (msg.type === "connected" || msg.type === "reconnected")) {
        this.badGreeting(msg.type, msg.payload);
      }
      return;
    }
    switch (msg.type) {
      case "connected":
        this.framesPerSecond = subscriptionFramesPerSecond(msg.payload);
        this.onConnected(msg.payload.client_id, null);
        break;
      case "reconnected":
        this.framesPerSecond = subscriptionFramesPerSecond(msg.payload);
        this.onConnected(msg.payload.client_id, msg.payload.subscribed);
        break;
      case "ping":
        // Echoing the ping's timestamp names the ping answered: a restored session resumes
        // from exactly what came before it.
        this.send({ action: "pong", timestamp: msg.payload.timestamp });
        break;
      case "pong":
        // The answer to the ping sent after `reconnected`: the gateway restored every stream
        // before it read that ping, so a task still restoring was skipped. Subscribe it.
        if (this.restorePending) {
          this.restorePending = false;
          for (const taskId of [...this.restoring]) {
            const sub = this.subs.get(taskId);
            this.restoring.delete(taskId);
            if (sub) this.sendSubscribe(sub);
          }
        }
        break;
      case "subscribed": {
        if (!msg.payload.restored) this.answered(msg.payload.task_id);
        const sub = this.subs.get(msg.payload.task_id);
        if (sub && msg.payload.restored === true && this.restoring.has(sub.taskId)) {
          this.restoring.delete(sub.taskId);
          if (resumesExactly(sub, msg.payload)) {
            // Kept: what it repeats up to `lastOffset` is dropped as duplicates (the update rule).
            this.awaitingAnswer.delete(sub.taskId);
            this.refusedSince.delete(sub.taskId);
            this.stats.streamsRestored += 1;
          } else {
            // Our own subscribe replaces it: this stream's messages, its `subscribed` too,
            // are stale until our answer.
            this.sendSubscribe(sub);
            this.stats.staleDropped += 1;
            return;
          }
        } else if (sub && !msg.payload.restored) {
          this.awaitingAnswer.delete(sub.taskId);
          this.refusedSince.delete(sub.taskId);
          if (msg.payload.epoch) sub.epoch = msg.payload.epoch;
          if (msg.payload.recovered === false) {
            // What was asked for is not held (a recreated log's offsets start again): the
            // stream starts over after `offset`, with a snapshot.
            const after = msg.payload.offset ?? null;
            sub.lastOffset = after ?? -1;
            if (after === null) sub.since = -1;
          }
        }
        break;
      }
      case "snapshot": {
        const sub = msg.task_id ? this.subs.get(msg.task_id) : undefined;
        if (!sub) return;
        if (this.awaitingAnswer.has(sub.taskId)) {
          this.stats.staleDropped += 1;
          return;
        }
        if (msg.offset !== null && msg.offset > sub.lastOffset) sub.lastOffset = msg.offset;
        adoptEpoch(sub, msg.payload);
        this.delivered = true;
        break;
      }
      default:
        if (msg.type === "error" && msg.offset === null && msg.task_id) {
          const sub = this.subs.get(msg.task_id);
          const refusal = msg.payload as ErrorPayload;
          if (!refusal.details?.["restored"]) this.answered(msg.task_id);
          else if (sub && this.restoring.has(sub.taskId)) this.sendSubscribe(sub); // not restored: ours decides
          if (sub && !refusal.details?.["restored"]) {
            if (RETRYABLE.has(refusal.code)) this.retrySubscribe(sub);
            else if (refusal.code === "too_many_subscriptions") {
              // Waiting for room is not reported; otherwise the subscription ends with it.
              if (sub.waitsForRoom) {
                this.waiting.add(sub.taskId);
                return;
              }
              this.forget(sub.taskId);
              this.subs.delete(sub.taskId);
            }
            // Answering our subscribe (not, say, a refused `cancel` of a followed task).
            else if (refusal.code === "forbidden" && this.awaitingAnswer.has(sub.taskId) && !this.refused(sub)) return;
          }
        } else if (UPDATE_TYPES.has(msg.type) && msg.offset !== null && msg.task_id) {
          const sub = this.subs.get(msg.task_id);
          if (!sub) break; // a project stream's update, or one in flight after unsubscribe
          if (this.awaitingAnswer.has(sub.taskId)) {
            this.stats.staleDropped += 1;
            return;
          }
          if (msg.offset <= sub.lastOffset) {
            this.stats.duplicatesDropped += 1;
            return;
          }
          sub.lastOffset = msg.offset;
          adoptEpoch(sub, msg.payload);
          this.delivered = true;
        }
    }
    this.dispatch(msg);
  }

  /**
   * A subscribe refused as `forbidden`: asked for again within `refusalWindowMs` of the first
   * refusal (false: not final, not reported); after it, given up (true: report it).
   */
  private refused(sub: Subscription): boolean {
    const now = Date.now();
    const since = this.refusedSince.get(sub.taskId) ?? now;
    this.refusedSince.set(sub.taskId, since);
    if (now - since < (this.options.refusalWindowMs ?? 15000)) {
      this.retrySubscribe(sub);
      return false;
    }
    this.forget(sub.taskId);
    this.subs.delete(sub.taskId);
    return true;
  }

  /**
   * The socket's greeting does not have the schema's shape: a first `connect()` fails with
   * that reason (retrying would meet the same gateway); a reconnect drops the socket and
   * tries again, as after any failed attempt.
   */
  private badGreeting(type: string, payload: unknown): void {
    const p = isRecord(payload) ? payload : null;
    const why = !p
      ? "its payload is not an object"
      : typeof p["client_id"] !== "string"
        ? "no client_id string"
        : typeof p["heartbeat_interval"] !== "number"
          ? "no heartbeat_interval number"
          : "it does not match the gateway's schema";
    const detail: CloseDetail = { code: 0, reason: `malformed ${type} message from the gateway: ${why}` };
    if (!this.firstConnect) {
      this.lost(detail, true);
      return;
    }
    this.firstConnect = false;
    this.clearTimers();
    this.drop(4000, "malformed greeting");
    this.setState("failed", detail);
  }

  /**
   * A greeting: `connected` (`restored` null) or `reconnected`, with the tasks whose streams
   * the gateway restores for `old_client_id` (decision 0141).
   */
  private onConnected(clientId: string, restored: readonly unknown[] | null): void {
    this.firstConnect = false;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.clientId = clientId;
    this.sessionToRestore = isClientId(clientId) ? clientId : null;
    this.stats.connects += 1;
    if (this.everConnected) this.stats.reconnects += 1;
    this.everConnected = true;
    this.connectedAt = Date.now(); // the attempts count afresh only once it served
    this.delivered = false;
    this.setState("connected");
    this.startHeartbeat();
    // A new socket holds no subscription but those the gateway restored: each stream starts
    // at its `subscribed` (a restored one at the restored `subscribed`, which decides whether
    // it is kept or subscribed again).
    this.awaitingAnswer.clear();
    this.toSubscribe.clear();
    this.toUnsubscribe.length = 0;
    this.asked.clear();
    this.waiting.clear();
    this.endRestore();
    const listed = new Set<string>();
    for (const taskId of restored ?? []) if (typeof taskId === "string") listed.add(taskId);
    for (const sub of this.subs.values()) {
      this.awaitingAnswer.add(sub.taskId);
      if (listed.has(sub.taskId)) this.restoring.add(sub.taskId);
      else this.toSubscribe.add(sub.taskId);
    }
    // A restored stream we no longer follow (unsubscribed while the connection was down):
    // let go of it first, it holds room.
    for (const taskId of listed) if (!this.subs.has(taskId)) this.toUnsubscribe.push(taskId);
    if (restored !== null) {
      this.stats.sessionsRestored += 1;
      // The gateway restores every stream before it reads any message of ours: by the pong
      // of this ping, every restored `subscribed` (or restored `error`) has come.
      this.restorePending = true;
      this.send({ action: "ping" });
    }
    this.pace();
  }

  private dispatch(msg: ServerMessage): void {
    for (const handler of [...(this.handlers.get(msg.type) ?? [])]) handler(msg);
    for (const handler of [...(this.handlers.get("*") ?? [])]) handler(msg);
  }
}

/**
 * Whether a stream the gateway restored (its `subscribed`, `restored: true`) resumes `sub`
 * exactly (decision 0141): recovered, in the epoch `sub` holds (or neither has one), continuing
 * after an offset at or before the last one delivered. What it repeats up to that is dropped as
 * duplicates.
 */
function resumesExactly(sub: Subscription, payload: { recovered?: unknown; epoch?: unknown; offset?: unknown }): boolean {
  const after = payload.offset;
  return (
    payload.recovered === true &&
    (payload.epoch ?? null) === sub.epoch && // both null: a gateway without epochs
    sub.lastOffset >= 0 &&
    typeof after === "number" &&
    Number.isInteger(after) &&
    after >= 0 &&
    after <= sub.lastOffset
  );
}

/**
 * The epoch a delivered update or snapshot names becomes the subscription's (as Python's
 * cursor): a gateway that learned its log's epoch after the `subscribed` says it in the
 * updates, and the next resume (or a restored stream, decision 0141) is judged by it.
 */
function adoptEpoch(sub: Subscription, payload: unknown): void {
  const epoch = isRecord(payload) ? payload["epoch"] : undefined;
  if (typeof epoch === "string" && epoch !== "") sub.epoch = epoch;
}

/** A `client_id` worth sending back as `old_client_id`: a non-empty string, not too long. */
function isClientId(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= LONGEST_CLIENT_ID;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export interface CloseDetail {
  code: number;
  reason: string;
}
