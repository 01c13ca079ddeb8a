"""``labkit train [overrides] [-m] [--cfg job]``: train with the Hydra configs in ``labkit/conf``.

    labkit train                                   # the default: digits, SmallCNN, Adam, MLflow
    labkit train experiment=charlm_lstm            # a preset from conf/experiment/
    labkit train optim.lr=3e-3 trainer.max_epochs=5
    labkit train -m optim.lr=1e-3,3e-3             # a sweep: one nested MLflow run per trial
    labkit train trainer.resume=last               # continue the latest run of the experiment
    labkit train --cfg job                         # print the composed config, run nothing

Hydra (and the runner) are imported only when the command runs, so ``labkit --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from labkit.runner.hydra_app import main as hydra_main

    return hydra_main(argv)
