"""KMS key rotation routes (rules in `rotation`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from opencbr.core.routing import JSONRoute
from opencbr.core.web import RuntimeDep, SessionDep
from opencbr.iam.auth import ActorDep

from . import rotation
from .responses import KeyIdOnly, KeyRotation
from .schemas import KeyBody, epoch_ms

__all__ = ["router"]

router = APIRouter(prefix="/v1.0/{project_id}/kms", tags=["kms"], route_class=JSONRoute)


class IntervalBody(KeyBody):
    rotation_interval: int | str | None = None


@router.post("/enable-key-rotation", operation_id="EnableKeyRotation")
def enable_key_rotation(body: KeyBody, actor: ActorDep, session: SessionDep) -> Response:
    rotation.set_enabled(session, actor, body.key_id, True)
    return Response(status_code=200)


@router.post("/disable-key-rotation", operation_id="DisableKeyRotation")
def disable_key_rotation(body: KeyBody, actor: ActorDep, session: SessionDep) -> Response:
    rotation.set_enabled(session, actor, body.key_id, False)
    return Response(status_code=200)


@router.post("/update-key-rotation-interval", operation_id="UpdateKeyRotationInterval")
def update_key_rotation_interval(
    body: IntervalBody, actor: ActorDep, session: SessionDep
) -> Response:
    rotation.set_interval(session, actor, body.key_id, body.rotation_interval)
    return Response(status_code=200)


@router.post("/rotate-on-demand", operation_id="RotateOnDemand", response_model=KeyIdOnly)
def rotate_on_demand(
    body: KeyBody, actor: ActorDep, session: SessionDep, runtime: RuntimeDep
) -> dict[str, Any]:
    key = rotation.rotate(session, runtime.root_key, actor, body.key_id)
    return {"key_id": key.id}


@router.post(
    "/get-key-rotation-status", operation_id="ShowKeyRotationStatus", response_model=KeyRotation
)
def show_key_rotation_status(body: KeyBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    found = rotation.status(session, actor, body.key_id)
    return {
        "key_rotation_enabled": found.enabled,
        "rotation_interval": found.interval_days,
        "last_rotation_time": epoch_ms(found.last_rotation_at),
        "number_of_rotations": found.rotations,
        "key_materials": [
            {
                "material_id": material_id,
                "charge_id": "",
                "create_time": epoch_ms(created),
                "expiration_time": epoch_ms(retired),
                # 2 enabled (the vendor's); 3 (as a key's "disabled") for retired material,
                # which only decrypts.
                "state": 2 if retired is None else 3,
            }
            for material_id, created, retired in found.materials
        ],
    }
