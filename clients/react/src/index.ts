export { ProgressTracker, STAGES, formatEta, type ProgressTrackerProps } from "./ProgressTracker.js";
export { useTaskProgress, type TaskProgress, type UseTaskProgressOptions } from "./useTaskProgress.js";
