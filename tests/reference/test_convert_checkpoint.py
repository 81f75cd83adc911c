"""scripts/convert_checkpoint.py against PyTorch: files `torch.save` writes from the reference
network (unet2022_ref.py), a plain state_dict and an nnU-Net v1 `.model`-shaped training checkpoint
(module. prefixes, optimizer and AMP grad-scaler state, plot lists), converted to safetensors and
back. The round trip is bit-exact, the back-converted state_dict loads into the reference with
strict=True, and `unet2022 trace` on the converted file equals trace on the tensors saved directly.
"""
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import unet2022_ref as R  # noqa: E402

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
SRC = os.environ.get("UNET2022_SOURCE", os.path.join(HERE, "..", ".."))
CONVERT = os.path.join(SRC, "scripts", "convert_checkpoint.py")
YAML = """name: convert
network:
  preset: custom
  embed_dim: 8
  heads: [1, 1, 2, 2]
  patch_size: 4
  windows: [4, 2, 2, 1]
  in_channels: 1
  classes: 3
  deep_supervision: true
  crop: [64, 64]
  drop_path_rate: 0.1
"""


def convert(*args):
    r = subprocess.run([sys.executable, CONVERT, *args], capture_output=True, text=True)
    return r


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


class Convert(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_convert_")
        cls.cfg = os.path.join(cls.tmp, "c.yaml")
        with open(cls.cfg, "w") as f:
            f.write(YAML)
        torch.manual_seed(0)
        cls.model = R.draw_params(R.UNet2022Ref(R.cfg_from_yaml(cls.cfg), stochastic_depth=False), 5)
        cls.sd = collections.OrderedDict((k, v.detach().clone()) for k, v in cls.model.state_dict().items())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def p(self, n):
        return os.path.join(self.tmp, n)

    def check_safetensors_equals_sd(self, path):
        got = load_file(path)
        self.assertEqual(sorted(got), sorted(self.sd))
        for k, v in self.sd.items():
            self.assertTrue(same(got[k], v.numpy()), k)

    def test_pth_round_trip_bit_exact(self):
        torch.save(self.sd, self.p("a.pth"))
        r = convert("to-safetensors", self.p("a.pth"), self.p("a.safetensors"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_safetensors_equals_sd(self.p("a.safetensors"))
        r = convert("to-pth", self.p("a.safetensors"), self.p("b.pth"))
        self.assertEqual(r.returncode, 0, r.stderr)
        back = torch.load(self.p("b.pth"), weights_only=True)
        self.assertEqual(sorted(back), sorted(self.sd))
        for k, v in self.sd.items():
            self.assertTrue(torch.equal(back[k], v) and back[k].dtype == v.dtype, k)
        fresh = R.UNet2022Ref(R.cfg_from_yaml(self.cfg), stochastic_depth=False)
        fresh.load_state_dict(back, strict=True)

    def test_nnunet_v1_model_checkpoint(self):
        net = torch.nn.DataParallel(self.model)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
        ckpt = {"epoch": 12, "state_dict": net.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "amp_grad_scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                                    "growth_interval": 2000, "_growth_tracker": 0},
                "plot_stuff": ([1.0, 0.9], [1.1, 1.0], [0.5, 0.6], [0.4, 0.5]),
                "best_stuff": (11, 0.6, 0.6, 0.5)}
        self.assertTrue(all(k.startswith("module.") for k in ckpt["state_dict"]))
        torch.save(ckpt, self.p("model_best.model"))
        # Debian's torch 1.13 cannot load plain floats with weights_only: such files need the opt-in.
        r = convert("to-safetensors", self.p("model_best.model"), self.p("m.safetensors"))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--allow-pickle", r.stderr)
        r = convert("to-safetensors", self.p("model_best.model"), self.p("m.safetensors"), "--allow-pickle")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_safetensors_equals_sd(self.p("m.safetensors"))

    def test_fp16_widened_and_garbage_refused(self):
        half = collections.OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in self.sd.items())
        torch.save({"state_dict": half}, self.p("h.pth"))
        r = convert("to-safetensors", self.p("h.pth"), self.p("h.safetensors"))
        self.assertEqual(r.returncode, 0, r.stderr)
        got = load_file(self.p("h.safetensors"))
        k = "final.0.up_final.weight"
        self.assertEqual(got[k].dtype, np.float32)
        self.assertTrue(same(got[k], half[k].float().numpy()))
        torch.save({"epoch": 3, "lr": 0.1}, self.p("x.pth"))
        r = convert("to-safetensors", self.p("x.pth"), self.p("x.safetensors"), "--allow-pickle")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no state_dict found", r.stderr)

    def test_c_program_loads_converted_file(self):
        torch.save(self.sd, self.p("c.pth"))
        r = convert("to-safetensors", self.p("c.pth"), self.p("c.safetensors"))
        self.assertEqual(r.returncode, 0, r.stderr)
        direct = {k: v.numpy() for k, v in self.sd.items()}
        save_file(direct, self.p("direct.safetensors"))
        g = torch.Generator().manual_seed(3)
        save_file({"image": torch.randn(2, 1, 64, 64, generator=g).numpy(),
                   "labels": R.make_labels(2, 64, 64, 3, 4).numpy().astype(np.int32)}, self.p("batch.safetensors"))
        outs = []
        for w in ("c.safetensors", "direct.safetensors"):
            o = self.p("trace-" + w)
            r = subprocess.run([BIN, "trace", self.cfg, "--weights", self.p(w), "--batch", self.p("batch.safetensors"),
                                "--out", o], capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            outs.append(load_file(o))
        self.assertEqual(sorted(outs[0]), sorted(outs[1]))
        for k in outs[0]:
            self.assertTrue(same(outs[0][k], outs[1][k]), k)
        # And ours -> PyTorch: a file `unet2022 init` wrote loads into the reference strictly.
        r = subprocess.run([BIN, "init", self.cfg, "--out", self.p("init.safetensors")], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = convert("to-pth", self.p("init.safetensors"), self.p("init.pth"))
        self.assertEqual(r.returncode, 0, r.stderr)
        fresh = R.UNet2022Ref(R.cfg_from_yaml(self.cfg), stochastic_depth=False)
        fresh.load_state_dict(torch.load(self.p("init.pth"), weights_only=True), strict=True)


if __name__ == "__main__":
    unittest.main()
