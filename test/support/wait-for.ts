/**
 * The tests' one way to wait: poll with a deadline (STYLE.md §6), never a bare sleep.
 */

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined/false, and returns
 * that value. A probe that throws is polled again; after `deadlineMs` this throws, naming `what`
 * and the probe's last error.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  deadlineMs = 10_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
