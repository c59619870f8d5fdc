"""Download a file to the cache: temporary name, size and digest checked, then renamed into place.

urllib (stdlib) rather than httpx: a plain GET with a timeout and a streamed body is all we need, it
reads `file://` URLs (a mirror that is a local folder) with the same code, and it adds no dependency to
the runtime install.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from trt_modnet.errors import MattingError
from trt_modnet.models.cache import file_digest, locked
from trt_modnet.models.registry import Pin

MIRROR_ENV = "TRT_MODNET_MIRROR"
_CHUNK = 1 << 16
_USER_AGENT = "trt_modnet (+https://github.com/ZHKKKe/MODNet weights)"


@dataclass(frozen=True)
class DownloadSettings:
    timeout: float = 30.0
    progress: bool = True


class _HostFailed(Exception):
    """One host did not serve the expected file; the next one is tried."""


def mirror_urls(filename: str) -> list[str]:
    """`$TRT_MODNET_MIRROR/filename` (a base URL or a local folder), tried before the public hosts."""
    base = os.environ.get(MIRROR_ENV)
    if not base:
        return []
    if "://" in base:
        return [f"{base.rstrip('/')}/{filename}"]
    return [(Path(base).expanduser().resolve() / filename).as_uri()]


def fetch(urls: Sequence[str], dest: Path, pin: Pin | None, settings: DownloadSettings) -> Path:
    """`dest`, downloaded from the first of `urls` that serves the pinned file if it is not there yet."""
    with locked(dest):
        if dest.is_file() and (pin is None or pin.size is None or dest.stat().st_size == pin.size):
            return dest
        failures = []
        for url in urls:
            try:
                _fetch_one(url, dest, pin, settings)
                return dest
            except _HostFailed as exc:
                failures.append(f"{url} ({exc})")
    raise MattingError(
        f"could not download {dest.name}: tried {'; '.join(failures)}. Without internet, copy the file "
        f"to {dest} by hand, or set {MIRROR_ENV} to a server or folder that has it"
    )


def _fetch_one(url: str, dest: Path, pin: Pin | None, settings: DownloadSettings) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        _save(url, tmp, dest.name, settings)
        _verify(tmp, pin)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _save(url: str, tmp: Path, label: str, settings: DownloadSettings) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=settings.timeout) as response:
            if response.headers.get_content_type() == "text/html":
                raise _HostFailed("it served an HTML page, not the file")
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            got = _stream(response, tmp, expected, label, settings)
    except urllib.error.HTTPError as exc:
        raise _HostFailed(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _HostFailed(_reason(exc.reason, settings)) from None
    except (OSError, http.client.HTTPException) as exc:
        raise _HostFailed(_reason(exc, settings)) from None
    if expected is not None and got != expected:
        raise _HostFailed(f"the connection ended after {got} of {expected} bytes")


def _stream(
    response: http.client.HTTPResponse, tmp: Path, expected: int | None, label: str, s: DownloadSettings
) -> int:
    got = 0
    bar = tqdm(
        total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
        disable=not s.progress, leave=False,
    )  # fmt: skip
    with bar, open(tmp, "wb") as out:
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            got += len(chunk)
            bar.update(len(chunk))
    return got


def _verify(tmp: Path, pin: Pin | None) -> None:
    if pin is None:
        return
    size = tmp.stat().st_size
    if pin.size is not None and size != pin.size:
        raise _HostFailed(f"it served {size} bytes, expected {pin.size}; the download was deleted")
    digest = file_digest(tmp, pin.algo)
    if digest != pin.hexdigest.lower():
        raise _HostFailed(
            f"it served a file whose {pin.algo} is {digest}, expected {pin.hexdigest}; "
            "the download was deleted"
        )


def _reason(reason: object, settings: DownloadSettings) -> str:
    if isinstance(reason, TimeoutError):
        return f"timed out after {settings.timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__
