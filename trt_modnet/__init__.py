"""Fast, trimap-free portrait matting for video with MODNet."""

__version__ = "0.1.0"
