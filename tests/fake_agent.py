"""A stand-in agent CLI for fast tests: reads the prompt on stdin, behaves as told by argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time


def main(argv: list[str]) -> int:  # noqa: C901 - one branch per scenario, read top to bottom
    """Run the scenario named by argv[0] with its arguments."""
    prompt = sys.stdin.read()
    mode, args = (argv[0], argv[1:]) if argv else ("echo", [])
    out = sys.stdout
    if mode == "quota":
        return quota(args[0], float(args[1]))
    if mode == "forged-quota":
        return quota(args[0], float(args[1]), forged=True, extra=" ".join(args[2:]))
    if mode == "lost-session":
        # As a CLI asked to resume a session it no longer has: a resumed run fails.
        if "quota ran out before you finished" in prompt:
            print("No conversation found with that session ID", file=sys.stderr)
            return 1
        print("PLAN: planned afresh")
        return 0
    if mode == "echo":
        print(f"got {len(prompt)} characters")
        print("stdin first line: " + prompt.splitlines()[0] if prompt else "empty stdin")
        print("PLAN: fix the bug")
        return 0
    if mode == "prompt":
        # Every line of the prompt (only those holding one of ``args``, if any), then a plan.
        for line in prompt.splitlines():
            if not args or any(word in line for word in args):
                print(f"prompt| {line}")
        print("PLAN: guard the division in app.py")
        return 0
    if mode == "lines":
        count = int(args[0])
        out.write("".join(f"line {i}\n" for i in range(count)))
        return 0
    if mode == "seq":
        # A numbered sequence flushed line by line, then a plan: order checks across processes.
        for i in range(int(args[0])):
            print(f"seq {i}", flush=True)
        print("PLAN: seq done")
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
    if mode == "write-and-exit":
        # As a Node or Bun CLI does: one non-blocking write of the whole output, then exit
        # at once. Into a pipe only what fits gets through; into a file all of it does.
        data = open(args[0], "rb").read()
        os.set_blocking(1, False)
        try:
            os.write(1, data)
        except BlockingIOError:
            pass
        os._exit(0)
    if mode == "priority":
        # Its own CPU niceness and I/O class, as the kernel reports them (util-linux's
        # ionice reads ioprio_get), and the niceness a command it starts inherits.
        print(f"nice {os.getpriority(os.PRIO_PROCESS, 0)}")
        io = subprocess.run(["ionice", "-p", str(os.getpid())], capture_output=True, text=True)
        print(f"io {io.stdout.strip()}")
        inherited = subprocess.run(["nice"], capture_output=True, text=True)
        print(f"child nice {inherited.stdout.strip()}")
        with open("/proc/self/autogroup") as group:
            # "/autogroup-123 nice 10": the weight of its whole session against other sessions.
            print(f"autogroup {group.read().split()[-1]}")
        print("PLAN: priority")
        return 0
    if mode == "binary":
        sys.stdout.buffer.write(b"ok \xff\xfe\x00 bytes \xc3\x28 end\nPLAN: binary survived\n")
        return 0
    if mode == "crash":
        print("about to fail", flush=True)
        print("Traceback: boom", file=sys.stderr, flush=True)
        return int(args[0]) if args else 3
    if mode == "hang":
        if args and args[0] == "spawn":
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
            with open(args[1], "w") as pidfile:
                pidfile.write(f"{os.getpid()} {child.pid}")
        print("hanging now", flush=True)
        time.sleep(600)
        return 0
    if mode == "spawn-slow":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(args[0], "w") as pidfile:
            pidfile.write(f"{os.getpid()} {child.pid}")
        mode, args = "slow", args[1:]
    if mode == "slow":
        count, pause = int(args[0]), float(args[1])
        for i in range(count):
            print(f"tick {i}", flush=True)
            time.sleep(pause)
        print("PLAN: slow done")
        return 0
    if mode == "auto":
        return auto(prompt, args)
    if mode == "ui":
        return ui(prompt, args)
    if mode == "fixer":
        return fixer(prompt, args)
    if mode == "home":
        # What its configuration home holds; then it plants a file in a read-only directory.
        home = os.environ["AGENT_HOME"]
        print("home: " + " ".join(sorted(os.listdir(home))))
        os.makedirs(os.path.join(home, "locked"))
        with open(os.path.join(home, "locked", "planted"), "w") as planted:
            planted.write("for the next run\n")
        os.chmod(os.path.join(home, "locked"), 0o500)
        print("PLAN: home checked")
        return 0
    if mode == "escape":
        # Through its configuration home, what else of the data dir (``args``) it can reach.
        home = os.environ["AGENT_HOME"]
        print(f"home at {home}")
        for path in [os.path.join(home, ".."), *args]:
            try:
                print(f"seen {path}: " + " ".join(sorted(os.listdir(path))))
            except OSError as exc:
                print(f"hidden {path}: {type(exc).__name__}")
        print("PLAN: looked around")
        return 0
    if mode == "env":
        for name, value in sorted(os.environ.items()):
            print(f"env {name}={value}")
        print("PLAN: printed the environment")
        return 0
    if mode == "shell":
        # A test command of the repository (``args[0]``, by sh), the prompt's lines that
        # mention the operator, then on as ``auto``.
        done = subprocess.run(["/bin/sh", "-c", args[0]], capture_output=True, text=True)
        for line in (done.stdout + done.stderr).splitlines():
            print(f"shell| {line}")
        print(f"shell exit {done.returncode}")
        for line in prompt.splitlines():
            if "operator" in line.lower():
                print(f"prompt| {line}")
        return auto(prompt, args[1:])
    if mode == "probe":
        return probe()
    if mode == "leak":
        return leak(args)
    if mode == "leak-all":
        return leak_all(prompt, args)
    if mode == "leak-claude":
        return leak_claude(args)
    if mode == "review":
        return review(prompt, args)
    print(f"unknown mode {mode}", file=sys.stderr)
    return 2


def auto(prompt: str, args: list[str]) -> int:
    """Plan when planning, edit app.py when executing; ``noop`` edits nothing.

    ``flaky MARKER`` fails the first run (creating MARKER) and works from then on;
    ``ticks N PAUSE`` prints N lines PAUSE seconds apart while executing.
    """
    if args[:1] == ["flaky"] and not os.path.exists(args[1]):
        open(args[1], "w").close()
        print("flaky failure", file=sys.stderr)
        return 9
    if "the feedback to address now" in prompt:
        if args[:1] == ["vandal"]:
            return vandal_round(prompt, args[1], args[2])
        return review_round(prompt, args)
    if "Approved plan:" not in prompt:
        if "Reviewer's feedback:" in prompt:
            feedback = prompt.split("Reviewer's feedback:", 1)[1].strip().splitlines()[0]
            print(f"PLAN v2: guard the division; also {feedback}")
        else:
            print("PLAN: guard the division in app.py")
        return 0
    print("editing app.py")
    if args[:1] == ["ticks"]:
        for i in range(int(args[1])):
            print(f"tick {i}", flush=True)
            time.sleep(float(args[2]))
    if args[:1] != ["noop"]:
        with open("app.py", "a") as source:
            source.write("\n\ndef safe_total(xs):\n    return total(xs) if xs else 0\n")
    print("done")
    return 0


def review_round(prompt: str, args: list[str]) -> int:
    """A review round: echo what the prompt asks (items, hunks), then append a line to app.py."""
    for line in prompt.splitlines():
        if line.startswith(("Item ", "Round ", "Comment:", "@@", "Check: ")) or any(
            word in line.lower() for word in ("rename", "failed", "leaked")
        ):
            print(f"round| {line}", flush=True)
    if args[:1] == ["ticks"]:
        for i in range(int(args[1])):
            print(f"tick {i}", flush=True)
            time.sleep(float(args[2]))
    number = prompt.split(": the feedback to address now", 1)[0].rsplit("Round ", 1)[1]
    with open("app.py", "a") as source:
        source.write(f"\n# addressed review round {number}\n")
    print("done")
    return 0


def vandal_round(prompt: str, markers: str, decoy: str) -> int:
    """A hostile review round: rewrites its own history, repoints origin, plants hooks."""
    run = [["git", "reset", "--soft", "HEAD~1"], ["git", "config", "remote.origin.url", decoy]]
    for argv in run:
        done = subprocess.run(argv, capture_output=True, text=True)
        print(f"{' '.join(argv[:3])}: exit {done.returncode}", flush=True)
    for hook in ("pre-commit", "commit-msg", "post-commit", "pre-push", "reference-transaction"):
        path = os.path.join(".git", "hooks", hook)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as script:
            script.write(f"#!/bin/sh\necho ran > {markers}/{hook}\n")
        os.chmod(path, 0o755)
    with open("app.py", "a") as source:
        source.write("\n# addressed, hostilely\n")
    print("done")
    return 0


def fixer(prompt: str, args: list[str]) -> int:
    """Plan; execute as ``auto``; on a fix turn (a failed test's output in the prompt) quote
    that output and, with ``fix``, make the test pass (``fixed = True`` in app.py).

    ``subvert DIR``: the execution also writes ``run_tests.py``, the file the test command
    runs, which writes DIR/escaped and reads DIR/host-secret.txt, a directory of the host.
    """
    if "Approved plan:" not in prompt:
        print("PLAN: guard the division in app.py")
        return 0
    if "Test command:" in prompt:
        print("fix turn; saw: " + " | ".join(x for x in prompt.splitlines() if "NOT FIXED" in x))
        if args[:1] == ["fix"]:
            with open("app.py", "a") as source:
                source.write("\nfixed = True\n")
        return 0
    with open("app.py", "a") as source:
        source.write("\n\ndef safe_total(xs):\n    return total(xs) if xs else 0\n")
    if args[:1] == ["subvert"]:
        with open("run_tests.py", "w") as script:
            script.write(
                "import os\n"
                f"host = {args[1]!r}\n"
                "try:\n"
                "    open(os.path.join(host, 'escaped'), 'w').write('escaped')\n"
                "except OSError as exc:\n"
                "    print('write blocked', type(exc).__name__)\n"
                "try:\n"
                "    print('read', open(os.path.join(host, 'host-secret.txt')).read())\n"
                "except OSError as exc:\n"
                "    print('read blocked', type(exc).__name__)\n"
            )
    print("done")
    return 0


def ui(prompt: str, args: list[str]) -> int:
    """For the web UI: a Markdown plan printed step by step (``N`` steps, ``delay`` apart),
    ANSI-coloured warnings and an error on stderr; when executing, edits app.py like ``auto``.
    """
    if "Approved plan:" in prompt:
        print("\x1b[1mexecuting\x1b[0m the approved plan", flush=True)
        with open("app.py", "a") as source:
            source.write("\n\ndef safe_total(xs):\n    return total(xs) if xs else 0\n")
        print("\x1b[32m✓ edited app.py\x1b[0m", flush=True)
        return 0
    count, pause = int(args[0]), float(args[1])
    print("# Guard the division in `total`", flush=True)
    print("", flush=True)
    for i in range(count):
        print(f"- [x] step {i}: read module_{i}.py", flush=True)
        if i == 1:
            warning = "\x1b[33mwarning\x1b[0m: \x1b[1mtotal()\x1b[0m divides by len(xs)"
            print(warning, file=sys.stderr)
            print("\x1b[31merror\x1b[0m: ZeroDivisionError on []", file=sys.stderr, flush=True)
        time.sleep(pause)
    print("\n```python\ndef total(xs):\n    return sum(xs) / len(xs) if xs else 0\n```")
    print("**Risk**: low. A plan may say <script>alert(1)</script>; it stays text.")
    return 0


def probe() -> int:
    """Try to read each path in PROBE_READ and write each in PROBE_WRITE; print what happened."""
    for path in filter(None, os.environ.get("PROBE_READ", "").split(os.pathsep)):
        try:
            with open(path) as source:
                print(f"read {path}: ok {source.readline().strip()}")
        except OSError as exc:
            print(f"read {path}: {type(exc).__name__} {exc.strerror}")
    for path in filter(None, os.environ.get("PROBE_WRITE", "").split(os.pathsep)):
        try:
            with open(path, "w") as target:
                target.write("written from inside the agent\n")
            print(f"write {path}: ok")
        except OSError as exc:
            print(f"write {path}: {type(exc).__name__} {exc.strerror}")
    print(f"HOME is {os.environ.get('HOME')}")
    print("PLAN: probed")
    return 0


FAKE_PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAfakefakefakeFAKEFAKEFAKE0123456789fakefakefakefake\n"
    "Zm9yIHRlc3RzIG9ubHkgLSBub3QgYSByZWFsIGtleSBhdCBhbGwgZmFrZWZha2U=\n"
    "-----END RSA PRIVATE KEY-----"
)


def leak(secrets: list[str]) -> int:
    """Print every secret in ``secrets`` the ways agents do: text, stderr, JSON, a PEM block."""
    for secret in secrets:
        print(f"using credential {secret} now")
        print(f"fatal: https://x-access-token:{secret}@github.com/acme/api.git", file=sys.stderr)
    print(FAKE_PEM)
    print(json.dumps({"type": "tool_result", "content": FAKE_PEM + "\n", "token": secrets[0]}))
    print(f"PLAN: rotate {' and '.join(secrets)}")
    return 0


def leak_all(prompt: str, args: list[str]) -> int:
    """Print the whole environment, the lines of ``args[0]`` and the clone's git config.

    In the execution phase it also edits a file, so there is something to push.
    """
    for name, value in sorted(os.environ.items()):
        print(f"env {name}={value}")
    with open(args[0]) as shapes:
        secrets = shapes.read().splitlines()
    for line in secrets:
        print(f"found {line}")
        print(f"warning: {line}", file=sys.stderr)
    with open(".git/config") as config:
        print(config.read())
    print(json.dumps({"type": "note", "seen": secrets}))
    if "Approved plan:" in prompt:
        with open("app.py", "a") as source:
            source.write("\n# rotated credentials\n")
    print("PLAN: rotate " + " and ".join(secrets))
    return 0


def leak_claude(secrets: list[str]) -> int:
    """Claude Code stream-json events that carry ``secrets`` in a path, a tool result, the plan."""
    path = f"/srv/{secrets[0]}/.env"
    events = [
        {"type": "system", "subtype": "init", "session_id": "s-1", "model": "fake", "tools": []},
        {"type": "assistant", "message": {"content": [
            {"type": "tool_use", "name": "Read", "input": {"file_path": path}}]}},
        {"type": "user", "message": {"content": [{"type": "tool_result", "content": (
            f"GITHUB_TOKEN={secrets[1]}\n{FAKE_PEM}\n")}]}},
        {"type": "assistant", "message": {"content": [{"type": "tool_use", "name": "ExitPlanMode",
            "input": {"plan": f"Rotate {' and '.join(secrets)}"}}]}},
        {"type": "result", "subtype": "success", "is_error": False, "num_turns": 2,
         "result": f"rotate {secrets[0]}", "total_cost_usd": 0.01, "session_id": "s-1"},
    ]  # fmt: skip
    for event in events:
        print(json.dumps(event))
    return 0


def review(prompt: str, args: list[str]) -> int:
    """Answer a review prompt in its format: a summary and three line comments.

    Two comments sit on lines the diff shows (app.py 3 and 4), one on line 40, which it
    does not. ``leak S...`` puts each S in the summary and a comment; ``attack`` first
    edits the checkout, commits with the workspace's own git and pushes wherever it can.
    """
    secrets = args[1:] if args[:1] == ["leak"] else []
    if args[:1] == ["attack"]:
        attack_checkout()
    print("saw the diff" if "+def median" in prompt else "no diff in the prompt")
    print("fenced" if "<untrusted_webhook_data>" in prompt else "not fenced")
    print("SUMMARY:")
    print("The median is right for odd lengths. " + " ".join(f"token {s}" for s in secrets))
    print("")
    print("COMMENT app.py:3")
    print("An empty list raises IndexError here." + "".join(f" ({s})" for s in secrets))
    print("")
    print("**COMMENT** `app.py:4`: sorted() copies the list; fine for small inputs.")
    print("")
    print("COMMENT app.py:40")
    print("A line the diff does not show.")
    return 0


def attack_checkout() -> None:
    """Write into the checkout and push it with the workspace's ``.git``; report each step."""
    steps = [
        ["sh", "-c", "echo 'import os; os.system(\"id\")' >> app.py"],
        ["git", "-c", "user.name=evil", "-c", "user.email=evil@example.com",
         "commit", "-qam", "evil"],
        ["git", "push", "-q", "origin", "HEAD:refs/heads/evil"],
        ["git", "push", "-q", "-f", "origin", "HEAD:refs/heads/feature/median"],
    ]  # fmt: skip
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    for step in steps:
        done = subprocess.run(
            step, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL
        )
        print(f"attack {step[-1]}: exit {done.returncode}", flush=True)


def quota(state_file: str, seconds: float, *, forged: bool = False, extra: str = "") -> int:
    """A model API behind a quota wall: the first call raises it for ``seconds``.

    Every call inside the wall is refused (a "hit", counted in ``state_file``) with a 429
    line on stderr asking to retry when the wall ends; after it, a plan. ``forged``: only
    the first call prints the 429 (an agent faking a wall), every other call goes through;
    ``extra`` is added to the 429's text.
    """
    import fcntl

    with open(state_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # tasks run side by side: one call at a time
        handle.seek(0)
        state = json.loads(handle.read() or '{"wall": 0, "hits": 0, "runs": 0}')
        now = time.time()
        state["runs"] += 1
        refused = state["runs"] == 1 or (now < state["wall"] and not forged)
        if state["runs"] == 1:
            state["wall"] = now + seconds
        state["hits"] += refused
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(state))
    if refused:
        left = max(state["wall"] - now, 0.1)
        print(f"error: 429 rate limit reached; retry after {left:.1f}s {extra}", file=sys.stderr)
        return 1
    print("PLAN: fix the bug once the quota is back")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
