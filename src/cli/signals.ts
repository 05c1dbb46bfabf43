// The signals that stop a run or a watch gracefully (exit 130, running stages stop at their next
// step with resumable state kept): Ctrl-C (SIGINT, sent by the terminal to the whole process group),
// SIGTERM (kill, CI cancellation) and SIGHUP (the terminal was closed).
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/**
 * Calls `stop` once when stdout fails, as when its reader went away (`lorabuild watch --json | head`,
 * a CI log reader killed): the command stops as on Ctrl-C instead of dying of an unhandled EPIPE in
 * the middle of a build. Later write errors are ignored; the stop goes on.
 */
export function stopWhenOutputCloses(stop: () => void, out: NodeJS.WriteStream = process.stdout): void {
  let stopped = false;
  out.on('error', () => {
    if (stopped) return;
    stopped = true;
    stop();
  });
}
