"""My Credentials: the Account ID, the project ID of each region, and access keys (S11)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from opencbr.iam import service as iam

from .web import Ctx, Form, get, post, render, url

__all__ = ["router"]

router = APIRouter(prefix="/credentials")


def _page(ctx: Ctx, new_key: tuple[str, str] | None = None) -> Response:
    access_keys = iam.list_access_keys(ctx.session, ctx.principal.user_id)
    return render(
        ctx,
        ctx.request,
        "credentials.html",
        nav="credentials",
        access_keys=access_keys,
        new_key=new_key,
    )


@router.get("")
async def credentials(request: Request) -> Response:
    return await get(request, _page)


@router.post("/access-keys")
async def create_access_key(request: Request) -> Response:
    """The secret key is shown on this response only; it is stored sealed and never again."""

    def action(ctx: Ctx, form: Form) -> Response:
        pair = iam.create_access_key(ctx.session, ctx.runtime.root_key, ctx.principal.user_id)
        return _page(ctx, new_key=pair)

    return await post(request, action, url("/credentials"))
