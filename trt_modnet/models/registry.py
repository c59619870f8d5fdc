"""The official MODNet checkpoints, pinned by size and digest, with the hosts to try in order."""

from __future__ import annotations

from dataclasses import dataclass

_OMZ = "https://storage.openvinotoolkit.org/repositories/open_model_zoo/public/2022.2"
# The official Google Drive files, last: `confirm=t` skips the "cannot scan for viruses" page that Drive
# puts before files of this size; if Drive serves a page anyway (quota), the HTML check refuses it.
_DRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="


@dataclass(frozen=True)
class Pin:
    """What a downloaded file must be: `algo` is a hashlib name (sha256, sha384)."""

    algo: str
    hexdigest: str
    size: int | None = None


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    filename: str
    pin: Pin
    urls: tuple[str, ...]
    about: str = ""


# Intel's Open Model Zoo hosts copies of the official Google Drive files and pins them in
# models/public/modnet-*-portrait-matting/model.yml; the digests and sizes below are theirs.
MODELS: dict[str, RegisteredModel] = {
    m.name: m
    for m in (
        RegisteredModel(
            "photographic",
            "modnet_photographic_portrait_matting.ckpt",
            Pin(
                "sha384",
                "14fb9db68be32bbef0acd42d8925cf4750d2188c1bdd86399442a67f20f4a6f827f9ed1a56a3dc20258baaa004af9980",
                26255603,
            ),
            (
                f"{_OMZ}/modnet-photographic-portrait-matting/modnet_photographic_portrait_matting.ckpt",
                f"{_DRIVE}1mcr7ALciuAsHCpLnrtG_eop5-EYhbCmz",
            ),
            "official MODNet for images and footage",
        ),
        RegisteredModel(
            "webcam",
            "modnet_webcam_portrait_matting.ckpt",
            Pin(
                "sha384",
                "fab9c2ee2995642e21656a3180e75c9a73d3442a2500e5f0e0a08e14bfe9c4640fccf7c055162ff039f4dd066102652c",
                26255603,
            ),
            (
                f"{_OMZ}/modnet-webcam-portrait-matting/modnet_webcam_portrait_matting.ckpt",
                f"{_DRIVE}1Nf1ZxeJZJL8Qx9KadcYYyEmmlKhTADxX",
            ),
            "official MODNet adapted to webcam footage",
        ),
    )
}
DEFAULT_MODEL = "photographic"
