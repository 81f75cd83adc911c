"""Reference tests for the CPU conv / linear ops (conv3x3, dwconv7, convT, convT_forward_add, linear),
and the fused dwconv7_layernorm forward (F.conv2d(groups=C, padding=3), then F.layer_norm over channels).

Each case draws random inputs, parameters and an upstream gradient `dout`, runs
`$UNET2022_CHECK optest <op>` (forward + backward of the C op) and compares the output and every
gradient with PyTorch autograd (F.conv2d / F.conv2d(groups=C) / F.conv_transpose2d /
F.linear). The torch reference is evaluated in float64 from the same float32 values, so
the measured error is ours alone.

Metric: ||ours - ref|| / ||ref|| per tensor; <= 1e-5 for the forward output, <= 1e-4 for the
gradients (fp32 with reductions of up to ~10^5 terms).

Accumulation: in about half of the cases the gradient buffers start from random
`*_init` tensors; we then check (result - init) against the torch gradient, which fails if
backward overwrites instead of adding. The exception is linear's db, which backward OVERWRITES
(backend_ops.h): there the result itself is checked against the torch gradient, which fails if
it adds to the init. `no_din=1` cases check that din = NULL works (no "din" output, the other
gradients unchanged).
"""
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

CHECK = os.environ.get("UNET2022_CHECK")  # build/unet2022-check
FWD_TOL = 1e-5
GRAD_TOL = 1e-4


def rel_err(ours, ref):
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    den = np.linalg.norm(ref)
    num = np.linalg.norm(ours - ref)
    return num / den if den > 0 else num


