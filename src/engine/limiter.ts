// At most `concurrency` tasks at once, started in the order they were added: all the executor asks
// of a queue. (p-queue cost every run ~7 ms of loading: its event emitter is CommonJS, whose exports
// Node parses for an ESM import. The hub downloader, which needs more of it, still uses it.)
export class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`a limiter needs a concurrency of 1 or more, got ${concurrency}`);
  }

  async add<T>(task: () => Promise<T>): Promise<T> {
    // a finished task hands its slot straight to the next waiter, so that a task added meanwhile
    // cannot take it first
    if (this.running < this.concurrency) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}
