"""``suite.experiments.slurm_queue.ended``: squeue's answers read (a stand-in squeue; the real one
is exercised by tests/experiments/test_slurm.py)."""

from __future__ import annotations

import os
import stat

import pytest

from suite.experiments.slurm_queue import GONE, ended


@pytest.fixture
def squeue(tmp_path, monkeypatch):
    """``squeue(stdout, stderr, code)``: put an squeue on PATH that answers so, recording its arguments."""

    def install(stdout: str = "", stderr: str = "", code: int = 0):
        script = tmp_path / "squeue"
        script.write_text(
            f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\nprintf '{stdout}'\nprintf '{stderr}' >&2\nexit {code}\n"
        )
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        return tmp_path / "args"

    return install


def test_ended_tasks_are_those_not_live_or_no_longer_listed(squeue):
    args = squeue("7_0|RUNNING\\n7_1|CANCELLED\\n7_2|COMPLETING\\n7_3|PENDING\\n7_5|TIMEOUT\\n8|REQUEUED\\n")
    jobs = ["7_0", "7_1", "7_2", "7_3", "7_4", "7_5", "8"]
    assert ended(jobs) == {"7_1": "CANCELLED", "7_4": GONE, "7_5": "TIMEOUT"}
    assert "--jobs=7,8" in args.read_text().split()  # one call for every array, each task listed (--array)
    assert "--array" in args.read_text().split()


def test_unknown_to_the_controller_means_gone(squeue):
    squeue(stderr="slurm_load_jobs error: Invalid job id specified", code=1)
    assert ended(["7_0", "7_1"]) == {"7_0": GONE, "7_1": GONE}


def test_no_answer_means_nothing_has_ended(squeue):
    squeue(stderr="slurm_load_jobs error: Unable to contact slurm controller (connect failure)", code=1)
    assert ended(["7_0"]) == {}
    assert ended([]) == {}
