#!/usr/bin/python3
"""`unet2022 train` end to end on a tiny phantom store: exact resume (1 and 2 ranks), the same
losses on 1, 2 and 4 ranks for one global batch, SIGTERM → checkpoint + exit 75, kill -9 during
checkpoint writes never leaves a run that cannot resume, and clear errors for damaged
checkpoints, bad YAML, a missing store and a changed config (naming every changed key); the
keys that may change on resume (loader.*) and checkpoints of older versions (no predict.step)
resume. Hostile input (issue 16): a data position past the epoch (damaged metadata, or a store
prepared again with fewer slices), a flipped metadata bit, a split the store lacks and a FIFO
are refused within seconds, naming the file and the field. Multi-rank cases use Open MPI's
mpirun on the CPU; they are skipped when unet2022 is built without MPI (mpi_cases.py)."""
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import unittest

import numpy as np
from safetensors.numpy import load_file

from mpi_cases import have_mpi, main, needs_mpi

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
HAVE_MPI = have_mpi(BIN)
EXIT_REQUEUE = 75
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}

CONFIG = """name: tiny
network:
  preset: custom
  embed_dim: 8
  heads: [1, 1, 2, 2]
  patch_size: 4
  windows: [4, 2, 2, 1]
  in_channels: 1
  classes: 14
  deep_supervision: true
  crop: [32, 32]
  drop_path_rate: 0.2
train:
  batch_size: 4
  lr: 1e-3
  epochs: 100
  seed: 7
  store: {store}
  train_split: train
  val_split: test
  val_every: 1
  val_max_slices: 4
  keep_last: 100
  log_every: 1
  threads: 1
loader:
  workers: 1
  prefetch: 2
"""


def run(args, env=None, timeout=600, ranks=0):
    cmd = ([shutil.which("mpirun") or "mpirun", "-np", str(ranks), "--oversubscribe"] if ranks else []) + [BIN, *args]
    e = dict(os.environ, OMP_NUM_THREADS="1", **(MPI_ENV if ranks else {}), **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=e)


