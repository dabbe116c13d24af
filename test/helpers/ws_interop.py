"""Interop peer for test/WebSocket.interop.test.ts, on the independent `websockets` library.

    ws_interop.py client <url>   runs the client scenarios against our server, prints one JSON line each
    ws_interop.py server         echo server; prints {"port": N}, then one JSON line per closed connection
    ws_interop.py deflate-client <url>   one echo scenario with permessage-deflate offered
    ws_interop.py deflate-server         the echo server with permessage-deflate accepted
"""
import asyncio
import json
import sys

import websockets

try:  # websockets >= 10
    from websockets.legacy.framing import OP_TEXT
except ImportError:  # pragma: no cover
    OP_TEXT = 1


def emit(**kw):
    print(json.dumps(kw), flush=True)


async def scenario(name, url, body):
    try:
        ws = await websockets.connect(url, max_size=None, compression=None, close_timeout=5, ping_interval=None)
        result = await asyncio.wait_for(body(ws), 10)
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            result["wait_closed"] = "timeout"
        result.update(close_code=ws.close_code, close_reason=ws.close_reason)
        emit(scenario=name, ok=True, **result)
    except Exception as e:  # report, never hang
        emit(scenario=name, ok=False, error=repr(e))


async def echo(ws):
    texts = ["hello", "héllo wörld ✓", "x" * 4000]
    for t in texts:
        await ws.send(t)
    await ws.send(bytes([0, 1, 2, 255]))
    got = [await ws.recv() for _ in range(4)]
    pong = await ws.ping(b"interop-ping")
    await asyncio.wait_for(pong, 5)
    # many messages in flight at once
    for i in range(500):
        await ws.send(f"m-{i}")
    burst = [await ws.recv() for _ in range(500)]
    await ws.close(1000, "done")
    return {
        "texts_ok": got[:3] == [f"echo:{t}" for t in texts],
        "binary_ok": isinstance(got[3], bytes) and got[3] == bytes([0, 1, 2, 255]),
        "pong_ok": True,
        "burst_ok": burst == [f"echo:m-{i}" for i in range(500)],
    }


async def server_close(ws):
    await ws.send("close-me")
    got = []
    try:
        async for m in ws:
            got.append(m)
    except websockets.ConnectionClosed:
        pass
    return {"received": got}


async def oversized(ws):
    await ws.send("y" * 5000)  # server maxPayload is 4096
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass
    return {}


async def bad_utf8(ws):
    await ws.write_frame(True, OP_TEXT, b"h\xff\xfei")
    try:
        async for _ in ws:
            pass
    except websockets.ConnectionClosed:
        pass
    return {}


async def heartbeat(ws):
    # the server pings every 100 ms; websockets answers by itself; stay idle well past its timeout
    await asyncio.sleep(1.0)
    await ws.send("still here")
    reply = await ws.recv()
    await ws.close(1000)
    return {"reply": reply}


async def deflate_echo(url):
    """Compressible and incompressible messages, text and binary, with permessage-deflate negotiated."""
    try:
        ws = await websockets.connect(url, max_size=None, compression="deflate", close_timeout=5, ping_interval=None)
        negotiated = [e.name for e in ws.extensions]
        texts = ["hello", "héllo wörld ✓ " * 300, "x" * 20000]
        blob = bytes(range(256)) * 64  # 16 KiB, compressible
        noise = __import__("os").urandom(8192)  # incompressible
        for t in texts:
            await ws.send(t)
        await ws.send(blob)
        await ws.send(noise)
        got = [await asyncio.wait_for(ws.recv(), 10) for _ in range(5)]
        for i in range(300):
            await ws.send(f"burst-{i} " + "abc" * (i % 50))
        burst = [await asyncio.wait_for(ws.recv(), 10) for _ in range(300)]
        await ws.close(1000, "done")
        emit(
            scenario="deflate",
            ok=True,
            negotiated=negotiated,
            texts_ok=got[:3] == [f"echo:{t}" for t in texts],
            blob_ok=got[3] == blob,
            noise_ok=got[4] == noise,
            burst_ok=burst == [f"echo:burst-{i} " + "abc" * (i % 50) for i in range(300)],
            close_code=ws.close_code,
        )
    except Exception as e:  # report, never hang
        emit(scenario="deflate", ok=False, error=repr(e))


async def run_client(url):
    await scenario("echo", url, echo)
    await scenario("server_close", url, server_close)
    await scenario("oversized", url, oversized)
    await scenario("bad_utf8", url, bad_utf8)
    await scenario("heartbeat", url, heartbeat)
    emit(scenario="done", ok=True)


async def run_server(compression=None):
    async def handler(ws):
        got = []
        try:
            async for m in ws:
                got.append(m if isinstance(m, str) else list(m))
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        emit(closed=True, code=ws.close_code, reason=ws.close_reason, received=got,
             extensions=[e.name for e in ws.extensions])

    async with websockets.serve(handler, "127.0.0.1", 0, compression=compression, ping_interval=None,
                                max_size=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        emit(port=port)
        # serve until stdin closes (the test ends)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        asyncio.run(run_client(sys.argv[2]))
    elif sys.argv[1] == "deflate-client":
        asyncio.run(deflate_echo(sys.argv[2]))
    elif sys.argv[1] == "deflate-server":
        asyncio.run(run_server("deflate"))
    else:
        asyncio.run(run_server())
