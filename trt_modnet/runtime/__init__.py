"""Runners with one interface (`base.Runner`): ONNX Runtime on the CPU, TensorRT on NVIDIA GPUs."""
