/** Reconnect delays: exponential, capped, with optional jitter. Pure. */
/** The delay before reconnect attempt `attempt` (0 for the first retry). */
export function backoffDelay(attempt, options = {}, random = Math.random) {
    const initial = options.initialDelayMs ?? 1000;
    const max = options.maxDelayMs ?? 30000;
    const factor = options.factor ?? 2;
    const jitter = Math.min(1, Math.max(0, options.jitter ?? 0));
    const delay = Math.min(max, initial * factor ** Math.max(0, attempt));
    return Math.round(delay * (1 - jitter * random()));
}
