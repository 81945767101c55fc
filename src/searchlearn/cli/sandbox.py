"""`searchlearn sandbox FILE [--stdin F] [--timeout S]`: run a Python program exactly as a reward would (the code
sandbox, `searchlearn.sandbox`) and print the result as one JSON object: status (ok | error | timeout | killed), exit
code, the heads of stdout and stderr, seconds, the reason of a kill, and the isolation it ran under."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from searchlearn.sandbox import SandboxConfig, detect, run_program


def cmd_sandbox(args) -> None:
    config = replace(SandboxConfig(), timeout_s=args.timeout, isolation=args.isolation)
    source = Path(args.file).read_text()
    stdin = Path(args.stdin).read_text() if args.stdin else ""
    result = run_program(source, stdin, config)
    iso = detect(config)
    print(json.dumps({**result.to_dict(), "isolation": iso.mode, "uid": iso.uid}))
    sys.exit(0 if result.ok else 1)


def add_parser(sub) -> None:
    p = sub.add_parser("sandbox", help="run a Python program in the code sandbox and print the result as JSON")
    p.add_argument("file", metavar="FILE", help="the program (Python source)")
    p.add_argument("--stdin", help="a file given to the program as its standard input")
    p.add_argument("--timeout", type=float, default=SandboxConfig.timeout_s, help="wall-clock seconds (default %(default)s)")
    p.add_argument("--isolation", choices=("auto", "bwrap", "none"), default="auto",
                   help="bwrap namespaces (required), rlimits only, or auto: bwrap where the kernel allows it")
    p.set_defaults(fn=cmd_sandbox)
