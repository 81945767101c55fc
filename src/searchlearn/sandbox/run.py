"""Run one program in the sandbox: a fresh directory, a cleaned environment, rlimits, a wall clock, an output cap.

Nothing here executes model text in this process: the program is written to a file and run by a child interpreter
(`python -I`) under the isolation `isolation.detect` found. The runner reads stdout and stderr as they come, keeps the
first `head_bytes` of each, and kills the child's process group (its whole namespace under bwrap) at the timeout or
when the output passes `output_bytes`.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from searchlearn.sandbox.isolation import PROGRAM, detect
from searchlearn.sandbox.limits import RunResult, SandboxConfig

_SIGNAL_REASONS = {signal.SIGXCPU: "CPU time limit", signal.SIGXFSZ: "file size limit",
                   signal.SIGKILL: "killed (CPU hard limit or out of memory)", signal.SIGSEGV: "segmentation fault"}


def run_program(source: str, stdin: str = "", config: SandboxConfig | None = None) -> RunResult:
    """Run the Python program `source` with `stdin` as its standard input; the RunResult says how it went."""
    config = config if config is not None else SandboxConfig()
    iso = detect(config)
    box = Path(tempfile.mkdtemp(prefix="searchlearn-sandbox-"))
    try:
        (box / PROGRAM).write_text(source)
        (box / "stdin").write_text(stdin)
        if iso.uid is not None:  # the program's directory is its own (writable without bwrap)
            for path in (box, box / PROGRAM, box / "stdin"):
                os.chown(path, iso.uid, iso.uid)
        os.chmod(box, 0o755)
        with open(box / "stdin", "rb") as stdin_file:
            return _supervise(iso, box, config, stdin_file)
    finally:
        shutil.rmtree(box, ignore_errors=True)


def _supervise(iso, box: Path, config: SandboxConfig, stdin_file) -> RunResult:
    start = time.perf_counter()
    deadline = start + config.timeout_s
    info_r, info_w = os.pipe() if iso.mode == "bwrap" else (None, None)
    try:
        proc = subprocess.Popen(iso.argv(box, config, info_w), stdin=stdin_file, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=iso.cwd(box), env=iso.env(box), start_new_session=True,
                                user=iso.uid, group=iso.uid, extra_groups=[] if iso.uid is not None else None,
                                pass_fds=() if info_w is None else (info_w,))
    finally:
        if info_w is not None:
            os.close(info_w)
    info = bytearray()
    heads = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    total, reason = 0, ""
    with selectors.DefaultSelector() as sel:
        for stream in heads:
            sel.register(stream, selectors.EVENT_READ)
        if info_r is not None:
            sel.register(info_r, selectors.EVENT_READ)
        while sel.get_map() and not reason:
            left = deadline - time.perf_counter()
            if left <= 0:
                reason = f"timeout after {config.timeout_s:g} s"
                break
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                if key.fileobj == info_r:
                    info += chunk
                    continue
                head = heads[key.fileobj]
                head += chunk[: max(0, config.head_bytes - len(head))]
                total += len(chunk)
                if total > config.output_bytes:
                    reason = f"output limit: more than {config.output_bytes} bytes"
    if not reason:
        try:
            proc.wait(timeout=max(0.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            reason = f"timeout after {config.timeout_s:g} s"
    if reason:
        _kill(proc, _child_pid(info))
    for stream in heads:
        stream.close()
    if info_r is not None:
        os.close(info_r)
    seconds = time.perf_counter() - start
    out, err = (heads[s].decode("utf-8", "replace") for s in (proc.stdout, proc.stderr))
    if reason:
        status = "timeout" if reason.startswith("timeout") else "killed"
        return RunResult(status, None, out, err, seconds, reason)
    code = proc.returncode
    sig = -code if code < 0 else code - 128 if iso.mode == "bwrap" and code > 128 else 0  # bwrap: 128 + signal
    if sig:
        return RunResult("killed", None, out, err, seconds, _SIGNAL_REASONS.get(sig, f"signal {sig}"))
    return RunResult("ok" if code == 0 else "error", code, out, err, seconds)


def _child_pid(info: bytes) -> int | None:
    """The namespace init's host pid from bwrap's --info-fd JSON (None before bwrap wrote it)."""
    m = re.search(rb'"child-pid":\s*(\d+)', info)
    return int(m[1]) if m else None


def _kill(proc: subprocess.Popen, namespace_init: int | None) -> None:
    """SIGKILL the child's process group and, under bwrap, the PID namespace's init (the kernel then kills every
    process of the namespace, whatever session it made for itself); reap the child."""
    for kill, pid in ((os.kill, namespace_init), (os.killpg, proc.pid)):
        try:
            if pid is not None:
                kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.wait()
    if namespace_init is not None:  # its exit waits for the whole namespace: then the uid's process count is free
        for _ in range(200):
            if not _alive(namespace_init):
                break
            time.sleep(0.01)


def _alive(pid: int) -> bool:
    """Whether `pid` is still running (a zombie, waiting for a reaper, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
