"""test_ops_norm.py — the norm op family (layernorm, layernorm_backward_residual_branch, gelu,
gelu_layernorm, pad_roll, roll_crop, window_attention, channel_scale, sample_scale, add/accumulate)
against PyTorch autograd.

Each case writes inputs to a safetensors file, runs `$UNET2022_CHECK optest <op> in out`, and compares
every output and gradient with torch (computed in float64 from the same float32 inputs, so the
reported error is ours alone). Relative error = ||ours - ref|| / ||ref|| per tensor.
Every backward is run from random "<grad>_init" tensors, and the reference is init + gradient:
this checks that backward ops accumulate (+=) instead of overwriting.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import swin_ref  # noqa: E402

CHECK = os.environ.get("UNET2022_CHECK")  # build/unet2022-check
FWD_TOL = 1e-5
GRAD_TOL = 1e-4


def run_op(op, tensors, meta):
    """Run the C optest handler for `op`; returns its outputs as numpy arrays."""
    with tempfile.TemporaryDirectory() as d:
        fin, fout = os.path.join(d, "in.safetensors"), os.path.join(d, "out.safetensors")
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, fin,
                  metadata={k: str(v) for k, v in meta.items()})
        r = subprocess.run([CHECK, "optest", op, fin, fout], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"{op} failed ({r.returncode}): {r.stderr}")
        return load_file(fout)


def rel(ours, ref):
    ref = np.asarray(ref, dtype=np.float64)
    ours = np.asarray(ours, dtype=np.float64).reshape(ref.shape)
    den = np.linalg.norm(ref)
    num = np.linalg.norm(ours - ref)
    return num / den if den > 0 else num


def f32(t):
    return t.detach().to(torch.float32).numpy()


class Base(unittest.TestCase):
    def check(self, label, ours, ref, tol):
        e = rel(ours, ref)
        print(f"  {label:<48s} rel err {e:.3e} (tol {tol:.0e})", flush=True)
        self.assertTrue(np.all(np.isfinite(ours)), f"{label}: non-finite values")
        self.assertLessEqual(e, tol, f"{label}: rel err {e:.3e} > {tol:.0e}")


class TestLayerNorm(Base):
    def run_case(self, N, C, eps, offset, seed):
        g = torch.Generator().manual_seed(seed)
        x = (torch.randn(N, C, generator=g) * 2 + offset).float()
        w = (torch.randn(C, generator=g) * 0.5 + 1).float()
        b = torch.randn(C, generator=g).float()
        dout = torch.randn(N, C, generator=g).float()
        inits = {k: torch.randn(*s, generator=g).float() for k, s in (("dx", (N, C)), ("dg", (C,)), ("db", (C,)))}
        res = run_op("layernorm", {"x": x.numpy(), "g": w.numpy(), "b": b.numpy(), "dout": dout.numpy(),
                                   **{k + "_init": v.numpy() for k, v in inits.items()}},
                     {"N": N, "C": C, "eps": repr(eps)})
        xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
        y = F.layer_norm(xd, (C,), wd, bd, eps)
        y.backward(dout.double())
        mean = xd.detach().mean(-1)
        rstd = 1.0 / torch.sqrt(xd.detach().var(-1, unbiased=False) + eps)
        tag = f"layernorm N={N} C={C} eps={eps:g} offset={offset}"
        self.check(tag + " out", res["out"], y.detach(), FWD_TOL)
        self.check(tag + " mean", res["mean"], mean, FWD_TOL)
        self.check(tag + " rstd", res["rstd"], rstd, FWD_TOL)
        self.check(tag + " dx", res["dx"], inits["dx"].double() + xd.grad, GRAD_TOL)
        self.check(tag + " dg", res["dg"], inits["dg"].double() + wd.grad, GRAD_TOL)
        self.check(tag + " db", res["db"], inits["db"].double() + bd.grad, GRAD_TOL)

    def test_eps_1e5(self):
        self.run_case(300, 96, 1e-5, 0.0, 1)

    def test_eps_1e6_offset(self):
        # large mean: catches E[x²] − E[x]² cancellation; small C exercises tiny variance rows
        self.run_case(257, 48, 1e-6, 30.0, 2)

    def test_many_chunks(self):
        # N well above the 64-row reduction chunk, odd row count
        self.run_case(5003, 32, 1e-5, 1.0, 3)


class TestLayerNormResidualBranch(Base):
    """layernorm_backward_residual_branch: x1 = res + s_b * (gamma * y) feeds the residual path
    (gradient dres) and u = LayerNorm(x1) (gradient dout); the op gives res's gradient (dx, +=),
    y's (dy, overwritten), gamma's and the LayerNorm's g, b gradients (+=)."""

    def run_case(self, B, rows, C, with_gamma, scale, seed):
        g = torch.Generator().manual_seed(seed)
        N, per, eps = B * rows, rows * C, 1e-5
        res = (torch.randn(N, C, generator=g) + 1).float()
        y = torch.randn(N, C, generator=g).float()
        gamma = (torch.randn(C, generator=g) * 0.5).float()
        w = (torch.randn(C, generator=g) * 0.5 + 1).float()
        b = torch.randn(C, generator=g).float()
        dres = torch.randn(N, C, generator=g).float()
        dout = torch.randn(N, C, generator=g).float()
        inits = {k: torch.randn(*s, generator=g).float()
                 for k, s in (("dx", (N, C)), ("dy", (N, C)), ("dg", (C,)), ("db", (C,)), ("dgamma", (C,)))}
        s_row = (torch.ones(B) if scale is None else torch.tensor(scale)).double().repeat_interleave(rows)[:, None]
        branch = lambda rd, yd, gd: rd + s_row * ((gd * yd) if with_gamma else yd)
        x1 = branch(res.double(), y.double(), gamma.double()).float()  # the forward's stored x1
        tensors = {"x1": x1.numpy(), "g": w.numpy(), "b": b.numpy(), "dres": dres.numpy(), "dout": dout.numpy(),
                   "y": y.numpy(), **{k + "_init": v.numpy() for k, v in inits.items()}}
        if with_gamma:
            tensors["gamma"] = gamma.numpy()
        if scale is not None:
            tensors["scale"] = np.array(scale, dtype=np.float32)
        out = run_op("layernorm_residual_branch", tensors, {"B": B, "per": per, "C": C, "eps": repr(eps)})
        rd, yd, gd, wd, bd = (t.double().requires_grad_() for t in (res, y, gamma, w, b))
        # x1's value is the stored float32 one; its gradient flows to res, y and gamma
        bx = branch(rd, yd, gd)
        x1d = x1.double() + bx - bx.detach()
        u = F.layer_norm(x1d, (C,), wd, bd, eps)
        ((x1d * dres.double()).sum() + (u * dout.double()).sum()).backward()
        tag = f"ln_residual_branch B={B} rows={rows} C={C} gamma={with_gamma} scale={scale}"
        self.check(tag + " out", out["out"], u.detach(), FWD_TOL)
        self.check(tag + " dx", out["dx"], inits["dx"].double() + rd.grad, GRAD_TOL)
        self.check(tag + " dx (no init)", out["dx"] - inits["dx"].numpy(), rd.grad, GRAD_TOL)
        self.check(tag + " dy (overwritten)", out["dy"], yd.grad, GRAD_TOL)
        self.check(tag + " dg", out["dg"], inits["dg"].double() + wd.grad, GRAD_TOL)
        self.check(tag + " db", out["db"], inits["db"].double() + bd.grad, GRAD_TOL)
        if with_gamma:
            self.check(tag + " dgamma", out["dgamma"], inits["dgamma"].double() + gd.grad, GRAD_TOL)
            self.check(tag + " dgamma (no init)", out["dgamma"] - inits["dgamma"].numpy(), gd.grad, GRAD_TOL)
        if scale is not None:  # a dropped sample's dy is exactly 0
            for k, sk in enumerate(scale):
                if sk == 0.0:
                    self.assertTrue(np.all(out["dy"][k * rows:(k + 1) * rows] == 0.0), "dropped sample's dy")

    def test_gamma_drop(self):
        # sample 0 dropped, 1 and 2 kept
        self.run_case(3, 7 * 5, 48, True, [0.0, 1.25, 1.25], 50)

    def test_gamma_no_drop(self):
        self.run_case(2, 6 * 9, 96, True, None, 51)

    def test_no_gamma_drop(self):
        self.run_case(2, 4 * 4, 40, False, [1.25, 0.0], 52)

    def test_many_chunks(self):
        # N well above the 64-row reduction chunks, a dropped sample
        self.run_case(3, 1701, 32, True, [1.25, 0.0, 1.25], 53)


