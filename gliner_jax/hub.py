"""The Hugging Face hub: downloading a model repo into the local cache (huggingface_hub's
`snapshot_download`, so HF_ENDPOINT, HF_HOME, HF_TOKEN and HF_HUB_OFFLINE apply), and uploading a
saved model directory (`create_repo` + `upload_folder`). Every failure becomes one HubError line
that names the repo.
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


def upload(folder: str | Path, repo_id: str, *, commit_message: str | None = None,
           private: bool | None = None, token: str | bool | None = None,
           branch: str | None = None, create_pr: bool | None = None) -> str:
    """Push the files of `folder` to the model repo `repo_id` (created if missing) in one
    commit on `branch` (default main); the commit's URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    if not (looks_like_repo_id(repo_id) or looks_like_repo_id(f"user/{repo_id}")):
        raise HubError(f"push_to_hub: {repo_id!r} is not a hub repo id (NAME or ORG/NAME)")
    api = HfApi(token=token)
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=branch,
                                 create_pr=create_pr,
                                 commit_message=commit_message or "Push model using gliner_jax")
    except RepositoryNotFoundError:
        raise HubError(f"{repo_id}: no such model repo on the hub, and it could not be "
                       "created (log in: hf auth login, or HF_TOKEN)") from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        why = " (log in: hf auth login, or HF_TOKEN)" if status in (401, 403) else ""
        raise HubError(f"push_to_hub {repo_id}: the hub answered HTTP {status}{why}") from None
    except _transport_errors() as e:
        raise HubError(f"push_to_hub {repo_id}: the hub cannot be reached "
                       f"({type(e).__name__})") from None
    return str(info)


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
