"""`python -m trt_modnet.graph`: the deployment graph on its own (trt_modnet.graph.deploy)."""

from trt_modnet.graph.deploy import main

if __name__ == "__main__":
    raise SystemExit(main())
