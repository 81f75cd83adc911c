"""Two data-parallel ranks choose the same kernel implementations (kernels/cuda/tune.h,
backend_cuda_tuning_agree): rank 0's timings decide, broadcast to every rank during the first
training step, and rank 0 writes them to RUN_DIR/kernels.tsv, which a resumed run reads.

The emulator never times (its timings mean nothing); UNET_EMU_TUNE_FAKE=SEED makes up times that
differ from rank to rank (tune.cu's tune_fake_ms), so the ranks' own fastest implementations differ
and only the agreement makes them run the same. Checked here, on 2 emulated cuda ranks in bf16 (where
window attention has three implementations):
- every (op, shape) got the same implementation on both ranks, and it is rank 0's fastest;
- for at least one (op, shape) rank 1's own fastest was another one (the agreement mattered);
- kernels.tsv holds exactly those choices; a resumed run times nothing and ends with the same
  weights on both ranks' (all-reduced) replicas as the checkpoint says.
A single rank with the same fake times takes its own fastest everywhere. Logic only, never a GPU run."""
import os
import re
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from emu_train_common import BIN, run, tiny_config  # noqa: E402

SEED = "11"  # made-up times under which the two ranks' fastest differ somewhere (asserted below)
LINE = re.compile(r"^kernels: (\S+) \[([^\]]*)\] -> (\S+) \((.*)\)$")
TIMES = re.compile(r"(\S+) ([0-9.]+) ms")


def choices(out):
    """{(op, shape): [(impl, rank or None, {impl: ms})]} from the tuner's lines."""
    got = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if not m:
            continue
        op, shape, impl, why = m.groups()
        r = re.match(r"timed on rank (\d+): (.*); rank 0's timings decide$", why)
        rank, times = (int(r.group(1)), r.group(2)) if r else (None, why)
        got.setdefault((op, shape), []).append((impl, rank, {k: float(v) for k, v in TIMES.findall(times)}))
    return got


def fastest(times):
    return min(times, key=lambda k: (times[k], list(times).index(k)))


def main():
    tmp = tempfile.mkdtemp(prefix="unet-emu-tune-")
    os.environ["UNET_EMU_TUNE_FAKE"] = SEED
    failures = []
    try:
        cfg = tiny_config(tmp)
        common = ["train.backend=cuda", "train.precision=bf16", "train.val_every=0"]

        two = os.path.join(tmp, "two")
        out2 = run([BIN, "train", cfg, f"train.run_dir={two}", "train.max_steps=2", *common], 2)
        got = choices(out2)
        timed = {k: v for k, v in got.items() if all(rank is not None for _, rank, _ in v)}
        if not timed:
            failures.append("no timed kernel choice on 2 ranks (expected 'timed on rank N' lines)")
        mattered = []
        for key, rows in sorted(timed.items()):
            ranks = {rank: (impl, times) for impl, rank, times in rows}
            if sorted(ranks) != [0, 1]:
                failures.append(f"{key}: lines from ranks {sorted(ranks)}, expected one from each of 0 and 1")
                continue
            impls = {impl for impl, _ in ranks.values()}
            if len(impls) != 1:
                failures.append(f"{key}: the ranks chose differently: {ranks}")
            if ranks[0][0] != fastest(ranks[0][1]):
                failures.append(f"{key}: chose {ranks[0][0]}, rank 0's fastest is {fastest(ranks[0][1])}")
            if fastest(ranks[1][1]) != ranks[1][0]:
                mattered.append(key)
        if timed and not mattered:
            failures.append(f"with UNET_EMU_TUNE_FAKE={SEED} rank 1's fastest never differed from rank 0's: "
                            "choose a seed under which the agreement matters")
        with open(os.path.join(two, "kernels.tsv")) as f:
            cached = {(op, shape): impl for op, shape, impl in (line.rstrip("\n").split("\t") for line in f)}
        for key, rows in timed.items():
            if cached.get(key) != rows[0][0]:
                failures.append(f"{key}: kernels.tsv says {cached.get(key)}, the ranks ran {rows[0][0]}")

        out_resumed = run([BIN, "train", cfg, f"train.run_dir={two}", "train.max_steps=3", "--resume", "auto",
                           *common], 2)
        again = {k for k, v in choices(out_resumed).items() if any(rank is not None for _, rank, _ in v)}
        if again:
            failures.append(f"the resumed run timed again instead of reading kernels.tsv: {sorted(again)[:3]}")

        one = os.path.join(tmp, "one")
        out1 = run([BIN, "train", cfg, f"train.run_dir={one}", "train.max_steps=1", *common])
        for key, rows in choices(out1).items():
            impl, rank, times = rows[0]
            if rank is not None or (times and impl != fastest(times)):
                failures.append(f"1 rank, {key}: chose {impl} ({rows[0]}), not its own fastest")

        print(f"2 ranks: {len(timed)} timed choices; rank 1's own fastest differed from the one run "
              f"for {len(mattered)}: {mattered[:4]}")
        if failures:
            print("FAIL:\n  " + "\n  ".join(failures))
            return 1
        print("ok")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
