#!/usr/bin/python3
"""The `unet2022` command line: parameter counts of the five recipes (the released network's,
docs/network.md), strict config errors with file:line:column, strict weight loading with the
offending tensor named, and weights that PyTorch loads with strict=True."""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
from safetensors.numpy import load_file, save_file

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
SRC = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "tests", "reference"))

# The released network's trainable parameter counts (spec table).
SPEC_PARAMS = {"synapse_224": 73000882, "synapse_320": 41383440, "acdc_224": 163080024,
               "em_512": 42065940, "isic_512": 42026628}

SMALL = """name: small
network:
  preset: custom
  embed_dim: 16
  heads: [1, 2, 4, 8]
  patch_size: 4
  windows: [5, 5, 4, 7]
  in_channels: 1
  classes: 4
  deep_supervision: true
  crop: [96, 96]
"""


def run(*args):
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=600)


class Info(unittest.TestCase):
    def test_recipe_parameter_counts_equal_released_network(self):
        for name, expected in SPEC_PARAMS.items():
            r = run("info", os.path.join(SRC, "configs", name + ".yaml"))
            self.assertEqual(r.returncode, 0, r.stderr)
            line = [l for l in r.stdout.splitlines() if l.startswith("parameters:")][0]
            got = int(line.split()[1])
            print(f"{name}: {got} parameters (spec {expected})")
            self.assertEqual(got, expected, name)
            self.assertIn("total", r.stdout)

    def test_override_changes_the_network(self):
        r = run("info", os.path.join(SRC, "configs", "synapse_320.yaml"), "network.classes=9", "--batch", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 -> 9 classes", r.stdout)
        self.assertIn("batch 2", r.stdout)


class ConfigErrors(unittest.TestCase):
    def check(self, text, *needles):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "c.yaml")
            with open(path, "w") as f:
                f.write(text)
            r = run("info", path)
            self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
            for n in needles:
                self.assertIn(n.replace("PATH", path), r.stderr)
            print("rejected:", r.stderr.strip())

    def test_unknown_key_names_line_and_column(self):
        self.check(SMALL.replace("  classes: 4", "  clases: 4"), "PATH:9:3:", "unknown key 'network.clases'")

    def test_wrong_type(self):
        self.check(SMALL.replace("classes: 4", "classes: four"), "PATH:9:12:", "network.classes", "integer")

    def test_out_of_range(self):
        self.check(SMALL.replace("patch_size: 4", "patch_size: 16"), "PATH:6:15:", "out of range")

    def test_list_length(self):
        self.check(SMALL.replace("[5, 5, 4, 7]", "[5, 5, 4]"), "network.windows", "4 integers")

    def test_missing_required_key(self):
        self.check(SMALL.replace("  in_channels: 1\n", ""), "missing required key 'network.in_channels'")

    def test_invalid_yaml(self):
        self.check(SMALL.replace("crop: [96, 96]", "crop: [96, 96"), "PATH:", "invalid YAML")

    def test_crop_not_multiple_of_stride(self):
        self.check(SMALL.replace("[96, 96]", "[100, 96]"), "network.crop", "multiple of 32")

    def test_heads_must_divide(self):
        self.check(SMALL.replace("[1, 2, 4, 8]", "[3, 2, 4, 8]"), "network.heads[0]")

    def test_missing_file(self):
        r = run("info", "/nonexistent/c.yaml")
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/c.yaml: cannot open", r.stderr)


