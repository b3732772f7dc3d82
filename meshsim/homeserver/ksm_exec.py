"""Run a Python module with its memory open to KSM: `python -m meshsim.homeserver.ksm_exec [opts] -m MOD ARGS`.

    --same-layout   re-exec once without address randomisation and with PYTHONHASHSEED=0, so
                    every server built from the same code lays out its heap alike and far more
                    pages come out byte-identical (mergeable)

Then `prctl(PR_SET_MEMORY_MERGE, 1)` and `runpy` the module as `__main__` with the remaining args.
If the kernel refuses the prctl (older than 6.4) the module still runs, with a warning on stderr.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import sys

from meshsim.homeserver.ksm import enable_for_process

ADDR_NO_RANDOMIZE = 0x0040000
_REEXECED = "MESHSIM_KSM_REEXECED"


def _personality(persona: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.personality(ctypes.c_ulong(persona)))


def _reexec_same_layout(argv: list[str]) -> None:
    """exec this wrapper again with ASLR off and a fixed hash seed (both only take effect at exec)."""
    if os.environ.get(_REEXECED) == "1":
        return
    current = _personality(0xFFFFFFFF)  # query
    if current == -1 or _personality(current | ADDR_NO_RANDOMIZE) == -1:
        print("ksm_exec: cannot disable address randomisation", file=sys.stderr)
        return
    env = {**os.environ, _REEXECED: "1", "PYTHONHASHSEED": "0"}
    os.execve(sys.executable, [sys.executable, "-m", __spec__.name, *argv], env)  # type: ignore[name-defined]


def parse(argv: list[str]) -> tuple[bool, str, list[str]]:
    """(same_layout, module, module_args) from the wrapper's argv (without argv[0])."""
    same_layout = False
    i = 0
    while i < len(argv) and argv[i] != "-m":
        if argv[i] == "--same-layout":
            same_layout = True
        else:
            raise SystemExit(f"ksm_exec: unknown option {argv[i]!r}")
        i += 1
    if i + 1 >= len(argv):
        raise SystemExit("usage: python -m meshsim.homeserver.ksm_exec [--same-layout] -m MODULE [ARGS...]")
    return same_layout, argv[i + 1], argv[i + 2 :]


def main() -> None:
    argv = sys.argv[1:]
    same_layout, module, args = parse(argv)
    if same_layout:
        _reexec_same_layout(argv)
    os.environ.pop(_REEXECED, None)
    try:
        enable_for_process()
    except OSError as exc:
        print(f"ksm_exec: PR_SET_MEMORY_MERGE failed, running without KSM: {exc}", file=sys.stderr)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
