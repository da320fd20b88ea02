/** A one-line progress display on stderr (only when stderr is a terminal, else a line per update at most every 2 s). */
export function progress(label: string): { update(done: number, total?: number): void; end(): void } {
  const tty = process.stderr.isTTY;
  let last = 0;
  let started = Date.now();
  return {
    update(done, total) {
      const now = Date.now();
      if (!tty && now - last < 2000) return;
      last = now;
      const rate = done / Math.max(0.001, (now - started) / 1000);
      let text = `${label}: ${done.toLocaleString()} rows, ${Math.round(rate).toLocaleString()}/s`;
      if (total) {
        const width = 24;
        const filled = Math.min(width, Math.round((done / total) * width));
        text = `${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${Math.min(100, Math.floor((done / total) * 100))}% ${text.slice(label.length + 2)}`;
      }
      process.stderr.write(tty ? `\r${text}\u001b[K` : `${text}\n`);
    },
    end() {
      if (tty) process.stderr.write('\n');
      started = Date.now();
    },
  };
}
