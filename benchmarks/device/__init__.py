"""The device check's steps, in the order `benchmarks/device_check.py` runs them: `report` (one guarded
step a line, the JSON), `copies` (CUDA: the device, pinned copies, streams, events, errors), `runner`
(the TensorRT runner's pipeline with stand-in engines) and `codecs` (NVENC/NVDEC through PyAV). Each step
imports CUDA, CuPy, PyAV and the package when it runs, so that one missing piece skips or fails one step.
"""
