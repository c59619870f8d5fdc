"""Multipart uploads streamed to disk in chunks, with every bound enforced while the bytes arrive.

Starlette's `request.form()` spools files to the temporary folder first and checks sizes per part;
python-multipart's push parser (the one Starlette uses) lets the server write straight into the job's
folder under names it chooses and stop at the first byte over `--max-upload`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

#: The extension of an upload is kept (it says what the file is) when it looks like one; nothing else is.
_SUFFIX = re.compile(r"^\.[A-Za-z0-9]{1,8}$")
FILE_FIELDS = ("file", "background_file")


class UploadRefused(Exception):
    """The request is refused with this HTTP status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    #: (field name, the user's file name, the server's file name), in upload order.
    files: list[tuple[str, str, str]] = field(default_factory=list)


def safe_suffix(filename: str) -> str:
    suffix = Path(filename.replace("\\", "/")).suffix
    return suffix.lower() if _SUFFIX.match(suffix) else ""


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_fields: int
    max_field_bytes: int
    max_files: int


async def receive_upload(request: Request, folder: Path, limits: Limits) -> Upload:
    """Parse a multipart body: videos into `folder` as `input0.mp4`, ..., a background beside it."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise UploadRefused(415, "send the files as multipart/form-data")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limits.max_bytes:
        raise UploadRefused(413, f"the upload is over the server's limit of {limits.max_bytes} bytes")
    sink = _Sink(folder, limits)
    parser = MultipartParser(params[b"boundary"], sink.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limits.max_bytes:
                raise UploadRefused(413, f"the upload is over the server's limit of {limits.max_bytes} bytes")
            # The parser's callbacks write the file: off the event loop, so other requests go on.
            await anyio.to_thread.run_sync(parser.write, chunk)
            sink.check()
        parser.finalize()
        sink.check()
    except MultipartParseError as e:
        raise UploadRefused(400, f"the multipart body is malformed: {e}") from None
    finally:
        sink.close()
    return sink.upload


class _Sink:
    """The parser's callbacks: headers of a part, then its bytes to a file or a bounded field value."""

    def __init__(self, folder: Path, limits: Limits) -> None:
        self.folder, self.limits = folder, limits
        self.upload = Upload()
        self.error: UploadRefused | None = None
        self._header = b""
        self._value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._file: BinaryIO | None = None
        self._field = bytearray()

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_header", self._header + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_value", self._value + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _refuse(self, status: int, message: str) -> None:
        self.error = self.error or UploadRefused(status, message)

    def _begin(self) -> None:
        self._headers, self._field = {}, bytearray()

    def _header_end(self) -> None:
        self._headers[self._header.lower()] = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = params.get(b"name", b"").decode("utf-8", "replace")
        filename = params.get(b"filename")
        if filename is None:
            if len(self.upload.fields) >= self.limits.max_fields:
                self._refuse(413, f"more than {self.limits.max_fields} form fields")
            return
        if self._name not in FILE_FIELDS:
            return self._refuse(400, f"unexpected file field {self._name!r}: send videos as 'file'")
        if len(self.upload.files) >= self.limits.max_files:
            return self._refuse(413, f"more than {self.limits.max_files} files in one job")
        user_name = filename.decode("utf-8", "replace")
        stem = "input" if self._name == "file" else "background"
        ours = f"{stem}{len(self.upload.files)}{safe_suffix(user_name)}"
        # Backgrounds beside files/, so that only inputs and outputs live there.
        folder = self.folder if self._name == "file" else self.folder.parent
        self._file = (folder / ours).open("xb")
        self.upload.files.append((self._name, Path(user_name.replace("\\", "/")).name, ours))

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.error is not None:
            return
        if self._file is not None:
            self._file.write(data[start:end])
        elif len(self._field) + end - start > self.limits.max_field_bytes:
            self._refuse(413, f"form field {self._name!r} is over {self.limits.max_field_bytes} bytes")
        else:
            self._field += data[start:end]

    def _end(self) -> None:
        if self._file is not None:
            self.close()
        elif self.error is None:
            self.upload.fields[self._name] = self._field.decode("utf-8", "replace")
