"""A stand-in for Slurm's ``sbatch`` that needs no cluster (used by tests/experiments/test_sweep.py).

It keeps a copy of the submitted script as ``$FAKE_SLURM_DIR/submitted.sh`` and answers
``Submitted batch job 4242`` as Slurm does. With ``FAKE_SLURM_RUN=1`` it also runs the job
array's tasks, one after the other, in a detached background process with the environment
Slurm gives an array task, so submitit's job code runs exactly as on a cluster node.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

JOB_ID = "4242"


def task_env(index: int) -> dict:
    return {
        **os.environ,
        "SLURM_JOB_ID": str(int(JOB_ID) + 1 + index),
        "SLURM_ARRAY_JOB_ID": JOB_ID,
        "SLURM_ARRAY_TASK_ID": str(index),
        "SLURM_NTASKS": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "SUBMITIT_EXECUTOR": "slurm",
    }


def run_tasks(script: str) -> None:
    """Run every array task of ``script`` (after submitit has named its pickles with the job id)."""
    tasks = int(re.search(r"--array=0-(\d+)", script).group(1)) + 1
    srun = shlex.split(next(line for line in script.splitlines() if line.startswith("srun ")))
    out, err = srun[srun.index("--output") + 1], srun[srun.index("--error") + 1]
    command = srun[srun.index("--error") + 2 :]
    folder = Path(command[-1])
    for index in range(tasks):
        name = lambda pattern: pattern.replace("%A", JOB_ID).replace("%a", str(index)).replace("%t", "0")  # noqa: E731
        for _ in range(600):  # the pickle is renamed right after submission
            if (folder / f"{JOB_ID}_{index}_submitted.pkl").exists():
                break
            time.sleep(0.05)
        with open(name(out), "a") as stdout, open(name(err), "a") as stderr:
            subprocess.run(command, env=task_env(index), stdout=stdout, stderr=stderr)


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        run_tasks(Path(sys.argv[2]).read_text())
        return
    script = Path(sys.argv[1])
    record = Path(os.environ["FAKE_SLURM_DIR"]) / "submitted.sh"
    record.write_text(script.read_text())
    if os.environ.get("FAKE_SLURM_RUN"):
        subprocess.Popen(
            [sys.executable, __file__, "--run", str(record)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    print(f"Submitted batch job {JOB_ID}")


if __name__ == "__main__":
    main()
