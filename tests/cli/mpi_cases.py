"""mpi_cases.py — the CLI tests' cases that run unet2022 on several ranks (mpirun), in a build
that may have no MPI (-DUNET_WITH_MPI=OFF: such a binary refuses to run as one of several ranks).

- have_mpi(BIN): whether the binary was built with MPI, as `unet2022 version` reports it (and,
  under ctest, as the build's UNET_WITH_MPI says: UNET2022_WITH_MPI=1/0 — a disagreement, or
  a version without the line, is an error, never a reason to skip);
- @needs_mpi(have): such a case is skipped, with the reason, when the binary has no MPI;
- main(have): unittest.main, plus `--mpi-cases`, which runs only the @needs_mpi cases and exits
  77 (ctest's skipped) at once when the binary has no MPI (tests/CMakeLists.txt registers that
  as cli_NAME_mpi in a build without MPI), and exit 77 whenever every case that ran was skipped,
  so that a skip is never counted as a pass."""
import os
import subprocess
import sys
import unittest

NO_MPI = "this unet2022 is built without MPI (`unet2022 version`: mpi: no)"
MPI_CASES = []  # "Class.test_name" of every @needs_mpi case


def build_features(binary):
    """`unet2022 version`'s "name: value" lines as a dict (mpi, cuda)."""
    out = subprocess.run([binary, "version"], capture_output=True, text=True, timeout=60).stdout
    return dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)


def have_mpi(binary):
    mpi = build_features(binary).get("mpi")
    if mpi not in ("yes", "no"):
        raise RuntimeError(f"`{binary} version` does not say whether it has MPI (no 'mpi: yes|no' line)")
    expect = os.environ.get("UNET2022_WITH_MPI")  # tests/CMakeLists.txt: the build's setting
    if expect is not None and (expect == "1") != (mpi == "yes"):
        raise RuntimeError(f"the build has UNET_WITH_MPI={'ON' if expect == '1' else 'OFF'}, "
                           f"but `{binary} version` says mpi: {mpi}")
    return mpi == "yes"


def needs_mpi(have):
    def mark(case):
        MPI_CASES.append(case.__qualname__)
        return unittest.skipUnless(have, NO_MPI)(case)
    return mark


def main(have):
    argv = sys.argv[:1] + [a for a in sys.argv[1:] if a != "--mpi-cases"]
    if "--mpi-cases" in sys.argv[1:]:
        if not have:
            print(f"SKIPPED: {', '.join(MPI_CASES)}: {NO_MPI}")
            sys.exit(77)
        argv += MPI_CASES
    result = unittest.main(argv=argv, verbosity=2, exit=False).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.testsRun and len(result.skipped) == result.testsRun:
        print(f"SKIPPED: every case that ran was skipped ({result.testsRun})")
        sys.exit(77)
    sys.exit(0)
