"""fetalft: fine-tuning U-Nets for fetal head segmentation on HC18, and measuring the head.

The package behind the fetalft book. Modules, one concern each:

- :mod:`fetalft.hc18`, :mod:`fetalft.download`: the dataset on disk and fetching it
- :mod:`fetalft.split`: the exam-level split (and the paper's leaky one)
- :mod:`fetalft.data`, :mod:`fetalft.synthetic`: images in memory, augmentation, fake data
- :mod:`fetalft.ellipse`, :mod:`fetalft.biometry`: ellipses, head circumference, age
- :mod:`fetalft.metrics`, :mod:`fetalft.evaluate`: per-image metrics at original resolution
- :mod:`fetalft.unet`, :mod:`fetalft.models`, :mod:`fetalft.strategies`,
  :mod:`fetalft.batchnorm`: networks, freezing, the folded offline weights
- :mod:`fetalft.settings`: the ``FETALFT_*`` environment variables, read in one place
- :mod:`fetalft.profiles`, :mod:`fetalft.device`, :mod:`fetalft.environment`: run sizes,
  device and precision, and the labels every result carries
- :mod:`fetalft.training`, :mod:`fetalft.study`, :mod:`fetalft.io`: training runs, the
  study runner, and atomic output
- :mod:`fetalft.report`, :mod:`fetalft.rescore`, :mod:`fetalft.gap`, :mod:`fetalft.speed`:
  tables from the recorded runs, the paper's scoring of them, the paper's numbers explained
  factor by factor, and the speed recordings
- :mod:`fetalft.predict`, :mod:`fetalft.submission`, :mod:`fetalft.export`: new scans, the
  challenge file, ONNX
- :mod:`fetalft.sota`: published HC18 results and the test sets they were scored on
- :mod:`fetalft.book`, :mod:`fetalft.plots`, :mod:`fetalft.widgets`: what the chapters call
"""

__version__ = "0.1.0"
