"""The Starlette app: the page, its static files and the JSON API, all over one `JobQueue`."""

from __future__ import annotations

import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from trt_modnet.serve.jobs import ACTIVE, PREVIEW_STEM, JobQueue, JobState, JobStore, new_job_id
from trt_modnet.serve.settings import ServeSettings
from trt_modnet.serve.uploads import Limits, UploadRefused, receive_upload

STATIC = Path(__file__).with_name("static")
#: `trt_modnet.process` keywords a request may set, and how a form field's text becomes each.
_OPTIONS: dict[str, Callable[[str], Any]] = {
    "mode": str,
    "format": str,
    "background": str,
    "start": float,
    "duration": float,
    "timestamps": str,
    "ofd": lambda v: v.lower() in ("1", "true", "on", "yes"),
    "audio": lambda v: v.lower() in ("1", "true", "on", "yes"),
}
_JSON_BYTES = 64 * 1024
#: Downloads may also carry the token in this cookie: `<img>` and `<a>` cannot send a header.
COOKIE = "trt_modnet_token"

Handler = Callable[[Request], Awaitable[Response]]


def create_app(settings: ServeSettings, matter: Any) -> Starlette:
    """The app over an open `Matter`; its job queue starts and stops with the app."""
    store = JobStore(settings.jobs)
    jobs = JobQueue(store, matter)
    api = _Api(settings, store, jobs, matter)

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    routes = [
        Route("/", page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/health", api.guard(api.health)),
        Route("/api/jobs", api.guard(api.list_jobs)),
        Route("/api/jobs", api.guard(api.create), methods=["POST"]),
        Route("/api/jobs/{id}", api.guard(api.show)),
        Route("/api/jobs/{id}", api.guard(api.delete), methods=["DELETE"]),
        Route("/api/jobs/{id}/outputs/{name:path}", api.guard(api.output, cookie=True)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        jobs.start(store.load())
        try:
            yield
        finally:
            jobs.stop()

    return Starlette(routes=routes, lifespan=lifespan)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _Api:
    def __init__(self, settings: ServeSettings, store: JobStore, jobs: JobQueue, matter: Any) -> None:
        self.settings, self.store, self.jobs, self.matter = settings, store, jobs, matter

    def guard(self, handler: Handler, *, cookie: bool = False) -> Handler:
        """401 before anything is read or done when a token is set and the request lacks it."""

        async def guarded(request: Request) -> Response:
            if not self._authorised(request, cookie):
                return Response(
                    '{"error": "a valid token is needed: Authorization: Bearer TOKEN"}',
                    401,
                    {"WWW-Authenticate": "Bearer"},
                    media_type="application/json",
                )
            return await handler(request)

        return guarded

    def _authorised(self, request: Request, cookie: bool) -> bool:
        token = self.settings.token
        if token is None:
            return True
        given = request.headers.get("authorization", "")
        if given.startswith("Bearer "):
            return hmac.compare_digest(given[7:].encode(), token.encode())
        given = request.cookies.get(COOKIE, "") if cookie else ""
        return bool(given) and hmac.compare_digest(given.encode(), token.encode())

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "backend": str(self.matter.backend),
                "precision": str(self.matter.precision),
                "model": self.settings.model or "photographic",
                "queue": self.store.active(),
                "max_upload": self.settings.max_upload,
                "jobs": str(self.settings.jobs),
            }
        )

    async def list_jobs(self, request: Request) -> Response:
        return JSONResponse({"jobs": [self._view(j) for j in self.store.all()]})

    async def show(self, request: Request) -> Response:
        job = self.store.get(request.path_params["id"])
        return _error(404, "no such job") if job is None else JSONResponse(self._view(job))

    async def delete(self, request: Request) -> Response:
        """Cancels a queued or running job (kept, as cancelled); removes a finished one and its files."""
        job = self.store.get(request.path_params["id"])
        if job is None:
            return _error(404, "no such job")
        if job.state in ACTIVE:
            job = self.jobs.cancel(job.id) or job
            return JSONResponse(self._view(job), status_code=202)
        self.store.remove(job.id)
        return Response(status_code=204)

    async def output(self, request: Request) -> Response:
        job = self.store.get(request.path_params["id"])
        name = request.path_params["name"]
        if job is None or name not in job.outputs:  # matched against the job's own list, never a path
            return _error(404, "no such output")
        return FileResponse(self.store.files(job.id) / name, filename=_download_name(job, name))

    async def create(self, request: Request) -> Response:
        if self.store.active() >= self.settings.max_queue:
            return _error(429, f"the queue is full ({self.settings.max_queue} jobs); try again later")
        job_id = new_job_id()
        folder = self.store.files(job_id)
        folder.mkdir(parents=True)
        try:
            job = await self._receive(request, job_id, folder)
        except UploadRefused as e:
            self.store.remove(job_id)
            return _error(e.status, str(e))
        except OSError as e:  # a full disk refuses this upload, the server goes on
            self.store.remove(job_id)
            return _error(507, f"the upload could not be stored: {e.strerror or e}")
        except BaseException:
            self.store.remove(job_id)
            raise
        self.store.save(job)
        self.jobs.submit(job.id)
        return JSONResponse({"id": job.id, "state": job.state}, status_code=201)

    async def _receive(self, request: Request, job_id: str, folder: Path) -> JobState:
        if request.headers.get("content-type", "").startswith("application/json"):
            return await self._path_job(request, job_id, folder)
        s = self.settings
        limits = Limits(s.max_upload, s.max_fields, s.max_field_bytes, s.max_files)
        upload = await receive_upload(request, folder, limits)
        inputs = [(user, ours) for field, user, ours in upload.files if field == "file"]
        if not inputs:
            raise UploadRefused(400, "no file: send one or more videos or images as 'file'")
        options = _options(upload.fields)
        backgrounds = [ours for field, _, ours in upload.files if field == "background_file"]
        if backgrounds:
            options["background"] = str(folder.parent / backgrounds[0])
        return JobState(
            id=job_id,
            names=tuple(u for u, _ in inputs),
            inputs=tuple(o for _, o in inputs),
            options=options,
        )

    async def _path_job(self, request: Request, job_id: str, folder: Path) -> JobState:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _JSON_BYTES:
                raise UploadRefused(413, f"the JSON body is over {_JSON_BYTES} bytes")
        try:
            data = json.loads(body)
        except ValueError as e:
            raise UploadRefused(400, f"the body is not JSON: {e}") from None
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise UploadRefused(400, 'send {"path": "a file under an --allow-dir", ...options}')
        source = allowed_file(data["path"], self.settings.allow_dirs)
        name = f"input0{source.suffix.lower()}"
        (folder / name).symlink_to(source)
        fields = {
            k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items() if k != "path"
        }
        return JobState(id=job_id, names=(source.name,), inputs=(name,), options=_options(fields))

    def _view(self, job: JobState) -> dict[str, Any]:
        view = asdict(job)
        files = self.store.files(job.id)
        base = f"/api/jobs/{job.id}/outputs/"
        view["outputs"] = [
            {"name": n, "size": _size(files / n), "url": base + quote(n), "download": _download_name(job, n)}
            for n in job.outputs
        ]
        previews = [o["url"] for o in view["outputs"] if o["name"].startswith(PREVIEW_STEM)]
        view["preview"] = previews[0] if previews else None
        view["eta"] = _eta(job)
        del view["inputs"], view["options"]
        return view


def _options(fields: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(_OPTIONS))
    if unknown:
        raise UploadRefused(400, f"unknown option {unknown[0]!r}: choose from {', '.join(_OPTIONS)}")
    options: dict[str, Any] = {}
    for key, text in fields.items():
        if text == "":
            continue
        try:
            options[key] = _OPTIONS[key](text)
        except ValueError:
            raise UploadRefused(400, f"option {key}: not a number: {text!r}") from None
    return options


def allowed_file(text: str, allow_dirs: tuple[Path, ...]) -> Path:
    """The resolved file, if it lies under an --allow-dir (relative paths are taken from each in turn);
    `..`, absolute paths and symlinks that lead elsewhere are refused, as is a NUL byte."""
    if not allow_dirs:
        raise UploadRefused(403, "this server takes uploads only (no --allow-dir)")
    if "\0" in text:
        raise UploadRefused(400, "the path has a NUL byte")
    for folder in allow_dirs:
        root = folder.resolve()
        candidate = (root / text).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            return candidate
    raise UploadRefused(403, f"{text!r} is not a file under an --allow-dir")


def _download_name(job: JobState, name: str) -> str:
    """`input0.matte.mov` saved as `my clip.matte.mov`: the user's name, only ever as a suggestion."""
    base = Path(name).name
    for ours, theirs in zip(job.inputs, job.names, strict=False):
        stem = Path(ours).stem
        if base.startswith(stem + "."):
            return Path(theirs).stem + base[len(stem) :]
    return base


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


def _eta(job: JobState) -> float | None:
    if job.state != "running" or not job.fps or job.frames_total is None:
        return None
    return round(max(job.frames_total - job.frames_done, 0) / job.fps, 1)


__all__ = ["allowed_file", "create_app"]


def _text(value: object) -> str:
    """A JSON value as the form field text `_options` parses (`true` for True, as a checkbox sends)."""
    return str(value).lower() if isinstance(value, bool) else str(value)