class Weights(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.cfg = os.path.join(self.dir.name, "small.yaml")
        with open(self.cfg, "w") as f:
            f.write(SMALL)
        self.w = os.path.join(self.dir.name, "w.safetensors")
        r = run("init", self.cfg, "--out", self.w, "--seed", "3")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.batch = os.path.join(self.dir.name, "b.safetensors")
        rng = np.random.default_rng(0)
        save_file({"image": rng.standard_normal((1, 1, 96, 96)).astype(np.float32),
                   "labels": rng.integers(0, 4, (1, 96, 96)).astype(np.int32)}, self.batch)

    def tearDown(self):
        self.dir.cleanup()

    def trace(self, weights):
        return run("trace", self.cfg, "--weights", weights, "--batch", self.batch,
                   "--out", os.path.join(self.dir.name, "o.safetensors"))

    def rewrite(self, fn):
        d = load_file(self.w)
        fn(d)
        path = os.path.join(self.dir.name, "bad.safetensors")
        save_file(d, path)
        return path

    def test_own_weights_load(self):
        r = self.trace(self.w)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_missing_tensor_named(self):
        key = "model_down.layers.1.blocks.2.pwconv1.weight"
        r = self.trace(self.rewrite(lambda d: d.pop(key)))
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"missing tensor '{key}'", r.stderr)

    def test_extra_tensor_named(self):
        r = self.trace(self.rewrite(lambda d: d.__setitem__("model_down.extra.weight", np.zeros(3, np.float32))))
        self.assertEqual(r.returncode, 2)
        self.assertIn("unexpected tensor 'model_down.extra.weight'", r.stderr)

    def test_misshaped_tensor_named(self):
        key = "decoder.layers.0.Upsample.up.weight"
        r = self.trace(self.rewrite(lambda d: d.__setitem__(key, np.zeros((32, 16, 2, 1), np.float32))))
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"tensor '{key}' has shape [32, 16, 2, 1], expected [32, 16, 2, 2]", r.stderr)

    def test_wrong_relative_position_index_rejected(self):
        key = "model_down.layers.0.blocks.0.blocks_tr.attn.relative_position_index"
        def corrupt(d):
            d[key] = d[key].copy()
            d[key][0, 1] += 1
        r = self.trace(self.rewrite(corrupt))
        self.assertEqual(r.returncode, 2)
        self.assertIn(key, r.stderr)

    def test_index_buffers_optional(self):
        r = self.trace(self.rewrite(lambda d: [d.pop(k) for k in list(d) if k.endswith("relative_position_index")]))
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_pytorch_loads_our_weights_strictly(self):
        import torch
        import unet2022_ref as R
        model = R.UNet2022Ref(R.cfg_from_yaml(self.cfg))
        ours = {k: torch.from_numpy(v) for k, v in load_file(self.w).items()}
        model.load_state_dict(ours, strict=True)  # raises on any missing/unexpected/mis-shaped key
        self.assertEqual(list(ours.keys()), list(model.state_dict().keys()), "state_dict order")

    def test_bad_batch_rejected(self):
        save_file({"image": np.zeros((1, 1, 96, 96), np.float32),
                   "labels": np.full((1, 96, 96), 7, np.int32)}, self.batch)
        r = self.trace(self.w)
        self.assertEqual(r.returncode, 2)
        self.assertIn("outside [0, 4)", r.stderr)


class Arguments(unittest.TestCase):
    """Every command reads its options from a table (src/cli/args.c): a value that is not a number
    or is out of range, a missing required option and an unknown option are usage errors (exit 1)
    naming the command and the option, never a silent default."""

    def usage_error(self, r, *needles):
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        for n in needles:
            self.assertIn(n, r.stderr)

    def test_step_out_of_range(self):
        r = run("predict", "--weights", "w", "--input", "i", "--output", "o", "--step", "0")
        self.usage_error(r, "unet2022 predict: --step: expected a number in (0, 1], got '0'")
        r = run("predict", "--weights", "w", "--input", "i", "--output", "o", "--step", "1.5")
        self.usage_error(r, "unet2022 predict: --step: expected a number in (0, 1], got '1.5'")

    def test_step_not_a_number(self):
        r = run("predict", "--weights", "w", "--input", "i", "--output", "o", "--step", "abc")
        self.usage_error(r, "unet2022 predict: --step: expected a number in (0, 1], got 'abc'")

    def test_required_option_named(self):
        r = run("evaluate", "--pred", "p", "--gt", "g")
        self.usage_error(r, "unet2022 evaluate: --out is required")
        r = run("init", os.path.join(SRC, "configs", "demo.yaml"))
        self.usage_error(r, "unet2022 init: --out is required")

    def test_unknown_option(self):
        r = run("evaluate", "--pred", "p", "--gt", "g", "--out", "o", "--bogus")
        self.usage_error(r, "unet2022 evaluate: unknown option '--bogus'")
        r = run("info", os.path.join(SRC, "configs", "demo.yaml"), "--bogus", "1")
        self.usage_error(r, "unet2022 info: unknown option '--bogus'")

    def test_integer_and_choice_checked(self):
        r = run("info", os.path.join(SRC, "configs", "demo.yaml"), "--batch", "2x")
        self.usage_error(r, "unet2022 info: --batch: expected an integer in [1, 4096], got '2x'")
        r = run("evaluate", "--pred", "p", "--gt", "g", "--out", "o", "--convention", "scipy")
        self.usage_error(r, "unet2022 evaluate: --convention: expected one of medpy|monai, got 'scipy'")
        r = run("bench", os.path.join(SRC, "configs", "demo.yaml"), "--runs")
        self.usage_error(r, "unet2022 bench: --runs: expected a value")

    def test_help_generated_from_the_table(self):
        r = run("predict", "--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("usage: unet2022 predict --weights W", r.stdout)
        self.assertIn("predict.step", r.stdout)
        for opt in ("--step F", "--mirror", "--overlay S", "--backend cpu|cuda", "--norm N"):
            self.assertIn(opt, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
