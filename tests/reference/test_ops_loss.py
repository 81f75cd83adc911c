#!/usr/bin/python3
"""Loss and optimiser ops against PyTorch: nnU-Net v1 DC_and_CE_loss (forward + autograd
gradient), label downsampling, torch.optim.Adam, and clip_grad_norm_ composed from
sum_squares + scale. Runs the C ops through `$UNET2022_CHECK optest` (see tests/check/optest.h)."""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file

CHECK = os.environ.get("UNET2022_CHECK")  # build/unet2022-check
if not CHECK or not os.path.exists(CHECK):
    print("UNET2022_CHECK is not set or missing; skipping")
    sys.exit(77)

TMP = tempfile.mkdtemp(prefix="test_ops_loss_")
atexit.register(shutil.rmtree, TMP, True)


def run_op(op, tensors, attrs, env_extra=None, expect_fail=False):
    """Write the inputs, run the C op, return its outputs (or (rc, stderr) if expect_fail)."""
    fin = os.path.join(TMP, f"{op}_in.safetensors")
    fout = os.path.join(TMP, f"{op}_out.safetensors")
    if os.path.exists(fout):
        os.unlink(fout)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, fin,
              metadata={k: str(v) for k, v in attrs.items()})
    env = dict(os.environ)
    env.update(env_extra or {})
    r = subprocess.run([CHECK, "optest", op, fin, fout], capture_output=True, text=True, env=env)
    if expect_fail:
        return r.returncode, r.stderr
    if r.returncode != 0:
        raise AssertionError(f"{op} failed (rc {r.returncode}): {r.stderr}")
    return load_file(fout)


def rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    den = np.linalg.norm(b)
    num = np.linalg.norm(a - b)
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return float(num / den)


def nnunet_dc_ce(logits, target, w_dice, w_ce, smooth=1e-5):
    """nnU-Net v1 DC_and_CE_loss(SoftDiceLoss(softmax, batch_dice=True, do_bg=False, smooth),
    RobustCrossEntropyLoss), written out from nnunet/training/loss_functions/dice_loss.py.
    logits (B, K, H, W), target (B, 1, H, W). Returns total, dice term, ce term, (tp, fp, fn)."""
    x = torch.softmax(logits, 1)
    y_onehot = torch.zeros_like(x).scatter_(1, target.long(), 1)
    axes = [0, 2, 3]  # batch dice: sum over the batch and the pixels
    tp = (x * y_onehot).sum(axes)
    fp = (x * (1 - y_onehot)).sum(axes)
    fn = ((1 - x) * y_onehot).sum(axes)
    nominator = 2 * tp + smooth
    denominator = 2 * tp + fp + fn + smooth
    dc = nominator / (denominator + 1e-8)
    dc = dc[1:]  # do_bg = False
    dice = -dc.mean()
    ce = F.cross_entropy(logits, target[:, 0].long())  # RobustCrossEntropyLoss, mean
    return w_ce * ce + w_dice * dice, dice, ce, (tp, fp, fn)


