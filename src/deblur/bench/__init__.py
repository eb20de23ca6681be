"""``deblur-bench``: the cost of every model, loader and analysis, against the machine's own limit.

One run (``deblur-bench``, :func:`deblur.bench.benchmark.run`) measures, on one device:

* :mod:`~deblur.bench.peak`: the machine's peak 3x3-convolution rate (GFLOP/s) for each precision and
  memory format it offers;
* :mod:`~deblur.bench.networks`: per model / ablation preset: parameters, fp32 size, multiply-accumulates
  (``torch.utils.flop_counter``), forward latency and images/s under each speed option of
  :mod:`deblur.speed.options`, achieved GFLOP/s as a fraction of the peak, training-step samples/s (fp32 and
  bf16-mixed, channels_last and NCHW), peak memory, and the defaults as ``deblur-predict`` /
  ``deblur-train`` resolve them (:mod:`deblur.speed`) against the fastest tested option;
* :mod:`~deblur.bench.pipeline`: data-loader samples/s against what a training step consumes, the
  frequency analysis against a plain per-image NumPy / scikit-image loop, tiled against untiled inference
  memory on a large image, and a short fp32 vs bf16-mixed training run;
* :mod:`~deblur.bench.gpu`: on CUDA, per preset and batch the forward and training-step throughput,
  compile speed-up, the largest batch, and the paper recipes' wall time;
* :mod:`~deblur.bench.report`: ``bench.json`` and ``bench.md``.

Timing (interleaved rounds, min and median) is :mod:`deblur.speed.timing`, the speed probes' engine;
memory helpers are in :mod:`~deblur.bench.memory`.
Figures belong here, never in timed tests.
"""
