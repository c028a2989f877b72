"""Reports: our results beside the paper's Table 1, and the pictures of catastrophic overfitting.

* :mod:`.sources` / :mod:`.wandb_source`: the runs, from local records or a W&B project;
* :mod:`.co`: the catastrophic-overfitting verdict of a run;
* :mod:`.cells`: what a cell is (one configuration, seeds aside) and its label;
* :mod:`.stats`: t intervals over seeds, paired t-tests, Holm's correction;
* :mod:`.tables`: per-cell means with their intervals, the paper's numbers beside ours, training cost;
* :mod:`.paired`: every method against a baseline, seed by seed (``--baseline``);
* :mod:`.compact`: the compact main table, with the best and the tied cells marked;
* :mod:`.names`: readable names of data sets and networks; :mod:`.latex`: booktabs tables;
* :mod:`.figures`: the figures, as matplotlib ``Figure`` objects;
* :mod:`.render`: the report folder (CSV, LaTeX, PNG, PDF, ``report.md``, self-contained ``report.html``).
"""

from .render import Report, build_report
from .sources import RunSet, load_local, study_trials

__all__ = ["Report", "RunSet", "build_report", "load_local", "study_trials"]
