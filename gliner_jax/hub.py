"""The Hugging Face hub: downloading a model repo into the local cache (huggingface_hub's
`snapshot_download`, so HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE apply). Every failure
becomes one HubError line that names the repo.
"""

from __future__ import annotations

from pathlib import Path

# what a GLiNER repo needs (config, weights, tokenizer); an ONNX export or training state in the
# same repo is not downloaded
MODEL_FILES = ("*.json", "*.safetensors", "pytorch_model.bin", "*.model", "vocab.txt",
               "merges.txt", "README.md")


class HubError(ValueError):
    """A hub id cannot be fetched: the message is one line and says why."""


def looks_like_repo_id(name: str) -> bool:
    return name.count("/") == 1 and not name.startswith((".", "/", "~")) and all(
        part.strip() for part in name.split("/"))


def download(repo_id: str, *, revision: str | None = None, cache_dir: str | Path | None = None,
             token: str | bool | None = None, force_download: bool = False,
             local_files_only: bool = False, allow_patterns=MODEL_FILES) -> Path:
    """The local snapshot directory of `repo_id` at `revision` (default: main), downloaded
    unless it is already cached."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f"{repo_id}" + (f" (revision {revision})" if revision else "")
    try:
        return Path(snapshot_download(
            repo_id, revision=revision, cache_dir=cache_dir, token=token,
            force_download=force_download, local_files_only=local_files_only,
            allow_patterns=list(allow_patterns)))
    except GatedRepoError:
        raise HubError(f"{at} is a gated repo on the hub: accept its conditions on the hub and "
                       "log in (hf auth login, or HF_TOKEN)") from None
    except RepositoryNotFoundError:
        raise HubError(f"{at}: no such model repo on the hub ({constants.ENDPOINT}); check the "
                       "id, or log in (hf auth login, or HF_TOKEN) if it is private") from None
    except RevisionNotFoundError:
        raise HubError(f"{repo_id} has no revision {revision!r} on the hub "
                       "(a branch, tag or commit hash)") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, *_transport_errors()) as e:
        why = ("offline mode is on (HF_HUB_OFFLINE=1) or local_files_only was given"
               if local_files_only or constants.HF_HUB_OFFLINE
               else "the hub cannot be reached")
        raise HubError(f"{at} is not a local directory and could not be fetched from the "
                       f"Hugging Face hub ({type(e).__name__}: {why}, and it is not in the "
                       "local cache); the id may also be wrong; pass a local directory "
                       "instead") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise HubError(f"{at}: the hub answered HTTP {status}") from None


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection errors of the HTTP client huggingface_hub uses (httpx from 1.0, requests
    before)."""
    import importlib

    out = []
    for module, name in (("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            out.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(out)
