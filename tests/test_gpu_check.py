"""``suite bench --gpu-check`` runs on a bare GPU box: torch, numpy, pandas, yaml and tqdm only."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BARE = """
import sys, importlib.abc
class Missing(importlib.abc.MetaPathFinder):          # as if these were not installed
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"wandb", "optuna", "submitit", "autoattack", "pyautoattack", "torchvision"}:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Missing())
import suite.gpu_check
from suite.cli import main
sys.exit(main(["bench", "--gpu-check"]))
"""


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU this would run the whole check")
def test_gpu_check_imports_nothing_a_bare_gpu_box_lacks():
    done = subprocess.run([sys.executable, "-c", BARE], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2, done.stderr                 # SuiteError: no GPU here, not an ImportError
    assert "needs a CUDA GPU" in done.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_check_passes():
    from suite.gpu_check import format_gpu_check, run_gpu_check

    result = run_gpu_check()
    print(format_gpu_check(result))
    assert not result["failures"], result["failures"]