class TestGelu(Base):
    def test_gelu(self):
        g = torch.Generator().manual_seed(4)
        n = 20001
        x = (torch.randn(n, generator=g) * 3).float()
        x[:5] = torch.tensor([0.0, -10.0, 10.0, 1e-4, -1e-4])
        dout = torch.randn(n, generator=g).float()
        dx0 = torch.randn(n, generator=g).float()
        res = run_op("gelu", {"x": x.numpy(), "dout": dout.numpy(), "dx_init": dx0.numpy()}, {})
        xd = x.double().requires_grad_()
        y = F.gelu(xd)
        y.backward(dout.double())
        self.check("gelu out", res["out"], y.detach(), FWD_TOL)
        self.check("gelu dx", res["dx"], dx0.double() + xd.grad, GRAD_TOL)


class TestGeluLayerNorm(Base):
    """gelu_layernorm: GELU, then the LayerNorm of its output (the fused pair's forward and backward)."""

    def run_case(self, N, C, eps, seed):
        g = torch.Generator().manual_seed(seed)
        x = (torch.randn(N, C, generator=g) * 2).float()
        w = (torch.randn(C, generator=g) * 0.5 + 1).float()
        b = torch.randn(C, generator=g).float()
        dout = torch.randn(N, C, generator=g).float()
        inits = {k: torch.randn(*s, generator=g).float() for k, s in (("dx", (N, C)), ("dg", (C,)), ("db", (C,)))}
        res = run_op("gelu_layernorm", {"x": x.numpy(), "g": w.numpy(), "b": b.numpy(), "dout": dout.numpy(),
                                        **{k + "_init": v.numpy() for k, v in inits.items()}},
                     {"N": N, "C": C, "eps": repr(eps)})
        xd, wd, bd = (t.double().requires_grad_() for t in (x, w, b))
        ge = F.gelu(xd)
        y = F.layer_norm(ge, (C,), wd, bd, eps)
        y.backward(dout.double())
        ged = ge.detach()
        mean = ged.mean(-1)
        rstd = 1.0 / torch.sqrt(ged.var(-1, unbiased=False) + eps)
        tag = f"gelu_layernorm N={N} C={C} eps={eps:g}"
        self.check(tag + " ge", res["ge"], ged, FWD_TOL)
        self.check(tag + " out", res["out"], y.detach(), FWD_TOL)
        self.check(tag + " mean", res["mean"], mean, FWD_TOL)
        self.check(tag + " rstd", res["rstd"], rstd, FWD_TOL)
        self.check(tag + " dx", res["dx"], inits["dx"].double() + xd.grad, GRAD_TOL)
        self.check(tag + " dg", res["dg"], inits["dg"].double() + wd.grad, GRAD_TOL)
        self.check(tag + " db", res["db"], inits["db"].double() + bd.grad, GRAD_TOL)

    def test_small(self):
        self.run_case(300, 96, 1e-5, 5)

    def test_many_chunks(self):
        # N well above the 64-row reduction chunk, odd row count
        self.run_case(5003, 32, 1e-5, 6)


