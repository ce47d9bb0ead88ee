"""The web console at `/console`: sign-in, region choice, and every page's routes.

Pages call the slices' services directly, one unit of work per request (see `web.py`); rules
stay in the services, which also produce the messages the pages show.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from opencbr.core.context import Runtime
from opencbr.core.errors import AppError
from opencbr.core.ids import is_hex32, is_uuid
from opencbr.iam import service as iam
from opencbr.iam import throttle
from opencbr.iam.errors import LoginThrottled

from . import (
    account_pages,
    cbr_pages,
    disk_history_pages,
    evs_pages,
    file_pages,
    kms_pages,
    nbd_pages,
)
from .web import (
    LOGIN_CSRF_COOKIE,
    PREFIX,
    PROJECT_COOKIE,
    SESSION_COOKIE,
    Ctx,
    Form,
    check_login_csrf,
    new_login_csrf,
    post,
    read_form,
    redirect,
    render,
    runtime_of,
    safe_back,
    set_cookie,
    take_flash,
)

__all__ = ["mount", "router"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
HOME = f"{PREFIX}/cbr/server/vaults"


def _login_page(request: Request, error: str = "", status: int = 200) -> Response:
    token = new_login_csrf()
    response = render(
        None,
        request,
        "login.html",
        status=status,
        login_csrf=token,
        error=error,
        notice=take_flash(request),
        next=safe_back(request.query_params.get("next", ""), ""),
    )
    set_cookie(request, response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


@router.get("")
@router.get("/")
def home() -> Response:
    return RedirectResponse(HOME, status_code=303)


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


def _sign_in(request: Request, form: Form) -> Response:
    runtime = runtime_of(request)
    if not check_login_csrf(request, form):
        return _login_page(request, "The sign-in form expired; please try again.", 403)
    asked = throttle.LoginRequest(
        form.get("username"),
        form.get("password"),
        timedelta(seconds=runtime.settings.token_ttl_seconds),
    )
    try:  # the API's sign-in rules: throttled per user name, on the process's check slots
        gate = throttle.gate_of(runtime)
        token, _, _ = gate.run_from_thread(lambda: throttle.login(runtime.database, asked))
    except LoginThrottled as error:
        page = _login_page(request, error.message, error.status)
        page.headers["Retry-After"] = str(error.retry_after)
        return page
    except AppError as error:
        return _login_page(request, error.message, error.status)
    response = redirect(safe_back(form.get("next"), HOME))
    set_cookie(request, response, SESSION_COOKIE, token, max_age=runtime.settings.token_ttl_seconds)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_sign_in, request, form)


@router.post("/logout")
async def logout(request: Request) -> Response:
    def action(ctx: Ctx, form: Form) -> Response:
        iam.revoke_token(ctx.session, ctx.token)  # the old cookie no longer signs anyone in
        response = redirect(f"{PREFIX}/login", ("ok", "You are signed out."))
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        response.delete_cookie(PROJECT_COOKIE, path=PREFIX)
        return response

    return await post(request, action, HOME)


def _section_of(path: str) -> str:
    """The page's list page: a disk, backup or key of one region does not exist in another."""
    parts = path.split("/")
    for index, part in enumerate(parts):
        if is_uuid(part) or is_hex32(part):
            return "/".join(parts[:index])
    return path


@router.post("/project")
async def choose_project(request: Request) -> Response:
    """The region selector: switch to one of the user's projects (checked against its domain)."""

    def action(ctx: Ctx, form: Form) -> Response:
        project = iam.visible_project(ctx.session, ctx.principal.domain_id, form.get("project_id"))
        back = _section_of(safe_back(form.get("back"), HOME))
        response = redirect(back, ("ok", f"Now working in {project.region}."))
        set_cookie(ctx.request, response, PROJECT_COOKIE, project.id, max_age=30 * 24 * 3600)
        return response

    return await post(request, action, HOME)


router.include_router(cbr_pages.router)
router.include_router(evs_pages.router)
router.include_router(disk_history_pages.router)
router.include_router(nbd_pages.router)
router.include_router(file_pages.router)
router.include_router(kms_pages.router)
router.include_router(account_pages.router)


def mount(app: FastAPI, runtime: Runtime) -> None:
    """Serve the console and its static files beside the API."""
    app.include_router(router)
    static = Path(__file__).parent / "static"
    app.mount(f"{PREFIX}/static", StaticFiles(directory=static), name="console-static")
