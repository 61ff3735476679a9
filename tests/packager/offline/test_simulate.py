"""`ninefit simulate`: the digits notebook passes offline, and each Kaggle failure is told apart.

Every test that runs a notebook starts a kernel (about a second here) and is
marked ``slow``; the submission check and the verdict logic are tested
without one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from packager.cli import main
from packager.offline.simulate import (
    CPU_FALLBACK,
    DAMAGED,
    EXCEPTION,
    INVALID,
    NETWORK,
    NOT_FOUND,
    PASSED,
    TIMEOUT,
    _judge,
    check_submission,
    netns_unavailable,
    simulate,
)
from runtime.errors import DataError, PackagingError
from runtime.manifest import SubmissionSpec
from runtime.run import RunOptions, run
from tests.runtime.test_run_damage import damage

ARGMAX = SubmissionSpec(id_column="id", columns=("label",), mode="argmax", classes=tuple("0123456789"))
ISOLATIONS = [
    pytest.param("netns", marks=pytest.mark.skipif(bool(netns_unavailable()), reason=f"no network namespace: {netns_unavailable()}")),
    "audit",
]


@pytest.fixture(scope="session")
def nb_bundle(digits_bundle) -> Path:
    return digits_bundle


@pytest.fixture(scope="session")
def data_dir(digits_dir) -> Path:
    return digits_dir / "data"


@pytest.fixture(scope="session")
def sample_csv(data_dir) -> Path:
    return data_dir / "sample_submission.csv"


def notebook(tmp_path: Path, *sources: str) -> Path:
    """A notebook of the given code cells (they read their paths from the NINEFIT_* variables)."""
    nb = new_notebook(cells=[new_code_cell("import os\nOUT = os.environ['NINEFIT_OUT']\nDATA_DIR = os.environ['NINEFIT_DATA_DIR']"),
                             *(new_code_cell(s) for s in sources)],
                      metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    path = tmp_path / "custom.ipynb"
    nbformat.write(nb, str(path))
    return path


def write_csv(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# -- with a kernel --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_digits_notebook_passes_offline_with_the_same_submission_as_run(nb_bundle, tmp_path, data_dir):
    result = simulate(nb_bundle, data_dir, time_limit="2m", keep=tmp_path / "kept")
    assert result.verdict == PASSED, result.summary()
    assert result.kaggle_failure is None and result.passed and not result.network_attempts
    expected = tmp_path / "expected.csv"
    run(nb_bundle, data_dir, expected, RunOptions(progress=False))
    assert result.submission == tmp_path / "kept" / "submission.csv"
    assert result.submission.read_bytes() == expected.read_bytes()
    assert result.report is not None and result.report["covered_rows"] == result.report["rows"] == 540
    assert "540/540 rows covered" in result.report_text and "/kaggle/working/submission.csv" in result.report_text
    executed = nbformat.read(str(result.notebook), as_version=4)
    assert all(c.execution_count for c in executed.cells if c.cell_type == "code")
    runtime_line = next(o.text for c in executed.cells if c.id == "ninefit-run" for o in c.outputs if o.get("name") == "stdout")
    assert "kaggle/input/digits/runtime" in runtime_line  # the vendored runtime, not this checkout's
    assert "verdict: passed" in result.summary() and result.isolation


# Never a real outside address: a name under the reserved .invalid TLD (RFC 2606) never resolves, and
# 192.0.2.1 is TEST-NET-1 (RFC 5737), reserved for documentation and routed nowhere.
OUTSIDE_NAME, OUTSIDE_IP = "host.invalid", "192.0.2.1"


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("isolation", ISOLATIONS)
@pytest.mark.parametrize("target", [OUTSIDE_IP, OUTSIDE_NAME])
def test_network_access_is_cut_off_and_reported(nb_bundle, tmp_path, isolation, target, data_dir):
    nb = notebook(tmp_path, f"import socket\nsocket.create_connection(({target!r}, 80), timeout=5)")
    result = simulate(nb_bundle, data_dir, time_limit="1m", notebook=nb, isolation=isolation)
    assert result.verdict == NETWORK, result.summary()
    assert result.kaggle_failure == "Notebook Threw Exception"
    assert result.network_attempts and target in result.details
    assert ("namespace" if isolation == "netns" else "audit hook") in result.isolation


SUBPROCESS_CONNECT = (
    "import subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', 'import socket; socket.create_connection((\"{host}\", 80), timeout=5)'], "
    "check={check})"
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_audit_hook_covers_python_subprocesses_through_the_cli(nb_bundle, tmp_path, capsys, data_dir):
    """Without a namespace, a Python subprocess of the kernel is guarded as the kernel is, and the gaps are said."""
    nb = notebook(tmp_path, SUBPROCESS_CONNECT.format(host=OUTSIDE_NAME, check=True))
    code = main(["simulate", str(nb_bundle), "--data", str(data_dir), "--time-limit", "1m", "--notebook", str(nb),
                 "--isolation", "audit", "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"verdict: {NETWORK} (Kaggle: Notebook Threw Exception)"), out
    assert f"socket.getaddrinfo {OUTSIDE_NAME} (from subprocess pid" in out
    assert "audit hook" in out and "NOT covered: programs that are not Python" in out and "ctypes" in out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_subprocess_attempt_is_noted_when_the_notebook_carries_on(nb_bundle, tmp_path, data_dir):
    nb = notebook(tmp_path, SUBPROCESS_CONNECT.format(host=OUTSIDE_IP, check=False),
                  "import shutil\nshutil.copy(os.path.join(DATA_DIR, 'sample_submission.csv'), OUT)")
    result = simulate(nb_bundle, data_dir, time_limit="1m", notebook=nb, isolation="audit")
    assert result.verdict == PASSED, result.summary()
    assert any(f" {OUTSIDE_IP} (from subprocess pid" in a for a in result.network_attempts), result.network_attempts
    assert result.details.startswith("note: the kernel tried to reach: socket.") and OUTSIDE_IP in result.details


@pytest.mark.timeout(60)
def test_the_guard_chains_to_the_sitecustomize_it_shadows(tmp_path):
    """The guard's sitecustomize blocks outside lookups in a fresh Python, then runs the one it hides."""
    import subprocess
    import sys

    from packager.offline.sandbox import guard_site

    guard = guard_site(tmp_path / "guard", tmp_path / "net.jsonl", block=True, proxy_port=None)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import builtins\nbuiltins.THEIRS = True\n")
    probe = ("import builtins, socket\nprint('THEIRS', getattr(builtins, 'THEIRS', False))\n"
             f"try:\n    socket.getaddrinfo({OUTSIDE_NAME!r}, 80)\nexcept OSError as e:\n    print(type(e).__name__)\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{guard}:{theirs}"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["THEIRS", "True", "NetworkBlockedError"]
    assert OUTSIDE_NAME in (tmp_path / "net.jsonl").read_text()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kernel_uses_this_interpreter_and_inputs_are_read_only(nb_bundle, tmp_path, data_dir):
    import os
    import sys

    import numpy

    nb = notebook(
        tmp_path,
        f"import os, sys, numpy\nassert os.path.realpath(sys.executable) == {os.path.realpath(sys.executable)!r}, sys.executable\n"
        f"assert numpy.__file__ == {numpy.__file__!r}, numpy.__file__",
        "import shutil\nshutil.copy(os.path.join(DATA_DIR, 'sample_submission.csv'), OUT)",
        "open(os.path.join(os.environ['NINEFIT_BUNDLE_DIR'], 'scratch.txt'), 'w')",
    )
    result = simulate(nb_bundle, data_dir, time_limit="1m", notebook=nb)
    assert result.verdict == EXCEPTION, result.summary()
    assert "cell 3: PermissionError" in result.details and "/kaggle/input/digits/scratch.txt" in result.details


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_cell_running_past_the_limit_is_a_timeout(nb_bundle, tmp_path, data_dir):
    nb = notebook(tmp_path, "import time\ntime.sleep(120)")
    result = simulate(nb_bundle, data_dir, time_limit="3s", notebook=nb)
    assert result.verdict == TIMEOUT and result.kaggle_failure == "Notebook Timeout", result.summary()
    assert "cell 1" in result.details and "time.sleep(120)" in result.details
    assert result.seconds < 30


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_no_submission_is_reported_by_the_cli(nb_bundle, tmp_path, capsys, data_dir):
    nb = notebook(tmp_path, "print('forgot to write it')")
    code = main(["simulate", str(nb_bundle), "--data", str(data_dir), "--time-limit", "1m", "--notebook", str(nb),
                 "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"verdict: {NOT_FOUND} (Kaggle: Submission CSV Not Found)")
    kept = nbformat.read(str(tmp_path / "kept" / "notebook.ipynb"), as_version=4)
    assert kept.cells[1].outputs[0].text == "forgot to write it\n"  # the executed notebook, with its outputs
    assert not (tmp_path / "kept" / "submission.csv").exists()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_damaged_bundle_fails_the_verdict_though_the_run_goes_on(nb_bundle, tmp_path, capsys, data_dir):
    bundle = tmp_path / "bundle"
    shutil.copytree(nb_bundle, bundle)
    damage(bundle, "models/mlp/fp32.onnx")
    code = main(["simulate", str(bundle), "--data", str(data_dir), "--time-limit", "2m", "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"verdict: {DAMAGED} (Kaggle: no failure, but the run left out what the damage belongs to)")
    assert "models/mlp/fp32.onnx: modified (sha256 differs from the manifest) -> member 'mlp'" in out
    assert "the notebook's own verdict: passed" in out  # the rerun was not lost: a valid submission without mlp
    report = json.loads((tmp_path / "kept" / "run_report.json").read_text())
    assert [m["status"] for m in report["members"]] == ["done", "failed"] and report["damage"]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_broken_submission_is_invalid(nb_bundle, tmp_path, data_dir):
    nb = notebook(tmp_path, "lines = open(os.path.join(DATA_DIR, 'sample_submission.csv')).read().splitlines()\n"
                            "open(OUT, 'w').write('\\n'.join(lines[:-5]) + '\\n')")
    result = simulate(nb_bundle, data_dir, time_limit="1m", notebook=nb)
    assert result.verdict == INVALID and result.kaggle_failure == "Submission Scoring Error", result.summary()
    assert "535 rows, the sample submission has 540" in result.details
    assert "5 id(s) of the sample submission are missing" in result.details


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_exception_is_reported_with_its_cell(nb_bundle, tmp_path, data_dir):
    nb = notebook(tmp_path, "raise KeyError('new category in the hidden data')")
    result = simulate(nb_bundle, data_dir, time_limit="1m", notebook=nb)
    assert result.verdict == EXCEPTION and result.kaggle_failure == "Notebook Threw Exception"
    assert "cell 1: KeyError: 'new category in the hidden data'" in result.details


# -- without a kernel -----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_user_mistakes_are_ninefit_errors(nb_bundle, tmp_path, data_dir):
    with pytest.raises(DataError, match="does not exist"):
        simulate(nb_bundle, tmp_path / "nope")
    with pytest.raises(DataError, match="sample_submission.csv"):
        simulate(nb_bundle, tmp_path)
    with pytest.raises(PackagingError, match="not found"):
        simulate(nb_bundle, data_dir, notebook=tmp_path / "missing.ipynb")
    (tmp_path / "broken.ipynb").write_text("{")
    with pytest.raises(PackagingError, match="not a valid Jupyter notebook"):
        simulate(nb_bundle, data_dir, notebook=tmp_path / "broken.ipynb")
    with pytest.raises(PackagingError, match="9h"):
        simulate(nb_bundle, data_dir, time_limit="soon")


@pytest.mark.timeout(60)
def test_check_submission_accepts_the_sample_itself(sample_csv):
    assert check_submission(sample_csv, sample_csv, ARGMAX) == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("edit, needle", [
    (lambda ls: ["id,target", *ls[1:]], "columns ['id', 'target'], expected ['id', 'label']"),
    (lambda ls: ls[:-3], "3 id(s) of the sample submission are missing"),
    (lambda ls: [*ls, ls[1]], "1 duplicated id(s)"),
    (lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "another order than the sample's (line 2"),
    (lambda ls: [ls[0], ls[1].split(",")[0] + ",", *ls[2:]], "1 empty or NaN value(s) (line 2 label='')"),
    (lambda ls: [ls[0], ls[1].split(",")[0] + ",NaN", *ls[2:]], "empty or NaN"),
    (lambda ls: [ls[0], ls[1].split(",")[0] + ",cat", *ls[2:]], "labels not among the declared classes"),
    (lambda ls: [ls[0], ls[1] + ",extra", *ls[2:]], "1 row(s) do not have 2 cells"),
    (lambda ls: [ls[0], "zzz,1", *ls[2:]], "not in the sample submission (zzz)"),
])
def test_check_submission_names_what_is_wrong(tmp_path, edit, needle, sample_csv):
    lines = sample_csv.read_text().splitlines()
    problems = check_submission(write_csv(tmp_path / "s.csv", edit(lines)), sample_csv, ARGMAX)
    assert any(needle in p for p in problems), problems


@pytest.mark.timeout(60)
def test_check_submission_values_mode(tmp_path):
    spec = SubmissionSpec(id_column="id", columns=("a", "b"))
    sample = write_csv(tmp_path / "sample.csv", ["id,a,b", "1,0,0", "2,0,0"])
    assert check_submission(write_csv(tmp_path / "ok.csv", ["id,a,b", "1,0.5,1e-3", "2,-1,2"]), sample, spec) == []
    problems = check_submission(write_csv(tmp_path / "bad.csv", ["id,a,b", "1,inf,x", "2,,1"]), sample, spec)
    assert any("2 values that are not finite numbers" in p for p in problems), problems
    assert any("1 empty or NaN value(s)" in p for p in problems), problems
    assert check_submission(write_csv(tmp_path / "empty.csv", []), sample, spec) == ["the file is empty (not even a header)"]


@pytest.mark.timeout(60)
def test_verdicts_from_outcomes(tmp_path, sample_csv):
    ok, killed = {"killed": False, "seconds": 1.0}, {"killed": True, "seconds": 99.0}
    sub = shutil.copy(sample_csv, tmp_path / "submission.csv")
    judge = lambda outcome, wall=ok, attempts=(), path=Path(sub): _judge(outcome, wall, attempts, path, sample_csv, ARGMAX, 60)  # noqa: E731
    assert judge({"status": "ok"}) == (PASSED, "")
    assert judge({"status": "ok"}, attempts=["socket.getaddrinfo host.invalid"])[1].startswith("note: the kernel tried to reach: socket.getaddrinfo host.invalid")
    assert judge({}, wall=killed)[0] == TIMEOUT
    assert judge({"status": "timeout", "cell": 2})[0] == TIMEOUT
    assert judge({"status": "error", "ename": "gaierror", "evalue": "[Errno -3] Temporary failure in name resolution"})[0] == NETWORK
    assert judge({"status": "error", "ename": "RuntimeError", "evalue": "x", "traceback": "OSError: [Errno 101] Network is unreachable"})[0] == NETWORK
    assert judge({"status": "error", "ename": "RuntimeError", "evalue": "x"}, attempts=["socket.connect 192.0.2.1"])[0] == NETWORK
    assert judge({"status": "error", "ename": "ValueError", "evalue": "bad"}) == (EXCEPTION, "cell None: ValueError: bad")
    assert "the kernel died" in judge({"status": "dead", "ename": "DeadKernelError", "evalue": "Kernel died"})[1]
    assert judge({"status": "ok"}, path=tmp_path / "absent.csv")[0] == NOT_FOUND


def _kernels_of_simulations() -> list[str]:
    """Command lines of live kernels started by simulate (their connection files lie in its tree)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if "ipykernel_launcher" in cmd and "ninefit-sim-" in cmd and "zombie" not in state:
            found.append(cmd)
    return found


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_overrunning_executor_is_killed_with_its_kernel(nb_bundle, tmp_path, monkeypatch, data_dir):
    import time

    import packager.offline.sandbox as sandbox

    # No allowance for the kernel start: the executor is killed 2 s in, in the middle of the sleeping cell.
    monkeypatch.setattr(sandbox, "STARTUP_ALLOWANCE_S", -3.0)
    nb = notebook(tmp_path, "import time\ntime.sleep(120)")
    result = simulate(nb_bundle, data_dir, time_limit="5s", notebook=nb)
    assert result.verdict == TIMEOUT, result.summary()
    assert "the executor was killed" in result.details
    deadline = time.monotonic() + 10
    while _kernels_of_simulations() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _kernels_of_simulations()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_inputs_hold_what_kaggle_uploads_without_dataset_metadata(digits_dir, tmp_path, monkeypatch, data_dir):
    """Kaggle never uploads dataset-metadata.json: the bundle must verify, and run, without it."""
    import packager.offline.simulate as sim
    from packager.build import PackageOptions, package
    from packager.offline import dataset_step

    bundle = tmp_path / "digits"
    package(digits_dir / "ninefit.toml", bundle, PackageOptions(steps=(dataset_step(owner="someone"),)))
    assert (bundle / "dataset-metadata.json").is_file()
    copied: list[str] = []
    layout = sim._layout

    def spy(*args, **kwargs):
        tree = layout(*args, **kwargs)
        copied.extend(p.name for p in tree["bundle"].iterdir())
        return tree

    monkeypatch.setattr(sim, "_layout", spy)
    result = simulate(bundle, data_dir, time_limit="2m")
    assert result.verdict == PASSED, result.summary()  # the runtime verified every checksum on Kaggle's copy
    assert "manifest.json" in copied and "dataset-metadata.json" not in copied


@pytest.mark.timeout(60)
def test_an_interrupted_simulation_kills_the_executor_and_its_kernel(tmp_path, monkeypatch):
    """Ctrl-C (or any failure) while waiting: both process groups die before their tree is removed."""
    import signal
    import subprocess
    import sys

    import packager.offline.sandbox as sandbox

    kernel = subprocess.Popen(["sleep", "60"], start_new_session=True)  # stands for the kernel (own session)
    (tmp_path / "kernel.pid").write_text(str(kernel.pid))
    fake_python = tmp_path / "python"
    fake_python.write_text("#!/bin/sh\nexec sleep 60\n")  # stands for the executor
    fake_python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake_python))
    executors: list[subprocess.Popen] = []

    class Interrupted(subprocess.Popen):
        def wait(self, timeout=None):
            if timeout is not None:  # the wait for the executor: the user presses Ctrl-C
                executors.append(self)
                raise KeyboardInterrupt
            return super().wait()

    monkeypatch.setattr(sandbox.subprocess, "Popen", Interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            sandbox.execute(tmp_path, False, 30.0)
        assert kernel.wait(timeout=10) == -signal.SIGKILL
        assert executors and executors[0].returncode == -signal.SIGKILL
    finally:
        kernel.kill()
        kernel.wait()


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_gpu_target_run_on_the_cpu_with_a_gpu_here_fails_the_verdict(nb_bundle, tmp_path, capsys, monkeypatch, data_dir):
    """The installed onnxruntime is the CPU build; NINEFIT_GPU_PRESENT=1 says a GPU is here (see runtime.gpu)."""
    import json

    from runtime.manifest import MANIFEST_NAME

    bundle = tmp_path / "digits"
    shutil.copytree(nb_bundle, bundle)
    manifest = json.loads((bundle / MANIFEST_NAME).read_text())
    manifest["target"] = "t4x2"
    (bundle / MANIFEST_NAME).write_text(json.dumps(manifest))
    monkeypatch.setenv("NINEFIT_GPU_PRESENT", "1")
    code = main(["simulate", str(bundle), "--data", str(data_dir), "--time-limit", "2m", "--keep", str(tmp_path / "kept")])
    out = capsys.readouterr().out
    assert code == 1
    assert out.startswith(f"verdict: {CPU_FALLBACK} (Kaggle: none at once, but a Notebook Timeout"), out
    assert "the runtime warned: the bundle was packaged for t4x2 (a GPU target) and this machine has a GPU" in out
    assert "is the CPU build. Install onnxruntime-gpu instead" in out
    assert "WARNING, RAN ON THE CPU" in out  # the run report, as the notebook printed it
    report = json.loads((tmp_path / "kept" / "run_report.json").read_text())
    assert report["device_warnings"] and report["covered_rows"] == 540  # the submission itself is fine
