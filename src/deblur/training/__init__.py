"""Training as ``deblur-train`` runs it, one module per job; :func:`train` (:mod:`.job`) is their sequence.

* :mod:`.job` - :func:`train`: check, resume or start, build, fit, validate, write ``metrics.json``;
* :mod:`.trainer` - the Lightning ``Trainer``: strategy, callbacks, progress bar, loggers;
* :mod:`.model_and_data` - the loss's pretrained weights, ``init_from``, one run's speed settings;
* :mod:`.resume` - ``ckpt_path`` / ``resume=true``: where a run starts, which folder it may write;
* :mod:`.max_time` - ``trainer.max_time`` across resumes; :mod:`.resume_command` - the command to continue;
* :mod:`.history` - ``csv/metrics.csv`` of a resumed run;
* :mod:`.outcome` - fit, final validation, ``metrics.json``; :mod:`.summary` - why it stopped, the table;
* :mod:`.stopping` - divergence, signals, a full disk, errors of DataLoader workers;
* :mod:`.run_log` - the run's messages in its log file.
"""

from deblur.training.job import train
from deblur.training.model_and_data import initialise_weights, training_speed
from deblur.training.outcome import METRIC_KEYS
from deblur.training.run_log import route_logs_to_run_file
from deblur.training.stopping import TrainingDiverged, unwrap_worker_error
from deblur.training.trainer import build_strategy, build_trainer

__all__ = [
    "METRIC_KEYS",
    "TrainingDiverged",
    "build_strategy",
    "build_trainer",
    "initialise_weights",
    "route_logs_to_run_file",
    "train",
    "training_speed",
    "unwrap_worker_error",
]