class TestPadRoll(Base):
    # (B, H, W, C, Hp, Wp, shift)
    CASES = [(2, 7, 9, 5, 10, 12, 0), (2, 7, 9, 5, 10, 12, 3), (1, 8, 8, 4, 8, 8, 4),
             (2, 5, 6, 3, 10, 10, 5), (1, 14, 13, 6, 14, 14, 3)]

    def test_pad_roll(self):
        for i, (B, H, W, C, Hp, Wp, s) in enumerate(self.CASES):
            g = torch.Generator().manual_seed(10 + i)
            x = torch.randn(B, H, W, C, generator=g)
            dout = torch.randn(B, Hp, Wp, C, generator=g)
            dx0 = torch.randn(B, H, W, C, generator=g)
            res = run_op("pad_roll", {"x": x.numpy(), "dout": dout.numpy(), "dx_init": dx0.numpy()},
                         dict(B=B, H=H, W=W, C=C, Hp=Hp, Wp=Wp, shift=s))
            xr = x.clone().requires_grad_()
            y = torch.roll(F.pad(xr, (0, 0, 0, Wp - W, 0, Hp - H)), shifts=(-s, -s), dims=(1, 2))
            y.backward(dout)
            tag = f"pad_roll {H}x{W}->{Hp}x{Wp} s={s}"
            # pure data movement: must be exact
            self.check(tag + " out", res["out"], y.detach(), 0.0)
            self.check(tag + " dx", res["dx"], dx0 + xr.grad, 0.0)

    def test_roll_crop(self):
        for i, (B, H, W, C, Hp, Wp, s) in enumerate(self.CASES):
            g = torch.Generator().manual_seed(20 + i)
            x = torch.randn(B, Hp, Wp, C, generator=g)
            dout = torch.randn(B, H, W, C, generator=g)
            dx0 = torch.randn(B, Hp, Wp, C, generator=g)
            res = run_op("roll_crop", {"x": x.numpy(), "dout": dout.numpy(), "dx_init": dx0.numpy()},
                         dict(B=B, H=H, W=W, C=C, Hp=Hp, Wp=Wp, shift=s))
            xr = x.clone().requires_grad_()
            y = torch.roll(xr, shifts=(s, s), dims=(1, 2))[:, :H, :W, :]
            y.backward(dout)
            tag = f"roll_crop {Hp}x{Wp}->{H}x{W} s={s}"
            self.check(tag + " out", res["out"], y.detach(), 0.0)
            self.check(tag + " dx", res["dx"], dx0 + xr.grad, 0.0)

    def test_round_trip(self):
        # roll_crop ∘ pad_roll is the identity on the (H, W) map
        B, H, W, C, Hp, Wp, s = 2, 7, 9, 5, 10, 12, 3
        x = torch.randn(B, H, W, C, generator=torch.Generator().manual_seed(30))
        r1 = run_op("pad_roll", {"x": x.numpy(), "dout": np.zeros((B, Hp, Wp, C))},
                    dict(B=B, H=H, W=W, C=C, Hp=Hp, Wp=Wp, shift=s))
        r2 = run_op("roll_crop", {"x": r1["out"], "dout": np.zeros((B, H, W, C))},
                    dict(B=B, H=H, W=W, C=C, Hp=Hp, Wp=Wp, shift=s))
        self.check("pad_roll -> roll_crop round trip", r2["out"], x, 0.0)


