#!/usr/bin/python3
"""The job scripts on a real THREE-NODE Slurm (Debian's packages) on one machine: each node a
slurmd in its own network and UTS namespace (tests/slurm/start_cluster.sh), so ranks on different
nodes all-reduce over TCP between the namespaces (10.250.0.0/24, which exists only inside them).

- jobs/synapse_320.sh with --nodes=2 (srun --mpi=pmix) and --nodes=3 (mpirun across the nodes):
  the final checkpoint equals, bit for bit, a one-node run with the same ranks and global batch;
  plus 1 node, for the step times per node count;
- a sweep (slurm/sweep.py) whose points each run on 2 nodes;
- preemption of a 2-node job: checkpoint, requeue, resume, bit-exact against the straight run;
- kill -9 of one rank mid-run: the job ends within a bounded time, requeues itself and resumes
  from the last good checkpoint (bit-exact again);
- a node lost mid-run (its slurmd and every process in its namespace killed) while the newest
  checkpoint is half-written: the job ends, is requeued onto the 2 nodes left (--nodes=2-3),
  skips the damaged checkpoint, resumes from the one before on the smaller world size with the
  same global batch, and finishes.

Exit 77 (skipped, reason printed) when not root or a tool is missing."""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
from safetensors.numpy import load_file

BIN = os.path.abspath(os.environ.get("UNET2022_BIN", "build/unet2022"))
SRC = os.path.abspath(os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", "..")))
CONFIG = os.path.join(SRC, "configs/synapse_320.yaml")
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_rmaps_base_oversubscribe": "1", "OMPI_MCA_btl_vader_single_copy_mechanism": "none"}
# the tiny network of tests/cli/test_slurm.py, global batch 6 (1, 2 or 3 ranks share it evenly)
TINY = ["network.preset=custom", "network.heads=[1,1,2,2]", "network.embed_dim=8", "network.windows=[4,2,2,1]",
        "network.crop=[32,32]", "train.batch_size=6", "train.val_split=test", "train.val_max_slices=4",
        "train.log_every=1", "loader.workers=1", "train.epochs=100000", "train.val_every=0"]
STEPS = int(os.environ.get("UNET2022_MN_STEPS", "300"))  # a few seconds: interruptions land well before the end
RUN = TINY + [f"train.max_steps={STEPS}", "train.checkpoint_every=5"]
TIMING_STEPS = 120
RESULTS = {}  # measured numbers, printed at the end


def skip(reason):
    print(f"SKIPPED: {reason}")
    sys.exit(77)


class MultiNode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="unet-mn-")
        cls.cdir = os.path.join(cls.tmp, "cluster")
        t0 = time.time()
        r = subprocess.run(["bash", os.path.join(SRC, "tests/slurm/start_cluster.sh"), cls.cdir],
                           capture_output=True, text=True, timeout=120)
        if r.returncode == 3:
            shutil.rmtree(cls.tmp, ignore_errors=True)
            skip(r.stderr.strip())
        cls.up = r.returncode == 0
        assert r.returncode == 0, f"start_cluster.sh exit {r.returncode}:\n{r.stderr[-4000:]}"
        exports = dict(re.findall(r"^export (\w+)='?([^'\n]*)'?$", r.stdout, re.M))
        cls.head, cls.node_ns = exports["UNET_MN_HEAD"], exports["UNET_MN_NS"].split()
        subnet = exports["UNET_MN_SUBNET"]
        RESULTS["cluster up"] = f"{time.time() - t0:.1f} s"
        print(f"3-node cluster up in {time.time() - t0:.1f} s ({cls.head}, {' '.join(cls.node_ns)})", flush=True)
        # Open MPI between the namespaces: TCP on the test's links only (oob: mpirun's daemons)
        net = {"OMPI_MCA_btl_tcp_if_include": subnet, "OMPI_MCA_oob_tcp_if_include": subnet}
        cls.env = dict(os.environ, SLURM_CONF=exports["SLURM_CONF"], UNET_BIN=BIN, UNET_GPUS_PER_NODE="0",
                       UNET_CPUS_PER_TASK="1", UNET_TASKS_PER_NODE="1", OMP_NUM_THREADS="1", **MPI_ENV, **net)
        for k in ("UNET_PARTITION", "UNET_STORE", "UNET_RUN_DIR", "UNET_SWEEP_POINTS", "SBATCH_PARTITION",
                  "UNET_NODES", "UNET_LAUNCHER"):
            cls.env.pop(k, None)
        raw, cls.store = os.path.join(cls.tmp, "raw"), os.path.join(cls.tmp, "store")
        for cmd in ([BIN, "synth", "--out", raw, "--seed", "3", "--cases", "4", "--size", "32..40", "--depth", "6..8"],
                    [BIN, "prepare", "synapse", "--src", raw, "--split", os.path.join(raw, "split.txt"), "--out",
                     cls.store, "--quiet"]):
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        cls.refs = {}

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["bash", os.path.join(SRC, "tests/slurm/stop_cluster.sh"), cls.cdir], timeout=120)
        if RESULTS:
            print("measured:\n  " + "\n  ".join(f"{k}: {v}" for k, v in RESULTS.items()), flush=True)
        if not os.environ.get("UNET_TEST_KEEP"):
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # ---- helpers ----
    def sh(self, cmd, env=None, timeout=60):
        """A Slurm client command, run in the head namespace (the controller's address exists only there)."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.head}", *cmd], capture_output=True, text=True,
                              timeout=timeout, env=env or self.env)

    def submit(self, env, *args, log):
        r = self.sh([os.path.join(SRC, "slurm/submit.sh"), f"--output={log}", os.path.join(SRC, "jobs/synapse_320.sh"),
                     *args], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        job = r.stdout.strip()
        return job, log.replace("%j", job)

    def job(self, job):
        r = self.sh(["scontrol", "show", "job", "-o", job])
        self.assertEqual(r.returncode, 0, r.stderr)
        d = {}
        for tok in r.stdout.split():
            k, _, v = tok.partition("=")
            d.setdefault(k, v)
        return d

    def wait_for(self, what, cond, timeout, every=0.05, job=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(every)
        info = ""
        if job:
            info = "\n" + self.sh(["scontrol", "show", "job", job]).stdout + self.sh(["sinfo", "-N"]).stdout
        self.fail(f"timed out after {timeout} s waiting for {what}{info}")

    def wait_done(self, job, timeout):
        final = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}
        return self.wait_for(f"job {job} to end", lambda: (lambda d: d if d["JobState"] in final else None)(
            self.job(job)), timeout, every=0.2, job=job)

    def wait_requeued(self, job, restarts, timeout):
        return self.wait_for(f"job {job} to requeue (restart {restarts})", lambda: (
            lambda d: d if d["JobState"] == "PENDING" and int(d["Restarts"]) >= restarts else None)(self.job(job)),
            timeout, job=job)

    def release(self, job):
        """Slurm holds a requeued job ~120 s (BeginTime); start it now (not in the requeue's second:
        slurmd refuses a credential dated the second the old one was revoked)."""
        time.sleep(3)
        def started():
            d = self.job(job)
            if d["JobState"] == "PENDING":
                self.sh(["scontrol", "update", f"JobId={job}", "StartTime=now"])
                return None
            return d
        return self.wait_for(f"requeued job {job} to start again", started, 90, every=0.3, job=job)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def env_for(self, run_dir, **kw):
        return dict(self.env, UNET_STORE=self.store, UNET_RUN_DIR=run_dir, **kw)

    def checkpoints(self, run_dir):
        return sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.safetensors")))

    def reference(self, ranks):
        """The one-node run: the same ranks and global batch under a plain mpirun, no Slurm, no namespace."""
        if ranks not in self.refs:
            d = os.path.join(self.tmp, f"ref{ranks}")
            env = {k: v for k, v in self.env.items() if not k.startswith("OMPI_MCA_") or k in MPI_ENV}
            r = subprocess.run(["mpirun", "-np", str(ranks), "--oversubscribe", BIN, "train", CONFIG,
                                f"train.store={self.store}", f"train.run_dir={d}", "train.threads=1", *RUN],
                               capture_output=True, text=True, timeout=600, env=env)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-2000:])
            self.refs[ranks] = d
        return self.refs[ranks]

    def assert_bitwise(self, run_dir, ranks, steps=STEPS):
        name = f"checkpoints/ckpt-{steps:08d}.safetensors"
        a, b = load_file(os.path.join(run_dir, name)), load_file(os.path.join(self.reference(ranks), name))
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, k)
            self.assertTrue(np.array_equal(a[k].view(np.uint8), b[k].view(np.uint8)), f"{k} differs")
        return len(a)

    def step_seconds(self, run_dir):
        """Median seconds per step over the run's epochs (metrics.jsonl epoch rows)."""
        rows = [json.loads(l) for l in self.read(os.path.join(run_dir, "metrics.jsonl")).splitlines()
                if '"kind":"epoch"' in l]
        per = []
        for a, b in zip(rows, rows[1:]):
            if b["step"] > a["step"]:
                per.append(b["seconds"] / (b["step"] - a["step"]))
        return float(np.median(per))

    def rank_pids(self, ns):
        out = []
        for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
            try:
                if os.readlink(f"/proc/{pid}/exe") == BIN:
                    out.append(int(pid))
            except OSError:
                pass
        return out

    # ---- the tests (run in name order; the node-loss test, which takes mn3 down, is last) ----
    def test_a_multinode_equals_one_node(self):
        times = {}
        for nodes, launcher in ((2, "srun"), (3, "mpirun"), (1, "srun")):
            d = os.path.join(self.tmp, f"nodes{nodes}")
            steps = STEPS if nodes > 1 else TIMING_STEPS
            args = RUN if nodes > 1 else TINY + [f"train.max_steps={steps}"]
            t0 = time.time()
            job, log = self.submit(self.env_for(d, UNET_NODES=str(nodes), UNET_LAUNCHER=launcher), *args,
                                   log=os.path.join(self.tmp, f"nodes{nodes}-%j.out"))
            j = self.wait_done(job, 300)
            text = self.read(log)
            self.assertEqual((j["JobState"], j["ExitCode"]), ("COMPLETED", "0:0"), text[-3000:])
            self.assertIn(f"train: {nodes} rank(s) x {6 // nodes} samples = global batch 6", text)
            self.assertIn(f", {launcher}, backend cpu", text)
            hosts = j["NodeList"]
            if nodes > 1:
                n = self.assert_bitwise(d, nodes)
                print(f"{nodes} nodes ({hosts}, {launcher}): {STEPS} steps, {n} tensors bitwise equal to "
                      f"{nodes} ranks on one node; job {time.time() - t0:.1f} s", flush=True)
            times[nodes] = self.step_seconds(d)
        RESULTS["CPU step time (1 rank/node, global batch 6, tiny net)"] = ", ".join(
            f"{n} node(s) {times[n] * 1000:.1f} ms" for n in sorted(times))

    def test_b_sweep_points_on_two_nodes(self):
        root = os.path.join(self.tmp, "sweep")
        desc = os.path.join(self.tmp, "sweep.yaml")
        with open(desc, "w") as f:
            json.dump({"name": "mn", "runs_root": root,
                       "datasets": {"phantom": {"config": "configs/synapse_224.yaml", "store": self.store}},
                       "resolutions": [32], "seeds": [1, 2],
                       "overrides": TINY[:4] + TINY[5:] + ["train.max_steps=12"]}, f)
        t0 = time.time()
        r = self.sh(["/usr/bin/python3", os.path.join(SRC, "slurm/sweep.py"), desc], env=dict(self.env, UNET_NODES="2"))
        self.assertEqual(r.returncode, 0, r.stderr)
        job = r.stdout.strip()
        for i in range(2):
            j = self.wait_done(f"{job}_{i}", 240)
            log = self.read(os.path.join(root, "logs", f"unet-mn-{job}_{i}.out"))
            self.assertEqual((j["JobState"], j["ExitCode"]), ("COMPLETED", "0:0"), log[-3000:])
            self.assertEqual(j["NumNodes"], "2")
            self.assertIn("train: 2 rank(s) x 3 samples = global batch 6", log)
        print(f"sweep of 2 points on 2 nodes each (array {job}): {time.time() - t0:.1f} s", flush=True)

    def test_c_preempted_two_node_job_resumes_exactly(self):
        d = os.path.join(self.tmp, "preempt")
        t0 = time.time()
        job, log = self.submit(self.env_for(d, UNET_NODES="2"), *RUN, log=os.path.join(self.tmp, "preempt-%j.out"))
        self.wait_for("the first checkpoint", lambda: self.checkpoints(d), 120)
        r = self.sh(["scancel", "--signal=USR1", "--batch", job])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.wait_requeued(job, 1, 60)
        text = self.read(log)
        self.assertIn("stopped by signal at step", text)
        stopped_at = int(text.split("stopped by signal at step ")[1].split(";")[0])
        self.assertLess(stopped_at, STEPS)
        self.release(job)
        j = self.wait_done(job, 300)
        text = self.read(log)
        self.assertEqual((j["JobState"], j["ExitCode"], j["Restarts"]), ("COMPLETED", "0:0", "1"), text[-3000:])
        self.assertIn(f"resume: {d}/checkpoints/ckpt-{stopped_at:08d}.safetensors (step {stopped_at}", text)
        n = self.assert_bitwise(d, 2)
        print(f"2 nodes: preempted at step {stopped_at}, requeued, resumed: {n} tensors bitwise equal to the "
              f"uninterrupted run (job {time.time() - t0:.1f} s)", flush=True)

    def test_d_kill9_of_one_rank_ends_the_job_and_resumes(self):
        d = os.path.join(self.tmp, "kill9")
        job, log = self.submit(self.env_for(d, UNET_NODES="2"), *RUN, log=os.path.join(self.tmp, "kill9-%j.out"))
        self.wait_for("two checkpoints", lambda: len(self.checkpoints(d)) >= 2, 120)
        pids = self.wait_for("the rank on mn2", lambda: self.rank_pids(self.node_ns[1]), 30)
        os.kill(pids[0], signal.SIGKILL)
        t_kill = time.time()
        self.wait_requeued(job, 1, 120)
        ended = time.time() - t_kill
        RESULTS["kill -9 of one rank -> job ended and requeued"] = f"{ended:.1f} s"
        text = self.read(log)
        self.assertIn("a rank or node was lost (exit 137", text)
        self.assertEqual(json.loads(self.read(os.path.join(d, "job_status.json")))["state"], "requeued")
        newest = self.checkpoints(d)[-1]
        self.release(job)
        j = self.wait_done(job, 300)
        text = self.read(log)
        self.assertEqual((j["JobState"], j["ExitCode"], j["Restarts"]), ("COMPLETED", "0:0", "1"), text[-3000:])
        self.assertIn(f"resume: {newest} ", text)
        n = self.assert_bitwise(d, 2)
        print(f"kill -9 of the rank on mn2: job ended and requeued in {ended:.1f} s, resumed from "
              f"{os.path.basename(newest)}: {n} tensors bitwise equal to the uninterrupted run", flush=True)

    def test_z_node_lost_requeues_onto_the_nodes_left(self):
        d = os.path.join(self.tmp, "nodeloss")
        job, log = self.submit(self.env_for(d, UNET_NODES="2-3"), *RUN, log=os.path.join(self.tmp, "nodeloss-%j.out"))
        self.wait_for("the job on 3 nodes", lambda: self.job(job)["NumNodes"] == "3" and self.job(job)[
            "JobState"] == "RUNNING", 60, every=0.2)
        self.wait_for("three checkpoints", lambda: len(self.checkpoints(d)) >= 3, 120)
        # mn3 dies: its slurmd, step daemon and rank, everything in its namespace
        t_loss = time.time()
        for pid in subprocess.run(["ip", "netns", "pids", self.node_ns[2]], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.wait_requeued(job, 1, 120)
        t_end = time.time() - t_loss
        self.wait_for("mn3 to be marked down", lambda: re.search(r"down", self.sh(
            ["sinfo", "-h", "-n", "mn3", "-o", "%t"]).stdout), 60, every=0.3)
        t_down = time.time() - t_loss
        # the newest checkpoint was being written when the node died: half of it is on disk
        ckpts = self.checkpoints(d)
        self.assertGreaterEqual(len(ckpts), 2)
        newest, previous = ckpts[-1], ckpts[-2]
        size = os.path.getsize(newest)
        with open(newest, "r+b") as f:
            f.truncate(size // 2)
        with open(os.path.join(d, "metrics.jsonl")) as f:
            lines_before = len(f.readlines())
        t_rel = time.time()
        self.release(job)

        def resumed():
            with open(os.path.join(d, "metrics.jsonl")) as f:
                return any('"kind":"step"' in l for l in f.readlines()[lines_before:])
        self.wait_for("training to resume", resumed, 120)
        t_resume = time.time() - t_loss
        j = self.wait_done(job, 300)
        text = self.read(log)
        self.assertEqual((j["JobState"], j["ExitCode"]), ("COMPLETED", "0:0"), text[-3000:])
        self.assertEqual(j["NumNodes"], "2", "requeued onto the 2 nodes left")
        self.assertNotIn("mn3", j["NodeList"])
        self.assertIn("skipping damaged checkpoint", text)
        self.assertIn(f"resume: {previous} ", text)
        self.assertIn("written by 3 rank(s), now 2", text)
        self.assertIn("train: 2 rank(s) x 3 samples = global batch 6", text)
        self.assertIn(f"done: step {STEPS}", text)
        RESULTS["node lost -> job ended and requeued"] = f"{t_end:.1f} s"
        RESULTS["node lost -> node marked down"] = f"{t_down:.1f} s"
        RESULTS["node lost -> training resumed on 2 nodes"] = (
            f"{t_resume:.1f} s ({t_resume - (t_rel - t_loss):.1f} s of it from the release, incl. the test's 3 s "
            f"pause; Slurm's own requeue hold, BeginTime +120 s, is skipped by the test)")
        print(f"node mn3 lost: job requeued after {t_end:.1f} s, mn3 down after {t_down:.1f} s; the half-written "
              f"{os.path.basename(newest)} skipped, resumed from {os.path.basename(previous)} on {j['NodeList']} "
              f"after {t_resume:.1f} s, finished {STEPS} steps", flush=True)


if __name__ == "__main__":
    if os.environ.get("UNET2022_WITH_MPI") == "0":
        skip("built without MPI (-DUNET_WITH_MPI=OFF): the multi-node jobs need it")
    missing = [p for p in ("munged", "slurmctld", "slurmd", "sbatch", "mpirun", "ip", "nsenter", "unshare")
               if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}") and not os.path.exists(f"/sbin/{p}")]
    if missing:
        skip(f"not installed: {', '.join(missing)} (scripts/install-deps.sh)")
    if os.geteuid() != 0:
        skip("needs root (network namespaces, a private slurmctld/slurmd/munged)")
    unittest.main(verbosity=2)
