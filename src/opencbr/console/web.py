"""The console's request plumbing: session cookie, CSRF, one unit of work per request, pages.

Session: the cookie holds an IAM token from `iam.service.issue_token` (opaque; only its
SHA-256 is stored server-side), HttpOnly, SameSite=Lax, and Secure whenever the console is
reached over HTTPS. The current project (region) is a second, non-secret cookie that is
checked against the user's domain on every request.

CSRF: every POST carries a hidden `csrf` field. Signed in, it is derived from the session
token (a cross-site page can neither read the cookie nor compute the field); at the login
form it is a random value that must equal a cookie of the same value (double submit).

Errors: an `AppError` from a service is shown as its message (a flash after a redirect, or on
the page); anything else is logged and shown as an internal error with the request id. The
unit of work commits only when the whole action succeeded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from opencbr.core.context import Actor, Runtime
from opencbr.core.errors import AppError
from opencbr.core.ids import new_uuid
from opencbr.iam import service as iam
from opencbr.iam.errors import LoginFailed
from opencbr.iam.models import Domain, Project

from .sizes import UNITS_NOTE, size_markup

__all__ = [
    "PREFIX",
    "SESSION_COOKIE",
    "Ctx",
    "Form",
    "get",
    "post",
    "redirect",
    "render",
]

log = logging.getLogger(__name__)

PREFIX = "/console"
SESSION_COOKIE = "opencbr_session"
PROJECT_COOKIE = "opencbr_project"
FLASH_COOKIE = "opencbr_flash"
LOGIN_CSRF_COOKIE = "opencbr_login_csrf"
_HERE = Path(__file__).parent
templates = Environment(
    loader=FileSystemLoader(_HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["size"] = size_markup  # "{{ n|size }}": see sizes.py
templates.globals["units_note"] = UNITS_NOTE
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Form:
    """A submitted form: text fields (one or many values) and uploaded files."""

    def __init__(self, data: FormData | None = None) -> None:
        self._data = data

    def get(self, name: str, default: str = "") -> str:
        value = self._data.get(name) if self._data is not None else None
        return value.strip() if isinstance(value, str) else default

    def all(self, name: str) -> list[str]:
        if self._data is None:
            return []
        return [v.strip() for v in self._data.getlist(name) if isinstance(v, str) and v.strip()]

    def flag(self, name: str) -> bool:
        return self.get(name) in ("on", "1", "true", "yes")

    def file(self, name: str) -> UploadFile | None:
        value = self._data.get(name) if self._data is not None else None
        return value if isinstance(value, UploadFile) else None


@dataclass
class Ctx:
    """Who is using the console, in which project, and what the page shows."""

    request: Request
    runtime: Runtime
    session: Session
    token: str
    principal: iam.Principal
    domain: Domain
    project: Project
    projects: list[Project]
    flash: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def actor(self) -> Actor:
        return Actor(
            domain_id=self.principal.domain_id,
            user_id=self.principal.user_id,
            project_id=self.project.id,
            region=self.project.region,
        )

    @property
    def csrf(self) -> str:
        return csrf_for(self.token)


def csrf_for(token: str) -> str:
    return hashlib.sha256(b"opencbr.console.csrf:" + token.encode()).hexdigest()


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def safe_back(target: str, default: str) -> str:
    """A same-site console path to return to (never an open redirect): a relative path under
    the console, without a scheme or host, backslashes, dot segments or control characters."""
    if (
        target.startswith(PREFIX + "/")
        and "\\" not in target
        and "/../" not in target + "/"
        and target.isprintable()
    ):
        return target
    return default


def secure_cookies(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, **kw: Any) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path=PREFIX,
        **kw,
    )


def redirect(url: str, flash: tuple[str, str] | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        text = quote(json.dumps({"kind": flash[0], "text": flash[1]}))
        response.set_cookie(FLASH_COOKIE, text, httponly=True, samesite="lax", path=PREFIX)
    return response


def take_flash(request: Request) -> dict[str, str] | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return None
    try:
        value = json.loads(unquote(raw))
    except ValueError:
        return None
    if isinstance(value, dict) and {"kind", "text"} <= set(value):
        return {"kind": str(value["kind"]), "text": str(value["text"])}
    return None


def render(
    ctx: Ctx | None, request: Request, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    page = templates.get_template(template).render(
        ctx=ctx, request=request, prefix=PREFIX, **values
    )
    response = HTMLResponse(page, status_code=status)
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if ctx is not None:
        for name, value in ctx.headers.items():
            response.headers[name] = value
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path=PREFIX)
    return response


EXPIRED = "Your session expired. Sign in again to continue where you were."


def _page_before(request: Request) -> str:
    """The console page to come back to after signing in: this one for a GET; for a form
    sent, the page it was sent from (the Referer, which the console's policy keeps to its
    own origin), if it is this site's."""
    if request.method == "GET":
        return request.url.path + (f"?{request.url.query}" if request.url.query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc != request.url.netloc:
        return ""
    return referer.path + (f"?{referer.query}" if referer.query else "")


def _login_redirect(request: Request, expired: bool) -> RedirectResponse:
    """To the sign-in page, which then comes back here (`next`: a checked same-site path).
    A session cookie that no longer signs in (it expired) is dropped, and the page says so."""
    target = safe_back(_page_before(request), "")
    url = f"{PREFIX}/login" + (f"?next={quote(target)}" if target else "")
    if not expired:
        return RedirectResponse(url, status_code=303)
    response = redirect(url, ("info", EXPIRED))
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


class _NotSignedIn(Exception):
    def __init__(self, expired: bool = False) -> None:
        super().__init__()
        self.expired = expired


def _context(request: Request, runtime: Runtime, session: Session) -> Ctx:
    token = request.cookies.get(SESSION_COOKIE, "")
    if not token:
        raise _NotSignedIn()
    try:
        principal = iam.resolve_token(session, token)
    except LoginFailed as exc:
        raise _NotSignedIn(expired=True) from exc
    projects = [p for p in iam.list_projects(session, principal.domain_id) if p.enabled]
    if not projects:
        raise _NotSignedIn()
    wanted = request.cookies.get(PROJECT_COOKIE, "")
    project = next((p for p in projects if p.id == wanted), projects[0])
    domain = iam.get_domain(session, principal.domain_id)
    return Ctx(request, runtime, session, token, principal, domain, project, projects)


def _internal_error(request: Request) -> HTMLResponse:
    request_id = str(getattr(request.state, "request_id", "")) or new_uuid()
    log.exception("console request %s failed", request_id)
    return render(
        None,
        request,
        "error.html",
        status=500,
        message=f"Something went wrong on our side; quote request id {request_id}.",
    )


PageBody = Callable[[Ctx], Response]
ActionBody = Callable[[Ctx, Form], Response]
ErrorPage = Callable[[Ctx, Form, AppError], Response]


def _get_sync(request: Request, body: PageBody) -> Response:
    runtime = runtime_of(request)
    flash = take_flash(request)
    try:
        with runtime.database.unit_of_work() as session:
            ctx = _context(request, runtime, session)
            ctx.flash = flash
            try:
                return body(ctx)
            except AppError as error:
                session.rollback()
                return render(
                    ctx, request, "error.html", status=error.status, message=error.message
                )
    except _NotSignedIn as gone:
        return _login_redirect(request, gone.expired)
    except Exception:
        return _internal_error(request)


async def get(request: Request, body: PageBody) -> Response:
    """Render a page for the signed-in user in one unit of work."""
    return await run_in_threadpool(_get_sync, request, body)


def _post_sync(
    request: Request, form: Form, action: ActionBody, back: str, on_error: ErrorPage | None
) -> Response:
    runtime = runtime_of(request)
    try:
        try:
            with runtime.database.unit_of_work() as session:
                ctx = _context(request, runtime, session)
                if not hmac.compare_digest(form.get("csrf"), ctx.csrf):
                    return render(
                        ctx,
                        request,
                        "error.html",
                        status=403,
                        message="This form has expired or did not come from the console; "
                        "reload the page and try again.",
                    )
                return action(ctx, form)
        except AppError as error:
            if on_error is None:
                return redirect(safe_back(form.get("back"), back), ("error", error.message))
            return _refused_page(request, runtime, form, error, on_error)
    except _NotSignedIn as gone:
        return _login_redirect(request, gone.expired)
    except Exception:
        return _internal_error(request)


def _refused_page(
    request: Request, runtime: Runtime, form: Form, error: AppError, on_error: ErrorPage
) -> Response:
    """The form's page again, with the refusal shown. Drawing it looks things up in a unit of
    work of its own, which can be refused in turn (the form's backup is not the user's to see):
    then that refusal is the answer, on the error page, as a GET of the page would answer."""
    with runtime.database.unit_of_work() as session:
        ctx = _context(request, runtime, session)
        ctx.flash = {"kind": "error", "text": error.message}
        try:
            return on_error(ctx, form, error)
        except AppError as page_error:
            session.rollback()
            ctx.flash = None  # the page the first refusal was for is not shown
            return render(
                ctx, request, "error.html", status=page_error.status, message=page_error.message
            )


async def read_form(request: Request) -> Form:
    return Form(await request.form(max_part_size=64 * 1024 * 1024))


async def post(
    request: Request,
    action: ActionBody,
    back: str,
    on_error: ErrorPage | None = None,
    form: Form | None = None,
) -> Response:
    """Run a form action (CSRF-checked) in one unit of work; a refusal rolls it all back and
    is shown as a message: on `on_error`'s page, else after a redirect to `back`."""
    if form is None:
        form = await read_form(request)
    return await run_in_threadpool(_post_sync, request, form, action, back, on_error)


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def check_login_csrf(request: Request, form: Form) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(form.get("csrf"), expected)


def query(request: Request, name: str, default: str = "") -> str:
    return request.query_params.get(name, default).strip()


def url(path: str, params: Mapping[str, str] | None = None) -> str:
    from urllib.parse import urlencode

    found = {k: v for k, v in (params or {}).items() if v}
    return PREFIX + path + (f"?{urlencode(found)}" if found else "")
