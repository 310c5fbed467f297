/** Reconnect delays: exponential, capped, with optional jitter. Pure. */

export interface BackoffOptions {
  /** The first delay (ms); default 1000. */
  initialDelayMs?: number;
  /** No delay is longer (ms); default 30000. */
  maxDelayMs?: number;
  /** Each attempt multiplies the delay; default 2. */
  factor?: number;
  /** 0..1: a delay is drawn from [d × (1 − jitter), d]; default 0. */
  jitter?: number;
}

/** The delay before reconnect attempt `attempt` (0 for the first retry). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initial = options.initialDelayMs ?? 1000;
  const max = options.maxDelayMs ?? 30000;
  const factor = options.factor ?? 2;
  const jitter = Math.min(1, Math.max(0, options.jitter ?? 0));
  const delay = Math.min(max, initial * factor ** Math.max(0, attempt));
  return Math.round(delay * (1 - jitter * random()));
}
