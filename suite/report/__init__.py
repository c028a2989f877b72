"""Reports: our results beside the paper's Table 1, and the pictures of catastrophic overfitting.

* :mod:`.sources` / :mod:`.wandb_source`: the runs, from local records or a W&B project;
* :mod:`.co`: the catastrophic-overfitting verdict of a run;
* :mod:`.tables`: mean ± std over seeds, the paper's numbers beside ours, training cost;
* :mod:`.figures`: the figures, as matplotlib ``Figure`` objects;
* :mod:`.render`: the report folder (CSV, PNG, PDF, ``report.md``, self-contained ``report.html``).
"""

from .render import Report, build_report
from .sources import RunSet, load_local, study_trials

__all__ = ["Report", "RunSet", "build_report", "load_local", "study_trials"]
