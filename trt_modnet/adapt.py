"""`python -m trt_modnet.adapt`, the documented path of the command in trt_modnet/training/adapt.py."""

from trt_modnet.cli import run_main
from trt_modnet.training.adapt import main

if __name__ == "__main__":
    raise SystemExit(run_main(main))
