"""A stand-in for Kaggle's API on loopback, for driving the real Kaggle CLI in tests.

Written from the request and response shapes the Kaggle CLI 2.2.5 and its
kagglesdk 0.1.38 send and read (POST ``/api/v1/<service>/<Method>`` with a
JSON body, camelCase fields; errors as ``{"code": N, "message": ...}`` with
that HTTP status; blobs PUT to the ``createUrl`` a ``StartBlobUpload`` gave).

How the CLI gets here: ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes it call
``http://localhost/api/v1/...`` (its own switch for Kaggle's local servers),
and ``HTTP_PROXY`` (which ``requests`` honours) sends those requests to this
server on 127.0.0.1 at a port picked when it starts, as absolute-URI proxy
requests. Nothing leaves the machine: the server answers everything itself.

It keeps what Kaggle would keep (datasets with versions and a processing
status, uploaded blobs, notebooks with versions and a run status,
submissions) and a log of every call, and can be told to refuse the
credentials, fail blob uploads, or report a new dataset version late.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Dataset:
    title: str
    version: int = 0          # the last version Kaggle finished processing (currentVersionNumber)
    pending: int = 0          # status polls left before the newest upload is ready
    files: list[list[str]] = field(default_factory=list)  # blob tokens per uploaded version
    private: bool = True


@dataclass
class Kernel:
    versions: list[dict] = field(default_factory=list)   # the SaveKernel requests, one per version
    running: int = 0          # status polls left before the newest version completes


class KaggleStandIn:
    """The server: start it, point the CLI at :meth:`env`, inspect :attr:`calls` and the state."""

    def __init__(self, users: dict[str, str] | None = None):
        self.users = dict(users or {"alice": "good-key"})
        self.calls: list[tuple[str, dict]] = []   # (Method, request JSON) for every API call, in order
        self.blobs: dict[str, int] = {}           # token -> bytes received
        self.datasets: dict[str, Dataset] = {}
        self.kernels: dict[str, Kernel] = {}
        self.submissions: list[dict] = []
        # Behaviour switches.
        self.refuse_all = False       # every call answers 401 (a revoked key)
        self.fail_uploads = False     # blob PUTs answer 403 (the signed URL refused)
        self.processing_polls = 2     # status polls a new dataset version stays in processing
        self.stale_ready_polls = 0    # ...of which it first says "ready" for the previous version
        self.run_polls = 2            # kernel status polls before a version completes
        self.kernel_error = ""        # a version ends in ERROR with this failure message
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> KaggleStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        """What the Kaggle CLI's environment needs to talk to this server (no credential in it)."""
        proxy = f"http://127.0.0.1:{self.port}"
        return {"KAGGLE_API_ENVIRONMENT": "LOCALHOST", "HTTP_PROXY": proxy, "http_proxy": proxy,
                "NO_PROXY": "", "no_proxy": ""}

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]

    # -------------------------------------------------------------- API

    def _api(self, method: str, body: dict, user: str | None) -> tuple[int, dict]:
        if user is None or self.refuse_all:
            return 401, {"code": 401, "message": "Unauthenticated: invalid or missing credentials"}
        handler = getattr(self, f"_{method}", None)
        if handler is None:
            return 404, {"code": 404, "message": f"stand-in has no {method}"}
        return handler(body, user)

    def _GetDatasetStatus(self, body, user):
        ds = self.datasets.get(f"{body.get('ownerSlug')}/{body.get('datasetSlug')}")
        if ds is None:
            return 404, {"code": 404, "message": "Not found"}
        if ds.pending > 0:
            polls_done = self.processing_polls - ds.pending
            ds.pending -= 1
            if ds.pending == 0:
                ds.version = len(ds.files)  # processed: the new version is the current one
            elif polls_done < self.stale_ready_polls and ds.version > 0:
                return 200, {"status": "READY"}  # still the previous version's status
            else:
                return 200, {"status": "BLOBS_RECEIVED"}
        return 200, {"status": "READY"}

    def _GetDataset(self, body, user):
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        ds = self.datasets.get(ref)
        if ds is None:
            return 404, {"code": 404, "message": "Not found"}
        return 200, {"ref": ref, "title": ds.title, "currentVersionNumber": ds.version}

    def _StartBlobUpload(self, body, user):
        token = f"blob-{len(self.blobs) + 1}"
        self.blobs[token] = -1  # not received yet
        return 200, {"token": token, "createUrl": f"http://127.0.0.1:{self.port}/upload/{token}"}

    def _uploaded(self, files) -> list[str] | None:
        tokens = [f.get("token") for f in files or []]
        return tokens if tokens and all(self.blobs.get(t, -1) >= 0 for t in tokens) else None

    def _CreateDataset(self, body, user):
        ref = f"{body.get('ownerSlug')}/{body.get('slug')}"
        if body.get("ownerSlug") != user:
            return 403, {"code": 403, "message": f"{user} may not create datasets for {body.get('ownerSlug')}"}
        tokens = self._uploaded(body.get("files"))
        if ref in self.datasets or tokens is None:
            return 200, {"status": "error", "error": "slug in use" if ref in self.datasets else "files missing"}
        self.datasets[ref] = Dataset(body.get("title", ""), files=[tokens], pending=self.processing_polls,
                                     private=body.get("isPrivate", False))
        return 200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok"}

    def _CreateDatasetVersion(self, body, user):
        ref = f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"
        ds = self.datasets.get(ref)
        if ds is None:
            return 404, {"code": 404, "message": "Not found"}
        tokens = self._uploaded(body.get("body", {}).get("files"))
        if tokens is None:
            return 200, {"status": "error", "error": "files missing"}
        ds.files.append(tokens)
        ds.pending = self.processing_polls
        return 200, {"ref": ref, "url": f"http://localhost/datasets/{ref}", "status": "ok"}

    def _SaveKernel(self, body, user):
        ref = body.get("slug", "")
        if ref.split("/")[0] != user:
            return 403, {"code": 403, "message": f"{user} may not save {ref}"}
        invalid = [s for s in body.get("datasetDataSources", [])
                   if s not in self.datasets or self.datasets[s].version == 0]
        kernel = self.kernels.setdefault(ref, Kernel())
        kernel.versions.append(body)
        kernel.running = self.run_polls
        answer = {"ref": f"/code/{ref}", "url": f"http://localhost/code/{ref}", "versionNumber": len(kernel.versions)}
        if invalid:
            answer["invalidDatasetSources"] = invalid
        return 200, answer

    def _GetKernelSessionStatus(self, body, user):
        ref = f"{body.get('userName')}/{body.get('kernelSlug')}"
        kernel = self.kernels.get(ref)
        label = body.get("versionLabel", "")
        if kernel is None or (label and label != f"v{len(kernel.versions)}"):
            return 404, {"code": 404, "message": "Not found"}
        if kernel.running > 0:
            kernel.running -= 1
            return 200, {"status": "RUNNING"}
        if self.kernel_error:
            return 200, {"status": "ERROR", "failureMessage": self.kernel_error}
        return 200, {"status": "COMPLETE"}

    def _CreateCodeSubmission(self, body, user):
        ref = f"{body.get('kernelOwner') or user}/{body.get('kernelSlug')}"
        if ref not in self.kernels:
            return 404, {"code": 404, "message": "Not found"}
        self.submissions.append(body)
        return 200, {"message": f"Successfully submitted to {body.get('competitionName')}",
                     "ref": 1000 + len(self.submissions)}

    def _GetSubmissionLimits(self, body, user):
        return 200, {"numToday": len(self.submissions), "numAllowedNow": 5 - len(self.submissions)}

    # -------------------------------------------------------------- HTTP

    def _user(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        name, _, key = base64.b64decode(header[6:]).decode().partition(":")
        return name if self.users.get(name) == key else None

    def _handler(self):
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _reply(self, code: int, data: dict | None = None) -> None:
                raw = json.dumps(data or {}).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_POST(self):
                path = urlsplit(self.path).path
                raw = self._body()
                if not path.startswith("/api/v1/"):
                    return self._reply(404, {"code": 404, "message": path})
                method = path.rsplit("/", 1)[-1]
                body = json.loads(raw or b"{}")
                with standin._lock:
                    standin.calls.append((method, body))
                    code, answer = standin._api(method, body, standin._user(self.headers.get("Authorization")))
                self._reply(code, answer)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
                    if size == 0:
                        return b"".join(parts)

            def do_PUT(self):
                path = urlsplit(self.path).path
                raw = self._body()
                token = path.rsplit("/", 1)[-1]
                with standin._lock:
                    standin.calls.append(("PUT", {"token": token, "bytes": len(raw)}))
                    if standin.fail_uploads or token not in standin.blobs:
                        return self._reply(403, {"code": 403, "message": "upload URL refused"})
                    standin.blobs[token] = len(raw)
                self._reply(200, {})

        return Handler
