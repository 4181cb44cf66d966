"""The warm local server behind `metallmix recommend`: the chat's latency for a script.

A process that runs `metallmix recommend` pays for loading the LLM, the knowledge base and the
meta-model every time (a cold start), where the chat loads them once. With the server the
CLI hands its arguments to one long-lived process that keeps those parts warm:

    METALLMIX_SERVER=auto (the default)  recommend uses a running server, starting one when none
                                         runs (it loads the parts once, then answers warm)
    METALLMIX_SERVER=reuse               uses a running server, never starts one
    METALLMIX_SERVER=off                 always in-process, as before
    metallmix recommend ... --server off    the same, per call
    metallmix serve                      run one in the foreground (Ctrl-C stops it)
    metallmix serve --stop               stop every running one

A server listens on 127.0.0.1 (a free port), answers only requests carrying the token of its
state file (`~/.metallmix/server/server-<key>.json`, mode 0600; $METALLMIX_SERVER_DIR moves the
folder), and exits after $METALLMIX_SERVER_IDLE_MINUTES (default 15) without a request. The key
hashes the knowledge-base folder, the METALLMIX_*/OLLAMA_* settings and the code's files, so a
changed setting or an updated install never gets answers from an old server.

The server runs the very same `agent.cli.main` on the forwarded arguments (in the client's
working folder, one request at a time) and sends back its stdout, stderr and exit code, so the
output is the in-process output. It never trains: `--train` (which needs `--yes`) runs
in-process, in the terminal that approved it. A server that cannot start, or dies during a
request, costs a note on stderr and an in-process run.

This module imports only the standard library at the top: `metallmix recommend` through a warm
server never loads torch, Chroma or LangGraph in the calling process.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODES = ("auto", "reuse", "off")
START_TIMEOUT_S = 60.0  # to bind and write its state file (the parts load after, while the first request waits)
REQUEST_TIMEOUT_S = 1800.0


# ------------------------------------------------------------------------ settings
def mode(value: str | None = None) -> str:
    """The --server value, else $METALLMIX_SERVER, else "auto"; anything else is a usage error."""
    from agent.errors import UsageError

    chosen = (value or os.environ.get("METALLMIX_SERVER") or "auto").strip().lower()
    if chosen not in MODES:
        raise UsageError(f"METALLMIX_SERVER / --server must be one of {', '.join(MODES)}, but got {chosen!r}.")
    return chosen


def idle_minutes() -> float:
    from agent.errors import UsageError

    raw = os.environ.get("METALLMIX_SERVER_IDLE_MINUTES", "15")
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise UsageError(f"METALLMIX_SERVER_IDLE_MINUTES must be a number of minutes >= 0 (0: never), but got {raw!r}.")
    return value


def state_dir() -> Path:
    return Path(os.environ.get("METALLMIX_SERVER_DIR") or Path.home() / ".metallmix" / "server").expanduser()


def kb_root(kb_dir: str | None) -> Path:
    """The knowledge-base folder `knowledge.store.open_default` would use."""
    return Path(kb_dir or os.environ.get("METALLMIX_KB") or Path.home() / ".metallmix" / "kb").expanduser().resolve()


def server_key(kb_dir: str | None) -> str:
    """What a server's answers depend on: the knowledge base, the settings and the code."""
    h = hashlib.sha256(str(kb_root(kb_dir)).encode())
    for name in sorted(os.environ):
        if (name.startswith(("METALLMIX_", "OLLAMA_")) and not name.startswith("METALLMIX_SERVER")
                and name not in ("METALLMIX_DEBUG", "METALLMIX_KB")):
            h.update(f"\n{name}={os.environ[name]}".encode())
    for folder in ("agent", "tools", "knowledge", "prompts"):
        for path in sorted((REPO / folder).rglob("*")):
            if path.suffix in (".py", ".txt", ".md", ".json") and "__pycache__" not in path.parts:
                st = path.stat()
                h.update(f"\n{path.relative_to(REPO)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _state_file(key: str) -> Path:
    return state_dir() / f"server-{key}.json"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_state(path: Path) -> dict[str, Any] | None:
    """A server's state file, or None when missing, unreadable or left by a process that is gone (then removed)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(state.get("pid", 0))):
        path.unlink(missing_ok=True)
        return None
    return state


# -------------------------------------------------------------------------- server
class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str, run: Callable[[list[str]], int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.token = token
        self.run = run  # agent.cli.main, handed in (this module must not import the CLI)
        self.lock = threading.Lock()  # one request at a time: main() swaps stdout, stderr and the cwd
        self.last_request = time.monotonic()
        self.busy = 0
        self.kb = ""  # the knowledge-base folder it serves
        self.kb_file: tuple[int, int] | None = None  # its records file's (size, mtime) when the meta-model was loaded


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
        pass  # requests carry task texts: not written to a log

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        if self.path == "/health":
            self._reply(200, {"ok": True, "pid": os.getpid()})
        else:
            self._reply(404, {"error": "unknown path"})

    def do_POST(self) -> None:  # noqa: N802
        if not hmac.compare_digest(self.headers.get("X-Metallmix-Token", ""), self.server.token):
            self._reply(403, {"error": "wrong token"})
            return
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if self.path == "/stop":
            self._reply(200, {"stopping": os.getpid()})
            threading.Thread(target=self.server.shutdown, daemon=True).start()
        elif self.path == "/run":
            self.server.busy += 1
            try:
                self._reply(200, _run(self.server, body["argv"], body["cwd"]))
            finally:
                self.server.busy -= 1
                self.server.last_request = time.monotonic()
        else:
            self._reply(404, {"error": "unknown path"})


def _records_id(kb: str) -> tuple[int, int] | None:
    try:
        st = (Path(kb) / "records.jsonl").stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def _follow_the_knowledge_base(server: _Server) -> None:
    """Under the lock: when runs were added to the knowledge base since the meta-model was loaded,
    drop it, so that this request loads (or fits) the one an in-process run would use."""
    now = _records_id(server.kb)
    if server.kb_file is not None and now != server.kb_file:
        from agent.recommend import default_recommender

        default_recommender(server.kb).parts.metamodel = None
    server.kb_file = now


def _run(server: _Server, argv: list[str], cwd: str) -> dict[str, Any]:
    """Run the CLI (`agent.cli.main`) on `argv` in `cwd`, capturing what it prints."""
    if "--train" in argv:  # the client never sends it; a server never trains
        return {"code": 2, "stdout": "", "stderr": "error: the warm server does not train; run with --server off.\n"}
    out, err = io.StringIO(), io.StringIO()
    with server.lock:
        _follow_the_knowledge_base(server)
        old = os.getcwd()
        try:
            os.chdir(cwd)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = server.run(argv)
        finally:
            os.chdir(old)
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def serve(run: Callable[[list[str]], int], kb_dir: str | None = None, *, idle: float | None = None, quiet: bool = False,
          lazy: bool = False) -> int:
    """Serve until stopped, or until `idle` minutes (default `idle_minutes()`, 0: never) pass without a request.

    Args:
        run: the CLI's main (`agent.cli.main`), run on each request's arguments.
        kb_dir: the knowledge base; the parts load in the background as soon as it listens
            (`lazy`: on the first request).
    """
    idle = idle_minutes() if idle is None else idle
    key = server_key(kb_dir)
    path = _state_file(key)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    existing = read_state(path)
    if existing is not None and existing["pid"] != os.getpid():
        print(f"a warm server for this knowledge base and settings already runs (pid {existing['pid']}, port "
              f"{existing['port']}); `metallmix serve --stop` stops it.", file=sys.stderr)
        return 0
    token = secrets.token_hex(16)
    server = _Server(token, run)
    server.kb = str(kb_root(kb_dir))
    state = {"pid": os.getpid(), "port": server.server_address[1], "token": token, "key": key,
             "kb": str(kb_root(kb_dir)), "started": time.time()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())

    def warm_up() -> None:  # holds the request lock: the first request waits for the parts, not a second load
        with server.lock:
            try:
                from agent.recommend import default_recommender

                server.kb_file = _records_id(server.kb)
                default_recommender(server.kb).warm_up()
            except Exception as exc:  # the request that follows reports the same failure the in-process way
                print(f"warm-up failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def watch_idle() -> None:
        while idle > 0:
            time.sleep(min(5.0, idle * 60 / 4))
            if server.busy == 0 and time.monotonic() - server.last_request > idle * 60:
                server.shutdown()
                return

    if not lazy:
        threading.Thread(target=warm_up, daemon=True).start()
    threading.Thread(target=watch_idle, daemon=True).start()
    if not quiet:
        print(f"warm server on 127.0.0.1:{state['port']} (pid {os.getpid()}) for {state['kb']}; exits after "
              f"{idle:g} idle minutes (0: never); `metallmix serve --stop` stops it", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        current = read_state(path)
        if current is not None and current.get("pid") == os.getpid():
            path.unlink(missing_ok=True)
    return 0


def stop_all(timeout: float = 10.0) -> list[int]:
    """Stop every running server of this state folder (asked all at once, killed after `timeout` s); their pids."""
    running = [(path, state) for path in sorted(state_dir().glob("server-*.json"))
               if (state := read_state(path)) is not None]
    for _, state in running:
        try:
            _post(state, "/stop", {}, timeout=5.0)
        except (OSError, http.client.HTTPException, ValueError):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(s["pid"]) for _, s in running) and time.monotonic() < deadline:
        time.sleep(0.1)
    for path, state in running:
        if _alive(state["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGKILL)
        path.unlink(missing_ok=True)
    return [state["pid"] for _, state in running]


# -------------------------------------------------------------------------- client
def _post(state: dict[str, Any], path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=timeout)
    try:
        data = json.dumps(body).encode()
        conn.request("POST", path, body=data, headers={"Content-Type": "application/json",
                                                       "X-Metallmix-Token": state["token"]})
        response = conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise ConnectionError(f"the server answered {response.status}: {payload.get('error')}")
        return payload
    finally:
        conn.close()


def _healthy(state: dict[str, Any]) -> bool:
    """Whether the server still answers (a process can outlive its listening socket, e.g. unreaped)."""
    conn = http.client.HTTPConnection("127.0.0.1", state["port"], timeout=5.0)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _start(kb_dir: str | None, key: str) -> dict[str, Any] | None:
    """Start a server in the background and wait for its state file; None when it did not come up."""
    path = _state_file(key)
    log = state_dir() / f"server-{key}.log"
    argv = [sys.executable, "-m", "agent.cli", "--kb-dir", str(kb_root(kb_dir)), "serve", "--quiet"]
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                start_new_session=True)  # outlives this process and its terminal's Ctrl-C
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(path)
        if state is not None and state["pid"] == proc.pid:
            return state
        if proc.poll() is not None:
            return None
        time.sleep(0.1)
    proc.kill()
    return None


def _server_for(kb_dir: str | None, start: bool) -> dict[str, Any] | None:
    """A running server for this knowledge base and these settings, started when `start` and none runs."""
    import fcntl

    key = server_key(kb_dir)
    folder = state_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(folder / f"server-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two scripts starting at once start one server
        state = read_state(_state_file(key))
        if state is None and start:
            state = _start(kb_dir, key)
            if state is None:
                print(f"note: the warm server did not start (see {folder / f'server-{key}.log'}); running in-process",
                      file=sys.stderr)
            elif sys.stderr.isatty():
                print(f"started a warm server (pid {state['pid']}); later calls reuse it. It exits after "
                      f"{idle_minutes():g} idle minutes; `metallmix serve --stop` stops it, METALLMIX_SERVER=off "
                      "runs in-process.", file=sys.stderr)
        return state


def _subcommand_argv(argv: Sequence[str], command: str) -> list[str]:
    """`argv` from the subcommand on (the global options before it, i.e. --kb-dir, are the server's)."""
    i = 0
    while i < len(argv) and argv[i] != command:
        i += 2 if argv[i].startswith("--kb") and "=" not in argv[i] else 1
    return list(argv[i:])


def forward(argv: Sequence[str], kb_dir: str | None, chosen: str) -> int | None:
    """Run `metallmix <argv>` on a warm server; None means run it in-process (no server, or it failed).

    Args:
        argv: the whole command line (global options included).
        kb_dir: the --kb-dir given, if any.
        chosen: "auto" or "reuse" (see `mode`).
    """
    state = _server_for(kb_dir, start=chosen == "auto")
    if state is None:
        return None
    body = {"argv": ["--kb-dir", state["kb"], *_subcommand_argv(argv, "recommend"), "--server", "off"],
            "cwd": os.getcwd()}
    try:
        answer = _post(state, "/run", body, timeout=REQUEST_TIMEOUT_S)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        gone = "failed" if _healthy(state) else "stopped"
        print(f"note: the warm server (pid {state['pid']}) {gone} during the request ({type(exc).__name__}: {exc}); "
              "running in-process instead", file=sys.stderr)
        if gone == "stopped":
            _state_file(state["key"]).unlink(missing_ok=True)
        return None
    sys.stdout.write(answer["stdout"])
    sys.stdout.flush()
    sys.stderr.write(answer["stderr"])
    return int(answer["code"])


# ------------------------------------------------------------------------ commands
def cmd_serve(args: Any) -> int:
    if args.stop:
        pids = stop_all()
        print(f"stopped the warm server(s): pid {', '.join(map(str, pids))}" if pids else "no warm server runs")
        return 0
    code = serve(args.run_cli, args.kb_dir, idle=args.idle_minutes, quiet=args.quiet, lazy=args.lazy)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the state file is gone; tearing down the loaded models only delays the exit (seconds)


def register(subparsers: Any, *, run_cli: Callable[[list[str]], int]) -> None:
    """Add `serve` and `warm`, and `--server` to `recommend` (registered before this).

    Args:
        subparsers: the CLI parser's subcommands.
        run_cli: the CLI's main, which a server runs on forwarded arguments (handed in: this module
            must not import the CLI).
    """
    from agent import warm

    p = subparsers.add_parser("serve", help="keep the LLM, knowledge base and meta-model warm for `recommend`",
                              description=__doc__.split("\n\n")[1].strip() if __doc__ else None)
    p.add_argument("--stop", action="store_true", help="stop every running warm server")
    p.add_argument("--idle-minutes", type=float, default=None,
                   help="exit after this many minutes without a request (default $METALLMIX_SERVER_IDLE_MINUTES or 15; 0: never)")
    p.add_argument("--lazy", action="store_true", help="load the parts on the first request, not at start")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_serve, run_cli=run_cli)
    p = subparsers.add_parser("warm", help="build the caches a first answer waits for (`make setup` runs it)",
                              description=(warm.__doc__ or "").split("\n")[0])
    warm.add_arguments(p)
    p.set_defaults(func=warm.run)
    subparsers.choices["recommend"].add_argument(
        "--server", choices=MODES, default=None,
        help="answer through a warm local server: auto starts one if none runs, reuse only uses a running one, "
             "off runs in-process (default $METALLMIX_SERVER or auto; --train always runs in-process)")


def route(args: Any, argv: Sequence[str]) -> int | None:
    """For `recommend` without --train: the exit code of a warm server's run, or None to run in-process."""
    if getattr(args, "command", None) != "recommend" or args.train:
        return None
    chosen = mode(args.server)
    if chosen == "off":
        return None
    return forward(argv, args.kb_dir, chosen)


__all__ = ["cmd_serve", "forward", "mode", "read_state", "register", "route", "serve", "server_key", "stop_all"]
