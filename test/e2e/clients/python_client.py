"""Drives a Python MCP client through Gatehouse for test/e2e/python-clients.test.ts.

usage: python_client.py (mcp|fastmcp) <mcp-url> <redirect-uri> <refresh-after-seconds> [<client-metadata-url>]

The browser step belongs to the test: the client's authorization URL is printed as a JSON line
{"event": "authorize", "url": ...}; for the official SDK the test then writes the callback URL it reached on
stdin, FastMCP receives the callback on its own loopback server. After tools/list and tools/call, the script waits
until the access token has expired and calls again, which needs a refresh. The last line is
{"event": "result", ...}. Tokens are never printed, only whether they changed.
"""

import asyncio
import hashlib
import json
import sys
import webbrowser
from urllib.parse import parse_qs, urlparse


def emit(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def fingerprint(value: str | None) -> str | None:
    return hashlib.sha256(value.encode()).hexdigest()[:12] if value else None


def text_of(result: object) -> str:
    content = getattr(result, "content", None) or []
    return " ".join(getattr(block, "text", "") for block in content)


async def official_sdk(url: str, redirect_uri: str, wait: float, metadata_url: str | None) -> dict:
    import httpx2
    from mcp.client import Client
    from mcp.client.auth import OAuthClientProvider
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

    class MemoryStorage:
        def __init__(self) -> None:
            self.tokens = None
            self.client_info = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens) -> None:
            self.tokens = tokens

        async def get_client_info(self):
            return self.client_info

        async def set_client_info(self, client_info) -> None:
            self.client_info = client_info

    authorizations = 0

    async def redirect_handler(authorization_url: str) -> None:
        nonlocal authorizations
        authorizations += 1
        emit("authorize", url=authorization_url)

    async def callback_handler() -> AuthorizationCodeResult:
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        query = parse_qs(urlparse(line.strip()).query)
        first = lambda key: (query.get(key) or [None])[0]
        return AuthorizationCodeResult(code=first("code") or "", state=first("state"), iss=first("iss"))

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(
            client_name="MCP Python SDK (Gatehouse e2e)",
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=metadata_url,
    )

    async def session() -> tuple[str, list[str], str]:
        async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
            async with Client(streamable_http_client(url, http_client=http)) as client:
                tools = await client.list_tools()
                hello = await client.call_tool("hello", {})
                return client.protocol_version, sorted(tool.name for tool in tools.tools), text_of(hello)

    version, tools, hello = await session()
    first = (fingerprint(storage.tokens.access_token), fingerprint(storage.tokens.refresh_token))
    await asyncio.sleep(wait)
    _, _, hello_after = await session()
    second = (fingerprint(storage.tokens.access_token), fingerprint(storage.tokens.refresh_token))
    return {
        "protocolVersion": version,
        "tools": tools,
        "hello": hello,
        "helloAfterRefresh": hello_after,
        "clientId": storage.client_info.client_id if storage.client_info else None,
        "accessTokenChanged": first[0] != second[0],
        "refreshTokenRotated": first[1] != second[1],
        "authorizations": authorizations,
    }


async def fastmcp_client(url: str, wait: float, metadata_url: str | None) -> dict:
    from fastmcp import Client
    from fastmcp.client.auth import OAuth

    authorizations = 0

    def open_in_test_browser(authorization_url: str, *args: object, **kwargs: object) -> bool:
        # FastMCP opens the system browser; the test's Chromium takes its place.
        nonlocal authorizations
        authorizations += 1
        emit("authorize", url=authorization_url)
        return True

    webbrowser.open = open_in_test_browser  # type: ignore[assignment]
    oauth = OAuth(client_name="FastMCP client (Gatehouse e2e)", client_metadata_url=metadata_url)

    async def session() -> tuple[list[str], str]:
        async with Client(url, auth=oauth) as client:
            tools = await client.list_tools()
            hello = await client.call_tool("hello", {})
            return sorted(tool.name for tool in tools), text_of(hello)

    def tokens() -> tuple[str | None, str | None]:
        current = oauth.context.current_tokens
        return (fingerprint(current.access_token), fingerprint(current.refresh_token)) if current else (None, None)

    tools, hello = await session()
    first = tokens()
    await asyncio.sleep(wait)
    _, hello_after = await session()
    second = tokens()
    client_info = oauth.context.client_info
    return {
        "tools": tools,
        "hello": hello,
        "helloAfterRefresh": hello_after,
        "clientId": client_info.client_id if client_info else None,
        "accessTokenChanged": first[0] != second[0],
        "refreshTokenRotated": first[1] != second[1],
        "authorizations": authorizations,
    }


async def main() -> None:
    kind, url, redirect_uri, wait = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    metadata_url = sys.argv[5] if len(sys.argv) > 5 else None
    if kind == "mcp":
        result = await official_sdk(url, redirect_uri, wait, metadata_url)
    else:
        result = await fastmcp_client(url, wait, metadata_url)
    emit("result", **result)


asyncio.run(main())
