"""Policy routes (reference §2.5): CreatePolicy, ListPolicies, ShowPolicy, UpdatePolicy,
DeletePolicy, AssociateVaultPolicy, DisassociateVaultPolicy. All rules live in `policies.py`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy.orm import Session

from opencbr.core.idempotency import idempotent
from opencbr.core.routing import JSONRoute
from opencbr.core.web import SessionDep
from opencbr.iam.auth import ActorDep

from . import policies
from .errors import CLIENT_TOKEN_ERRORS
from .models import Policy
from .responses import PolicyList, PolicyOne
from .responses_more import PolicyAssociated, PolicyDissociated
from .schemas import (
    AssociatePolicyBody,
    DissociatePolicyBody,
    PolicyCreateBody,
    PolicyUpdateBody,
)
from .views import policy_view

__all__ = ["router"]

router = APIRouter(prefix="/v3/{project_id}", tags=["cbr", "cbr-policies"], route_class=JSONRoute)


def _policy_out(session: Session, policy: Policy) -> dict[str, Any]:
    return policy_view(policy, policies.associated_vault_ids(session, policy))


@router.post("/policies", operation_id="CreatePolicy", response_model=PolicyOne)
@idempotent(CLIENT_TOKEN_ERRORS)
def create_policy(body: PolicyCreateBody, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    given = body.policy
    spec = policies.PolicySpec(
        name=given.name,
        enabled=given.enabled,
        operation_type=given.operation_type,
        operation_definition=given.operation_definition.model_dump(exclude_none=True),
        patterns=given.trigger.properties.pattern or [],
        start_window_minutes=given.trigger.properties.start_window_minutes,
    )
    return {"policy": _policy_out(session, policies.create_policy(session, actor, spec))}


@router.get("/policies", operation_id="ListPolicies", response_model=PolicyList)
def list_policies(
    actor: ActorDep,
    session: SessionDep,
    operation_type: str | None = None,
    vault_id: str | None = None,
) -> dict[str, Any]:
    found = policies.list_policies(session, actor, operation_type, vault_id)
    return {"policies": [_policy_out(session, p) for p in found], "count": len(found)}


@router.get("/policies/{policy_id}", operation_id="ShowPolicy", response_model=PolicyOne)
def show_policy(policy_id: str, actor: ActorDep, session: SessionDep) -> dict[str, Any]:
    return {"policy": _policy_out(session, policies.get_policy(session, actor, policy_id))}


@router.put("/policies/{policy_id}", operation_id="UpdatePolicy", response_model=PolicyOne)
def update_policy(
    policy_id: str, body: PolicyUpdateBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    given = body.policy
    properties = given.trigger.properties if given.trigger else None
    definition = given.operation_definition
    changes = policies.PolicyUpdate(
        name=given.name,
        enabled=given.enabled,
        patterns=properties.pattern if properties else None,
        start_window_minutes=properties.start_window_minutes if properties else None,
        operation_definition=definition.model_dump(exclude_none=True) if definition else None,
    )
    policy = policies.update_policy(session, actor, policy_id, changes)
    return {"policy": _policy_out(session, policy)}


@router.delete("/policies/{policy_id}", status_code=204, operation_id="DeletePolicy")
def delete_policy(policy_id: str, actor: ActorDep, session: SessionDep) -> Response:
    policies.delete_policy(session, actor, policy_id)
    return Response(status_code=204)


@router.post(
    "/vaults/{vault_id}/associatepolicy",
    operation_id="AssociateVaultPolicy",
    response_model=PolicyAssociated,
)
def associate_policy(
    vault_id: str, body: AssociatePolicyBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    named = [body.policy_id] if body.policy_id else []
    vault, policy = policies.associate_policy(
        session, actor, vault_id, [*named, *body.add_policy_ids]
    )
    return {
        "associate_policy": {
            "vault_id": vault.id,
            "policy_id": policy.id,
            "destination_vault_id": None,
        }
    }


@router.post(
    "/vaults/{vault_id}/dissociatepolicy",
    operation_id="DisassociateVaultPolicy",
    response_model=PolicyDissociated,
)
def dissociate_policy(
    vault_id: str, body: DissociatePolicyBody, actor: ActorDep, session: SessionDep
) -> dict[str, Any]:
    vault = policies.dissociate_policy(session, actor, vault_id, body.policy_id)
    return {
        "dissociate_policy": {
            "vault_id": vault.id,
            "policy_id": body.policy_id,
            "destination_vault_id": None,
        }
    }
