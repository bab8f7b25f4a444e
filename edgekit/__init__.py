"""edgekit: lightweight semantic segmentation from training to real-time inference on Jetson and desktop GPUs."""

__version__ = "0.1.0"
