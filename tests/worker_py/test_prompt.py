"""Prompt conditioning on the builtin tiny model: chunks concatenated along the tokens, weights applied
relative to the empty prompt's encoding (ComfyUI's sd1_clip rule), weight 1 leaving a token alone.

Run: /usr/bin/python3 -m unittest discover -s tests/worker_py -p 'test_prompt.py'
"""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.checkpoint import build_builtin, load_sd1  # noqa: E402
from lorabuild_worker.prompt import encode_prompt  # noqa: E402


def byte_ids(text):
    ids = [256] + list(text.encode("utf-8"))[:75] + [257]
    return ids + [257] * (77 - len(ids))


class EncodePromptTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-prompt-")
        path = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, path)
        cls.sd = load_sd1(path)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def plain(self, *chunks):
        with torch.no_grad():
            return self.sd.encode_text(torch.tensor(list(chunks))).float()

    def test_chunks_are_concatenated_along_the_tokens(self):
        a, b = byte_ids("a red circle"), byte_ids("on a blue square")
        with torch.no_grad():
            out = encode_prompt(self.sd, [a, b], None, None, 1)
        self.assertEqual(tuple(out.shape), (1, 154, self.sd.config.text.width))
        both = self.plain(a, b)
        self.assertTrue(torch.equal(out[0, :77], both[0]))
        self.assertTrue(torch.equal(out[0, 77:], both[1]))

    def test_weights_move_tokens_away_from_the_empty_prompt(self):
        ids, empty = byte_ids("a red circle"), byte_ids("")
        weights = [1.0] * 77
        weights[3:6] = [1.5, 1.5, 1.5]  # "red"
        weights[8] = -0.5
        with torch.no_grad():
            out = encode_prompt(self.sd, [ids], [weights], empty, 1)[0]
        z, z_empty = self.plain(ids, empty)  # the prompt and the empty prompt in one batch, as ComfyUI encodes them
        for j, w in enumerate(weights):
            want = z[j] if w == 1.0 else (z[j] - z_empty[j]) * w + z_empty[j]
            self.assertTrue(torch.allclose(out[j], want, atol=1e-6), j)
        # not A1111's rule (scale the token, then restore the mean)
        self.assertFalse(torch.allclose(out[4], z[4] * 1.5, atol=1e-3))

    def test_all_weights_one_is_the_plain_encoding(self):
        ids = byte_ids("a red circle")
        with torch.no_grad():
            weighted = encode_prompt(self.sd, [ids], [[1.0] * 77], byte_ids(""), 1)
            plain = encode_prompt(self.sd, [ids], None, None, 1)
        self.assertTrue(torch.equal(weighted, plain))
        self.assertTrue(torch.equal(plain[0], self.plain(ids)[0]))

    def test_weighted_prompts_need_the_empty_prompt(self):
        with self.assertRaisesRegex(ValueError, "empty prompt"):
            encode_prompt(self.sd, [byte_ids("x")], [[2.0] * 77], None, 1)


if __name__ == "__main__":
    unittest.main()
