// The page of the browser test: <ProgressTracker/> for ?task= against ?base= with ?token=,
// recording its callbacks in window.tracker for the test to read.
import { createRoot } from "react-dom/client";
import { ProgressTracker } from "../dist/index.js";

const q = new URLSearchParams(location.search);
const seen = (window.tracker = { progress: [], completed: null, errors: [], reconnects: [] });

createRoot(document.getElementById("root")).render(
  <ProgressTracker
    taskId={q.get("task")}
    baseUrl={q.get("base")}
    token={q.get("token")}
    autoReconnect={q.get("reconnect") !== "off"}
    maxReconnectAttempts={Number(q.get("attempts") ?? Infinity)}
    onProgress={(u) => seen.progress.push(u.offset)}
    onComplete={(s) => (seen.completed = s.status)}
    onError={(e) => seen.errors.push(e.code)}
    onReconnect={(n) => seen.reconnects.push(n)}
  />,
);
