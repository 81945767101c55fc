"""The first thing a sandboxed child runs: set the rlimits, then exec the real command.

Run as `python -I -S -c LAUNCHER '<json>'` where the JSON holds {"rlimits": [[name, soft, hard], ...], "argv": [...]}.
Setting the limits here, after `subprocess` has forked and dropped to the sandbox uid, avoids `preexec_fn` (not
safe with threads in the parent: the pool runs programs from threads).
"""

LAUNCHER = """
import json, os, resource, sys
spec = json.loads(sys.argv[1])
for name, soft, hard in spec["rlimits"]:
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.execv(spec["argv"][0], spec["argv"])
"""
