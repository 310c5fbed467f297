/**
 * A refused request: `code` is the gateway's error code (`forbidden`, `conflict`...), or
 * `http_<status>` for a refusal without the gateway's error body, `bad_answer` for a success
 * whose body is not JSON, `timeout` (status 0) for no answer within `timeoutMs`, `transport`
 * (status 0) for no answer at all: the gateway unreachable, or a redirect (never followed).
 */
export class GatewayError extends Error {
    status;
    code;
    details;
    constructor(status, code, message, details = {}) {
        super(message);
        this.status = status;
        this.code = code;
        this.details = details;
        this.name = "GatewayError";
    }
}
export class RestClient {
    options;
    constructor(options) {
        this.options = options;
    }
    token() {
        const token = this.options.token;
        return typeof token === "function" ? token() : token;
    }
    async request(method, path, body) {
        const headers = { "content-type": "application/json" };
        const token = this.token();
        if (token)
            headers.authorization = `Bearer ${token}`;
        const doFetch = this.options.fetch ?? globalThis.fetch;
        const timeoutMs = this.options.timeoutMs ?? 30000;
        const abort = new AbortController();
        let timer;
        // Raced as well as aborted: a fetch that ignores its signal must not hang the caller.
        const expired = new Promise((_, reject) => {
            timer = setTimeout(() => {
                reject(new GatewayError(0, "timeout", `no answer from the gateway within ${timeoutMs} ms`));
                abort.abort();
            }, timeoutMs);
        });
        let response;
        let text;
        try {
            response = await Promise.race([
                doFetch(`${this.options.baseUrl}/api/v1${path}`, {
                    method,
                    headers,
                    body: body === undefined ? undefined : JSON.stringify(body),
                    signal: abort.signal,
                    // The gateway never redirects: followed, a redirect would take the request's body
                    // (a project's text) to another host.
                    redirect: "error",
                }).catch((err) => {
                    throw new GatewayError(0, "transport", `cannot reach the gateway: ${String(err)}`);
                }),
                expired,
            ]);
            text = response.status === 204 ? "" : await Promise.race([response.text(), expired]);
        }
        finally {
            clearTimeout(timer);
        }
        let parsed = null;
        let json = true;
        try {
            parsed = text ? JSON.parse(text) : null;
        }
        catch {
            json = false;
        }
        if (response.ok && !json) {
            throw new GatewayError(response.status, "bad_answer", `not JSON from ${path}`);
        }
        if (!response.ok) {
            const err = parsed?.error;
            throw new GatewayError(response.status, err?.code ?? `http_${response.status}`, err?.message ?? response.statusText, err?.details);
        }
        return parsed;
    }
    createProject(body) {
        return this.request("POST", "/projects", body);
    }
    startRun(projectId) {
        return this.request("POST", `/projects/${encodeURIComponent(projectId)}/tasks`, {});
    }
    project(projectId) {
        return this.request("GET", `/projects/${encodeURIComponent(projectId)}`);
    }
    runs(filter = {}) {
        const q = new URLSearchParams();
        if (filter.status)
            q.set("status", filter.status);
        if (filter.projectId)
            q.set("project_id", filter.projectId);
        if (filter.limit)
            q.set("limit", String(filter.limit));
        const query = q.toString();
        return this.request("GET", `/runs${query ? `?${query}` : ""}`);
    }
    progress(taskId) {
        return this.request("GET", `/progress/${encodeURIComponent(taskId)}`);
    }
    history(taskId, options = {}) {
        const q = new URLSearchParams({ limit: String(options.limit ?? 10000) });
        if (options.since !== undefined)
            q.set("since", String(options.since));
        const db = options.source === "memory" ? "" : "/db";
        return this.request("GET", `/progress/${encodeURIComponent(taskId)}/history${db}?${q}`);
    }
    control(taskId, action, reason = "") {
        return this.request("POST", `/tasks/${encodeURIComponent(taskId)}/${action}`, { reason });
    }
    /**
     * A link to an artifact for a `<video src>` or `<img src>`, which cannot send the token:
     * `url` carries a grant for this artifact alone until `expiresAt` (an hour by default, never
     * past the token), checked on each request, a playing video's `Range` requests too: ask for
     * the next one before then. The token itself never goes in a URL.
     */
    async artifactLink(taskId, name) {
        const path = `/artifacts/${encodeURIComponent(taskId)}/${encodeURIComponent(name)}`;
        const link = await this.request("GET", `${path}/link`);
        const expiresAt = new Date(typeof link?.expires_at === "string" ? link.expires_at : Number.NaN);
        if (typeof link?.url !== "string" || !link.url.startsWith("/api/v1/artifacts/") || Number.isNaN(expiresAt.getTime())) {
            throw new GatewayError(200, "bad_answer", `not a link from ${path}/link`);
        }
        return { url: `${this.options.baseUrl}${link.url}`, expiresAt };
    }
    /** The run's script (`script.json`: `title`, `segments` with `narration`, `caption`…). */
    script(taskId) {
        return this.request("GET", `/artifacts/${encodeURIComponent(taskId)}/script`);
    }
}
