"""Checks the PyTorch reference network itself against the released network (docs/network.md;
pure PyTorch, needs no C):

- the five recipes build and their trainable parameter counts equal the released network's
  (docs/network.md, "Recipes");
- state_dict keys, shapes and ORDER equal the released network's key lists in
  tests/reference/data/ (state-dict-synapse_320.txt, P = 4; state-dict-em_512.txt, P = 8);
  relative_position_index buffers are persistent int64 with Swin's values;
- window clamping / shift per stage as docs/network.md describes;
- draw_params makes every path matter (gamma, attention dwconv, relative position bias, shift);
- the fp32 reference agrees with fp64 on forward, loss and every gradient (guards against torch
  kernel bugs such as the fp32 GeluBackward one documented in unet2022_ref.gelu).
Run: /usr/bin/python3 tests/reference/test_ref_param_counts.py
"""
import copy
import os
import sys
import unittest

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import unet2022_ref as R  # noqa: E402

# The key lists ship with the repository; UNET2022_SPEC_DIR may point at another copy.
SPEC_DIR = os.environ.get("UNET2022_SPEC_DIR",
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "data"))
torch.set_num_threads(2)

SMALL = dict(preset="custom", embed_dim=16, heads=[1, 2, 4, 8], patch_size=4, windows=[5, 5, 4, 7],
             in_channels=1, classes=4, deep_supervision=True, crop=[96, 96])


def rel(a, b):
    a, b = a.double(), b.double()
    n = b.norm().item()
    return (a - b).norm().item() / n if n > 0 else (a - b).norm().item()


