#!/usr/bin/python3
"""The Slurm job scripts on a real (single-node, private) Slurm from Debian's packages, brought up
by tests/slurm/start_slurm.sh: the real jobs/synapse_320.sh (tiny network overrides, phantom
store, CPU backend, 2 ranks via mpirun) is preempted after its first checkpoint, requeues
itself, resumes and ends with a checkpoint bitwise identical to an uninterrupted run; a
2 datasets × 2 resolutions sweep runs as one job array and gathers its summary table; bad site
settings fail at submission or at job start with a clear message.

Exit 77 (skipped, reason printed) when Slurm or munge is not installed or we are not root;
daemons that are installed but do not come up are a failure. The preemption test (2 ranks through
mpirun) is skipped when unet2022 is built without MPI (mpi_cases.py)."""
import csv
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
from safetensors.numpy import load_file

from mpi_cases import have_mpi, main, needs_mpi

BIN = os.path.abspath(os.environ.get("UNET2022_BIN", "build/unet2022"))
HAVE_MPI = have_mpi(BIN)
SRC = os.path.abspath(os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", "..")))
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
# A tiny UNet-2022 on 32x32 crops instead of the recipe's network (renames no parameter but
# changes every shape: fine for a test of the job machinery). Order matters: each override is
# validated on its own (heads must divide the width when embed_dim changes).
TINY = ["network.preset=custom", "network.heads=[1,1,2,2]", "network.embed_dim=8", "network.windows=[4,2,2,1]",
        "network.crop=[32,32]", "train.batch_size=4", "train.val_split=test", "train.val_max_slices=4",
        "train.log_every=1", "loader.workers=1", "train.epochs=100000"]
PREEMPT_STEPS = int(os.environ.get("UNET2022_PREEMPT_STEPS", "800"))  # about 10 s on the CPU: the
# preemption lands well before the end
# The backend the preemption test trains on: cpu, or cuda when run with the CPU emulator's binary
# (tests/CMakeLists.txt: emu_slurm_preempt_cuda), which takes the job scripts' GPU branch.
BACKEND = os.environ.get("UNET2022_BACKEND", "cpu")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(77)


class Slurm(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="unet-slurm-")
        cls.sdir = os.path.join(cls.tmp, "slurm")
        env = dict(os.environ, UNET_SLURM_CTLD_PORT=str(free_port()), UNET_SLURM_SLURMD_PORT=str(free_port()))
        t0 = time.time()
        r = subprocess.run(["bash", os.path.join(SRC, "tests/slurm/start_slurm.sh"), cls.sdir], env=env,
                           capture_output=True, text=True, timeout=120)
        cls.started = r.returncode == 0
        assert r.returncode == 0, f"start_slurm.sh exit {r.returncode}:\n{r.stderr[-4000:]}"
        print(f"slurm up in {time.time() - t0:.1f} s", flush=True)
        conf = os.path.join(cls.sdir, "etc", "slurm.conf")
        # Everything a job needs travels in the submitting environment (sbatch --export=ALL).
        cls.env = dict(os.environ, SLURM_CONF=conf, UNET_BIN=BIN, UNET_GPUS_PER_NODE="0",
                       UNET_CPUS_PER_TASK="1", OMP_NUM_THREADS="1", **MPI_ENV)
        for k in ("UNET_PARTITION", "UNET_STORE", "UNET_RUN_DIR", "UNET_SWEEP_POINTS", "SBATCH_PARTITION"):
            cls.env.pop(k, None)
        cls.stores = []
        for seed in (3, 5):
            raw, store = os.path.join(cls.tmp, f"raw{seed}"), os.path.join(cls.tmp, f"store{seed}")
            r = subprocess.run([BIN, "synth", "--out", raw, "--seed", str(seed), "--cases", "4", "--size", "32..40",
                                "--depth", "6..8"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            r = subprocess.run([BIN, "prepare", "synapse", "--src", raw, "--split", os.path.join(raw, "split.txt"),
                                "--out", store, "--quiet"], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            cls.stores.append(store)

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["bash", os.path.join(SRC, "tests/slurm/stop_slurm.sh"), cls.sdir], timeout=60)
        if not os.environ.get("UNET_TEST_KEEP"):  # keep the logs and run directories for a post-mortem
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def sh(self, cmd, env=None, timeout=60):
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or self.env)

    def submit(self, script, *args, env=None, opts=()):
        r = self.sh([os.path.join(SRC, "slurm/submit.sh"), *opts, os.path.join(SRC, "jobs", script), *args], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def jobs(self, job):
        """scontrol's view of a job (one dict per array task)."""
        r = self.sh(["scontrol", "show", "job", "-o", job])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = []
        for line in r.stdout.splitlines():
            d = {}
            for tok in line.split():
                k, _, v = tok.partition("=")
                d.setdefault(k, v)
            out.append(d)
        return out

    def wait_for(self, what, cond, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        self.fail(f"timed out after {timeout} s waiting for {what}")

    def wait_done(self, job, timeout):
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                 "DEADLINE", "PREEMPTED"}
        return self.wait_for(f"job {job} to end", lambda: (lambda js: js if js and all(
            j["JobState"] in final for j in js) else None)(self.jobs(job)), timeout)

    def read(self, path):
        with open(path) as f:
            return f.read()

    # ---- the tests ----
    @needs_mpi(HAVE_MPI)
    def test_preempted_job_requeues_and_resumes_exactly(self):
        run_dir, log = os.path.join(self.tmp, "preempt"), os.path.join(self.tmp, "preempt-%j.out")
        args = TINY + [f"train.max_steps={PREEMPT_STEPS}", "train.checkpoint_every=5", "train.val_every=20"]
        env = dict(self.env, UNET_STORE=self.stores[0], UNET_RUN_DIR=run_dir, UNET_TASKS_PER_NODE="2",
                   UNET_LAUNCHER="mpirun", UNET_MPIRUN_ARGS="--oversubscribe", UNET_BACKEND=BACKEND)
        t0 = time.time()
        job = self.submit("synapse_320.sh", *args, env=env, opts=[f"--output={log}"])
        log = log.replace("%j", job)
        # any step checkpoint (keep_last prunes the oldest, so do not wait for one by name)
        self.wait_for("the first checkpoint", lambda: glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*")), 120)
        # what Slurm does ahead of the time limit with --signal=B:USR1@...: signal the batch shell
        r = self.sh(["scancel", "--signal=USR1", "--batch", job])
        self.assertEqual(r.returncode, 0, r.stderr)
        j = self.wait_for("the job to requeue itself", lambda: (lambda d: d if d["JobState"] == "PENDING"
                          and d["Restarts"] == "1" else None)(self.jobs(job)[0]), 60)
        status = json.loads(self.read(os.path.join(run_dir, "job_status.json")))
        self.assertEqual(status["state"], "requeued")
        text = self.read(log)
        self.assertIn("stopped by signal at step", text)
        stopped_at = int(text.split("stopped by signal at step ")[1].split(";")[0])
        self.assertLess(stopped_at, PREEMPT_STEPS, "the preemption came too late to test anything")
        # Slurm holds a requeued job back (BeginTime = requeue + 120 s) before it may start again;
        # the test does not wait that out: it moves the start time to now while the job pends,
        # though not within the same second as the requeue (slurmd refuses a launch credential
        # dated the second its previous incarnation was revoked: "Job credential revoked").
        time.sleep(3)
        def released():
            d = self.jobs(job)[0]
            if d["JobState"] == "PENDING":
                self.sh(["scontrol", "update", f"JobId={job}", "StartTime=now"])
                return None
            return d
        self.wait_for("the requeued job to start again", released, 60)

        # the uninterrupted run: same binary, config, overrides and 2 ranks, no Slurm, no stop
        straight = os.path.join(self.tmp, "straight")
        ref = subprocess.run(["mpirun", "-np", "2", "--oversubscribe", BIN, "train",
                              os.path.join(SRC, "configs/synapse_320.yaml"), f"train.store={self.stores[0]}",
                              f"train.run_dir={straight}", f"train.backend={BACKEND}", "train.threads=1", *args],
                             capture_output=True, text=True, timeout=600, env=self.env)
        self.assertEqual(ref.returncode, 0, ref.stdout[-2000:] + ref.stderr[-2000:])

        (j,) = self.wait_done(job, 300)
        elapsed = time.time() - t0
        self.assertEqual((j["JobState"], j["ExitCode"], j["Restarts"]), ("COMPLETED", "0:0", "1"), self.read(log)[-3000:])
        text = self.read(log)
        self.assertIn(f"resume: {run_dir}/checkpoints/ckpt-{stopped_at:08d}.safetensors (step {stopped_at}", text)
        self.assertIn(f"done: step {PREEMPT_STEPS}", text)
        self.assertIn(f"backend {BACKEND}", text)  # jobs/common.sh's start line: the branch taken
        self.assertEqual(json.loads(self.read(os.path.join(run_dir, "job_status.json")))["state"], "done")
        name = f"checkpoints/ckpt-{PREEMPT_STEPS:08d}.safetensors"
        a, b = load_file(os.path.join(run_dir, name)), load_file(os.path.join(straight, name))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, k)
            self.assertTrue(np.array_equal(a[k].view(np.uint8), b[k].view(np.uint8)), f"{k} differs")
        print(f"{BACKEND}: preempted at step {stopped_at}, requeued, resumed, {PREEMPT_STEPS} steps: {len(a)} tensors "
              f"bitwise equal to the uninterrupted run (job {elapsed:.1f} s)", flush=True)

    def test_sweep_runs_as_one_array_and_gathers_a_summary(self):
        root = os.path.join(self.tmp, "sweep")
        desc = os.path.join(self.tmp, "sweep.yaml")
        with open(desc, "w") as f:
            json.dump({"name": "tiny", "runs_root": root,
                       "datasets": {"phantomA": {"config": "configs/synapse_224.yaml", "store": self.stores[0]},
                                    "phantomB": {"config": "configs/synapse_224.yaml", "store": self.stores[1]}},
                       "resolutions": [32, 64], "seeds": [1],
                       "overrides": TINY[:4] + TINY[5:] + ["train.max_steps=30", "train.val_every=1"]}, f)
        t0 = time.time()
        # srun (PMIx), the scripts' default launcher, with one rank per point
        env = dict(self.env, UNET_TASKS_PER_NODE="1")
        r = self.sh(["/usr/bin/python3", os.path.join(SRC, "slurm/sweep.py"), desc], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = r.stdout.strip()
        tasks = self.wait_done(job, 240)
        self.assertEqual(len(tasks), 4)
        self.assertEqual({t["ArrayJobId"] for t in tasks}, {job}, "one job array")
        self.assertEqual(sorted(t["ArrayTaskId"] for t in tasks), ["0", "1", "2", "3"])
        for t in tasks:
            self.assertEqual((t["JobState"], t["ExitCode"]), ("COMPLETED", "0:0"), t)
        r = self.sh(["/usr/bin/python3", os.path.join(SRC, "slurm/gather.py"), root])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(root, "summary.csv")) as f:
            rows = list(csv.DictReader(f))
        names = ["phantomA-32-s1", "phantomA-64-s1", "phantomB-32-s1", "phantomB-64-s1"]
        self.assertEqual([x["point"] for x in rows], names)
        md = self.read(os.path.join(root, "summary.md"))
        for x in rows:
            self.assertEqual((x["status"], x["steps"]), ("done", "30"), x)
            self.assertEqual(x["run_dir"], os.path.join(root, x["point"]))
            # the best EMA pseudo-Dice, recomputed here from the run's own validation records
            with open(os.path.join(x["run_dir"], "metrics.jsonl")) as f:
                emas = [json.loads(l)["ema"] for l in f if '"kind":"val"' in l]
            self.assertEqual(int(x["validations"]), len(emas))
            self.assertEqual(x["best_ema_pseudo_dice"], f"{max(emas):.4f}")
            self.assertIn(f"| {x['point']} |", md)
            # each point trained at its own resolution and on its own store
            res = x["point"].split("-")[1]
            cfg = self.read(os.path.join(root, "logs", f"unet-tiny-{job}_{names.index(x['point'])}.out"))
            self.assertIn(f"crop: [{res}, {res}]", cfg)
            self.assertIn(self.stores[0 if "phantomA" in x["point"] else 1], cfg)
        print(f"sweep of 4 points as array {job}: {time.time() - t0:.1f} s\n{md}", flush=True)

    def test_bad_site_settings_fail_clearly(self):
        sub = os.path.join(SRC, "slurm/submit.sh")
        script = os.path.join(SRC, "jobs/synapse_320.sh")
        before = self.sh(["squeue", "-h", "-o", "%i"]).stdout
        r = self.sh([sub, script], env=dict(self.env, UNET_STORE=self.stores[0], UNET_PARTITION="nosuchpart"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("UNET_PARTITION: partition 'nosuchpart' does not exist on this cluster (partitions: debug)",
                      r.stderr)
        r = self.sh([sub, script], env=dict(self.env, UNET_STORE=os.path.join(self.tmp, "no-store")))
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"UNET_STORE: '{self.tmp}/no-store' is not a slice store", r.stderr)
        r = self.sh([sub, script])
        self.assertEqual(r.returncode, 2)
        self.assertIn("UNET_STORE is not set", r.stderr)
        self.assertEqual(self.sh(["squeue", "-h", "-o", "%i"]).stdout, before, "nothing was submitted")
        # plain sbatch, no wrapper: Slurm itself refuses the partition at submission ...
        r = self.sh(["sbatch", "-p", "nosuchpart", "--gpus-per-node=0", script])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("invalid partition", r.stderr.lower())
        # ... and a missing store stops the job before any rank starts
        log = os.path.join(self.tmp, "nostore-%j.out")
        run_dir = os.path.join(self.tmp, "nostore-run")
        r = self.sh(["sbatch", "--parsable", f"--output={log}", "--gpus-per-node=0", "--ntasks-per-node=1",
                     "--cpus-per-task=1", script],
                    env=dict(self.env, UNET_STORE="/nonexistent/store", UNET_RUN_DIR=run_dir, UNET_ROOT=SRC))
        self.assertEqual(r.returncode, 0, r.stderr)
        job = r.stdout.strip().split(";")[0]
        (j,) = self.wait_done(job, 60)
        self.assertEqual((j["JobState"], j["ExitCode"]), ("FAILED", "2:0"))
        text = self.read(log.replace("%j", job))
        self.assertIn("unet-job: error: UNET_STORE: '/nonexistent/store' is not a slice store", text)
        self.assertNotIn("resolved config", text, "training must not have started")
        self.assertFalse(os.path.exists(run_dir))


if __name__ == "__main__":
    if "--mpi-cases" in sys.argv[1:] and not HAVE_MPI:
        main(HAVE_MPI)  # reports them skipped before any Slurm comes up
    missing = [p for p in ("munged", "slurmctld", "slurmd", "sbatch") + (("mpirun",) if HAVE_MPI else ())
               if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]
    if missing:
        skip(f"not installed: {', '.join(missing)} (scripts/install-deps.sh installs slurmctld slurmd "
             "slurm-client munge)")
    if os.geteuid() != 0:
        skip("needs root to run its private slurmctld/slurmd/munged")
    main(HAVE_MPI)