class TestWindowAttention(Base):
    # (B, Hp, Wp, C, heads, w, shift)
    CASES = [
        (2, 6, 9, 10, 2, 3, 0),     # hd 5, odd n = 9 (remainder rows in the kernels)
        (2, 6, 9, 10, 2, 3, 1),
        (2, 8, 12, 24, 3, 4, 0),
        (2, 8, 12, 24, 3, 4, 2),
        (2, 10, 15, 16, 2, 5, 2),
        (2, 10, 15, 16, 2, 5, 1),
        (2, 14, 21, 64, 2, 7, 0),   # hd 32 as in the model
        (2, 14, 21, 64, 2, 7, 3),
        (2, 20, 30, 96, 3, 10, 0),  # 100-token windows
        (2, 20, 30, 96, 3, 10, 5),
        (2, 5, 5, 8, 2, 5, 0),      # one window per image (global window)
    ]

    def test_window_attention(self):
        for i, (B, Hp, Wp, C, heads, w, s) in enumerate(self.CASES):
            with self.subTest(case=(B, Hp, Wp, C, heads, w, s)):
                self.run_case(B, Hp, Wp, C, heads, w, s, seed=100 + i)

    def run_case(self, B, Hp, Wp, C, heads, w, s, seed):
        g = torch.Generator().manual_seed(seed)
        T = (2 * w - 1) ** 2
        qkv = torch.randn(B, Hp, Wp, 3 * C, generator=g).float()
        table = torch.randn(T, heads, generator=g).float()  # std 1 so the bias matters
        dout = torch.randn(B, Hp, Wp, C, generator=g).float()
        dqkv0 = torch.randn(B, Hp, Wp, 3 * C, generator=g).float()
        dtable0 = torch.randn(T, heads, generator=g).float()
        res = run_op("window_attention",
                     {"qkv": qkv.numpy(), "table": table.numpy(), "dout": dout.numpy(),
                      "dqkv_init": dqkv0.numpy(), "dtable_init": dtable0.numpy()},
                     dict(B=B, Hp=Hp, Wp=Wp, C=C, heads=heads, window=w, shift=s))
        qd = qkv.double().requires_grad_()
        td = table.double().requires_grad_()
        out, probs = swin_ref.window_attention(qd, td, heads, w, s)
        out.backward(dout.double())
        tag = f"wattn B={B} {Hp}x{Wp} C={C} h={heads} w={w} s={s}"
        self.check(tag + " out", res["out"], out.detach(), FWD_TOL)
        self.check(tag + " probs", res["probs"], probs.detach(), FWD_TOL)
        self.check(tag + " dqkv", res["dqkv"], dqkv0.double() + qd.grad, GRAD_TOL)
        self.check(tag + " dtable", res["dtable"], dtable0.double() + td.grad, GRAD_TOL)
        # the gradient alone (init removed) must also match: the init must not dominate the norm
        self.check(tag + " dtable (no init)", res["dtable"] - dtable0.numpy(), td.grad, GRAD_TOL)
        self.check(tag + " dqkv (no init)", res["dqkv"] - dqkv0.numpy(), qd.grad, GRAD_TOL)

    def test_mask_matches_spec_formula(self):
        # The region formula in backend.h / the brief against Swin's img_mask construction.
        for (Hp, Wp, w, s) in [(20, 30, 10, 5), (14, 21, 7, 3), (6, 9, 3, 1), (8, 8, 8, 4)]:
            mask = swin_ref.shift_attn_mask(Hp, Wp, w, s)
            def reg(v, L):
                return 0 if v < L - w else (1 if v < L - s else 2)
            nWx = Wp // w
            for win in range(mask.shape[0]):
                wy, wx = divmod(win, nWx)
                ids = [3 * reg(wy * w + t // w, Hp) + reg(wx * w + t % w, Wp) for t in range(w * w)]
                ids = torch.tensor(ids)
                ours = torch.where(ids[:, None] != ids[None, :], -100.0, 0.0).double()
                self.assertTrue(torch.equal(ours, mask[win]), f"mask mismatch Hp={Hp} Wp={Wp} w={w} s={s}")


class TestElementwise(Base):
    def test_channel_scale(self):
        g = torch.Generator().manual_seed(40)
        for (N, C) in [(500, 96), (70001, 8)]:
            x = torch.randn(N, C, generator=g)
            gamma = torch.randn(C, generator=g)
            dout = torch.randn(N, C, generator=g)
            dx0, dg0 = torch.randn(N, C, generator=g), torch.randn(C, generator=g)
            res = run_op("channel_scale", {"x": x.numpy(), "gamma": gamma.numpy(), "dout": dout.numpy(),
                                           "dx_init": dx0.numpy(), "dgamma_init": dg0.numpy()}, dict(N=N, C=C))
            xd, gd = x.double().requires_grad_(), gamma.double().requires_grad_()
            y = xd * gd
            y.backward(dout.double())
            tag = f"channel_scale N={N} C={C}"
            self.check(tag + " out", res["out"], y.detach(), FWD_TOL)
            self.check(tag + " dx", res["dx"], dx0.double() + xd.grad, GRAD_TOL)
            self.check(tag + " dgamma", res["dgamma"], dg0.double() + gd.grad, GRAD_TOL)
            self.check(tag + " dgamma (no init)", res["dgamma"] - dg0.numpy(), gd.grad, GRAD_TOL)

    def test_sample_scale(self):
        g = torch.Generator().manual_seed(41)
        B, per = 4, 3 * 5 * 7
        keep = 0.8
        scale = torch.tensor([0.0, 1 / keep, 1 / keep, 0.0])
        x = torch.randn(B, per, generator=g)
        dout = torch.randn(B, per, generator=g)
        dx0 = torch.randn(B, per, generator=g)
        res = run_op("sample_scale", {"x": x.numpy(), "scale": scale.numpy(), "dout": dout.numpy(),
                                      "dx_init": dx0.numpy()}, dict(B=B, per=per))
        # torch drop_path: x.div(keep) * mask  (mask per sample)
        xd = x.double().requires_grad_()
        mask = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)[:, None]
        y = xd.div(keep) * mask
        y.backward(dout.double())
        self.check("sample_scale out", res["out"], y.detach(), FWD_TOL)
        self.check("sample_scale dx", res["dx"], dx0.double() + xd.grad, GRAD_TOL)

    def test_add_accumulate(self):
        g = torch.Generator().manual_seed(42)
        a, b = torch.randn(1001, generator=g), torch.randn(1001, generator=g)
        res = run_op("add", {"a": a.numpy(), "b": b.numpy()}, {})
        ref = a + b  # float32, same single rounding as ours: exact
        self.check("add", res["out"], ref, 0.0)
        self.check("add (out aliases a)", res["alias"], ref, 0.0)
        self.check("accumulate", res["acc"], ref, 0.0)


if __name__ == "__main__":
    if not CHECK or not os.path.exists(CHECK):
        print("UNET2022_CHECK not set or missing; skipping")
        sys.exit(77)
    unittest.main(verbosity=2)
