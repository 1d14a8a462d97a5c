"""A trivial MCP server built on the official Python SDK, for the test peers' self-tests.

    python echo_server.py                 # stdio
    python echo_server.py http [PORT]     # Streamable HTTP at http://127.0.0.1:PORT/mcp (0 = free port)

In HTTP mode it prints one line `ECHO READY <url>` on stdout once it listens. When the environment
variable ECHO_BEARER_TOKEN is set, every HTTP request must carry `Authorization: Bearer <that>`,
else the answer is 401 with a `WWW-Authenticate: Bearer` header: enough to check that the clients
send the header, and how they report a refusal.

Tools:
    echo(text)   -> the text back, as text content (read-only)
    add(a, b)    -> {"sum": a + b} as structured content (read-only)
    fail(reason) -> a tool error (is_error true) carrying the reason
"""

from __future__ import annotations

import os
import socket
import sys

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel

server = MCPServer(name="echo-server", version="1.0.0")


class Sum(BaseModel):
    sum: int


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> Sum:
    """Adds two integers."""
    return Sum(sum=a + b)


@server.tool(annotations=ToolAnnotations(destructive_hint=False))
def fail(reason: str) -> str:
    """Always fails, with the given reason."""
    raise ToolError(reason)


def bearer_guard(app, token: str):
    """An ASGI wrapper that answers 401 unless the request carries the expected bearer token."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"www-authenticate", b'Bearer error="invalid_token"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b'{"error":"invalid_token"}'})
            return
        await app(scope, receive, send)

    return guarded


async def serve_http(port: int) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"

    app = server.streamable_http_app(host="127.0.0.1")
    token = os.environ.get("ECHO_BEARER_TOKEN")
    asgi = bearer_guard(app, token) if token else app
    config = uvicorn.Config(asgi, log_level="warning", lifespan="on")
    uv = uvicorn.Server(config)

    async def announce() -> None:
        while not uv.started:
            await anyio.sleep(0.02)
        sys.stdout.write(f"ECHO READY {url}\n")
        sys.stdout.flush()

    async with anyio.create_task_group() as tg:
        tg.start_soon(announce)
        await uv.serve(sockets=[sock])
        tg.cancel_scope.cancel()


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] == "stdio":
        server.run("stdio")
    elif args[0] == "http":
        anyio.run(serve_http, int(args[1]) if len(args) > 1 else 0)
    else:
        sys.exit(f"usage: {sys.argv[0]} [stdio | http [PORT]]")


if __name__ == "__main__":
    main()
