"""Training curves: RUN_DIR/progress.png after a run (src/train/progress_plot.c driving
scripts/plot_progress.py), a run that goes on with one warning when plotting is unavailable or
fails, and slurm/gather.py's sweep.png (best EMA pseudo-Dice per dataset against resolution)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from test_prepare_nnunet import TINY, TRAIN, write_dataset  # noqa: E402

BIN = os.environ.get("UNET2022_BIN", "build/unet2022")
SRC = os.environ.get("UNET2022_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))
PNG = b"\x89PNG\r\n\x1a\n"


def is_png(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return head == PNG and os.path.getsize(path) > 1000


class Plots(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_plots_")
        write_dataset(os.path.join(cls.tmp, "D"), 2, ("MRI",), shapes={n: (36, 34, 2) for n in TRAIN}, test=())
        cls.store = os.path.join(cls.tmp, "st")
        r = subprocess.run([BIN, "prepare", "nnunet", "--src", os.path.join(cls.tmp, "D"), "--out", cls.store,
                            "--quiet"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        cls.cfg = os.path.join(cls.tmp, "tiny.yaml")
        with open(cls.cfg, "w") as f:
            f.write(TINY.format(store=cls.store).replace("classes: 14", "classes: 3").replace("epochs: 1", "epochs: 3"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def train(self, name, env=None):
        d = os.path.join(self.tmp, name)
        r = subprocess.run([BIN, "train", self.cfg, "train.run_dir=" + d], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1", **(env or {})))
        return d, r

    def test_progress_png_after_run(self):
        d, r = self.train("run")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(is_png(os.path.join(d, "progress.png")))
        self.assertNotIn("warning: progress.png", r.stderr)
        # the script also draws by hand, to another file
        out = os.path.join(self.tmp, "again.png")
        p = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "scripts", "plot_progress.py"), d, "--out", out],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(is_png(out))

    def test_plotting_unavailable_or_failing_never_fails_the_run(self):
        for name, env, why in (("noscript", {"UNET2022_PLOT_SCRIPT": "/nonexistent/plot.py"}, "/nonexistent/plot.py"),
                               ("failing", {"UNET2022_PYTHON": "/bin/false"}, "failed")):
            d, r = self.train(name, env)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stderr.count("warning: progress.png will not be drawn"), 1, r.stderr)
            self.assertIn(why, r.stderr)
            self.assertFalse(os.path.exists(os.path.join(d, "progress.png")))

    def test_gather_sweep_png(self):
        root = os.path.join(self.tmp, "sweep")
        lines = []
        for i, (ds, res, seed, ema) in enumerate([("synapse", 224, 1, 0.70), ("synapse", 320, 1, 0.78),
                                                  ("synapse", 320, 2, 0.76), ("acdc", 224, 1, 0.88),
                                                  ("acdc", 320, 1, 0.90)]):
            name = f"{ds}-{res}-s{seed}"
            rd = os.path.join(root, name)
            os.makedirs(rd)
            with open(os.path.join(rd, "metrics.jsonl"), "w") as f:
                for k, e in enumerate((ema - 0.1, ema)):
                    f.write(json.dumps({"kind": "val", "step": 10 * (k + 1), "epoch": k + 1, "pseudo_dice": e,
                                        "ema": e}) + "\n")
            lines.append("\t".join([str(i), name, f"configs/{ds}.yaml", "st", rd, f"network.crop=[{res},{res}]"]))
        with open(os.path.join(root, "points.tsv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "slurm", "gather.py"), root], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 3, r.stderr)  # no job_status.json: "not started", still summarised
        self.assertTrue(is_png(os.path.join(root, "sweep.png")))
        self.assertIn("| synapse-320-s1 |", r.stdout)


if __name__ == "__main__":
    unittest.main()
