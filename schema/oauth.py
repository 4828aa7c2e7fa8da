"""/oauth/callback: where the provider sends the browser back after a re-authorization."""

from __future__ import annotations

import html

import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from resolvers.errors import ApiError
from resolvers.recovery import complete_reauthorization
from schema.context import Services

log = structlog.get_logger(__name__)


def _page(title: str, text: str, status: int) -> HTMLResponse:
    body = (
        "<!doctype html><meta charset=utf-8><title>Integration Health Monitor</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
    )
    return HTMLResponse(body, status_code=status)


async def oauth_callback(request: Request) -> Response:
    services: Services = request.app.state.services
    params = request.query_params
    if params.get("error"):
        # The person declined, or the provider refused: nothing changes.
        return _page("Not reconnected", f"The provider said: {params['error'][:100]}.", 400)
    state, code = params.get("state"), params.get("code")
    if not state or not code:
        return _page("Not reconnected", "The link is missing its state or code.", 400)
    try:
        kind = await complete_reauthorization(
            settings=services.settings,
            vault=services.vault,
            pool=services.pool,
            http=services.http,
            queue=services.queue,
            state=state,
            code=code,
        )
    except ApiError as exc:
        return _page("Not reconnected", exc.message, exc.http_status)
    return _page(
        "Reconnected",
        f"{kind} is connected again; a check is running now. You can close this window.",
        200,
    )


routes = [Route("/oauth/callback", oauth_callback, methods=["GET"])]
