"""A stand-in for Slurm's ``sbatch`` for what a real cluster cannot show (tests/experiments/test_sweep.py).

It keeps a copy of the submitted script as ``$FAKE_SLURM_DIR/submitted.sh`` and answers
``Submitted batch job 4242`` as Slurm does, whatever the script asks for (a GPU partition this
machine lacks, say), and runs nothing. With ``FAKE_SLURM_REFUSE=TEXT`` it refuses instead, as
sbatch does: TEXT on stderr, exit status 1 (an unreachable controller, an invalid option).
Running jobs is left to the real one-node cluster (.ci/slurm.sh, tests/experiments/test_slurm.py).
"""

import os
import sys
from pathlib import Path

JOB_ID = "4242"


def main() -> None:
    script = Path(sys.argv[-1])
    record = Path(os.environ["FAKE_SLURM_DIR"]) / "submitted.sh"
    record.write_text(script.read_text())
    refusal = os.environ.get("FAKE_SLURM_REFUSE")
    if refusal:
        print(refusal, file=sys.stderr)
        sys.exit(1)
    print(f"Submitted batch job {JOB_ID}")


if __name__ == "__main__":
    main()
