/**
 * Orphan protection for server processes started by `kvstore cluster` or the test harness.
 *
 * Protocol: a parent that wants its children to die with it starts them with
 * `KVSTORE_PARENT_WATCH=1` in the environment and stdin connected to a pipe it holds open and
 * never writes to. When the parent exits for any reason — including SIGKILL — the kernel closes the
 * pipe's write end and the child reads end-of-file on stdin. The child then shuts down as it would
 * on SIGTERM. Without the variable nothing is watched (stdin may be a terminal or /dev/null).
 */

/** The environment variable that turns the watch on (value `1`). */
export const PARENT_WATCH_ENV = 'KVSTORE_PARENT_WATCH';

/**
 * Watches for the parent's exit as described above. `onParentGone` runs at most once; by default it
 * sends this process SIGTERM, so the server's normal graceful shutdown runs. The watch does not keep
 * the event loop alive. Returns a function that stops watching (call it during shutdown).
 */
export function watchParent(onParentGone: () => void = () => process.kill(process.pid, 'SIGTERM')): () => void {
  if (process.env[PARENT_WATCH_ENV] !== '1') return () => undefined;
  const stdin = process.stdin;
  let fired = false;
  const gone = (): void => {
    if (fired) return;
    fired = true;
    stop();
    onParentGone();
  };
  const ignoreData = (): void => undefined;
  const stop = (): void => {
    stdin.off('end', gone);
    stdin.off('close', gone);
    stdin.off('error', gone);
    stdin.off('data', ignoreData);
  };
  stdin.on('data', ignoreData);
  stdin.once('end', gone);
  stdin.once('close', gone);
  stdin.once('error', gone);
  stdin.resume();
  // A pipe's handle would otherwise keep the process alive after the server has shut down.
  const handle = stdin as NodeJS.ReadStream & { unref?: () => void };
  handle.unref?.();
  return () => {
    fired = true;
    stop();
    handle.unref?.();
  };
}
