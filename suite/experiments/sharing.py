"""How runs share a GPU: how many at once (``--runs-per-gpu K``) and how (``--share``).

* ``processes``: one process per run; the GPU time-slices them (their kernels never overlap), and
  a crash fails only its own run;
* ``packed``: the K runs in one process, each in a thread on its own CUDA stream with its own
  random generator (``suite.engine.packed``), so their kernels may overlap.

The defaults are a table, :data:`DEFAULTS`, with the measurement each entry rests on.
``suite bench --gpu-check`` measures both modes at K = 1, 2, 4, 8 for Fast-AT and Fast-BAT, and
:func:`best_sharing` turns those figures into the entries they support; the check prints them
beside the table's, so a measurement that disagrees says which entry to change.
"""

from __future__ import annotations

from dataclasses import dataclass

SHARES = ("processes", "packed")
GAIN_THRESHOLD = 1.2  # K > 1 runs per GPU are chosen only above this throughput over one run
NEAR_BEST = 0.95  # a smaller K (or processes) within this share of the best throughput is preferred
SHARING_METHODS = ("fast_at", "fast_bat")  # what the check measures; a choice must suit both


@dataclass(frozen=True)
class Sharing:
    runs_per_gpu: int
    share: str
    source: str  # the measurement behind it


# Keyed by whether the runs use CUDA graphs (the default on CUDA). On a CPU: one run at a time.
DEFAULTS = {
    True: Sharing(
        1,
        "processes",
        "H200, torch 2.11, 2026-11-27: 2, 4 and 8 graphed Fast-AT processes summed to 0.94x one; "
        "packed runs not yet measured on a GPU",
    ),
    False: Sharing(
        4,
        "processes",
        "a user's H200, torch 2.11, eager: four Fast-AT processes reached 3.8x one; packed runs not yet measured",
    ),
}
CPU = Sharing(1, "processes", "a CPU's cores already serve one run")


def default_sharing(on_gpu: bool, cuda_graphs: bool) -> Sharing:
    """The default way runs share a GPU (:data:`DEFAULTS`), or one run at a time off GPUs."""
    return DEFAULTS[bool(cuda_graphs)] if on_gpu else CPU


def best_sharing(measured: dict) -> dict:
    """The entries of :data:`DEFAULTS` that the GPU check's figures support.

    ``measured``: ``{"graphs" | "eager": {share: {method: {"over_one": {K: throughput / one run's}}}}}``
    (the ``runs_per_gpu`` part of ``suite bench --gpu-check``; K may be a string, as in JSON). For each
    of graphs and eager: every (share, K) scores the smaller of its Fast-AT and Fast-BAT gains; the
    choice is the best score's if it reaches :data:`GAIN_THRESHOLD` (else one run per GPU), taking
    the smallest K and then processes (crash isolation) among the scores within :data:`NEAR_BEST`
    of the best. Returns ``{True | False: (Sharing, score)}`` for the settings measured.
    """
    chosen = {}
    for mode, graphs in (("graphs", True), ("eager", False)):
        shares = measured.get(mode)
        if not shares:
            continue
        scores = {}
        for share, by_method in shares.items():
            if share not in SHARES or not all(m in by_method for m in SHARING_METHODS):
                continue
            ks = set.intersection(*(set(by_method[m]["over_one"]) for m in SHARING_METHODS))
            for k in ks:
                scores[(int(k), share)] = min(float(by_method[m]["over_one"][k]) for m in SHARING_METHODS)
        if not scores:
            continue
        best = max(scores.values())
        if best < GAIN_THRESHOLD:
            k, share, score = 1, "processes", scores.get((1, "processes"), 1.0)
        else:
            near = [key for key, score in scores.items() if score >= NEAR_BEST * best]
            k, share = min(near, key=lambda key: (key[0], SHARES.index(key[1])))
            score = scores[(k, share)]
        chosen[graphs] = (Sharing(k, share, f"suite bench --gpu-check: {score:.2f}x one run"), score)
    return chosen


def sharing_lines(measured: dict) -> list[str]:
    """What the measurement supports against :data:`DEFAULTS`, one line per setting measured."""
    lines = []
    for graphs, (supported, score) in best_sharing(measured).items():
        today = DEFAULTS[graphs]
        same = (supported.runs_per_gpu, supported.share) == (today.runs_per_gpu, today.share)
        what = "with CUDA graphs" if graphs else "eager (--no-cuda-graphs)"
        lines.append(
            f"runs per GPU {what}: the measurement supports --runs-per-gpu {supported.runs_per_gpu} "
            f"--share {supported.share} ({score:.2f}x one run, the smaller of Fast-AT's and Fast-BAT's); "
            + (
                "as the default"
                if same
                else f"the default is {today.runs_per_gpu} {today.share}: change DEFAULTS[{graphs}] in "
                "suite/experiments/sharing.py"
            )
        )
    return lines
