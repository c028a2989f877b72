"""Experiments: specs checked with file and line, sweeps and their launch (local or Slurm),
the presets of ``suite reproduce``, and Optuna studies (:mod:`.tune`)."""
