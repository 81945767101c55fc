"""What a sandboxed program may use, and what came of running it.

The limits are POSIX rlimits set in the child before the program starts (`launcher.py`), plus the wall-clock timeout
and the output cap that the runner enforces from outside (`run.py`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

STATUSES = ("ok", "error", "timeout", "killed")  # exit 0 | exit != 0 | past the wall clock | a signal or a limit


@dataclass(frozen=True)
class SandboxConfig:
    timeout_s: float = 5.0  # wall clock, then the whole process group (the namespace, with bwrap) is killed
    cpu_s: int = 5  # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL a second later
    memory_mb: int = 512  # RLIMIT_AS: an allocation past it fails (MemoryError in Python)
    file_mb: int = 16  # RLIMIT_FSIZE: writing past it raises SIGXFSZ; with bwrap the writable /tmp holds tmpfs_mb
    tmpfs_mb: int = 64  # size of the program's writable directory under bwrap (all its files together)
    open_files: int = 64  # RLIMIT_NOFILE
    processes: int = 256  # RLIMIT_NPROC, counted per user over all its programs: set when programs run as `uid`
    output_bytes: int = 1 << 20  # stdout + stderr past this many bytes: the run is killed ("output limit")
    head_bytes: int = 4096  # how much of stdout and of stderr the result keeps
    isolation: str = "auto"  # "auto" (bwrap when it works, else rlimits only), "bwrap" (required), "none"
    uid: int = 65534  # the uid (and gid) programs run as when the caller is root ("nobody")
    python: str = ""  # the interpreter; "" = this one, or the system's python3 when the sandbox uid cannot reach it

    def __post_init__(self) -> None:
        if self.isolation not in ("auto", "bwrap", "none"):
            raise ValueError(f"isolation must be 'auto', 'bwrap' or 'none', got {self.isolation!r}")
        if self.timeout_s <= 0 or self.cpu_s < 1 or self.memory_mb < 16 or self.file_mb < 0 or self.open_files < 3:
            raise ValueError(f"sandbox limits out of range: {self}")

    def rlimits(self, own_uid: bool) -> list[tuple[str, int, int]]:
        """(resource name, soft, hard) for `resource.setrlimit`. RLIMIT_NPROC counts every process of the user, so
        it is set only when programs run as a uid of their own (`own_uid`), not as the caller's."""
        mb = 1 << 20
        limits = [("RLIMIT_CPU", self.cpu_s, self.cpu_s + 1), ("RLIMIT_AS", self.memory_mb * mb, self.memory_mb * mb),
                  ("RLIMIT_FSIZE", self.file_mb * mb, self.file_mb * mb),
                  ("RLIMIT_NOFILE", self.open_files, self.open_files), ("RLIMIT_CORE", 0, 0)]
        return limits + [("RLIMIT_NPROC", self.processes, self.processes)] if own_uid else limits


@dataclass
class RunResult:
    status: str  # one of STATUSES
    exit_code: int | None  # the program's exit status (None when it was killed by a signal)
    stdout: str  # the first head_bytes of each stream, decoded with replacement
    stderr: str
    seconds: float  # wall clock, start to reaped
    reason: str = ""  # why a run was killed or timed out, for a person reading it

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)