def rewrite_meta(path, edit):
    """Rewrites a checkpoint's metadata in place: edit(meta) changes the dict; the tensors stay."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header, data = json.loads(f.read(n)), f.read()
    edit(header["__metadata__"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data stays 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def load_meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def as_version_1(meta):
    """What format version 1 wrote: no metadata checksum (its metadata was not covered)."""
    meta["format_version"] = "1"
    meta.pop("meta_crc32", None)


def step_losses(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    out = {}
    for r in rows:
        if r["kind"] == "step":
            out[r["step"]] = r["loss"]  # a resumed run re-logs nothing: steps are unique
    return out


class Train(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="unet-train-")
        raw, store = os.path.join(cls.tmp, "raw"), os.path.join(cls.tmp, "store")
        r = subprocess.run([BIN, "synth", "--out", raw, "--seed", "3", "--cases", "4", "--size", "32..40",
                            "--depth", "6..8"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([BIN, "prepare", "synapse", "--src", raw, "--split", os.path.join(raw, "split.txt"),
                            "--out", store, "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.config = os.path.join(cls.tmp, "tiny.yaml")
        with open(cls.config, "w") as f:
            f.write(CONFIG.format(store=store))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_dir(self, name):
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        return d

    def train(self, run_dir, *extra, ranks=0, expect=0):
        r = run(["train", self.config, f"train.run_dir={run_dir}", *extra], ranks=ranks)
        self.assertEqual(r.returncode, expect, r.stdout[-3000:] + r.stderr[-3000:])
        return r

    def assert_same_checkpoint(self, a, b):
        ta, tb = load_file(a), load_file(b)
        self.assertEqual(sorted(ta), sorted(tb))
        for k in ta:
            self.assertTrue(np.array_equal(ta[k], tb[k]), f"{k} differs between {a} and {b}")

    def exact_resume(self, ranks):
        n = 5  # the tiny store has fewer slices than 2n·batch: the resume crosses an epoch boundary
        straight = self.run_dir(f"straight{ranks}")
        self.train(straight, f"train.max_steps={2 * n}", ranks=ranks)
        split = self.run_dir(f"split{ranks}")
        self.train(split, f"train.max_steps={n}", ranks=ranks)
        r = self.train(split, f"train.max_steps={2 * n}", ranks=ranks)
        self.assertIn("resume:", r.stdout)
        name = f"checkpoints/ckpt-{2 * n:08d}.safetensors"
        self.assert_same_checkpoint(os.path.join(straight, name), os.path.join(split, name))
        print(f"{ranks or 1} rank(s): {2 * n} steps straight == {n} + resume + {n}, bit for bit")

    def test_exact_resume_one_rank(self):
        self.exact_resume(0)

    @needs_mpi(HAVE_MPI)
    def test_exact_resume_two_ranks(self):
        self.exact_resume(2)

    @needs_mpi(HAVE_MPI)
    def test_same_losses_on_1_2_4_ranks(self):
        losses = {}
        for ranks in (0, 2, 4):
            d = self.run_dir(f"ranks{ranks}")
            self.train(d, "train.max_steps=4", ranks=ranks)
            losses[ranks or 1] = step_losses(d)
        base = losses[1]
        self.assertEqual(sorted(base), [1, 2, 3, 4])
        for r in (2, 4):
            for s in base:
                # identical arithmetic except the order of float sums across ranks: a few ulps,
                # compounded over 4 Adam steps
                self.assertAlmostEqual(losses[r][s], base[s], delta=1e-5 * max(1.0, abs(base[s])),
                                       msg=f"{r} ranks, step {s}")
        print("losses per step, 1/2/4 ranks:", {r: [round(losses[r][s], 7) for s in sorted(base)] for r in losses})

    @needs_mpi(HAVE_MPI)
    def test_gradient_buckets_do_not_change_the_result(self):
        # 2 ranks: one all-reduce after backward (bucket 0) against many small buckets started
        # during backward. A sum of two floats does not depend on order, so the weights must be
        # identical bit for bit: any bucket started before its gradients were final would show.
        name = "checkpoints/ckpt-00000004.safetensors"
        dirs = {}
        for mb in ("0", "0.002", "25"):
            d = self.run_dir(f"buckets{mb}")
            r = self.train(d, "train.max_steps=4", f"train.grad_bucket_mb={mb}", ranks=2)
            m = re.search(r"gradient all-reduce: (\d+) bucket", r.stdout)
            self.assertIsNotNone(m, r.stdout[-2000:])
            dirs[mb] = (d, int(m.group(1)))
        self.assertEqual(dirs["0"][1], 1)
        self.assertGreater(dirs["0.002"][1], 20)  # the tiny net has ~47k parameters: 2 KiB buckets
        for mb in ("0.002", "25"):
            self.assert_same_checkpoint(os.path.join(dirs["0"][0], name), os.path.join(dirs[mb][0], name))
        print("2 ranks, 4 steps: weights identical with", {mb: n for mb, (d, n) in dirs.items()}, "bucket(s)")

    @needs_mpi(HAVE_MPI)
    def test_resume_on_a_different_rank_count_keeps_the_batch_sequence(self):
        straight = self.run_dir("straight_r1")
        self.train(straight, "train.max_steps=6")
        moved = self.run_dir("r1_then_r2")
        self.train(moved, "train.max_steps=3")
        r = self.train(moved, "train.max_steps=6", ranks=2)
        self.assertIn("written by 1 rank(s), now 2", r.stdout)
        a, b = step_losses(straight), step_losses(moved)
        self.assertEqual(sorted(a), sorted(b))
        for s in a:  # same batches and loss; only the gradient sum order differs after the move
            self.assertAlmostEqual(b[s], a[s], delta=1e-5 * max(1.0, abs(a[s])), msg=f"step {s}")

    def test_sigterm_checkpoints_and_exits_for_requeue(self):
        d = self.run_dir("sigterm")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        p = subprocess.Popen([BIN, "train", self.config, f"train.run_dir={d}", "train.max_steps=100000"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        metrics = os.path.join(d, "metrics.jsonl")
        deadline = time.time() + 120
        def started():
            if not os.path.exists(metrics):
                return False
            with open(metrics) as f:
                return '"step"' in f.read()
        while time.time() < deadline and not started():
            time.sleep(0.2)
        p.send_signal(signal.SIGTERM)
        out, errs = p.communicate(timeout=120)
        self.assertEqual(p.returncode, EXIT_REQUEUE, out[-2000:] + errs[-2000:])
        self.assertIn("stopped by signal", out)
        last = max(step_losses(d))
        ckpt = os.path.join(d, "checkpoints", f"ckpt-{last:08d}.safetensors")
        self.assertTrue(os.path.exists(ckpt), f"no checkpoint at the last step {last}")
        r = self.train(d, f"train.max_steps={last + 1}")
        self.assertIn(f"ckpt-{last:08d}", r.stdout)

    def test_kill9_during_checkpoint_writes_never_breaks_resume(self):
        d = self.run_dir("kill9")
        rng = random.Random(11)
        resumed = 0
        for trial in range(12):
            p = subprocess.Popen([BIN, "train", self.config, f"train.run_dir={d}", "train.max_steps=100000",
                                  "train.checkpoint_every=1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, OMP_NUM_THREADS="1"))
            time.sleep(rng.uniform(0.3, 2.0))
            p.kill()
            p.wait()
            had = glob.glob(os.path.join(d, "checkpoints", "ckpt-*.safetensors"))
            r = self.train(d, "train.max_steps=1")  # resume and stop at once: must find an intact checkpoint
            if had:
                self.assertIn("resume:", r.stdout)
                resumed += 1
        self.assertGreater(resumed, 6, "too few trials got far enough to have written a checkpoint")
        self.assertEqual(glob.glob(os.path.join(d, "checkpoints", "*.tmp.*")), [], "stale temporaries remain")
        print(f"kill -9: {resumed} of 12 trials resumed from an intact checkpoint")

    def test_damaged_newest_checkpoint_falls_back(self):
        d = self.run_dir("damaged")
        self.train(d, "train.max_steps=3", "train.checkpoint_every=1")
        newest = os.path.join(d, "checkpoints", "ckpt-00000003.safetensors")
        with open(newest, "r+b") as f:
            f.seek(-100, os.SEEK_END)
            f.write(b"\x00" * 50)
        r = self.train(d, "train.max_steps=4")
        self.assertIn("skipping damaged checkpoint", r.stderr)
        self.assertIn("ckpt-00000002", r.stdout)

    def test_bad_yaml_names_the_line(self):
        bad = os.path.join(self.tmp, "bad.yaml")
        with open(self.config) as f, open(bad, "w") as g:
            g.write(f.read().replace("  lr: 1e-3", "  lr: fast"))
        r = run(["train", bad, f"train.run_dir={self.run_dir('bad')}"])
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"{bad}:15:7: train.lr: expected a number, got 'fast'", r.stderr)

    def test_missing_store_is_a_clear_error(self):
        r = run(["train", self.config, f"train.run_dir={self.run_dir('nostore')}", "train.store=/nonexistent/st"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("/nonexistent/st", r.stderr)

    def test_resume_with_a_different_config_is_refused(self):
        d = self.run_dir("changed")
        self.train(d, "train.max_steps=2")
        r = run(["train", self.config, f"train.run_dir={d}", "train.max_steps=3", "train.lr=0.5",
                 "augment.p_rotation=0.3", "loader.workers=2"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("different configuration", r.stderr)
        # every key that differs is named with both values; what may change (max_steps, workers) is not
        self.assertIn("train.lr: 0.001 in the checkpoint, 0.5 now", r.stderr)
        self.assertIn("augment.p_rotation: 0.2 in the checkpoint, 0.3 now", r.stderr)
        self.assertNotIn("max_steps", r.stderr)
        self.assertNotIn("loader.workers", r.stderr)
        self.assertTrue(os.path.exists(os.path.join(d, "checkpoints", "ckpt-00000002.safetensors")), "nothing lost")

    def test_loader_settings_may_change_on_resume(self):
        # workers and prefetch change how batches are made, never what they hold: a resume with
        # other values is accepted and ends where a straight run does, bit for bit
        straight, resumed = self.run_dir("loader_straight"), self.run_dir("loader_resumed")
        self.train(straight, "train.max_steps=3")
        self.train(resumed, "train.max_steps=2")
        r = self.train(resumed, "train.max_steps=3", "loader.workers=2", "loader.prefetch=3")
        self.assertIn("resume:", r.stdout)
        name = "ckpt-00000003.safetensors"
        self.assert_same_checkpoint(os.path.join(straight, "checkpoints", name),
                                    os.path.join(resumed, "checkpoints", name))

    def test_checkpoint_without_newer_keys_resumes(self):
        # a checkpoint written before predict.step existed stores a config without it: the
        # default fills it in and the run resumes
        d = self.run_dir("old_version")
        self.train(d, "train.max_steps=2")
        path = os.path.join(d, "checkpoints", "ckpt-00000002.safetensors")
        config = load_meta(path)["config"]
        old = re.sub(r"predict:\n  step: [^\n]*\n", "", config)
        self.assertNotEqual(old, config, "the stored config has a predict section to remove")

        def to_old(meta):  # such a checkpoint was written by format version 1, before meta_crc32
            meta["config"] = old
            as_version_1(meta)
        rewrite_meta(path, to_old)
        r = self.train(d, "train.max_steps=3")
        self.assertIn("resume: " + path, r.stdout)
        self.assertTrue(os.path.exists(os.path.join(d, "checkpoints", "ckpt-00000003.safetensors")))

    # ---- hostile input (issue 16): fail fast, name the file and field, never spin ----

    def refused(self, args, timeout=60):
        """Runs train expecting a quick refusal; a hang (the old spin at 100% CPU) fails the test."""
        t0 = time.monotonic()
        try:
            r = run(args, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail(f"train {args} still running after {timeout} s: it should have been refused")
        self.assertEqual(r.returncode, 2, r.stdout[-2000:] + r.stderr[-2000:])
        return r, time.monotonic() - t0

    def test_position_beyond_the_epoch_is_refused(self):
        # a version-1 checkpoint (metadata not covered by a checksum) whose data position is past
        # the end of the epoch: the resume used to loop forever without training or logging
        d = self.run_dir("beyond")
        self.train(d, "train.max_steps=2")
        path = os.path.join(d, "checkpoints", "ckpt-00000002.safetensors")

        def beyond(meta):
            meta["epoch_step"] = "9999"
            as_version_1(meta)
        rewrite_meta(path, beyond)
        before = sorted(os.listdir(os.path.join(d, "checkpoints")))
        r, took = self.refused(["train", self.config, f"train.run_dir={d}", "train.max_steps=4"])
        self.assertIn(path, r.stderr)
        self.assertIn("epoch_step = 9999 is not below the", r.stderr)
        self.assertLess(took, 30)
        self.assertEqual(before, sorted(os.listdir(os.path.join(d, "checkpoints"))), "nothing written or removed")

        def inconsistent(meta):  # within the epoch, but step does not follow from epoch and epoch_step
            meta["epoch_step"] = "1"
            meta["step"] = meta["adam_step"] = "7"
        rewrite_meta(path, inconsistent)
        r, _ = self.refused(["train", self.config, f"train.run_dir={d}", "train.max_steps=9"])
        self.assertIn(f"{path}: step = 7 does not match epoch = 0 and epoch_step = 1", r.stderr)

    def test_flipped_metadata_bit_is_detected(self):
        # one bit of epoch_step flipped in a current checkpoint: the metadata checksum catches it,
        # --resume auto falls back to the previous checkpoint, an explicit --resume is refused
        d = self.run_dir("metaflip")
        self.train(d, "train.max_steps=3", "train.checkpoint_every=1")
        path = os.path.join(d, "checkpoints", "ckpt-00000003.safetensors")
        with open(path, "r+b") as f:
            head = f.read(65536)
            at = head.index(b'"epoch_step"') + len(b'"epoch_step"')
            while not head[at:at + 1].isdigit():
                at += 1
            f.seek(at)
            f.write(bytes([head[at] ^ 1]))
        r, _ = self.refused(["train", self.config, f"train.run_dir={d}", "train.max_steps=4", "--resume", path])
        self.assertIn(f"{path}: metadata checksum mismatch", r.stderr)
        r = self.train(d, "train.max_steps=4")
        self.assertIn("skipping damaged checkpoint", r.stderr)
        self.assertIn("ckpt-00000002", r.stdout)

    def test_store_prepared_again_with_fewer_slices_is_refused(self):
        # the same store path, prepared again from fewer cases: the stored position no longer fits
        tmp = tempfile.mkdtemp(prefix="unet-shrink-", dir=self.tmp)
        raw, store = os.path.join(tmp, "raw"), os.path.join(tmp, "store")

        def prepare(cases, depth):
            shutil.rmtree(raw, ignore_errors=True)
            shutil.rmtree(store, ignore_errors=True)
            for cmd in (["synth", "--out", raw, "--seed", "3", "--cases", str(cases), "--size", "32..40", "--depth",
                         depth],
                        ["prepare", "synapse", "--src", raw, "--split", os.path.join(raw, "split.txt"), "--out", store,
                         "--quiet"]):
                r = subprocess.run([BIN, *cmd], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
        prepare(6, "8..8")
        d = self.run_dir("shrunk")
        r = run(["train", self.config, f"train.run_dir={d}", f"train.store={store}", "train.max_steps=5"])
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        spe = int(re.search(r"(\d+) steps per epoch", r.stdout).group(1))
        prepare(4, "4..4")
        r, took = self.refused(["train", self.config, f"train.run_dir={d}", f"train.store={store}",
                                "train.max_steps=9"])
        self.assertIn("ckpt-00000005.safetensors", r.stderr)
        self.assertRegex(r.stderr, r"(epoch_step|step) = \d+ (is not below|does not match)")
        self.assertIn("prepared again", r.stderr)
        self.assertLess(took, 30)
        print(f"store of {spe} steps per epoch shrunk: resume refused in {took:.1f} s")

    def test_missing_split_is_refused_at_start(self):
        # a validation split the store lacks used to fail only after a whole epoch
        for key in ("train.val_split", "train.train_split"):
            d = self.run_dir("nosplit")
            r, took = self.refused(["train", self.config, f"train.run_dir={d}", f"{key}=nosuch"])
            self.assertIn(f"{key} = 'nosuch': the store has no such split; its splits: train (", r.stderr)
            self.assertIn("test (", r.stderr)
            self.assertLess(took, 30)
            self.assertEqual(glob.glob(os.path.join(d, "checkpoints", "*")), [], "no checkpoint written")

    def test_fifo_as_config_or_checkpoint_is_refused(self):
        fifo = os.path.join(self.tmp, "in.fifo")  # not a run_dir name: run_dir() removes its path
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        r, _ = self.refused(["train", fifo, f"train.run_dir={self.run_dir('fifo')}"], timeout=20)
        self.assertIn(f"{fifo}: is a FIFO (named pipe), not a regular file", r.stderr)
        r, _ = self.refused(["train", self.config, f"train.run_dir={self.run_dir('fifo')}", "--resume", fifo],
                            timeout=20)
        self.assertIn(f"{fifo}: is a FIFO (named pipe), not a regular file", r.stderr)


if __name__ == "__main__":
    main(HAVE_MPI)
