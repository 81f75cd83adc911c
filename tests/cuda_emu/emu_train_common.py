"""What the emulated training tests share (test_train_nccl, test_train_graph, test_nccl_watchdog,
test_tune_agree): the binary, a command runner that stops the test on failure (under mpirun with
`ranks`), and the tiny synthetic store with the CPU training tests' tiny network config."""
import os
import shutil
import subprocess
import sys

BIN = os.environ.get("UNET2022_BIN", "build-emu/unet2022")
# the tiny network, store recipe and mpirun environment of the CPU training tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "cli"))
from test_train import CONFIG, HAVE_MPI, MPI_ENV  # noqa: E402,F401 (HAVE_MPI: for the tests that import it from here)


def run(cmd, ranks=0, timeout=900):
    """stdout then stderr of cmd; the test fails (exits) naming it when it fails."""
    if ranks:
        cmd = [shutil.which("mpirun") or "mpirun", "-np", str(ranks), "--oversubscribe"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, OMP_NUM_THREADS="1", **MPI_ENV))
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)} exited {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout + r.stderr


def tiny_config(tmp):
    """A 4-case synthetic store prepared under tmp and the tiny network's config for it; its path."""
    raw, store, cfg = os.path.join(tmp, "raw"), os.path.join(tmp, "store"), os.path.join(tmp, "tiny.yaml")
    run([BIN, "synth", "--out", raw, "--seed", "3", "--cases", "4", "--size", "32..40", "--depth", "6..8"])
    run([BIN, "prepare", "synapse", "--src", raw, "--split", os.path.join(raw, "split.txt"), "--out", store,
         "--quiet"])
    with open(cfg, "w") as f:
        f.write(CONFIG.format(store=store))
    return cfg
