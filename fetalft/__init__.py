"""fetalft: fine-tuning U-Nets for fetal head segmentation on HC18, and measuring the head.

The package behind the fetalft book. Modules, one concern each:

- :mod:`fetalft.hc18`, :mod:`fetalft.download`: the dataset on disk and fetching it
- :mod:`fetalft.split`: the exam-level split (and the paper's leaky one)
- :mod:`fetalft.data`, :mod:`fetalft.synthetic`: images in memory, augmentation, fake data
- :mod:`fetalft.ellipse`, :mod:`fetalft.biometry`: ellipses, head circumference, age
- :mod:`fetalft.metrics`, :mod:`fetalft.evaluate`: per-image metrics at original resolution
- :mod:`fetalft.unet`, :mod:`fetalft.models`, :mod:`fetalft.strategies`: networks, freezing
- :mod:`fetalft.training`, :mod:`fetalft.study`: training runs and the study runner
- :mod:`fetalft.predict`, :mod:`fetalft.submission`: new scans and the challenge file
"""

__version__ = "0.1.0"
