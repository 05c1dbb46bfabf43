"""Shared by the worker tests that call ops directly: a context that records nothing and never cancels,
and the builtin tiny model's byte-level token ids."""


class QuietCtx:
    device = "cpu"

    def progress(self, *args, **extra):
        pass

    def log(self, message):
        pass

    def checkpoint(self, step, path):
        pass

    def cancelled(self):
        return False


def byte_ids(text):
    """The tiny model's tokenizer: BOS 256, UTF-8 bytes, EOS 257 (also the padding), 77 ids."""
    ids = [256] + list(text.encode("utf-8"))[:75] + [257]
    return ids + [257] * (77 - len(ids))
