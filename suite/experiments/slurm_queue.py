"""Which Slurm array tasks have ended, from ``squeue``.

submitit learns a task's state from ``sacct`` alone. On a cluster without accounting ``sacct``
fails, the state stays UNKNOWN, and a task that ends without writing its result (cancelled,
killed at its time limit, its node lost) is waited for forever. The controller still knows:
``squeue`` lists a finished task with its final state for ``MinJobAge`` seconds (300 by
default) and then forgets it. :func:`ended` reads that, so the sweep can report such a task as
failed instead of hanging.
"""

from __future__ import annotations

import subprocess

# squeue's states of a task still queued, running or on its way back to the queue
LIVE = {
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_FED",
    "REQUEUE_HOLD",
    "RESIZING",
    "SUSPENDED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
    "SPECIAL_EXIT",
    "STOPPED",
}
GONE = "GONE"  # no longer listed: ended over MinJobAge ago, or cancelled before it started


def ended(job_ids: list[str], timeout_s: float = 30) -> dict[str, str]:
    """``{job id: final state}`` of the tasks (``ARRAY_TASK`` ids) that Slurm says have ended;
    :data:`GONE` for those it no longer lists. Empty when squeue cannot answer (a controller
    down for a moment must not fail running tasks)."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    if not arrays:
        return {}
    command = ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(arrays)}", "--format=%i|%T"]
    try:
        answer = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    if answer.returncode != 0:  # every job id unknown to the controller: all of them long gone
        return {job_id: GONE for job_id in job_ids} if "Invalid job id" in answer.stderr else {}
    states = dict(line.strip().split("|", 1) for line in answer.stdout.splitlines() if "|" in line)
    return {job_id: states.get(job_id, GONE) for job_id in job_ids if states.get(job_id, GONE).split()[0] not in LIVE}
