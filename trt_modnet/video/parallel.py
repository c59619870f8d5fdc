"""Several instances of one intra-only encoder, each in its own thread, packets muxed in frame order.

Every ProRes, PNG and FFV1 (g=1) frame is coded alone, so frame k can go to instance k mod N and the
packets, taken back in submission order, are the ones a single encoder writes (tests/test_encoders.py
checks them byte for byte). FFmpeg releases the GIL while it encodes. At most `2 N` frames are in
flight: `encode` waits for the oldest one before it takes another, so memory stays bounded.

Instance 0 is the stream's own codec context (its extradata and parameters go into the header); the
others are opened with the same settings. Each instance runs one thread: the cores go to the instances.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import av

#: Settings copied from the stream's context to every other instance.
_SETTINGS = (
    "width",
    "height",
    "pix_fmt",
    "time_base",
    "framerate",
    "sample_aspect_ratio",
    "field_order",
    "color_primaries",
    "color_trc",
    "colorspace",
    "color_range",
)


def prepare_instance(ctx: av.video.codeccontext.VideoCodecContext) -> None:
    """One thread per instance, set before the context opens."""
    ctx.thread_type = "SLICE"
    ctx.thread_count = 1


class ParallelEncoder:
    """`encode(frame) -> packets` and `flush() -> packets` over `instances` encoders; `close()` ends it."""

    def __init__(self, stream: av.VideoStream, instances: int, options: Mapping[str, str]) -> None:
        if instances < 1:
            raise ValueError(f"instances must be at least 1, got {instances}")
        self._stream = stream
        self._contexts = [stream.codec_context]
        self._pools: list[ThreadPoolExecutor] = []
        self._pending: deque[Future[list[av.Packet]]] = deque()
        self._window = 2 * instances
        self._count = 0
        self._closed = False
        try:
            for _ in range(instances - 1):
                self._contexts.append(self._clone(stream.codec_context, options))
            self._pools = [ThreadPoolExecutor(1, thread_name_prefix="encode") for _ in self._contexts]
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _clone(source: av.CodecContext, options: Mapping[str, str]) -> av.CodecContext:
        ctx = av.CodecContext.create(source.name, "w")
        for name in _SETTINGS:
            value = getattr(source, name)
            if value is not None:
                setattr(ctx, name, value)
        prepare_instance(ctx)
        ctx.options = dict(options)
        ctx.open()
        return ctx

    def encode(self, frame: av.VideoFrame) -> list[av.Packet]:
        """Queue `frame`; return the packets of the frames that are done, oldest first."""
        if self._closed:
            raise RuntimeError("the parallel encoder is closed")
        ready: list[av.Packet] = []
        while len(self._pending) >= self._window:
            ready += self._pending.popleft().result()
        index = self._count % len(self._contexts)
        self._count += 1
        self._pending.append(self._pools[index].submit(self._encode_one, self._contexts[index], frame))
        return ready

    def flush(self) -> list[av.Packet]:
        """Every frame's packets not yet returned, then what each instance holds back (nothing, for
        intra-only encoders without delay)."""
        ready: list[av.Packet] = []
        while self._pending:
            ready += self._pending.popleft().result()
        for ctx in self._contexts:
            ready += self._encode_one(ctx, None)
        return ready

    def _encode_one(self, ctx: av.CodecContext, frame: av.VideoFrame | None) -> list[av.Packet]:
        packets = ctx.encode(frame)
        for packet in packets:
            packet.stream = self._stream
        return packets

    def close(self) -> None:
        """Stop the threads; frames not yet encoded are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for future in self._pending:
            future.cancel()
        for pool in self._pools:
            pool.shutdown(wait=True)
        self._pending.clear()