class DiceCE(unittest.TestCase):
    W_DICE, W_CE = 1.2, 0.8

    def check_case(self, B, H, W, K, classes, scale=3.0, seed=0, dloss=0.7, accumulate=False):
        g = torch.Generator().manual_seed(seed)
        logits = (torch.randn(B, K, H, W, generator=g) * scale).float()
        cls = torch.tensor(classes)
        target = cls[torch.randint(0, len(classes), (B, 1, H, W), generator=g)]
        # oracle in float64 on the same fp32 inputs
        lg = logits.double().requires_grad_(True)
        total, dice, ce, (tp, fp, fn) = nnunet_dc_ce(lg, target, self.W_DICE, self.W_CE)
        (total * dloss).backward()
        ref_grad = lg.grad.permute(0, 2, 3, 1).reshape(-1, K).numpy()
        logits_nk = logits.permute(0, 2, 3, 1).reshape(-1, K).numpy()
        labels = target.reshape(-1).numpy().astype(np.int32)
        tensors = {"logits": logits_nk, "labels": labels}
        base = np.zeros_like(logits_nk)
        if accumulate:
            base = (np.random.default_rng(seed).standard_normal(logits_nk.shape) *
                    np.sqrt(np.mean(ref_grad ** 2))).astype(np.float32)
            tensors["dlogits_in"] = base
        out = run_op("dice_ce", tensors, {"w_dice": self.W_DICE, "w_ce": self.W_CE, "dloss": dloss})
        ref_probs = torch.softmax(logits.double(), 1).permute(0, 2, 3, 1).reshape(-1, K).numpy()
        ref_stats = torch.stack([tp, fp, fn]).detach().numpy()
        e_total = abs(out["loss"][0] - total.item()) / abs(total.item())
        e_dice = abs(out["loss"][1] - dice.item()) / max(abs(dice.item()), 1e-30)
        e_ce = abs(out["loss"][2] - ce.item()) / abs(ce.item())
        e_probs = rel(out["probs"], ref_probs)
        e_stats = rel(out["stats"], ref_stats)
        e_grad = rel(out["dlogits"], base.astype(np.float64) + ref_grad)
        print(f"dice_ce B={B} H={H} W={W} K={K} classes={len(classes)} scale={scale} acc={accumulate}: "
              f"total {total.item():.6f} (err {e_total:.2e}) dice {dice.item():.6g} (err {e_dice:.2e}) "
              f"ce {ce.item():.6f} (err {e_ce:.2e}) probs {e_probs:.2e} stats {e_stats:.2e} grad {e_grad:.2e}")
        self.assertLessEqual(e_total, 1e-5)
        self.assertLessEqual(e_dice, 1e-5)
        self.assertLessEqual(e_ce, 1e-5)
        self.assertLessEqual(e_probs, 1e-5)
        self.assertLessEqual(e_stats, 1e-5)
        self.assertLessEqual(e_grad, 1e-4)

    def test_k2(self):
        self.check_case(2, 16, 16, 2, [0, 1], seed=1)
        self.check_case(1, 8, 8, 2, [0], seed=2)  # foreground absent: dc from smooth only

    def test_k4(self):
        self.check_case(2, 32, 32, 4, [0, 1, 2, 3], seed=3)
        self.check_case(2, 32, 24, 4, [0, 2], seed=4)  # classes 1, 3 absent

    def test_k14(self):
        self.check_case(2, 64, 64, 14, list(range(14)), seed=5)
        self.check_case(2, 64, 64, 14, [0, 3, 5, 13], seed=6)  # most classes absent
        self.check_case(1, 40, 56, 14, [0, 1, 7], scale=10.0, seed=7)  # confident logits

    def test_accumulates(self):
        self.check_case(2, 16, 16, 4, [0, 1, 2, 3], seed=8, accumulate=True)
        self.check_case(1, 16, 16, 14, [0, 4], seed=9, dloss=2.5, accumulate=True)

    def test_thread_count_invariant(self):
        g = torch.Generator().manual_seed(10)
        logits = torch.randn(2 * 64 * 64, 14, generator=g).numpy()
        labels = torch.randint(0, 14, (2 * 64 * 64,), generator=g).numpy().astype(np.int32)
        attrs = {"w_dice": 1.2, "w_ce": 0.8, "dloss": 1.0}
        a = run_op("dice_ce", {"logits": logits, "labels": labels}, attrs, {"OMP_NUM_THREADS": "1"})
        b = run_op("dice_ce", {"logits": logits, "labels": labels}, attrs, {"OMP_NUM_THREADS": "2"})
        same = np.array_equal(a["loss"], b["loss"]) and np.array_equal(a["dlogits"], b["dlogits"])
        print(f"dice_ce 1 vs 2 threads bitwise identical: {same}")
        self.assertTrue(same)

    def test_bad_label_dies(self):
        logits = np.zeros((16, 4), np.float32)
        for bad in (4, -1):
            labels = np.zeros(16, np.int32)
            labels[5] = bad
            rc, err = run_op("dice_ce", {"logits": logits, "labels": labels},
                             {"w_dice": 1.2, "w_ce": 0.8, "dloss": 1.0}, expect_fail=True)
            print(f"dice_ce label {bad}: rc {rc}, stderr: {err.strip()}")
            self.assertNotEqual(rc, 0)
            self.assertIn("outside [0, 4)", err)
            self.assertIn("pixel 5", err)


