"""encode_latents / encode_text ops: image handling (crop, flip, alpha, EXIF, bad files) and id checks."""
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src", "worker"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from PIL import Image  # noqa: E402

from lorabuild_worker.checkpoint import build_builtin  # noqa: E402
from lorabuild_worker.errors import WorkerError  # noqa: E402
from lorabuild_worker.images import load_square  # noqa: E402
from lorabuild_worker.ops import encode_latents, encode_text  # noqa: E402
from lorabuild_worker.safetensors_io import load_file  # noqa: E402


class Ctx:
    device = "cpu"

    def __init__(self, cancel=False):
        self.cancel = cancel
        self.events = []

    def progress(self, step, total, **extra):
        self.events.append((step, total))

    def log(self, message):
        pass

    def cancelled(self):
        return self.cancel


class ImageLoading(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="lorabuild-img-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_shorter_side_is_resized_and_the_centre_kept(self):
        # 40x20 image: left quarter red, middle half green, right quarter blue -> the crop is all green
        arr = np.zeros((20, 40, 3), dtype=np.uint8)
        arr[:, :10, 0] = 255
        arr[:, 10:30, 1] = 255
        arr[:, 30:, 2] = 255
        path = os.path.join(self.dir, "wide.png")
        Image.fromarray(arr).save(path)
        pixels = load_square(path, 16)
        self.assertEqual(tuple(pixels.shape), (3, 16, 16))
        self.assertGreater(pixels[1, :, 2:-2].min().item(), 0.97)
        self.assertLess(pixels[0, :, 2:-2].max().item(), -0.9)

    def test_transparency_is_flattened_on_white(self):
        path = os.path.join(self.dir, "alpha.png")
        Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
        self.assertAlmostEqual(load_square(path, 8).min().item(), 1.0, places=5)

    def test_exif_orientation_is_applied(self):
        arr = np.zeros((10, 20, 3), dtype=np.uint8)
        arr[:, :10] = 255  # white left half
        im = Image.fromarray(arr)
        exif = im.getexif()
        exif[0x0112] = 3  # rotated 180 degrees: displayed with the white half on the right
        path = os.path.join(self.dir, "rotated.jpg")
        im.save(path, exif=exif, quality=95)
        pixels = load_square(path, 10)
        self.assertLess(pixels[:, :, :3].mean().item(), pixels[:, :, -3:].mean().item())

    def test_undecodable_file_is_an_io_error_naming_it(self):
        path = os.path.join(self.dir, "3.jpg")
        with open(path, "wb") as f:
            f.write(b"this is not a jpeg")
        with self.assertRaises(WorkerError) as caught:
            load_square(path, 64)
        self.assertEqual(caught.exception.code, "io")
        self.assertIn(path, caught.exception.message)


class EncodeOps(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="lorabuild-enc-")
        cls.model = os.path.join(cls.dir, "tiny.safetensors")
        build_builtin("tiny", 0, cls.model)
        cls.image = os.path.join(cls.dir, "0.png")
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(cls.image)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir)

    def test_flipped_latent_is_the_latent_of_the_mirrored_image(self):
        mirrored = os.path.join(self.dir, "mirror.png")
        Image.open(self.image).transpose(Image.FLIP_LEFT_RIGHT).save(mirrored)
        outs = [os.path.join(self.dir, n) for n in ("a.safetensors", "b.safetensors")]
        ctx = Ctx()
        encode_latents.run({"model": self.model, "resolution": 64, "items": [{"image": self.image, "out": outs[0]}, {"image": mirrored, "out": outs[1]}]}, ctx)
        a, b = load_file(outs[0]), load_file(outs[1])
        self.assertTrue(torch.allclose(a["latent_flipped"], b["latent"], atol=1e-5))
        self.assertEqual(ctx.events[-1], (2, 2))

    def test_bad_arguments_are_refused(self):
        out = os.path.join(self.dir, "x.safetensors")
        with self.assertRaises(WorkerError) as caught:
            encode_latents.run({"model": self.model, "resolution": 60, "items": [{"image": self.image, "out": out}]}, Ctx())
        self.assertIn("multiple of 8", caught.exception.message)
        for ids, fragment in (([49406] * 76, "77 token ids"), ([49408] * 77, "0..49407")):
            with self.assertRaises(WorkerError) as caught:
                encode_text.run({"model": self.model, "clip_skip": 1, "items": [{"ids": ids, "out": out}]}, Ctx())
            self.assertEqual(caught.exception.code, "bad_request")
            self.assertIn(fragment, caught.exception.message)
        with self.assertRaises(WorkerError) as caught:
            encode_text.run({"model": self.model, "clip_skip": 9, "items": [{"ids": [49407] * 77, "out": out}]}, Ctx())
        self.assertIn("clip_skip 9", caught.exception.message)
        self.assertFalse(os.path.exists(out), "nothing written for a refused request")

    def test_cancel_stops_between_items(self):
        with self.assertRaises(WorkerError) as caught:
            encode_latents.run({"model": self.model, "resolution": 64, "items": [{"image": self.image, "out": os.path.join(self.dir, "c.safetensors")}]}, Ctx(cancel=True))
        self.assertEqual(caught.exception.code, "cancelled")


if __name__ == "__main__":
    unittest.main()
