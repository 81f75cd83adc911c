#!/usr/bin/python3
"""slurm/gather.py RUNS_ROOT [--csv PATH] [--md PATH]

The summary table of a sweep (slurm/sweep.py): one row per point of RUNS_ROOT/points.tsv, from
the point's run directory: best EMA pseudo-Dice over its validations and the step it was seen
at, the last step trained, validations run, and the job's state (jobs/common.sh writes
job_status.json: running, requeued, done, failed, gave_up; "not started" when absent).
Writes RUNS_ROOT/summary.csv and RUNS_ROOT/summary.md (atomically) unless told otherwise and
prints the Markdown table. Also RUNS_ROOT/sweep.png (matplotlib): the best EMA pseudo-Dice of each
dataset against the resolution (each seed a dot, the line through their mean); without matplotlib,
or when nothing has validated yet, one warning and no picture (the exit status is unaffected). Exit status: 0 every point done, 3 some point not done (the tables
are still written), 2 RUNS_ROOT is not a sweep.
"""
import csv
import io
import json
import os
import re
import sys

from sweep import write_atomic  # slurm/sweep.py, beside this file

COLUMNS = ["point", "dataset_config", "overrides", "status", "exit", "restarts", "steps", "validations",
           "best_ema_pseudo_dice", "best_step", "last_pseudo_dice", "run_dir"]


def read_points(root):
    path = os.path.join(root, "points.tsv")
    points = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 6:
                raise ValueError(f"{path}:{n}: expected 6 tab-separated fields, got {len(parts)}")
            points.append(dict(zip(["index", "name", "config", "store", "run_dir", "overrides"], parts)))
    return points


def summarise(p):
    row = {"point": p["name"], "dataset_config": os.path.basename(p["config"]), "overrides": p["overrides"],
           "run_dir": p["run_dir"], "status": "not started", "exit": "", "restarts": "", "steps": 0,
           "validations": 0, "best_ema_pseudo_dice": "", "best_step": "", "last_pseudo_dice": ""}
    try:
        with open(os.path.join(p["run_dir"], "job_status.json")) as f:
            st = json.load(f)
        row.update(status=st.get("state", "?"), exit=st.get("exit", ""), restarts=st.get("restarts", ""))
    except (OSError, ValueError):
        pass
    best = None
    try:
        with open(os.path.join(p["run_dir"], "metrics.jsonl")) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill: the rest is still good
                row["steps"] = max(row["steps"], int(r.get("step", 0)))
                if r.get("kind") == "val":
                    row["validations"] += 1
                    row["last_pseudo_dice"] = f"{r['pseudo_dice']:.4f}"
                    if best is None or r["ema"] > best[0]:
                        best = (r["ema"], r["step"])
    except OSError:
        pass
    if best:
        row["best_ema_pseudo_dice"], row["best_step"] = f"{best[0]:.4f}", best[1]
    return row


def resolution_of(row):
    """The crop side of a point: network.crop=[r,r] in its overrides, else <dataset>-<r>-s<seed>."""
    m = re.search(r"network\.crop=\[(\d+)", row["overrides"]) or re.search(r"-(\d+)-s\d+$", row["point"])
    return int(m.group(1)) if m else None


def dataset_of(row):
    m = re.match(r"(.+)-\d+-s\d+$", row["point"])
    return m.group(1) if m else os.path.splitext(row["dataset_config"])[0]


def write_sweep_plot(rows, path):
    """Best EMA pseudo-Dice per dataset against resolution; returns a warning or None."""
    pts = {}
    for r in rows:
        res = resolution_of(r)
        if res is not None and r["best_ema_pseudo_dice"] != "":
            pts.setdefault(dataset_of(r), {}).setdefault(res, []).append(float(r["best_ema_pseudo_dice"]))
    if not pts:
        return "no point has validated yet: no sweep.png"
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        return f"matplotlib unavailable ({e}): no sweep.png"
    fig, ax = plt.subplots(figsize=(8, 5))
    for ds, by_res in sorted(pts.items()):
        xs = sorted(by_res)
        line, = ax.plot(xs, [sum(by_res[x]) / len(by_res[x]) for x in xs], marker="o", label=ds)
        for x in xs:
            ax.scatter([x] * len(by_res[x]), by_res[x], color=line.get_color(), s=12, alpha=0.6)
    ax.set_xlabel("resolution (crop side, pixels)")
    ax.set_ylabel("best EMA pseudo-Dice")
    ax.set_xticks(sorted({x for by_res in pts.values() for x in by_res}))
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp.{os.getpid()}.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return None


def to_markdown(rows):
    cols = [c for c in COLUMNS if c != "run_dir"]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    out += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(out) + "\n"


def main(argv):
    args = list(argv)
    opts = {"--csv": None, "--md": None}
    for k in opts:
        if k in args:
            i = args.index(k)
            if i + 1 >= len(args):
                print(f"gather: {k} needs a path", file=sys.stderr)
                return 1
            opts[k] = args.pop(i + 1)
            args.pop(i)
    if len(args) != 1:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 1
    root = args[0]
    try:
        points = read_points(root)
    except (OSError, ValueError) as e:
        print(f"gather: error: {root} is not a sweep ({e})", file=sys.stderr)
        return 2
    rows = [summarise(p) for p in points]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    md = to_markdown(rows)
    write_atomic(opts["--csv"] or os.path.join(root, "summary.csv"), buf.getvalue())
    write_atomic(opts["--md"] or os.path.join(root, "summary.md"), md)
    sys.stdout.write(md)
    try:
        warning = write_sweep_plot(rows, os.path.join(root, "sweep.png"))
    except Exception as e:  # a picture must never fail the summary
        warning = f"sweep.png not drawn: {e}"
    if warning:
        print(f"gather: warning: {warning}", file=sys.stderr)
    return 0 if all(r["status"] == "done" for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
