#!/usr/bin/python3
"""slurm/sweep.py SWEEP.yaml [--dry-run] [-- SBATCH_OPTION ...]

Expands a sweep description (datasets × resolutions × seeds) into points, writes one run
directory per point under the sweep's runs_root, and submits all points as ONE Slurm job
array (jobs/sweep_point.sh through slurm/submit.sh, so the site checks and UNET_* settings of
single jobs apply). Each array task reads its line of RUNS_ROOT/points.tsv. When the array is
done, `slurm/gather.py RUNS_ROOT` builds the summary table.

Sweep description (YAML):
    name: organs                      # job name unet-<name>, default the file's stem
    runs_root: runs/organs            # one run directory per point below it (relative: to the cwd)
    datasets:                         # name -> config + store (+ overrides for that dataset)
      synapse: {config: configs/synapse_224.yaml, store: /data/synapse-store}
      acdc:    {config: configs/acdc_224.yaml, store: /data/acdc-store, overrides: [network.classes=4]}
    resolutions: [224, 320]           # network.crop=[r,r] per point
    seeds: [1, 2, 3]                  # train.seed=s per point
    overrides: [train.epochs=300]     # for every point
    resolution_overrides:             # optional, per resolution
      320: ["network.windows=[10,10,20,10]"]
    sbatch: [--time=08:00:00]         # extra sbatch options for the array
    max_parallel: 4                   # optional: at most this many tasks at once (--array=...%N)

Points are named <dataset>-<resolution>-s<seed>. Exit status: 0 submitted (prints the array's
job id), 2 a bad description (nothing written or submitted), or submit.sh's status.
"""
import itertools
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SweepError(Exception):
    pass


def need(cond, where, msg):
    if not cond:
        raise SweepError(f"{where}: {msg}")


def overrides_list(value, where):
    need(value is None or isinstance(value, list), where, "expected a list of section.key=value strings")
    out = []
    for i, o in enumerate(value or []):
        need(isinstance(o, str) and "=" in o and not any(c.isspace() for c in o), f"{where}[{i}]",
             f"expected section.key=value without spaces, got {o!r}")
        out.append(o)
    return out


def expand(desc, path):
    """The sweep's points: a list of dicts (index, name, config, store, run_dir, overrides)."""
    need(isinstance(desc, dict), path, "expected a mapping at the top level")
    known = {"name", "runs_root", "datasets", "resolutions", "seeds", "overrides", "resolution_overrides",
             "sbatch", "max_parallel"}
    for k in desc:
        need(k in known, path, f"unknown key {k!r} (known: {', '.join(sorted(known))})")
    need("runs_root" in desc and isinstance(desc["runs_root"], str), path, "runs_root: required (a directory)")
    runs_root = os.path.abspath(desc["runs_root"])
    ds = desc.get("datasets")
    need(isinstance(ds, dict) and ds, path, "datasets: required, a mapping name -> {config, store}")
    res = desc.get("resolutions", [None])
    need(isinstance(res, list) and res and all(r is None or (isinstance(r, int) and r >= 32) for r in res), path,
         "resolutions: expected a list of integers >= 32")
    seeds = desc.get("seeds", [None])
    need(isinstance(seeds, list) and seeds and all(s is None or (isinstance(s, int) and s >= 0) for s in seeds),
         path, "seeds: expected a list of non-negative integers")
    common = overrides_list(desc.get("overrides"), f"{path}: overrides")
    per_res = desc.get("resolution_overrides") or {}
    need(isinstance(per_res, dict), path, "resolution_overrides: expected a mapping resolution -> list")
    points = []
    for (dname, d), r, s in itertools.product(ds.items(), res, seeds):
        where = f"{path}: datasets.{dname}"
        need(isinstance(d, dict), where, "expected {config: ..., store: ...}")
        need(isinstance(dname, str) and dname.replace("_", "").replace("-", "").isalnum(), where,
             "dataset names may hold letters, digits, - and _ only")
        cfg = d.get("config")
        need(isinstance(cfg, str), where, "config: required")
        cfg = cfg if os.path.isabs(cfg) else (cfg if os.path.exists(cfg) else os.path.join(ROOT, cfg))
        need(os.path.isfile(cfg), where, f"config: {d.get('config')!r} does not exist")
        store = d.get("store")
        need(isinstance(store, str), where, "store: required (the directory 'unet2022 prepare' wrote)")
        need(os.path.isfile(os.path.join(store, "manifest.json")), where,
             f"store: {store!r} is not a slice store (no manifest.json there)")
        ovr = list(common) + overrides_list(d.get("overrides"), f"{where}.overrides")
        name = dname
        if r is not None:
            name += f"-{r}"
            ovr.append(f"network.crop=[{r},{r}]")
            ovr += overrides_list(per_res.get(r), f"{path}: resolution_overrides.{r}")
        if s is not None:
            name += f"-s{s}"
            ovr.append(f"train.seed={s}")
        points.append({"index": len(points), "name": name, "config": os.path.abspath(cfg),
                       "store": os.path.abspath(store), "run_dir": os.path.join(runs_root, name), "overrides": ovr})
    return runs_root, points


def write_atomic(path, text):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main(argv):
    dry = "--dry-run" in argv
    argv = [a for a in argv if a != "--dry-run"]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    if len(argv) != 1:
        print(__doc__.split("\n\n")[0], file=sys.stderr)
        return 1
    path = argv[0]
    try:
        with open(path) as f:
            desc = yaml.safe_load(f)
        runs_root, points = expand(desc, path)
        sb = desc.get("sbatch") or []
        need(isinstance(sb, list) and all(isinstance(o, str) and o.startswith("-") for o in sb), path,
             "sbatch: expected a list of sbatch options")
        mp = desc.get("max_parallel")
        need(mp is None or (isinstance(mp, int) and mp >= 1), path, "max_parallel: expected an integer >= 1")
    except (OSError, yaml.YAMLError, SweepError) as e:
        print(f"sweep: error: {e}", file=sys.stderr)
        return 2
    name = str(desc.get("name") or os.path.splitext(os.path.basename(path))[0])
    os.makedirs(os.path.join(runs_root, "logs"), exist_ok=True)
    points_tsv = os.path.join(runs_root, "points.tsv")
    write_atomic(points_tsv, "".join(
        f"{p['index']}\t{p['name']}\t{p['config']}\t{p['store']}\t{p['run_dir']}\t{' '.join(p['overrides'])}\n"
        for p in points))
    array = f"0-{len(points) - 1}" + (f"%{mp}" if mp else "")
    cmd = [os.path.join(ROOT, "slurm", "submit.sh")] + (["--dry-run"] if dry else []) + [
        f"--array={array}", f"--job-name=unet-{name}", f"--output={runs_root}/logs/%x-%A_%a.out",
        *sb, *extra, os.path.join(ROOT, "jobs", "sweep_point.sh")]
    env = dict(os.environ, UNET_SWEEP_POINTS=points_tsv, UNET_ROOT=ROOT)
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        return r.returncode
    job = r.stdout.strip()
    if not dry:
        write_atomic(os.path.join(runs_root, "sweep.json"), json.dumps(
            {"name": name, "job": job, "array": array, "description": os.path.abspath(path), "points": points},
            indent=1) + "\n")
    for p in points:
        print(f"sweep: point {p['index']}: {p['name']} -> {p['run_dir']}", file=sys.stderr)
    print(job)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
