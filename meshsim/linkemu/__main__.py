"""`python -m meshsim.linkemu --control PATH`: run the link emulator until SIGTERM."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import socket
import sys

from meshsim.linkemu.server import Server


def _clear_stale_socket(path: str) -> None:
    """Remove a socket file nobody listens on; refuse to start if an emulator answers there."""
    if not os.path.exists(path):
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOTSOCK, errno.ENOENT):
            os.unlink(path)
            return
        raise
    finally:
        probe.close()
    sys.exit(f"linkemu: {path} is in use by a running emulator")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m meshsim.linkemu", description=__doc__)
    parser.add_argument("--control", required=True, help="UNIX socket path for the control protocol")
    parser.add_argument("--seed", type=int, default=None, help="seed for loss and jitter (tests)")
    parser.add_argument(
        "--nice", type=int, default=0, help="scheduling niceness; negative (root) keeps timing under CPU load"
    )
    parser.add_argument(
        "--realtime", type=int, default=0, metavar="PRIO", help="run SCHED_FIFO at PRIO (root; 0 = off)"
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as exc:
            logging.getLogger("meshsim.linkemu").warning("cannot set nice %d: %s", args.nice, exc)
    if args.realtime:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(args.realtime))
        except OSError as exc:
            logging.getLogger("meshsim.linkemu").warning("cannot set SCHED_FIFO %d: %s", args.realtime, exc)
    _clear_stale_socket(args.control)
    server = Server(args.control, seed=args.seed)
    server.install_signal_handlers()
    server.serve_forever()


if __name__ == "__main__":
    main()
