"""Where ``ninefit simulate`` runs a notebook: an executor process cut off from the network.

:func:`simulate <packager.offline.simulate.simulate>` lays out the Kaggle-shaped
tree and judges the outcome; this module is the part in between:

* the kernel: :func:`kernel_python` (an overlay virtual environment of this
  interpreter that sees this environment's packages) and :func:`kernelspec`
  (a private kernelspec found through ``JUPYTER_PATH``);
* the isolation: :func:`netns_unavailable` says whether a user and network
  namespace can be made; :func:`guard_site` writes the ``sitecustomize`` that
  installs :func:`_network_guard`, the audit hook that logs (and without a
  namespace, refuses) every outside socket use in each Python process of the
  notebook; :func:`read_attempts` reads its log back;
* the executor: :func:`execute` starts ``python -m packager.offline.sandbox
  SPEC`` (inside ``unshare --user --map-root-user --net`` where permitted),
  which brings loopback up, drops its capabilities, runs the notebook with
  nbclient against a deadline and writes its outcome as JSON; the parent
  kills its process groups if it overruns;
* a sibling: where the spec names a ``gateway`` (the evaluation API's
  rehearsal), the executor starts that process beside the kernel, in the same
  namespace (one loopback for both), and kills the kernel when the gateway
  exits, as Kaggle tears the notebook's container down once its gateway is
  done; a notebook that ends first stops the gateway.

Standard library and nbclient only: it runs inside the namespace, before any
of ninefit's own imports could matter.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import re
import signal
import site
import subprocess
import sys
import textwrap
import threading
import time
import venv
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

KERNEL_NAME = "ninefit-simulate"
STARTUP_ALLOWANCE_S = 60.0  # kernel start and teardown, on top of the notebook's own limit
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# -- the kernel-side network guard (runs in the kernel, standard library only) ----------------------


def _network_guard(log_path: str, block: bool, proxy_port: int | None = None) -> None:
    """Log (and with ``block``, refuse) this process's socket use beyond loopback.

    A connection to loopback's ``proxy_port`` counts as outside: it is the dead
    proxy that HTTP clients are pointed at, so their requests are caught too.
    Each logged attempt names the process: the kernel, or the command line of
    a Python subprocess.
    """
    import errno
    import ipaddress
    import json
    import os
    import socket
    import sys

    command = " ".join(sys.orig_argv if hasattr(sys, "orig_argv") else sys.argv)
    process = "kernel" if "ipykernel_launcher" in command else f"subprocess pid {os.getpid()}: {command[:120]}"

    local_names = {"", "localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback", socket.gethostname().lower()}

    class NetworkBlockedError(OSError):
        """ninefit simulate refused a network access (Kaggle reruns the notebook offline)."""

    def is_local(host) -> bool:
        if host is None:
            return True
        if isinstance(host, (bytes, bytearray)):
            host = bytes(host).decode(errors="replace")
        host = str(host).split("%")[0].lower()
        if host in local_names:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or ip.is_unspecified

    def hook(event: str, args: tuple) -> None:
        if event in ("socket.connect", "socket.sendto"):
            address = args[1]
            if not isinstance(address, tuple):  # AF_UNIX and friends
                return
            host = address[0]
            if proxy_port is not None and len(address) > 1 and address[1] == proxy_port and is_local(host):
                host = f"{host}:{proxy_port} (the HTTP proxy, for an outside request)"
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
            host = args[0]
        else:
            return
        if is_local(host):
            return
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, "host": str(host), "process": process}) + "\n")
        if block:
            raise NetworkBlockedError(errno.ENETUNREACH, f"ninefit simulate: network access blocked ({event} to {host!r}); "
                                      "Kaggle reruns this notebook with the internet off")

    sys.addaudithook(hook)


# -- the kernel and the isolation -------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def netns_unavailable() -> str | None:
    """Why ``unshare --user --net`` cannot be used here; None when it can."""
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"],
                              capture_output=True, text=True, timeout=20)
    except FileNotFoundError:
        return "the unshare command is not installed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare failed: {exc}"
    if done.returncode != 0:
        return f"unshare is not permitted here: {done.stderr.strip() or f'exit {done.returncode}'}"
    return None


def kernel_python(root: Path) -> Path:
    """An overlay virtual environment of this interpreter that sees this environment's packages."""
    env = root / "kernel-env"
    venv.create(env, symlinks=True, with_pip=False, system_site_packages=False)
    (site_dir,) = env.glob("lib/python*/site-packages")
    dirs = [p for p in site.getsitepackages() if os.path.isdir(p)]
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages()):
        dirs.append(site.getusersitepackages())
    (site_dir / "_ninefit_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({d!r})\n" for d in dirs), encoding="utf-8")
    return env / "bin" / "python"


