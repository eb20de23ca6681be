"""How fast a network runs, and the options that make it faster within a stated tolerance.

* :mod:`~deblur.speed.options`: the inference speed options, their tolerances and the fixed rule;
* :mod:`~deblur.speed.transforms`: applying them (BatchNorm folding, channels_last, compile, bf16);
* :mod:`~deblur.speed.timing`: the one interleaved timing engine (and ``synchronize``), used by the
  probes and by ``deblur-bench``;
* :mod:`~deblur.speed.rule`: the pure decision rule on timed rounds;
* :mod:`~deblur.speed.trial`: a timed trial of candidates (rounds until the rule is clear of the noise);
* :mod:`~deblur.speed.cache`: the probes' cache of choices per machine;
* :mod:`~deblur.speed.inference_probe` / :mod:`~deblur.speed.training_probe`: the options chosen by
  timing them, for inference and for training.
"""
