#!/usr/bin/env python3
"""An MCP client built on the official Python SDK (PyPI `mcp`), for the integration tests.

Usage: mcp_client.py PLAN.json SERVER [ARG...]

Starts SERVER over stdio with this process's whole environment and working directory,
initializes, lists the tools (checking each input schema is a valid JSON Schema), makes the
calls PLAN lists ({"calls": [{"tool": NAME, "args": {...}, "progress": bool}]}), and prints
one JSON document: the server's info, the tools, and each call's result and duration.
"""

import asyncio
import json
import os
import sys
import time

import jsonschema
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


def result_json(result):
    text = "\n".join(c.text for c in result.content if getattr(c, "type", "") == "text")
    return {
        "is_error": bool(result.is_error),
        "structured": result.structured_content,
        "text": text,
    }


async def main(plan, server):
    params = StdioServerParameters(
        command=server[0], args=server[1:], env=dict(os.environ), cwd=os.getcwd()
    )
    out = {"calls": []}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            out["server"] = {
                "name": init.server_info.name,
                "version": init.server_info.version,
                "protocol": str(init.protocol_version),
                "instructions": init.instructions,
            }
            tools = (await session.list_tools()).tools
            for t in tools:
                jsonschema.Draft202012Validator.check_schema(t.input_schema)
            out["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": t.input_schema}
                for t in tools
            ]
            for call in plan["calls"]:
                progress = []

                async def on_progress(value, total, message, progress=progress):
                    progress.append(message)

                start = time.monotonic()
                result = await session.call_tool(
                    call["tool"],
                    call.get("args", {}),
                    progress_callback=on_progress if call.get("progress") else None,
                )
                entry = result_json(result)
                entry["tool"] = call["tool"]
                entry["ms"] = round((time.monotonic() - start) * 1000, 2)
                entry["progress"] = progress
                out["calls"].append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plan = json.load(f)
    asyncio.run(main(plan, sys.argv[2:]))
