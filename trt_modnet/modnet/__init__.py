"""MODNet in PyTorch: the model, checkpoints, losses, training, SOC and ONNX export (needs the `torch`
extra); the commands over it are in trt_modnet/training/."""
