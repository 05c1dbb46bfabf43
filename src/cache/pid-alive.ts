// Whether a process of this machine is still there (signal 0 probes without signalling). Any
// answer but "no such process" counts as alive: a lock or a temp file of a live owner is never taken.
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}
