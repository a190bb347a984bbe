import type { SingleBar } from 'cli-progress';

/**
 * A progress bar on stderr when it is a terminal, else undefined (a pipe or a log gets the summary
 * lines instead). cli-progress is loaded only then: importing it costs ~10 ms of every command's
 * start-up, which the scripted runs that have no bar should not pay.
 */
export async function terminalBar(format: string): Promise<SingleBar | undefined> {
  if (process.stderr.isTTY !== true) return undefined;
  const { SingleBar } = await import('cli-progress');
  return new SingleBar({ format, hideCursor: true });
}