def kernelspec(root: Path, python: Path) -> Path:
    """A private kernelspec; ``JUPYTER_PATH`` puts it before any the user has."""
    spec_dir = root / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ninefit simulate (Python 3)",
        "language": "python",
    }, indent=1), encoding="utf-8")
    return root / "jupyter"


def guard_site(folder: Path, log_path: Path, block: bool, proxy_port: int | None) -> Path:
    """Write a ``sitecustomize`` that installs :func:`_network_guard`; returns the folder for ``PYTHONPATH``.

    Python imports ``sitecustomize`` at start-up, before any user code, in the
    kernel and in every Python subprocess that inherits ``PYTHONPATH``. The
    ``sitecustomize`` it would otherwise have found (Debian's, a conda one) is
    run after the guard, so the kernel behaves as it does without it.
    """
    folder.mkdir(parents=True)
    source = textwrap.dedent(inspect.getsource(_network_guard))
    chain = textwrap.dedent(f"""
        def _chain():
            import importlib.machinery
            import importlib.util
            import os
            import sys

            here = os.path.realpath({str(folder)!r})
            rest = [p for p in sys.path if os.path.realpath(p or os.curdir) != here]
            spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules["sitecustomize"] = module
                spec.loader.exec_module(module)
    """)
    (folder / "sitecustomize.py").write_text(
        f'"""ninefit simulate: the network guard, in every Python process of the notebook."""\n\n{source}\n\n'
        f"_network_guard({str(log_path)!r}, {block!r}, {proxy_port!r})\ndel _network_guard\n{chain}\n_chain()\ndel _chain\n",
        encoding="utf-8")
    return folder


# -- running the executor --------------------------------------------------------------------------


