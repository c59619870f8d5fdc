"""The main job: settings, planning, one file's run, the pipeline, live streams, and the Python API."""
