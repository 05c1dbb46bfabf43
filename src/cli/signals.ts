// The signals that stop a run or a watch gracefully (exit 130, running stages stop at their next
// step with resumable state kept): Ctrl-C (SIGINT, sent by the terminal to the whole process group),
// SIGTERM (kill, CI cancellation) and SIGHUP (the terminal was closed).
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
