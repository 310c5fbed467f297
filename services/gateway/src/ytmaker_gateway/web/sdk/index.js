/** ytmaker's TypeScript SDK: follow runs live with exact resume (docs/protocol.md). */
export * from "./generated/contract.js";
export { backoffDelay } from "./backoff.js";
export { GatewayError, RestClient, } from "./rest.js";
export { ProgressClient, wsUrl, } from "./progress-client.js";
export { SLOWEST_SUBSCRIPTION_FRAMES_PER_SECOND, SUBSCRIBES_IN_FLIGHT, SUBSCRIPTION_FRAMES_PER_SECOND, subscriptionFramesPerSecond, WebSocketManager, } from "./websocket-manager.js";
