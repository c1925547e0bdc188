"""Opt-in download of an official SVD checkpoint from the Hugging Face Hub.

Nothing here runs unless asked (`--download`, `VideoPipeline.load(..., download=True)`): a local file
is always looked for first, and only the one file the model needs is fetched, with
`huggingface_hub.hf_hub_download`, into the standard Hugging Face cache (default) or a folder such as
`checkpoints/`. The official repositories are gated: the licence must be accepted on the model page
and the machine logged in (`hf auth login`, formerly `huggingface-cli login`) or `HF_TOKEN` set.
"""
import logging
import os
from typing import Optional

from .checkpoints import VERSIONS, Version
from .errors import InferenceError

logger = logging.getLogger(__name__)

HUB_URL = "https://huggingface.co/"


class DownloadError(InferenceError, FileNotFoundError):
    """The official file could not be fetched; the message says what to do (accept the licence and log
    in, go online, or put the file in place by hand)."""


def repo_id(version: Version) -> str:
    """'stabilityai/stable-video-diffusion-img2vid' from the version's Hub address."""
    return version.source[len(HUB_URL):] if version.source.startswith(HUB_URL) else version.source


def official_version(name: str) -> Version:
    """The Version of a version name ('svd_xt') or an official file name ('svd_xt.safetensors')."""
    if name in VERSIONS:
        return VERSIONS[name]
    for v in VERSIONS.values():
        if v.filename == os.path.basename(name):
            return v
    raise ValueError(f"{name!r} is not an official SVD file; --download fetches only "
                     f"{', '.join(v.filename for v in VERSIONS.values())}")


def download_official(name: str, local_dir: Optional[str] = None, token: Optional[str] = None) -> str:
    """Fetch the one official checkpoint `name` (a version or file name) and return its local path.

    local_dir: a folder to put the file in (e.g. "checkpoints"); default the Hugging Face cache
    (HF_HOME / HF_HUB_CACHE). token: a Hub token; default the logged-in one or HF_TOKEN.
    Raises DownloadError with what to do when the repository is gated, the machine is offline or
    the Hub refuses.
    """
    version = official_version(name)
    repo, page = repo_id(version), version.source
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as e:
        raise ImportError("--download needs huggingface_hub: pip install huggingface_hub") from e
    logger.info("downloading %s from %s into %s", version.filename, repo, local_dir or "the Hugging Face cache")
    try:
        return hf_hub_download(repo_id=repo, filename=version.filename, local_dir=local_dir, token=token)
    except GatedRepoError as e:
        raise DownloadError(
            f"{repo} is gated: open {page}, accept the licence with your Hugging Face account, then log in on this "
            f"machine with `hf auth login` (or `huggingface-cli login`) or set HF_TOKEN=<your token>, and run again") from e
    except RepositoryNotFoundError as e:  # also what the Hub answers for a gated repo without any token
        raise DownloadError(
            f"the Hub refused {repo}/{version.filename} ({type(e).__name__}); if you have not yet: accept the licence at "
            f"{page}, then `hf auth login` or set HF_TOKEN, and run again") from e
    except LocalEntryNotFoundError as e:
        raise DownloadError(
            f"cannot download {version.filename}: no connection to the Hub (or HF_HUB_OFFLINE=1) and it is not in the "
            f"cache; go online, or fetch {page}/blob/main/{version.filename} elsewhere and pass --ckpt with its path") from e
    except OSError as e:  # HTTP and connection errors of huggingface_hub are OSErrors
        raise DownloadError(f"downloading {repo}/{version.filename} failed: {e}; check the connection or pass --ckpt "
                            f"with a local copy from {page}") from e


def cached_official(name: str) -> Optional[str]:
    """The path of the official file `name` in the Hugging Face cache if an earlier --download put it
    there, else None. Reads only the local disk."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    version = official_version(name)
    found = try_to_load_from_cache(repo_id(version), version.filename)
    return found if isinstance(found, str) and os.path.isfile(found) else None


def find_or_download(ckpt: Optional[str], default: Optional[str], version: Optional[str], download: bool = False,
                     local_dir: Optional[str] = None) -> str:
    """The checkpoint `resolve_checkpoint` finds; when it is missing and `download` is set, the official
    file it stands for: from the Hugging Face cache when an earlier download put it there, else fetched
    with `download_official`. Without `download` nothing touches the network."""
    from .checkpoints import resolve_checkpoint
    from .errors import MissingCheckpointError

    try:
        return resolve_checkpoint(ckpt, default, version)
    except MissingCheckpointError as e:
        cached = cached_official(e.official_name) if e.official_name and ckpt is None else None
        if cached is not None:
            logger.info("using %s from the Hugging Face cache", cached)
            return cached
        if not download:
            raise
        if e.official_name is None:
            raise ValueError(f"--download fetches only the official files; {e.path} is not one of them: pass --ckpt "
                             f"with your weights or use --version") from e
        return download_official(e.official_name, local_dir=local_dir)
