"""An MCP client on the official Python SDK (PyPI `mcp` 2.x), driven by meho's Rust tests.

Usage:

    python mcp_client.py stdio [ACTIONS] -- COMMAND [ARGS...]
    python mcp_client.py stdio -- COMMAND [ARGS...] [ACTIONS]
    python mcp_client.py http URL [--token TOKEN] [--header 'Name: value']... [ACTIONS]

ACTIONS (either or both; listing runs first):

    --list-tools                 tools/list (every page)
    --call TOOL [--args JSON]    tools/call with the JSON object as arguments (default {})
    --timeout SECONDS            bound on the whole session (default 30)

In the second stdio form the command runs up to the first of `--list-tools`, `--call`, `--args`,
`--timeout`; the first form is unambiguous. The server process inherits this process's whole
environment (the SDK alone would pass only HOME, PATH and a few others).

It prints ONE JSON object on stdout and exits:

    0  connected; every requested action got a result (a tool result with is_error true included):
       {"protocol_version": "2025-11-25", "server_name": "...", "server_version": "...",
        "tools": ["name", ...], "tools_full": [{"name", "inputSchema", "annotations", ...}],
        "call": {"is_error": false, "structured_content": {...} | null, "text": "joined text",
                 "content": [...], "progress": [{"progress", "total", "message"}, ...]}}
       (`progress`: the progress notifications the server sent during the call)
       ("tools"/"tools_full" only with --list-tools, "call" only with --call)
    3  the connection or an HTTP request failed (refused, 401, 403, bad handshake ...):
       {"error": "message", "status": 401, "www_authenticate": "Bearer ..."}
       (`status`/`www_authenticate` when an HTTP answer had them) plus whatever was already learned
    4  the server answered a tools/list or tools/call with a JSON-RPC error:
       {..., "rpc_error": {"code": -32602, "message": "...", "data": ...}}
    2  bad usage
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

import anyio
import httpx2
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

ACTION_FLAGS = ("--list-tools", "--call", "--args", "--timeout")


class Failure(Exception):
    """A connection-level failure: exit 3."""


class HttpTrace:
    """Remembers the last HTTP error answer, whose status the SDK turns into a JSON-RPC error."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.www_authenticate: str | None = None
        self.body: str | None = None

    async def on_response(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self.status = response.status_code
            self.www_authenticate = response.headers.get("www-authenticate")
            try:
                await response.aread()
                self.body = response.text[:2000]
            except Exception:  # noqa: BLE001 - the body is only a diagnostic
                self.body = None


def parse(argv: list[str]) -> argparse.Namespace:
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        head, tail = argv[:cut], argv[cut + 1 :]
        split = next((i for i, a in enumerate(tail) if a in ACTION_FLAGS), len(tail))
        command, rest = tail[:split], tail[split:]
        argv = head + rest

    parser = argparse.ArgumentParser(prog="mcp_client.py", description="MCP test client")
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("url", nargs="?", help="the MCP endpoint (http)")
    parser.add_argument("--token", help="bearer token (http)")
    parser.add_argument("--header", action="append", default=[], help="extra 'Name: value' (http)")
    parser.add_argument("--list-tools", action="store_true")
    parser.add_argument("--call", metavar="TOOL")
    parser.add_argument("--args", default="{}", metavar="JSON")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    args.command = command

    if args.transport == "stdio" and (not command or args.url):
        parser.error("stdio needs `-- COMMAND [ARGS...]` and no URL")
    if args.transport == "http" and (not args.url or command):
        parser.error("http needs a URL and no `--` command")
    if not args.list_tools and not args.call:
        parser.error("give --list-tools and/or --call TOOL")
    try:
        args.arguments = json.loads(args.args)
    except json.JSONDecodeError as e:
        parser.error(f"--args is not JSON: {e}")
    if not isinstance(args.arguments, dict):
        parser.error("--args must be a JSON object")
    return args


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def rpc_error(e: MCPError) -> dict[str, Any]:
    err = {"code": e.error.code, "message": e.error.message}
    if e.error.data is not None:
        err["data"] = e.error.data
    return err


async def run(args: argparse.Namespace, out: dict[str, Any], trace: HttpTrace) -> int:
    async with AsyncExitStack() as stack:
        if args.transport == "stdio":
            params = StdioServerParameters(
                command=args.command[0], args=args.command[1:], env=dict(os.environ)
            )
            read, write = await stack.enter_async_context(stdio_client(params))
        else:
            headers = {}
            for h in args.header:
                name, sep, value = h.partition(":")
                if not sep:
                    raise SystemExit(f"bad --header {h!r}: expected 'Name: value'")
                headers[name.strip()] = value.strip()
            if args.token is not None:
                headers["Authorization"] = f"Bearer {args.token}"
            http = await stack.enter_async_context(
                httpx2.AsyncClient(
                    headers=headers,
                    timeout=httpx2.Timeout(args.timeout, read=args.timeout),
                    event_hooks={"response": [trace.on_response]},
                )
            )
            read, write = await stack.enter_async_context(
                streamable_http_client(args.url, http_client=http)
            )

        session = await stack.enter_async_context(ClientSession(read, write))
        try:
            init = await session.initialize()
        except MCPError as e:
            raise Failure(f"initialize failed: {e.error.message}") from e
        out["protocol_version"] = session.protocol_version or init.protocol_version
        out["server_name"] = init.server_info.name
        out["server_version"] = init.server_info.version

        step = "tools/list"
        try:
            if args.list_tools:
                tools: list[Any] = []
                cursor = None
                while True:
                    params = {"cursor": cursor} if cursor else None
                    page = await session.list_tools(params=params)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                out["tools"] = [t.name for t in tools]
                out["tools_full"] = [dump(t) for t in tools]
            if args.call:
                step = "tools/call"
                trace.status = None
                progress: list[dict[str, Any]] = []

                async def on_progress(done: float, total: float | None, message: str | None) -> None:
                    progress.append({"progress": done, "total": total, "message": message})

                result = await session.call_tool(
                    args.call, args.arguments, progress_callback=on_progress
                )
                content = [dump(c) for c in result.content]
                out["call"] = {
                    "is_error": bool(result.is_error),
                    "structured_content": result.structured_content,
                    "text": "\n".join(c["text"] for c in content if c.get("type") == "text"),
                    "content": content,
                    "progress": progress,
                }
        except MCPError as e:
            if trace.status is not None:
                raise Failure(f"{step} failed: {e.error.message}") from e
            out["rpc_error"] = rpc_error(e)
            return 4
    return 0


def flatten(e: BaseException) -> BaseException:
    """The first leaf of (nested) exception groups, which anyio task groups raise."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def main() -> int:
    args = parse(sys.argv[1:])
    out: dict[str, Any] = {}
    trace = HttpTrace()

    async def bounded() -> int:
        with anyio.fail_after(args.timeout):
            return await run(args, out, trace)

    try:
        code = anyio.run(bounded)
    except BaseException as raw:  # noqa: BLE001 - every failure becomes the one JSON answer
        e = flatten(raw)
        if isinstance(e, (KeyboardInterrupt, SystemExit)) and not isinstance(raw, BaseExceptionGroup):
            raise
        if isinstance(e, TimeoutError):
            message = f"timed out after {args.timeout}s"
        elif isinstance(e, Failure):
            message = str(e)
        else:
            message = f"{type(e).__name__}: {e}"
        out["error"] = message
        if trace.status is not None:
            out["status"] = trace.status
            if trace.www_authenticate is not None:
                out["www_authenticate"] = trace.www_authenticate
            if trace.body:
                out["body"] = trace.body
        code = 3
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
