"""safetensors_io: round trips through real files, and every header check rejects a crafted bad file."""
import json
import os
import shutil
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import torch  # noqa: E402

torch.set_num_threads(1)

from lorabuild_worker.safetensors_io import SafetensorsError, SafetensorsFile, load_file, read_header, save_file  # noqa: E402


def raw_file(path, header, data=b"", header_len=None, pad=True):
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * ((8 - (8 + len(raw)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw) if header_len is None else header_len))
        f.write(raw)
        f.write(data)


class RoundTrip(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lorabuild-st-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_every_dtype_round_trips_with_metadata(self):
        g = torch.Generator().manual_seed(0)
        tensors = {
            "f32": torch.randn(3, 5, generator=g),
            "f16": torch.randn(7, generator=g).half(),
            "bf16": torch.randn(2, 3, generator=g).bfloat16(),
            "f64": torch.randn(2, generator=g).double(),
            "i64": torch.arange(-3, 6, dtype=torch.int64).reshape(3, 3),
            "i32": torch.tensor([1, -2, 2**31 - 1], dtype=torch.int32),
            "u8": torch.tensor([0, 255], dtype=torch.uint8),
            "bool": torch.tensor([True, False, True]),
            "scalar": torch.tensor(4.0),
            "empty": torch.zeros(0, 4),
        }
        path = os.path.join(self.dir, "all.safetensors")
        save_file(tensors, path, {"b": "2", "a": "1"})
        back = load_file(path)
        self.assertEqual(sorted(back), sorted(tensors))
        for name, t in tensors.items():
            self.assertEqual(back[name].dtype, t.dtype, name)
            self.assertEqual(back[name].shape, t.shape, name)
            self.assertTrue(torch.equal(back[name], t), name)
        infos, metadata, data_start = read_header(path)
        self.assertEqual(metadata, {"a": "1", "b": "2"})
        self.assertEqual(data_start % 8, 0, "header is padded to 8-byte alignment")
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header_text = f.read(n).decode()
        keys = [k for k in json.loads(header_text) if k != "__metadata__"]
        self.assertEqual(keys, sorted(keys), "tensor keys are written sorted")

    def test_writes_atomically_and_leaves_no_temp_files(self):
        path = os.path.join(self.dir, "a.safetensors")
        save_file({"x": torch.ones(2)}, path)
        save_file({"x": torch.zeros(3)}, path)  # replace
        self.assertEqual(os.listdir(self.dir), ["a.safetensors"])
        self.assertTrue(torch.equal(load_file(path)["x"], torch.zeros(3)))

    def test_failed_write_keeps_the_old_file(self):
        path = os.path.join(self.dir, "a.safetensors")
        save_file({"x": torch.ones(2)}, path)
        with self.assertRaises(ValueError):
            save_file({"x": torch.ones(2)}, path, {"bad": 3})  # metadata must be str -> str
        with self.assertRaises(ValueError):
            save_file({"c": torch.ones(2, dtype=torch.complex64)}, path)
        self.assertEqual(os.listdir(self.dir), ["a.safetensors"])
        self.assertTrue(torch.equal(load_file(path)["x"], torch.ones(2)))

    def test_mmap_reader_gives_lazy_views(self):
        path = os.path.join(self.dir, "m.safetensors")
        save_file({"a": torch.arange(10, dtype=torch.float32), "b": torch.ones(3, dtype=torch.float16)}, path)
        with SafetensorsFile(path) as f:
            self.assertEqual(f.info("a").shape, (10,))
            self.assertEqual(f.get("a")[7].item(), 7.0)
            with self.assertRaises(KeyError):
                f.get("nope")

    def test_misaligned_span_is_copied_correctly(self):
        # one byte of u8 first puts the f32 tensor at an odd offset
        path = os.path.join(self.dir, "odd.safetensors")
        data = b"\x07" + struct.pack("<2f", 1.5, -2.0)
        raw_file(path, {"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}}, data)
        back = load_file(path)
        self.assertEqual(back["b"].tolist(), [1.5, -2.0])
        self.assertEqual(back["a"].tolist(), [7])


class BadHeaders(unittest.TestCase):
    """Each crafted file must fail with a SafetensorsError naming the file and the problem."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lorabuild-st-bad-")
        self.path = os.path.join(self.dir, "bad.safetensors")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def assertRejected(self, fragment):
        with self.assertRaises(SafetensorsError) as caught:
            SafetensorsFile(self.path)
        self.assertIn(self.path, str(caught.exception))
        self.assertIn(fragment, caught.exception.problem)
        self.assertEqual(caught.exception.code, "io")

    def ok_entry(self, **over):
        entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
        entry.update(over)
        return entry

    def test_too_short(self):
        with open(self.path, "wb") as f:
            f.write(b"\x01\x02")
        self.assertRejected("too short")

    def test_header_length_past_end(self):
        raw_file(self.path, {}, header_len=10_000)
        self.assertRejected("runs past the end")

    def test_header_length_that_fits_the_file_but_not_after_the_8_byte_prefix(self):
        # N <= file size but 8 + N > file size: only the bound that counts the prefix refuses it
        raw_file(self.path, {"t": self.ok_entry()}, b"\0" * 8)
        size = os.path.getsize(self.path)
        with open(self.path, "r+b") as f:
            f.write(struct.pack("<Q", size - 4))
        self.assertRejected(f"header length {size - 4} runs past the end of the {size}-byte file")

    def test_header_length_over_limit(self):
        raw_file(self.path, {}, header_len=2**40)
        self.assertRejected("exceeds")

    def test_not_json(self):
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", 8) + b"{not js}")
        self.assertRejected("not valid UTF-8 JSON")

    def test_not_object(self):
        raw_file(self.path, [1, 2])
        self.assertRejected("not a JSON object")

    def test_bad_metadata(self):
        raw_file(self.path, {"__metadata__": {"a": 1}})
        self.assertRejected("__metadata__")

    def test_unknown_dtype(self):
        raw_file(self.path, {"x": self.ok_entry(dtype="F8_E9")}, b"\0" * 8)
        self.assertRejected("unknown dtype")

    def test_bad_shape(self):
        raw_file(self.path, {"x": self.ok_entry(shape=[-2])}, b"\0" * 8)
        self.assertRejected("bad shape")

    def test_bad_offsets(self):
        raw_file(self.path, {"x": self.ok_entry(data_offsets=[0])}, b"\0" * 8)
        self.assertRejected("bad data_offsets")

    def test_end_before_begin(self):
        raw_file(self.path, {"x": self.ok_entry(data_offsets=[8, 0])}, b"\0" * 8)
        self.assertRejected("before it begins")

    def test_offsets_beyond_file(self):
        raw_file(self.path, {"x": self.ok_entry(data_offsets=[0, 8])}, b"\0" * 4)
        self.assertRejected("past the")

    def test_shape_does_not_match_span(self):
        raw_file(self.path, {"x": self.ok_entry(shape=[3])}, b"\0" * 8)
        self.assertRejected("needs 12 bytes")

    def test_overlap(self):
        raw_file(self.path, {"x": self.ok_entry(), "y": self.ok_entry(data_offsets=[4, 12])}, b"\0" * 12)
        self.assertRejected("overlap")

    def test_gap(self):
        raw_file(self.path, {"x": self.ok_entry(data_offsets=[4, 12])}, b"\0" * 12)
        self.assertRejected("gap of 4 bytes")

    def test_duplicate_names(self):
        entry = json.dumps(self.ok_entry())
        raw = ('{"x": %s, "x": %s}' % (entry, entry)).encode()
        with open(self.path, "wb") as f:
            f.write(struct.pack("<Q", len(raw)) + raw + b"\0" * 8)
        self.assertRejected("twice")

    def test_trailing_bytes(self):
        raw_file(self.path, {"x": self.ok_entry()}, b"\0" * 16)
        self.assertRejected("cover 8 bytes but the data buffer holds 16")


if __name__ == "__main__":
    unittest.main()
