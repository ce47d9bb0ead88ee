"""KMS keys and grants, and the EVSAccessKMS agency that encrypted disks need (S10)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from opencbr.iam import agencies
from opencbr.kms import grants, keys
from opencbr.kms.access import OPERATIONS, owned_key
from opencbr.kms.models import KeyState

from .web import Ctx, Form, get, post, redirect, render, url

__all__ = ["router"]

router = APIRouter(prefix="/kms")
DEFAULT_GRANT_OPERATIONS = ("decrypt-datakey", "describe-key", "create-datakey")


def _label(state: str) -> str:
    return KeyState(state).label


@router.get("")
async def key_list(request: Request) -> Response:
    def body(ctx: Ctx) -> Response:
        found, _ = keys.list_keys(ctx.session, ctx.actor)
        agency = agencies.has_agency(ctx.session, ctx.principal.domain_id, agencies.EVS_KMS_AGENCY)
        return render(
            ctx,
            ctx.request,
            "kms.html",
            nav="kms",
            keys=found,
            label=_label,
            agency=agency,
            agency_name=agencies.EVS_KMS_AGENCY,
        )

    return await get(request, body)


@router.post("")
async def key_create(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        key = keys.create_key(
            ctx.session, ctx.runtime.root_key, ctx.actor, form.get("alias"), form.get("description")
        )
        return redirect(url("/kms"), ("ok", f"Key {key.alias} created."))

    return await post(request, action, url("/kms"))


@router.post("/agency")
async def agency_create(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        name = agencies.EVS_KMS_AGENCY
        agencies.create_agency(
            ctx.session,
            ctx.principal.domain_id,
            name,
            agencies.TRUSTED_SERVICES[name],
            "lets the disk service use this account's KMS keys",
        )
        return redirect(url("/kms"), ("ok", f"Agency {name} created: disks can be encrypted."))

    return await post(request, action, url("/kms"))


@router.get("/{key_id}")
async def key_detail(request: Request, key_id: str) -> Response:
    def body(ctx: Ctx) -> Response:
        key = owned_key(ctx.session, ctx.actor, key_id, "describe-key")
        found, _ = grants.list_grants(ctx.session, ctx.actor, key.id)
        return render(
            ctx,
            ctx.request,
            "kms_key.html",
            nav="kms",
            key=key,
            grants=found,
            label=_label,
            operations=OPERATIONS,
            default_operations=DEFAULT_GRANT_OPERATIONS,
        )

    return await get(request, body)


@router.post("/{key_id}/state")
async def key_state(request: Request, key_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        change = keys.enable_key if form.get("to") == "enable" else keys.disable_key
        key = change(ctx.session, ctx.actor, key_id)
        return redirect(url(f"/kms/{key_id}"), ("ok", f"Key {key.alias} is {_label(key.state)}."))

    return await post(request, action, url(f"/kms/{key_id}"))


@router.post("/{key_id}/grants")
async def grant_create(request: Request, key_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        grant = grants.create_grant(
            ctx.session,
            ctx.actor,
            key_id,
            form.get("grantee"),
            form.all("operation"),
            grantee_type=form.get("grantee_type", "domain"),
            name=form.get("name") or None,
        )
        return redirect(
            url(f"/kms/{key_id}"), ("ok", f"Grant created for {grant.grantee_principal}.")
        )

    return await post(request, action, url(f"/kms/{key_id}"))


@router.post("/{key_id}/grants/{grant_id}/revoke")
async def grant_revoke(request: Request, key_id: str, grant_id: str) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        grants.revoke_grant(ctx.session, ctx.actor, key_id, grant_id)
        return redirect(url(f"/kms/{key_id}"), ("ok", "Grant revoked."))

    return await post(request, action, url(f"/kms/{key_id}"))