def execute(root: Path, use_netns: bool, limit_s: float) -> dict[str, Any]:
    """Run the executor process; kill it (and its kernel) if it overruns the limit."""
    cmd = [sys.executable, "-m", "packager.offline.sandbox", str(root / "spec.json")]
    if use_netns:
        cmd = ["unshare", "--user", "--map-root-user", "--net", "--", *cmd]
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])  # the repo root, so the executor imports this very packager
    env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    t0 = time.monotonic()
    with open(root / "worker.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        killed = False
        try:
            proc.wait(timeout=limit_s + STARTUP_ALLOWANCE_S)
        except subprocess.TimeoutExpired:
            killed = True
        finally:
            # Overrun, Ctrl-C, or an executor that died without shutting its kernel down:
            # nothing may outlive the tree the caller removes next. After a clean exit
            # both groups are empty and this does nothing.
            _kill_groups(root, proc)
    return {"killed": killed, "returncode": proc.returncode, "seconds": time.monotonic() - t0}


def _kill_groups(root: Path, proc: subprocess.Popen) -> None:
    """SIGKILL the executor's, the kernel's and the gateway's process groups (each its own session), then reap
    the executor."""
    for pgid in (proc.pid, _read_pid(root / "kernel.pid"), _read_pid(root / "gateway.pid")):
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    proc.wait()


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def read_attempts(path: Path) -> list[str]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            process = rec.get("process", "kernel")
            out.append(f"{rec['event']} {rec['host']}" + ("" if process == "kernel" else f" (from {process})"))
        except (ValueError, KeyError):
            continue
    return out


# -- the executor (runs in its own process, inside the namespace) ------------------------------------


def _loopback_up() -> None:
    """``ip link set lo up``, by ioctl (needs CAP_NET_ADMIN, which the namespace's root has)."""
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, struct.pack("16sh", b"lo", 0)))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _drop_capabilities() -> None:
    """Empty the capability bounding set: processes started from now on have no capabilities.

    Without this the kernel, root in its namespace, could write to the read-only inputs.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for cap in range(last + 1):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), f"prctl(PR_CAPBSET_DROP, {cap}) failed")


class _Sibling:
    """The rehearsal gateway, a process beside the kernel: when it exits first, the kernel is killed."""

    def __init__(self, spec: Mapping[str, Any], kernel_pid: Any):
        self.spec, self.kernel_pid = spec, kernel_pid
        self.finished_first = False
        self._notebook_done = threading.Event()
        with open(spec["log"], "wb") as log:
            self.proc = subprocess.Popen(spec["command"], cwd=spec["cwd"], env=spec["env"], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        Path(spec["pidfile"]).write_text(str(self.proc.pid))
        threading.Thread(target=self._watch, name="gateway-watch", daemon=True).start()

    def _watch(self) -> None:
        self.proc.wait()
        while not self._notebook_done.is_set():
            pid = self.kernel_pid()
            if pid:  # the gateway is done: the container goes, the kernel with it (nothing after serve() runs)
                self.finished_first = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                return
            time.sleep(0.05)  # the kernel is still starting

    def stop(self) -> dict[str, Any]:
        """The notebook is done: stop the gateway if it still runs; (whether it finished first, its exit code)."""
        self._notebook_done.set()
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, None)):
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=wait_s)
                    break
                except (ProcessLookupError, PermissionError):
                    break
                except subprocess.TimeoutExpired:
                    continue
        return {"finished_first": self.finished_first, "returncode": self.proc.returncode}


def _executor(spec: Mapping[str, Any]) -> dict[str, Any]:
    from traitlets.config import Config

    result: dict[str, Any] = {}
    notes = []
    if spec["netns"]:
        try:
            _loopback_up()  # for the notebook's own use of localhost; the kernel link needs none
        except OSError as exc:
            notes.append(f"the loopback interface could not be brought up ({exc})")
    if spec["netns"] or os.geteuid() == 0:
        # Root (of the namespace, or real root) ignores the read-only modes; Kaggle's read-only mount does not.
        try:
            _drop_capabilities()
        except OSError as exc:
            notes.append(f"capabilities could not be dropped ({exc}): the inputs are writable for root")
    # ZeroMQ over unix sockets: no TCP port to pick or to collide, and no interface needed
    os.makedirs(spec["ipc_dir"], exist_ok=True)
    config = Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(spec["ipc_dir"], "k")}})
    if notes:
        result["note"] = "; ".join(notes)
    os.environ.clear()
    os.environ.update(spec["env"])

    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(spec["notebook"], as_version=4)
    state: dict[str, Any] = {"deadline": None, "start": None, "cell": None, "kernel": None}

    def on_start(**_: Any) -> None:
        state["start"] = time.monotonic()
        state["deadline"] = state["start"] + float(spec["limit_s"])
        pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
        if pid:
            Path(spec["pidfile"]).write_text(str(pid))
            state["kernel"] = pid

    def on_cell(cell: Any, cell_index: int, **_: Any) -> None:
        state["cell"] = cell_index

    def timeout(_cell: Any) -> int:
        return max(1, math.ceil(state["deadline"] - time.monotonic()))

    client = NotebookClient(
        nb, kernel_name=KERNEL_NAME, timeout_func=timeout, startup_timeout=int(STARTUP_ALLOWANCE_S),
        shutdown_kernel="immediate", resources={"metadata": {"path": spec["cwd"]}},
        on_notebook_start=on_start, on_cell_start=on_cell, config=config,
    )
    sibling = _Sibling(spec["gateway"], lambda: state["kernel"]) if spec.get("gateway") else None
    try:
        client.execute()
        result["status"] = "ok"
    except CellTimeoutError:
        result["status"] = "timeout"
    except CellExecutionError as exc:
        tb = _ANSI.sub("", exc.traceback or "")
        result.update(status="error", ename=exc.ename, evalue=exc.evalue, traceback=tb[-20000:],
                      traceback_tail="\n".join(tb.strip().splitlines()[-8:]))
    except DeadKernelError as exc:
        result.update(status="dead", ename="DeadKernelError", evalue=str(exc))
    except Exception as exc:  # the simulator's own failure (e.g. the kernel did not start)
        result.update(status="simulator-error", message=f"{type(exc).__name__}: {exc}")
    if sibling is not None:
        result["gateway"] = sibling.stop()
        if result["gateway"]["finished_first"] and result["status"] in ("dead", "ok"):
            result["status"] = "served"  # the kernel was stopped because the gateway was done
    if state["cell"] is not None:
        result["cell"] = state["cell"]
        result["source"] = "\n".join(("  > " + line) for line in str(nb.cells[state["cell"]].source).splitlines()[:3])
    if state["start"] is not None:
        result["seconds"] = time.monotonic() - state["start"]
    nbformat.write(client.nb, spec["executed"])
    return result


def _main(argv: Sequence[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    try:
        result = _executor(spec)
    except Exception as exc:  # report rather than die silently: the parent turns it into a PackagingError
        result = {"status": "simulator-error", "message": f"{type(exc).__name__}: {exc}"}
    Path(spec["result"]).write_text(json.dumps(result), encoding="utf-8")
    return 0


__all__ = ["KERNEL_NAME", "STARTUP_ALLOWANCE_S", "execute", "guard_site", "kernel_python", "kernelspec", "netns_unavailable",
           "read_attempts"]

if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
