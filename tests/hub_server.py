"""A small Hugging Face hub stand-in on loopback, for HF_ENDPOINT=http://127.0.0.1:PORT.

It answers the routes huggingface_hub's snapshot_download uses, as the hub does:
  GET  /api/models/ORG/NAME[/revision/REV]          repo info: {"id", "sha", "siblings"}
  GET  /api/models/ORG/NAME/tree/REV?recursive=...  [{"type": "file", "path", "size", "oid"}]
  HEAD/GET /ORG/NAME/resolve/REV/PATH               the file, with X-Repo-Commit and ETag
and 404s carry X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound. Repos are made
from local directories: `add(repo_id, {revision: directory})`; a revision is also reachable by
its commit hash. Every request is logged in `requests` as (method, path).

Uploads (`HfApi.create_repo`, `upload_folder`, what `save_pretrained(push_to_hub=True)` uses):
  POST /api/repos/create                              {"name", "organization"?, "private"?}
  POST /api/models/ORG/NAME/preupload/REV             every file "regular" (inline, no LFS)
  POST /api/models/ORG/NAME/commit/REV                NDJSON: a header, then files (base64)
A request without "Authorization: Bearer ..." gets 401 (the hub's answer to anonymous writes).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Repo:
    def __init__(self):
        self.revisions: dict[str, tuple[str, dict[str, bytes]]] = {}  # name -> (sha, files)

    def add(self, name: str, files: dict[str, bytes]) -> str:
        h = hashlib.sha1()
        for path in sorted(files):
            h.update(path.encode() + b"\0" + files[path])
        sha = h.hexdigest()
        self.revisions[name] = (sha, files)
        self.revisions[sha] = (sha, files)
        return sha


class FakeHub:
    def __init__(self):
        self.repos: dict[str, _Repo] = {}
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_HEAD(self):
                hub._handle(self, body=False)

            def do_GET(self):
                hub._handle(self, body=True)

            def do_POST(self):
                hub._post(self)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo_id: str, revisions: dict[str, Path]) -> dict[str, str]:
        """Serve each directory as a revision of `repo_id`; {revision: commit sha}."""
        repo = self.repos.setdefault(repo_id, _Repo())
        return {name: repo.add(name, {p.relative_to(d).as_posix(): p.read_bytes()
                                      for p in sorted(Path(d).rglob("*")) if p.is_file()})
                for name, d in revisions.items()}

    # ------------------------------------------------------------------------------------------

    def _handle(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(h.path).path
        if path == "/_requests":  # for test scripts in other processes: the log so far
            return self._send(h, 200, json.dumps(self.requests).encode(),
                              {"Content-Type": "application/json"}, body)
        self.requests.append((h.command, path))
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo_id, rest = "/".join(parts[2:4]), parts[4:]
            if not rest:
                rest = ["revision", "main"]
            if rest[0] == "revision" and len(rest) == 2:
                return self._revision(h, repo_id, rest[1], body, tree=False)
            if rest[0] == "tree" and len(rest) >= 2:
                return self._revision(h, repo_id, rest[1], body, tree=True)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._file(h, "/".join(parts[:2]), parts[3], "/".join(parts[4:]), body)
        return self._error(h, 404, None, body)

    def _post(self, h: http.server.BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path
        self.requests.append((h.command, path))
        data = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        if not h.headers.get("Authorization", "").startswith("Bearer "):
            return self._error(h, 401, "Unauthorized", True)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["api", "repos", "create"]:
            req = json.loads(data)
            repo_id = "/".join(x for x in (req.get("organization"), req["name"]) if x)
            if repo_id in self.repos:
                return self._send(h, 409, json.dumps({"error": "already exists",
                                                      "url": f"{self.url}/{repo_id}"}).encode(),
                                  {"Content-Type": "application/json"}, True)
            self.repos[repo_id] = _Repo()
            return self._send(h, 200, json.dumps({"url": f"{self.url}/{repo_id}"}).encode(),
                              {"Content-Type": "application/json"}, True)
        if parts[:2] == ["api", "models"] and len(parts) == 6 and parts[4] in ("preupload",
                                                                                 "commit"):
            repo_id, rev = "/".join(parts[2:4]), parts[5]
            repo = self.repos.get(repo_id)
            if repo is None:
                return self._error(h, 404, "RepoNotFound", True)
            if parts[4] == "preupload":
                files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                         for f in json.loads(data)["files"]]
                return self._send(h, 200, json.dumps({"files": files}).encode(),
                                  {"Content-Type": "application/json"}, True)
            return self._commit(h, repo, repo_id, rev, data)
        return self._error(h, 404, None, True)

    def _commit(self, h, repo: _Repo, repo_id: str, rev: str, data: bytes) -> None:
        files = dict(repo.revisions.get(rev, ("", {}))[1])
        for line in data.splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
            elif item["key"] != "header":  # LFS files, copies: not served here
                return self._error(h, 400, "Unsupported", True)
        sha = repo.add(rev, files)
        out = {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha}
        self._send(h, 200, json.dumps(out).encode(), {"Content-Type": "application/json"}, True)

    def _lookup(self, h, repo_id: str, rev: str, body: bool):
        repo = self.repos.get(repo_id)
        if repo is None:
            self._error(h, 401, "RepoNotFound", body)  # the hub answers 401 for unknown repos
            return None
        if rev not in repo.revisions:
            self._error(h, 404, "RevisionNotFound", body)
            return None
        return repo.revisions[rev]

    def _revision(self, h, repo_id: str, rev: str, body: bool, tree: bool) -> None:
        found = self._lookup(h, repo_id, rev, body)
        if found is None:
            return
        sha, files = found
        if tree:
            data = [{"type": "file", "path": p, "size": len(b),
                     "oid": hashlib.sha1(b"blob %d\0" % len(b) + b).hexdigest()}
                    for p, b in sorted(files.items())]
        else:
            data = {"id": repo_id, "modelId": repo_id, "sha": sha, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)]}
        self._send(h, 200, json.dumps(data).encode(), {"Content-Type": "application/json"},
                   body)

    def _file(self, h, repo_id: str, rev: str, path: str, body: bool) -> None:
        found = self._lookup(h, repo_id, rev, body)
        if found is None:
            return
        sha, files = found
        if path not in files:
            return self._error(h, 404, "EntryNotFound", body)
        data = files[path]
        etag = hashlib.sha256(data).hexdigest()
        self._send(h, 200, data, {"X-Repo-Commit": sha, "ETag": f'"{etag}"',
                                  "Content-Type": "application/octet-stream"}, body)

    def _error(self, h, status: int, code: str | None, body: bool) -> None:
        headers = {"Content-Type": "application/json"}
        if code:
            headers["X-Error-Code"] = code
            headers["X-Error-Message"] = code
        self._send(h, status, json.dumps({"error": code or "not found"}).encode(), headers,
                   body)

    @staticmethod
    def _send(h, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if body:
            h.wfile.write(data)
