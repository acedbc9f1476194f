"""asrcompress: search layer-wise compression policies for speech acoustic models."""

__version__ = "0.1.0"
