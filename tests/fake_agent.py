"""A stand-in agent CLI for fast tests: reads the prompt on stdin, behaves as told by argv."""

from __future__ import annotations

import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    """Run the scenario named by argv[0] with its arguments."""
    prompt = sys.stdin.read()
    mode, args = (argv[0], argv[1:]) if argv else ("echo", [])
    out = sys.stdout
    if mode == "echo":
        print(f"got {len(prompt)} characters")
        print("stdin first line: " + prompt.splitlines()[0] if prompt else "empty stdin")
        print("PLAN: fix the bug")
        return 0
    if mode == "lines":
        count = int(args[0])
        out.write("".join(f"line {i}\n" for i in range(count)))
        return 0
    if mode == "mixed":
        for i in range(int(args[0])):
            print(f"out {i}", flush=True)
            print(f"err {i}", file=sys.stderr, flush=True)
        print("PLAN: mixed")
        return 0
    if mode == "huge":
        size = int(args[0])
        out.write("x" * size + "\nafter huge\n")
        return 0
    if mode == "binary":
        sys.stdout.buffer.write(b"ok \xff\xfe\x00 bytes \xc3\x28 end\nPLAN: binary survived\n")
        return 0
    if mode == "crash":
        print("about to fail", flush=True)
        print("Traceback: boom", file=sys.stderr, flush=True)
        return int(args[0]) if args else 3
    if mode == "hang":
        print("hanging now", flush=True)
        if args and args[0] == "spawn":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open(args[1], "w") as pidfile:
                pidfile.write(f"{os.getpid()} {child.pid}")
        time.sleep(600)
        return 0
    if mode == "slow":
        count, pause = int(args[0]), float(args[1])
        for i in range(count):
            print(f"tick {i}", flush=True)
            time.sleep(pause)
        print("PLAN: slow done")
        return 0
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
