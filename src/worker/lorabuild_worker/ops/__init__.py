"""One module per protocol op (src/worker/protocol.ts), each exposing ``run(args: dict, ctx) -> dict``.
The server imports them lazily by op name, so a worker that only encodes never imports training code."""
