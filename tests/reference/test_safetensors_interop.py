#!/usr/bin/python3
"""Our safetensors reader/writer (src/io/safetensors.c) against the PyPI `safetensors` package,
driven through `$UNET2022_CHECK optest`: files written by safetensors.numpy.save_file are read by our
code (ops "copy_tensors" and "sum_squares"), and the files our writer produces are read back
by safetensors.numpy.load_file with identical arrays and metadata."""
import json
import atexit
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

CHECK = os.environ.get("UNET2022_CHECK")  # build/unet2022-check
if not CHECK or not os.path.exists(CHECK):
    print("UNET2022_CHECK is not set or missing; skipping")
    sys.exit(77)

TMP = tempfile.mkdtemp(prefix="test_st_interop_")
atexit.register(shutil.rmtree, TMP, True)


def run(op, fin, fout):
    return subprocess.run([CHECK, "optest", op, fin, fout], capture_output=True, text=True)


def header_of(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return n, json.loads(f.read(n).decode("utf-8"))


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Interop(unittest.TestCase):
    def round_trip(self, name, tensors, metadata):
        fin = os.path.join(TMP, f"{name}_in.safetensors")
        fout = os.path.join(TMP, f"{name}_out.safetensors")
        save_file(tensors, fin, metadata=metadata)
        r = run("copy_tensors", fin, fout)
        self.assertEqual(r.returncode, 0, r.stderr)
        back = load_file(fout)
        with safe_open(fout, framework="np") as f:
            meta = f.metadata()
        bad = [k for k in tensors if k not in back or not same_bits(tensors[k], back[k])]
        hlen, hdr_out = header_of(fout)
        _, hdr_in = header_of(fin)
        order_in = [k for k in hdr_in if k != "__metadata__"]
        order_out = [k for k in hdr_out if k != "__metadata__"]
        offsets = [hdr_out[k]["data_offsets"] for k in order_out]
        contiguous = all(offsets[i][1] == offsets[i + 1][0] for i in range(len(offsets) - 1)) and \
            (not offsets or offsets[0][0] == 0)
        size_ok = os.path.getsize(fout) == 8 + hlen + (offsets[-1][1] if offsets else 0)
        leftovers = [f for f in os.listdir(TMP) if ".tmp." in f]
        print(f"copy_tensors {name}: {len(tensors)} tensors, mismatched {bad}, metadata equal "
              f"{meta == metadata}, header {hlen} bytes (mod 8 = {hlen % 8}), order kept "
              f"{order_in == order_out}, contiguous {contiguous}, size ok {size_ok}, temp files {leftovers}")
        self.assertEqual(bad, [])
        self.assertEqual(set(back), set(tensors))
        self.assertEqual(meta, metadata)
        self.assertEqual(hlen % 8, 0)
        self.assertEqual(order_in, order_out)
        self.assertTrue(contiguous)
        self.assertTrue(size_ok)
        self.assertEqual(leftovers, [])

    def test_many_dtypes_and_shapes(self):
        rng = np.random.default_rng(0)
        special = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-45, 3.4e38], np.float32)
        t = {
            "f32_scalar": np.array(2.5, np.float32),
            "i32_scalar": np.array(-7, np.int32),
            "i64_scalar": np.array(2 ** 62 + 3, np.int64),
            "f32_empty": np.zeros((0,), np.float32),
            "f32_empty_2d": np.zeros((3, 0), np.float32),
            "i64_empty": np.zeros((0, 4), np.int64),
            "f32_special": special,
            "i32_odd": rng.integers(-2 ** 31, 2 ** 31 - 1, size=(3,), dtype=np.int32),
            "i64_vals": rng.integers(-2 ** 63, 2 ** 63 - 1, size=(5, 3), dtype=np.int64),
            "f32_big": rng.standard_normal((1000, 1001)).astype(np.float32),
            "i32_labels": rng.integers(0, 14, size=(2, 64, 64), dtype=np.int32),
        }
        for nd in range(1, 9):
            shape = tuple(int(s) for s in rng.integers(1, 4, size=nd))
            t[f"f32_{nd}d"] = rng.standard_normal(shape).astype(np.float32)
            t[f"i64_{nd}d"] = rng.integers(-1000, 1000, size=shape, dtype=np.int64)
        meta = {"format": "np", "K": "14", "lr": "0.0007", "quote": 'say "hi" \\ \n\t',
                "unicode": "Zürich — 東京", "empty": ""}
        self.round_trip("many", t, meta)

    def test_no_metadata_and_single(self):
        self.round_trip("single", {"only": np.arange(12, dtype=np.float32).reshape(3, 4)}, None)

    def test_sum_squares_reads_and_writes(self):
        rng = np.random.default_rng(1)
        for n in (1, 5, 16385, 300000):
            x = (rng.standard_normal(n) * 2).astype(np.float32)
            fin = os.path.join(TMP, "ss_in.safetensors")
            fout = os.path.join(TMP, "ss_out.safetensors")
            save_file({"x": x, "unused_i64": np.arange(3, dtype=np.int64)}, fin, metadata={"note": "from PyPI"})
            r = run("sum_squares", fin, fout)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = load_file(fout)
            got = out["sum_bits"].view(np.float64)[0]
            ref = float(np.sum(x.astype(np.float64) ** 2))
            e = abs(got - ref) / ref
            print(f"sum_squares via PyPI files n={n}: {got!r} vs {ref!r} rel {e:.2e}, "
                  f"outputs {sorted(out)} dtypes {[str(out[k].dtype) for k in sorted(out)]}")
            self.assertLessEqual(e, 1e-12)
            self.assertEqual(out["sum"].dtype, np.float32)
            self.assertEqual(out["sum_bits"].dtype, np.int64)

    def test_f16_rejected_with_names(self):
        fin = os.path.join(TMP, "half_in.safetensors")
        fout = os.path.join(TMP, "half_out.safetensors")
        save_file({"ok": np.zeros(2, np.float32), "halfw": np.zeros(4, np.float16)}, fin)
        r = run("copy_tensors", fin, fout)
        print(f"F16 input: rc {r.returncode}, stderr: {r.stderr.strip()}")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(fin, r.stderr)
        self.assertIn("halfw", r.stderr)
        self.assertIn("F16", r.stderr)
        self.assertFalse(os.path.exists(fout))

    def test_truncated_pypi_file_rejected(self):
        fin = os.path.join(TMP, "trunc_in.safetensors")
        fout = os.path.join(TMP, "trunc_out.safetensors")
        save_file({"a": np.ones(10, np.float32), "b": np.ones(10, np.float32)}, fin)
        with open(fin, "r+b") as f:
            f.truncate(os.path.getsize(fin) - 3)
        r = run("copy_tensors", fin, fout)
        print(f"truncated input: rc {r.returncode}, stderr: {r.stderr.strip()}")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(fin, r.stderr)
        self.assertFalse(os.path.exists(fout))

    def test_unwritable_output(self):
        fin = os.path.join(TMP, "w_in.safetensors")
        save_file({"a": np.ones(3, np.float32)}, fin)
        fout = os.path.join(TMP, "missing_dir", "out.safetensors")
        r = run("copy_tensors", fin, fout)
        print(f"output in a missing directory: rc {r.returncode}, stderr: {r.stderr.strip()}")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(fout, r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(fout)))


if __name__ == "__main__":
    unittest.main()
