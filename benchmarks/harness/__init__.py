"""The throughput harness's parts, in the order a run uses them (`python -m benchmarks.throughput` is its
command): `settings` (what a run measures), `stages` (decode, inference and encode alone, in this
process), `jobs` (the main job and the naive loop, each in a child process), `run` (every measurement,
configurations interleaved) and `report` (the JSON document).

Method: throughput is steady-state, measured the same way for every contender. Fixed costs (process
start, imports, model load, graph build, session or engine creation, encoder start and flush) are
excluded. Decode-only and inference-only run the first W frames untimed (W = the largest batch times the
batches in flight, so that every slot's first run, which allocates, is untimed), then time the next N.
Encode-only, the main job and the naive loop are timed over W and over W+N frames, each from scratch, and
fps = N / (t(W+N) - t(W)), which cancels their fixed costs. The main job and the naive loop each run in a
fresh process (so their peak memory is theirs alone), one after the other. Each speed comes with the CPU
time a frame cost (user + system, every thread: `time.process_time` in this process, the kernel's
accounting of a child), over the same frames; inference's share of the job's CPU per frame is the most
end to end can reach of inference alone while every core is busy (`cpu_bound_ceiling`).
"""
