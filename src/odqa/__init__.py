"""odqa: open-domain question answering over Wikipedia, Korean first."""

__version__ = "0.1.0"