def run_optest(op, tensors, attrs):
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, fin,
                  metadata={k: str(v) for k, v in attrs.items()})
        r = subprocess.run([CHECK, "optest", op, fin, fout], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{op} failed ({r.returncode}): {r.stderr}")
        return load_file(fout)


def nchw(x_nhwc):
    """float32 NHWC numpy -> float64 NCHW torch leaf."""
    return torch.from_numpy(x_nhwc).double().permute(0, 3, 1, 2).contiguous().requires_grad_()


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


class ConvOpsTest(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(20220)

    def rand(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    # Shared driver: `ref` maps float64 torch leaves {in, w, b} to the torch output (in the
    # C layout after `to_c`); grads of sum(out * dout) are the oracle. `overwrites`: the
    # gradients the op writes rather than accumulates (their init is given, never subtracted).
    def check(self, op, label, x, w, b, dout_shape, attrs, ref_fn, to_c, from_c,
              use_init, no_din=False, overwrites=()):
        dout = self.rand(*dout_shape)
        tensors = {"in": x, "w": w, "dout": dout}
        if b is not None:
            tensors["b"] = b
        init = {}
        if use_init:
            init = {"din": self.rand(*x.shape), "dw": self.rand(*w.shape)}
            if b is not None:
                init["db"] = self.rand(*b.shape)
            for k, v in init.items():
                tensors[k + "_init"] = v
        if no_din:
            attrs = dict(attrs, no_din=1)
        res = run_optest(op, tensors, attrs)

        tx = from_c(x)
        tw = torch.from_numpy(w).double().requires_grad_()
        tb = torch.from_numpy(b).double().requires_grad_() if b is not None else None
        out = ref_fn(tx, tw, tb)
        (out * from_c(dout).detach()).sum().backward()
        refs = {"out": (to_c(out), FWD_TOL), "dw": (tw.grad.numpy(), GRAD_TOL)}
        if not no_din:
            refs["din"] = (to_c(tx.grad), GRAD_TOL)
        if tb is not None:
            refs["db"] = (tb.grad.numpy(), GRAD_TOL)

        self.assertEqual(set(res.keys()), set(refs.keys()), f"{label}: output names")
        for name, (ref, tol) in refs.items():
            got = res[name].astype(np.float64)
            accumulated = name in init and name not in overwrites
            if accumulated:
                got = got - init[name]
            e = rel_err(got, ref)
            tag = ' [accumulated]' if accumulated else ' [overwritten]' if name in init else ''
            print(f"{op:8s} {label:40s} {name:4s} rel_err {e:.2e} (tol {tol:.0e}){tag}", flush=True)
            self.assertLessEqual(e, tol, f"{label} {name}")

    def test_conv3x3(self):
        # (B, H, W, Ci, Co, stride)
        cases = [(1, 7, 9, 3, 5, 1), (2, 7, 9, 4, 6, 2), (1, 9, 7, 5, 3, 2), (2, 8, 8, 16, 8, 2),
                 (1, 5, 6, 1, 4, 2), (2, 12, 10, 32, 24, 1), (1, 1, 1, 2, 3, 1),
                 (1, 2, 3, 3, 2, 2)]
        for i, (B, H, W, Ci, Co, s) in enumerate(cases):
            for no_din in ([False, True] if i == 1 else [False]):
                Ho, Wo = (H - 1) // s + 1, (W - 1) // s + 1
                x = self.rand(B, H, W, Ci)
                w = self.rand(Co, Ci, 3, 3, scale=(Ci * 9) ** -0.5)
                b = self.rand(Co)
                self.check("conv3x3", f"B{B} {H}x{W} {Ci}->{Co} s{s}" + (" no_din" if no_din else ""),
                           x, w, b, (B, Ho, Wo, Co),
                           dict(B=B, H=H, W=W, Ci=Ci, Co=Co, stride=s),
                           lambda tx, tw, tb, s=s: F.conv2d(tx, tw, tb, stride=s, padding=1),
                           nhwc, nchw, use_init=(i % 2 == 0), no_din=no_din)

    def test_conv3x3_chunked(self):
        # M = 2*250*250 = 125000 output pixels of K = 576 columns: more than the 256 MB im2col
        # budget allows (116508 rows forward, 58254 rows backward), so both directions run
        # several chunks, and chunk borders fall inside images.
        B, H, W, Ci, Co, s = 2, 250, 250, 64, 8, 1
        x = self.rand(B, H, W, Ci)
        w = self.rand(Co, Ci, 3, 3, scale=(Ci * 9) ** -0.5)
        b = self.rand(Co)
        self.check("conv3x3", f"chunked B{B} {H}x{W} {Ci}->{Co} s{s}", x, w, b, (B, H, W, Co),
                   dict(B=B, H=H, W=W, Ci=Ci, Co=Co, stride=s),
                   lambda tx, tw, tb: F.conv2d(tx, tw, tb, stride=1, padding=1),
                   nhwc, nchw, use_init=True)

    def test_dwconv7(self):
        # (B, H, W, C)
        # (channel counts not multiple of 8 and widths not multiple of 4 exercise the
        # leftover paths of the register-tiled kernels)
        cases = [(1, 7, 9, 5), (2, 5, 4, 8), (2, 16, 12, 96), (1, 3, 3, 3), (1, 11, 13, 40),
                 (2, 1, 8, 7), (1, 10, 11, 12), (2, 9, 7, 20)]
        for i, (B, H, W, C) in enumerate(cases):
            for no_din in ([False, True] if i == 0 else [False]):
                x = self.rand(B, H, W, C)
                w = self.rand(C, 1, 7, 7, scale=1 / 7)
                b = self.rand(C)
                self.check("dwconv7", f"B{B} {H}x{W} C{C}" + (" no_din" if no_din else ""),
                           x, w, b, (B, H, W, C), dict(B=B, H=H, W=W, C=C),
                           lambda tx, tw, tb, C=C: F.conv2d(tx, tw, tb, padding=3, groups=C),
                           nhwc, nchw, use_init=(i % 2 == 1), no_din=no_din)

    def test_dwconv7_layernorm(self):
        # (B, H, W, C, eps): the ConvNeXt half's start (eps 1e-6 as the PI block), forward only
        cases = [(1, 7, 9, 5, 1e-6), (2, 5, 4, 24, 1e-6), (1, 9, 11, 96, 1e-6), (2, 3, 3, 200, 1e-5),
                 (1, 4, 5, 768, 1e-6)]
        for B, H, W, C, eps in cases:
            x = self.rand(B, H, W, C)
            w = self.rand(C, 1, 7, 7, scale=1 / 7)
            b = self.rand(C)
            g = (1 + 0.5 * self.rand(C)).astype(np.float32)
            beta = self.rand(C)
            res = run_optest("dwconv7_layernorm", {"in": x, "w": w, "b": b, "g": g, "beta": beta},
                             dict(B=B, H=H, W=W, C=C, eps=repr(eps)))
            conv = F.conv2d(nchw(x), torch.from_numpy(w).double(), torch.from_numpy(b).double(), padding=3,
                            groups=C).detach().permute(0, 2, 3, 1)
            ln = F.layer_norm(conv, (C,), torch.from_numpy(g).double(), torch.from_numpy(beta).double(), eps)
            mean = conv.mean(-1)
            rstd = 1.0 / torch.sqrt(conv.var(-1, unbiased=False) + eps)
            refs = {"out": conv.numpy(), "ln": ln.numpy(), "mean": mean.reshape(-1).numpy(),
                    "rstd": rstd.reshape(-1).numpy()}
            self.assertEqual(set(res.keys()), set(refs.keys()), "output names")
            for name, ref in refs.items():
                e = rel_err(res[name].astype(np.float64), ref)
                print(f"dwconv7_layernorm B{B} {H}x{W} C{C} eps={eps:g} {name:4s} rel_err {e:.2e} "
                      f"(tol {FWD_TOL:.0e})", flush=True)
                self.assertLessEqual(e, FWD_TOL, f"B{B} {H}x{W} C{C} {name}")

    def test_convT(self):
        # (B, H, W, Ci, Co, k)
        cases = [(1, 3, 5, 4, 3, 2), (2, 4, 3, 8, 6, 4), (2, 5, 5, 16, 9, 4), (1, 6, 7, 32, 16, 2),
                 (1, 1, 1, 3, 2, 4)]
        for i, (B, H, W, Ci, Co, k) in enumerate(cases):
            for no_din in ([False, True] if i == 2 else [False]):
                x = self.rand(B, H, W, Ci)
                w = self.rand(Ci, Co, k, k, scale=Ci ** -0.5)
                b = self.rand(Co)
                self.check("convT", f"B{B} {H}x{W} {Ci}->{Co} k{k}" + (" no_din" if no_din else ""),
                           x, w, b, (B, H * k, W * k, Co),
                           dict(B=B, H=H, W=W, Ci=Ci, Co=Co, k=k),
                           lambda tx, tw, tb, k=k: F.conv_transpose2d(tx, tw, tb, stride=k),
                           nhwc, nchw, use_init=(i % 2 == 0), no_din=no_din)

    def test_convT_add(self):
        # convT_forward_add: out = conv_transpose2d(in) + skip (the decoder's upsampling and skip)
        for B, H, W, Ci, Co, k in [(1, 3, 5, 4, 3, 2), (2, 5, 5, 16, 9, 2), (2, 4, 3, 8, 6, 4)]:
            x = self.rand(B, H, W, Ci)
            w = self.rand(Ci, Co, k, k, scale=Ci ** -0.5)
            b = self.rand(Co)
            skip = self.rand(B, H * k, W * k, Co)
            res = run_optest("convT_add", {"in": x, "w": w, "b": b, "skip": skip},
                             dict(B=B, H=H, W=W, Ci=Ci, Co=Co, k=k))
            ref = F.conv_transpose2d(nchw(x), torch.from_numpy(w).double(), torch.from_numpy(b).double(),
                                     stride=k) + nchw(skip)
            e = rel_err(res["out"], nhwc(ref))
            print(f"convT_add B{B} {H}x{W} {Ci}->{Co} k{k} out rel_err {e:.2e} (tol {FWD_TOL:.0e})", flush=True)
            self.assertEqual(set(res.keys()), {"out"})
            self.assertLessEqual(e, FWD_TOL)

    def test_linear(self):
        # (N, Ci, Co, bias)
        cases = [(37, 5, 7, True), (37, 5, 7, False), (200, 96, 384, True), (1, 3, 2, True),
                 (513, 384, 96, False), (1000, 33, 17, True)]
        ident = lambda t: t.detach().numpy()
        leaf = lambda a: torch.from_numpy(a).double().requires_grad_()
        for i, (N, Ci, Co, bias) in enumerate(cases):
            for no_din in ([False, True] if i == 0 else [False]):
                x = self.rand(N, Ci)
                w = self.rand(Co, Ci, scale=Ci ** -0.5)
                b = self.rand(Co) if bias else None
                self.check("linear", f"N{N} {Ci}->{Co} {'bias' if bias else 'nobias'}"
                           + (" no_din" if no_din else ""),
                           x, w, b, (N, Co), dict(N=N, Ci=Ci, Co=Co),
                           lambda tx, tw, tb: F.linear(tx, tw, tb),
                           ident, leaf, use_init=(i % 2 == 1), no_din=no_din, overwrites=("db",))


if __name__ == "__main__":
    if not CHECK or not os.path.exists(CHECK):
        print("UNET2022_CHECK not set or missing: skipping")
        sys.exit(77)
    unittest.main()
