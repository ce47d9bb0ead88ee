"""API version discovery (`GET /`, `GET /{version}`): the versions this endpoint serves, as
both the EVS client (`list_versions`, `show_version`: `versions`) and the KMS client
(`show_versions`, `show_version`: `version`) read them. Unauthenticated, as in OpenStack.

Each version has a fixed route (no `/{version}` catch-all, which would answer for every
one-segment path); an unknown version answers "not found" (APIGW.0101).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

__all__ = ["VERSIONS", "router"]

UPDATED = "2026-12-01T00:00:00Z"
# id -> (what it serves, status)
VERSIONS: dict[str, tuple[str, str]] = {
    "v1": ("EVS jobs, ECS servers", "SUPPORTED"),
    "v1.0": ("KMS", "CURRENT"),
    "v2": ("EVS disks", "CURRENT"),
    "v2.1": ("EVS disk creation and resize", "CURRENT"),
    "v3": ("CBR, IAM", "CURRENT"),
}

router = APIRouter(tags=["versions"])


def _detail(request: Request, version: str) -> dict[str, Any]:
    serves, status = VERSIONS[version]
    return {
        "id": version,
        "links": [{"href": str(request.base_url) + version + "/", "rel": "self"}],
        "media-types": [{"base": "application/json", "type": "application/json"}],
        "min_version": "",
        "version": "",
        "status": status,
        "updated": UPDATED,
        "description": serves,
    }


@router.get("/", operation_id="ListVersions", include_in_schema=False)
def list_versions(request: Request) -> dict[str, Any]:
    return {"versions": [_detail(request, v) for v in VERSIONS]}


def _show(version: str) -> Any:
    def show_version(request: Request) -> dict[str, Any]:
        detail = _detail(request, version)
        return {"version": detail, "versions": [detail]}

    return show_version


for _version in VERSIONS:
    router.add_api_route(
        f"/{_version}",
        _show(_version),
        methods=["GET"],
        operation_id=f"ShowVersion_{_version}",
        include_in_schema=False,
    )
