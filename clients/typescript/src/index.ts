/** ytmaker's TypeScript SDK: follow runs live with exact resume (docs/protocol.md). */
export * from "./generated/contract.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
export {
  GatewayError,
  RestClient,
  type ArtifactName,
  type FetchLike,
  type RestOptions,
  type RunStatus,
} from "./rest.js";
export {
  ProgressClient,
  wsUrl,
  type ProgressClientOptions,
  type ProjectHandlers,
  type TaskHandlers,
  type TaskOptions,
  type UpdateMessage,
} from "./progress-client.js";
export {
  SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND,
  SUBSCRIBES_IN_FLIGHT,
  SUBSCRIPTION_FRAMES_PER_SECOND,
  subscriptionFramesPerSecond,
  WebSocketManager,
  type CloseDetail,
  type ConnectionState,
  type ManagerStats,
  type MessageOf,
  type MessageType,
  type Subscription,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSocketManagerOptions,
} from "./websocket-manager.js";
