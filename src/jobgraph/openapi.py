"""The OpenAPI document of the server's API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

from . import __version__

_RUN = {
    "type": "object",
    "properties": {
        "run_id": {"type": "string"},
        "state": {
            "type": "string",
            "enum": ["pending", "running", "succeeded", "failed", "aborted"],
        },
        "scheduler": {"type": "string", "nullable": True},
        "started_at": {"type": "number", "nullable": True},
        "ended_at": {"type": "number", "nullable": True},
        "exit_code": {"type": "integer", "nullable": True},
        "why": {"type": "string", "nullable": True},
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}}
_SUBMIT = {
    "type": "object",
    "description": "Either 'workflow' (YAML text) or 'flow' (a registered name) with 'params'.",
    "properties": {
        "workflow": {"type": "string"},
        "flow": {"type": "string"},
        "params": {"type": "object"},
        "options": {
            "type": "object",
            "properties": {
                "window": {"type": "integer"},
                "timeout": {"type": "number"},
                "force": {"oneOf": [{"type": "boolean"}, {"type": "array"}]},
            },
        },
    },
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: str, schema: dict[str, Any], status: str = "200") -> dict[str, Any]:
    return {
        "summary": summary,
        "responses": {
            status: _json(schema, ok),
            "401": _json(_ERROR, "missing or wrong token"),
            "404": _json(_ERROR, "no such run"),
        },
    }


_RUN_ID = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}


def document() -> dict[str, Any]:
    """The API described for clients and tools."""
    output = _op("a job's output from an offset", "text", {"type": "object"})
    output["parameters"] = [
        _RUN_ID,
        {"name": "job", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": "stream", "in": "query", "schema": {"enum": ["stdout", "stderr"]}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
        {
            "name": "follow",
            "in": "query",
            "description": "1: stream plain text (chunked) until the job has ended",
            "schema": {"type": "integer", "enum": [0, 1]},
        },
    ]
    submit = _op("submit a workflow or a flow", "the new run", _RUN, "201")
    submit["requestBody"] = {"required": True, "content": {"application/json": {"schema": _SUBMIT}}}
    submit["responses"]["400"] = _json(_ERROR, "an invalid workflow, flow or parameters")
    run = {"parameters": [_RUN_ID]}
    return {
        "openapi": "3.0.3",
        "info": {"title": "jobgraph server", "version": __version__},
        "components": {
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/runs": {
                "get": _op("recent runs, newest first", "runs", {"type": "object"}),
                "post": submit,
            },
            "/api/runs/{run_id}": {"get": _op("a run's state", "the run", _RUN), **run},
            "/api/runs/{run_id}/report": {
                "get": _op("a run's report (docs/report-schema.md)", "report", {"type": "object"}),
                **run,
            },
            "/api/runs/{run_id}/output/{job}": {"get": output},
            "/api/runs/{run_id}/abort": {
                "post": _op("abort a run", "aborting", _RUN, "202"),
                **run,
            },
            "/api/runs/{run_id}/resume": {
                "post": _op("resume an ended run", "resumed", _RUN, "202"),
                **run,
            },
            "/api/flows": {"get": _op("registered flows", "flows", {"type": "object"})},
        },
    }