class DownsampleLabels(unittest.TestCase):
    def test_matches_slicing(self):
        g = torch.Generator().manual_seed(11)
        for (B, H, W, f) in [(2, 64, 64, 2), (2, 64, 64, 4), (3, 32, 48, 8), (1, 80, 80, 16), (2, 20, 12, 1),
                             (1, 30, 22, 4)]:  # last: H, W not multiples of f
            t = torch.randint(0, 14, (B, H, W), generator=g, dtype=torch.int32)
            ref = t[:, f // 2::f, f // 2::f][:, :H // f, :W // f].numpy()
            out = run_op("downsample_labels", {"labels": t.numpy()}, {"f": f})["out"]
            ok = out.dtype == np.int32 and out.shape == ref.shape and np.array_equal(out, ref)
            print(f"downsample_labels B={B} H={H} W={W} f={f}: shape {out.shape} exact {ok}")
            self.assertTrue(ok)


class Adam(unittest.TestCase):
    def run_case(self, lr, n_before, n_steps=5, shape=(37, 53), seed=0):
        g = torch.Generator().manual_seed(seed)
        p = torch.nn.Parameter(torch.randn(*shape, generator=g) * 0.02)
        opt = torch.optim.Adam([p], lr=lr, betas=(0.9, 0.999), eps=1e-8)
        grads = [torch.randn(*shape, generator=g) * 10 ** torch.empty(shape).uniform_(-3, 1, generator=g)
                 for _ in range(n_before + n_steps)]
        for i in range(n_before):
            p.grad = grads[i].clone()
            opt.step()
        st = opt.state[p] if n_before else {}
        p0 = p.detach().clone()
        m0 = st["exp_avg"].clone() if n_before else torch.zeros(shape)
        v0 = st["exp_avg_sq"].clone() if n_before else torch.zeros(shape)
        for i in range(n_before, n_before + n_steps):
            p.grad = grads[i].clone()
            opt.step()
        out = run_op("adam", {"param": p0.numpy(), "m": m0.numpy(), "v": v0.numpy(),
                              "grads": torch.stack(grads[n_before:]).numpy()},
                     {"lr": repr(lr), "beta1": "0.9", "beta2": "0.999", "eps": "1e-08",
                      "first_step": n_before + 1})
        st = opt.state[p]
        e_p = rel(out["param"], p.detach().numpy())
        e_m = rel(out["m"], st["exp_avg"].numpy())
        e_v = rel(out["v"], st["exp_avg_sq"].numpy())
        # The displacement is what Adam computed; param itself is dominated by its start value.
        e_dp = rel(out["param"].astype(np.float64) - p0.numpy(), p.detach().numpy().astype(np.float64) - p0.numpy())
        print(f"adam lr={lr} steps {n_before + 1}..{n_before + n_steps}: param {e_p:.2e} m {e_m:.2e} "
              f"v {e_v:.2e} displacement {e_dp:.2e}")
        self.assertLessEqual(e_p, 1e-6)
        self.assertLessEqual(e_m, 1e-6)
        self.assertLessEqual(e_v, 1e-6)
        # fp32 rounding of param (ulp ~2e-9 at |p| ~ 0.02) against 5 steps of ~lr each: ~1e-6.
        self.assertLessEqual(e_dp, 1e-5)

    def test_lr_1e4(self):
        self.run_case(1e-4, 0)
        self.run_case(1e-4, 5, seed=1)

    def test_lr_7e4(self):
        self.run_case(7e-4, 0, seed=2)
        self.run_case(7e-4, 5, seed=3)


class SumSquaresAndClip(unittest.TestCase):
    def test_sum_squares(self):
        rng = np.random.default_rng(12)
        for n in (0, 1, 7, 16384, 16385, 1000003):
            x = rng.standard_normal(n).astype(np.float32) * 3
            out = run_op("sum_squares", {"x": x}, {})
            got = out["sum_bits"].view(np.float64)[0]
            ref = float(np.sum(x.astype(np.float64) ** 2))
            e = abs(got - ref) / ref if ref else abs(got)
            print(f"sum_squares n={n}: {got!r} vs {ref!r} rel {e:.2e}")
            self.assertLessEqual(e, 1e-12)
            self.assertLessEqual(abs(out["sum"][0] - ref), 1e-6 * max(ref, 1e-30))

    def test_sum_squares_thread_invariant(self):
        x = np.random.default_rng(13).standard_normal(3_000_017).astype(np.float32)
        a = run_op("sum_squares", {"x": x}, {}, {"OMP_NUM_THREADS": "1"})["sum_bits"]
        b = run_op("sum_squares", {"x": x}, {}, {"OMP_NUM_THREADS": "2"})["sum_bits"]
        print(f"sum_squares 1 vs 2 threads bitwise identical: {np.array_equal(a, b)}")
        self.assertTrue(np.array_equal(a, b))

    def clip_case(self, scale, seed):
        g = torch.Generator().manual_seed(seed)
        shapes = [(96, 3, 3, 3), (96,), (384, 96), (14, 96, 4, 4), (1,)]
        params = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * scale
        inputs = {f"g{i}": p.grad.numpy().copy() for i, p in enumerate(params)}
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm=12)
        out = run_op("clip_grad", inputs, {"max_norm": 12})
        e_norm = abs(out["total_norm"][0] - norm.item()) / norm.item()
        errs = [rel(out[f"g{i}"], p.grad.numpy()) for i, p in enumerate(params)]
        print(f"clip_grad scale {scale}: norm {norm.item():.5f} (err {e_norm:.2e}) "
              f"clipped={norm.item() > 12} grad errs max {max(errs):.2e}")
        self.assertLessEqual(e_norm, 1e-6)
        for e in errs:
            self.assertLessEqual(e, 1e-6)

    def test_clip_grad(self):
        self.clip_case(0.1, 14)  # norm ~19: clipped
        self.clip_case(0.01, 15)  # norm ~2: untouched
        self.clip_case(5.0, 16)  # far above


if __name__ == "__main__":
    unittest.main()
