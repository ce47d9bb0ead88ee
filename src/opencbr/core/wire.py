"""The base of the models that describe response bodies in the OpenAPI document.

They describe and never build: the slices' views make the bodies (dicts, serialised as they
are), a route names its model with `response_model` (`core.routing.JSONRoute` keeps it out of
the request's path), and a test validates real answers against the document. Every field a
body carries is declared (no others are allowed), so a view that drifts from its model fails
that test."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["FreeForm", "Wire"]

FreeForm = dict[str, Any]
"""A JSON object whose keys the service passes through as it was given (tags, extra_info)."""


class Wire(BaseModel):
    model_config = ConfigDict(extra="forbid")
