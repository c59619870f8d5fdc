"""`python -m trt_modnet.serve`: a web page and an HTTP API over `trt_modnet.process` ([serve] extra)."""
