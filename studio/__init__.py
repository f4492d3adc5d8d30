"""Studio: an offline desktop tool that turns a text prompt into images."""

__version__ = "0.1.0"
