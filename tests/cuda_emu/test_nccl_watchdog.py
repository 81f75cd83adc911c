"""The NCCL transport's watchdog (comm/comm_nccl.c) on the emulator's NCCL (NCCL over MPI for
several ranks, tests/cuda_emu/emu_libs.cpp): two ranks of `unet2022 train` on cuda under mpirun
--enable-recovery (so that the launcher does NOT end the survivor: the watchdog must).

- kill -9 of rank 1 mid-run: rank 0, blocked in a collective, sees the asynchronous error
  (ncclCommGetAsyncError: the emulator notices the dead peer), aborts the communicator and exits
  with status 76 within seconds;
- SIGSTOP of rank 1 (a hung peer, still alive: no error to see): rank 0 gives up when a
  collective has been incomplete for train.comm_timeout_s, and exits 76.
Both with the step captured as a CUDA graph (train.cuda_graph=on: the collectives replayed inside
it, watched through Comm.watch_begin/watch_queued) and, for the timeout, also launched eagerly.
Each rank's own exit status is written by a wrapper shell. Bounded: every wait has a deadline,
and every process started is killed on the way out."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(os.environ.get("UNET2022_BIN", "build-emu/unet2022"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_train_common import MPI_ENV, tiny_config  # noqa: E402

EXIT_COMM_LOST = 76


def steps_logged(run_dir):
    try:
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            return sum(1 for line in f if '"kind":"step"' in line)
    except OSError:
        return 0


def rank_pid(mark, rank):
    """The unet2022 process of this rank of this run (found by the run's marker variable)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{pid}/exe") != BIN:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if f"UNET_WD_MARK={mark}".encode() in env and f"OMPI_COMM_WORLD_RANK={rank}".encode() in env:
            return int(pid)
    return None


def scenario(tmp, cfg, name, sig, timeout_s, graph="on"):
    """Starts 2 ranks, sends `sig` to rank 1 after a few steps; returns (rank 0's status, its stderr,
    seconds from the signal to rank 0's exit)."""
    run_dir, status = os.path.join(tmp, name), os.path.join(tmp, f"{name}.status")
    os.makedirs(status)
    wrapper = f'"$@"; echo $? > {status}/rank$OMPI_COMM_WORLD_RANK'
    env = dict(os.environ, OMP_NUM_THREADS="1", UNET_WD_MARK=name, **MPI_ENV)
    err_path = os.path.join(tmp, f"{name}.err")
    with open(err_path, "w") as err:
        p = subprocess.Popen([shutil.which("mpirun") or "mpirun", "-np", "2", "--oversubscribe", "--enable-recovery",
                              "sh", "-c", wrapper, "sh", BIN, "train", cfg, f"train.run_dir={run_dir}",
                              "train.backend=cuda", "train.precision=fp32", f"train.comm_timeout_s={timeout_s}",
                              "train.max_steps=100000", "train.val_every=0", f"train.cuda_graph={graph}"],
                             stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
    victim = None
    try:
        deadline = time.time() + 180
        while steps_logged(run_dir) < 2 and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        if steps_logged(run_dir) < 2:
            sys.exit(f"FAIL: {name}: the run did not get going\n{open(err_path).read()[-3000:]}")
        victim = rank_pid(name, 1)
        if not victim:
            sys.exit(f"FAIL: {name}: rank 1 not found")
        os.kill(victim, sig)
        t0 = time.time()
        rank0 = os.path.join(status, "rank0")
        while not os.path.exists(rank0) and time.time() < t0 + timeout_s + 60:
            time.sleep(0.05)
        waited = time.time() - t0
        if not os.path.exists(rank0):
            sys.exit(f"FAIL: {name}: rank 0 still running {waited:.0f} s after rank 1 got signal {sig}: a hang\n"
                     f"{open(err_path).read()[-3000:]}")
        time.sleep(0.1)
        with open(rank0) as f:
            code = int(f.read().strip() or -1)
        return code, open(err_path).read(), waited
    finally:
        if victim:
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main():
    tmp = tempfile.mkdtemp(prefix="unet-emu-wd-")
    try:
        cfg = tiny_config(tmp)
        failures, results = [], {}
        # a dead peer: noticed as an asynchronous error, long before the (generous) timeout
        code, err, waited = scenario(tmp, cfg, "kill9", signal.SIGKILL, 60)
        results["kill -9 of rank 1 -> rank 0 exits"] = f"{waited:.2f} s, status {code}"
        if code != EXIT_COMM_LOST or "NCCL watchdog" not in err or waited > 30:
            failures.append(f"kill -9: rank 0 status {code} after {waited:.1f} s (want {EXIT_COMM_LOST} well "
                            f"within 60 s):\n{err[-2000:]}")
        elif "asynchronous NCCL error" not in err:
            failures.append(f"kill -9: the watchdog fired, but not on the asynchronous error:\n{err[-2000:]}")
        # a hung peer: nothing to see but time; the timeout decides (the message says so). Eagerly,
        # the clock starts when the collective that hangs is enqueued: 3 s. With a graph, it starts
        # when the step that holds it is launched (all of its collectives are enqueued then): on a
        # GPU that is milliseconds earlier, here a whole emulated step (seconds on a loaded
        # machine), so the timeout is 10 s and the verdict may come up to a step before it.
        for graph, timeout, low in (("off", 3, 2.5), ("on", 10, 0.0)):
            code, err, waited = scenario(tmp, cfg, f"stopped_graph_{graph}", signal.SIGSTOP, timeout, graph)
            results[f"SIGSTOP of rank 1 (timeout {timeout} s, graph {graph}) -> rank 0 exits"] = \
                f"{waited:.2f} s, status {code}"
            if code != EXIT_COMM_LOST or f"not complete after {timeout} s" not in err or not low < waited < timeout + 17:
                failures.append(f"SIGSTOP, graph {graph}: rank 0 status {code} after {waited:.1f} s (want "
                                f"{EXIT_COMM_LOST} after {low}..{timeout} s, 'not complete after {timeout} s'):\n"
                                f"{err[-2000:]}")
        print(json.dumps(results, indent=1))
        if failures:
            print("FAIL:\n  " + "\n  ".join(failures))
            return 1
        print("ok")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
