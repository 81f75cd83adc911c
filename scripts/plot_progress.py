#!/usr/bin/python3
"""plot_progress.py RUN_DIR [--out PNG]: RUN_DIR/progress.png from RUN_DIR/metrics.jsonl, like
nnU-Net's progress.png: per epoch the training loss (left axis) and the validation pseudo-Dice
and its EMA (right axis); the learning rate in a second panel. The trainer runs it on rank 0
after each validation (src/train/progress_plot.c) and never waits for it; it can also be run by
hand on any run directory. Written atomically (a temporary file renamed into place).
Exit status: 0 drawn, 1 usage, 2 nothing to draw or an error.
"""
import json
import os
import sys


def read_metrics(path):
    epochs, vals = {}, []
    with open(path) as f:
        for line in f:
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if r.get("kind") == "epoch":
                epochs[r["epoch"]] = r
            elif r.get("kind") == "val":
                vals.append(r)
    return [epochs[e] for e in sorted(epochs)], vals


def draw(epochs, vals, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axlr) = plt.subplots(2, 1, figsize=(10, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([e["epoch"] for e in epochs], [e["loss"] for e in epochs], color="b", ls="-", label="loss_tr")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot([v["epoch"] for v in vals], [v["pseudo_dice"] for v in vals], color="g", ls=":", marker=".",
             label="pseudo dice")
    ax2.plot([v["epoch"] for v in vals], [v["ema"] for v in vals], color="g", ls="-", label="pseudo dice (EMA)")
    ax2.set_ylabel("evaluation metric")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper center", ncol=3, fontsize="small")
    ax.set_title(os.path.basename(os.path.dirname(os.path.abspath(out))))
    axlr.plot([e["epoch"] for e in epochs], [e["lr"] for e in epochs], color="k", label="learning rate")
    axlr.set_xlabel("epoch")
    axlr.set_ylabel("learning rate")
    fig.tight_layout()
    tmp = f"{out}.tmp.{os.getpid()}.png"
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)


def main(argv):
    args = list(argv)
    out = None
    if "--out" in args:
        i = args.index("--out")
        if i + 1 >= len(args):
            print(__doc__.split("\n")[0], file=sys.stderr)
            return 1
        out = args.pop(i + 1)
        args.pop(i)
    if len(args) != 1:
        print(__doc__.split("\n")[0], file=sys.stderr)
        return 1
    run_dir = args[0]
    try:
        epochs, vals = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    except OSError as e:
        print(f"plot_progress: {e}", file=sys.stderr)
        return 2
    if not epochs and not vals:
        print(f"plot_progress: {run_dir}/metrics.jsonl has no epoch or validation rows yet", file=sys.stderr)
        return 2
    draw(epochs, vals, out or os.path.join(run_dir, "progress.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