class TestRefParamCounts(unittest.TestCase):
    def test_recipe_counts(self):
        for name, d in R.RECIPES.items():
            m = R.UNet2022Ref(R.cfg_from_dict(dict(d)))
            n = R.count_params(m)
            print(f"{name:12s} params {n:>11,d}  spec {R.RECIPE_PARAMS[name]:>11,d}  windows {m.windows}")
            self.assertEqual(n, R.RECIPE_PARAMS[name], name)
            del m

    def test_state_dict_matches_spec(self):
        for name in ("synapse_320", "em_512"):
            path = os.path.join(SPEC_DIR, f"state-dict-{name}.txt")
            expected = []
            with open(path) as f:
                for line in f:
                    if line.strip():
                        k, shape = line.rstrip("\n").split("\t")
                        expected.append((k, [int(s) for s in shape.strip("[]").split(",") if s.strip()]))
            m = R.UNet2022Ref(R.cfg_from_dict(dict(R.RECIPES[name])))
            got = [(k, list(v.shape)) for k, v in m.state_dict().items()]
            first_diff = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
            print(f"{name}: {len(got)} keys, spec {len(expected)}, first difference at {first_diff}")
            self.assertEqual(len(got), len(expected), name)
            self.assertIsNone(first_diff, f"{name}: {got[first_diff] if first_diff is not None else ''} vs "
                                          f"{expected[first_diff] if first_diff is not None else ''}")
            # buffers: persistent int64 relative_position_index with Swin's values
            sd = m.state_dict()
            nidx = 0
            for k, v in sd.items():
                if k.endswith("relative_position_index"):
                    nidx += 1
                    self.assertEqual(v.dtype, torch.int64, k)
                    w = int(round(v.shape[0] ** 0.5))
                    self.assertTrue(torch.equal(v, R.relative_position_index(w)), k)
                    self.assertEqual(int(v.max()), (2 * w - 1) ** 2 - 1, k)
            self.assertEqual(nidx, 21, name)     # 12 encoder + 9 decoder blocks
            trainable = {k for k, p in m.named_parameters()}
            self.assertEqual(set(sd) - trainable, {k for k in sd if k.endswith("relative_position_index")})

    def test_relative_position_index_w2(self):
        # Swin, w = 2: tokens (0,0),(0,1),(1,0),(1,1); index = (dy+1)*3 + (dx+1)
        exp = torch.tensor([[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]])
        self.assertTrue(torch.equal(R.relative_position_index(2), exp))

    def test_shift_mask(self):
        # 2x2 windows of size 4, shift 2: window (0,0) is one region -> no mask; the last window
        # mixes 4 regions -> each token sees 4 of 16 tokens unmasked.
        m = R.shift_mask(8, 8, 4, 2, "cpu")
        self.assertEqual(tuple(m.shape), (4, 16, 16))
        self.assertEqual(int((m[0] != 0).sum()), 0)
        self.assertTrue(bool(((m[3] == 0).sum(-1) == 4).all()))
        self.assertTrue(bool(((m == 0) | (m == -100)).all()))

    def test_window_clamping(self):
        cfg = R.cfg_from_dict(dict(R.RECIPES["synapse_320"]))
        self.assertEqual(R.stage_windows(cfg), [(10, 5), (10, 5), (20, 0), (10, 0)])
        cfg = R.cfg_from_dict(dict(R.RECIPES["em_512"]))
        self.assertEqual(R.stage_windows(cfg), [(16, 8), (16, 8), (16, 0), (8, 0)])
        cfg = R.cfg_from_dict(dict(SMALL))
        self.assertEqual(R.stage_windows(cfg), [(5, 2), (5, 2), (4, 2), (3, 0)])
        m = R.UNet2022Ref(cfg)
        shifts = [b.blocks_tr.s for b in m.model_down.layers[0].blocks]
        self.assertEqual(shifts, [0, 2, 0])
        # decoder stage i uses encoder stage i's window and heads
        for i in range(3):
            b = m.decoder.layers[i].blocks[1].blocks_tr
            self.assertEqual((b.w, b.s, b.attn.heads), (R.stage_windows(cfg)[i] + (cfg["heads"][i],)))

    def test_every_path_matters(self):
        torch.manual_seed(0)
        cfg = R.cfg_from_dict(dict(SMALL))
        base = R.draw_params(R.UNet2022Ref(cfg, stochastic_depth=False), 1).double().eval()
        x = torch.randn(2, 1, 96, 96, dtype=torch.float64)
        with torch.no_grad():
            ref = base(x)
            stats = [(o.std().item(), o.softmax(1).max(1)[0].mean().item()) for o in ref]
            print("output std / mean max-prob:", ["%.3f / %.3f" % s for s in stats])
            for s, p in stats:
                self.assertTrue(0.3 < s < 5.0 and p < 0.9, "outputs not O(1) or saturated")

            def changed(edit):
                m = copy.deepcopy(base)
                for n, t in m.named_parameters():
                    if edit(n):
                        t.zero_()
                out = m(x)
                return max(R.torch.max(torch.abs(a - b)).item() / b.abs().max().item() for a, b in zip(out, ref))
            for what, edit in [("gamma", lambda n: n.endswith(".gamma")),
                               ("attention dwconv", lambda n: "blocks_tr.dwconv" in n),
                               ("relative position bias", lambda n: "relative_position_bias_table" in n)]:
                c = changed(edit)
                print(f"zeroing {what:24s} changes the outputs by {c:.3f} (relative max)")
                self.assertGreater(c, 0.05, what)
            # the shift matters: unshifting every block changes the function
            m = copy.deepcopy(base)
            for mod in m.modules():
                if isinstance(mod, R.AttnPart):
                    mod.s = 0
            c = max((a - b).abs().max().item() / b.abs().max().item() for a, b in zip(m(x), ref))
            print(f"removing the shift changes the outputs by {c:.3f}")
            self.assertGreater(c, 0.05)

    def test_fp32_matches_fp64(self):
        cfg = R.cfg_from_dict(dict(SMALL))
        m32 = R.draw_params(R.UNet2022Ref(cfg, stochastic_depth=False), 3)
        m64 = copy.deepcopy(m32).double()
        x = torch.randn(2, 1, 96, 96, generator=torch.Generator().manual_seed(4))
        lab = R.make_labels(2, 96, 96, 4, 5)
        c32, c64 = {}, {}
        l32 = R.train_steps(m32, x, lab, 2, 1e-4, c32)
        l64 = R.train_steps(m64, x.double(), lab, 2, 1e-4, c64)
        out_err = max(rel(a, b) for a, b in zip(c32["outputs"], c64["outputs"]))
        gerr = sorted((rel(c32["grads"][k], c64["grads"][k]), k) for k in c64["grads"])
        lerr = max(abs(a - b) / abs(b) for a, b in zip(l32, l64))
        print(f"fp32 vs fp64: outputs {out_err:.2e}, loss steps {lerr:.2e}, worst grad {gerr[-1][0]:.2e} "
              f"({gerr[-1][1]})")
        self.assertLess(out_err, 1e-5)
        self.assertLess(lerr, 1e-5)
        self.assertLess(gerr[-1][0], 1e-4)


if __name__ == "__main__":
    unittest.main()
