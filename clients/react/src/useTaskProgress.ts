/**
 * `useTaskProgress(taskId, options)`: a task's live state, history and connection, from a
 * `ProgressClient` (@ytmaker/sdk). Every update arrives once, in order, across reconnects; when
 * the server could not replay what was missed, `recovered` is false and the state comes from a
 * snapshot.
 */
import { useEffect, useRef, useState } from "react";
import {
  ProgressClient,
  type ConnectionState,
  type ErrorPayload,
  type TaskState,
  type UpdateMessage,
  type UpdatePayload,
  type WebSocketConstructor,
} from "@ytmaker/sdk";

export interface UseTaskProgressOptions {
  /** A client to share; otherwise one is made from `baseUrl` and `token` (and closed after). */
  client?: ProgressClient;
  /** http(s):// base of the gateway ("" : this page's origin). */
  baseUrl?: string;
  token?: string;
  WebSocket?: WebSocketConstructor;
  /** Reconnect after a drop (default true). */
  autoReconnect?: boolean;
  /** Give up after this many failed attempts in a row (default: never). */
  maxReconnectAttempts?: number;
  /** -1 (default): the whole run as history; null: start from the current state. */
  since?: number | null;
  /** Keep at most this many updates in `history` (default 1000). */
  historyLimit?: number;
  onProgress?(update: UpdateMessage): void;
  onComplete?(state: TaskState | UpdatePayload): void;
  onError?(error: ErrorPayload): void;
  /** The connection came back (the `n`-th time); the stream resumed where it stopped. */
  onReconnect?(count: number): void;
}

export interface TaskProgress {
  state: TaskState | UpdatePayload | null;
  history: UpdateMessage[];
  connection: ConnectionState;
  /** false once the server said updates were missed (then the state is a snapshot). */
  recovered: boolean | null;
  error: ErrorPayload | null;
  reconnects: number;
  /** ms since the epoch of the next reconnect attempt, while reconnecting. */
  nextAttemptAt: number | null;
}

const INITIAL: TaskProgress = {
  state: null,
  history: [],
  connection: "idle",
  recovered: null,
  error: null,
  reconnects: 0,
  nextAttemptAt: null,
};

export function useTaskProgress(taskId: string | null | undefined, options: UseTaskProgressOptions = {}): TaskProgress {
  const [progress, setProgress] = useState<TaskProgress>(INITIAL);
  const callbacks = useRef(options);
  callbacks.current = options;
  const { client: shared, baseUrl = "", token, WebSocket, autoReconnect, maxReconnectAttempts, since = -1 } = options;
  const limit = options.historyLimit ?? 1000;

  useEffect(() => {
    if (!taskId) return undefined;
    setProgress(INITIAL);
    const client =
      shared ??
      new ProgressClient({
        baseUrl,
        token,
        WebSocket,
        autoReconnect: autoReconnect ?? true,
        maxReconnectAttempts: maxReconnectAttempts ?? Infinity,
      });
    let everConnected = client.getState() === "connected";
    let reconnects = 0;
    const stopState = client.onConnectionState((connection) => {
      if (connection === "connected") {
        if (everConnected) {
          reconnects += 1;
          callbacks.current.onReconnect?.(reconnects);
        }
        everConnected = true;
      }
      if (connection === "failed") {
        callbacks.current.onError?.({ code: "connection_failed", message: "could not reconnect", details: {} });
      }
      setProgress((p) => ({ ...p, connection, reconnects, nextAttemptAt: client.manager.nextAttemptAt }));
    });
    const stop = client.subscribeToTask(
      taskId,
      {
        onSubscribed: (info) => setProgress((p) => ({ ...p, recovered: p.recovered === false ? false : info.recovered })),
        onSnapshot: (state) => setProgress((p) => ({ ...p, state })),
        onEvent: (update) => {
          callbacks.current.onProgress?.(update);
          setProgress((p) => ({ ...p, state: update.payload, history: [...p.history, update].slice(-limit) }));
        },
        onComplete: (state) => callbacks.current.onComplete?.(state),
        onError: (error) => {
          callbacks.current.onError?.(error);
          setProgress((p) => ({ ...p, error }));
        },
      },
      { since },
    );
    setProgress((p) => ({ ...p, connection: client.getState() }));
    if (client.getState() !== "connected") {
      client.connect().catch(() => undefined); // failures arrive as states
    }
    return () => {
      stop();
      stopState();
      if (!shared) client.disconnect();
    };
  }, [taskId, shared, baseUrl, token, WebSocket, autoReconnect, maxReconnectAttempts, since, limit]);

  return progress;
}
