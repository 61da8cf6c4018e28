"""The public tracking page: a customer follows one delivery by its unguessable link, without credentials."""

import html

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.dependencies import Views
from api.limits import admit_address
from core.caching import TtlCache
from core.contracts import DeliveryStatus

router = APIRouter(tags=["tracking"])

S = DeliveryStatus
HEADLINES = {
    S.CREATED: "Order received", S.ROBOT_ASSIGNED: "A robot is assigned",
    S.EN_ROUTE_TO_PICKUP: "The robot is on its way to the store", S.AT_PICKUP: "The robot is at the store",
    S.PICKED_UP: "Your order is in the robot", S.EN_ROUTE_TO_DROPOFF: "Your order is on its way",
    S.AT_DROPOFF: "The robot has arrived: open the lid", S.DELIVERED: "Delivered",
    S.RETURNING: "The order is going back to the store", S.RETURNED: "The order went back to the store",
    S.CANCELLED: "Cancelled",
}


# A link's page is answered from here for 2 s: repeated hits (or a refresh storm) cost no Temporal query.
PAGES = TtlCache(seconds=2)


@router.get("/track/{token}", response_class=HTMLResponse, summary="Tracking page",
            responses={404: {"description": "No delivery has this link"},
                       429: {"description": "Too many requests from this address"}})
async def tracking_page(token: str, views: Views, request: Request) -> HTMLResponse:
    """Status and ETA of one delivery. It shows no personal data and no internal ids.

    Anyone may ask, so it is throttled by client address, and each link's answer is kept for 2 s in this
    process (the page may be that much behind the delivery).
    """
    admit_address(request)
    status_code, html_text = await PAGES.get(token[:64], lambda: _render(token[:64], views))
    return HTMLResponse(html_text, status_code=status_code,
                        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


async def _render(token: str, views) -> tuple[int, str]:
    order = await views.order_by_tracking_token(token)
    if order is None:
        return 404, _page("Not found", "This tracking link is not valid.", None)
    view = await views.view_of(order)
    eta = view.dropoff_eta if view.status not in (S.AT_DROPOFF, S.DELIVERED, S.RETURNING, S.RETURNED,
                                                  S.CANCELLED) else None
    return 200, _page(HEADLINES[view.status], f"Order {order.external_id}", eta)


def _page(headline: str, detail: str, eta) -> str:
    eta_line = f"<p>Expected at <time datetime='{eta.isoformat()}'>{eta:%H:%M}</time> UTC</p>" if eta else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="30"><meta name="robots" content="noindex">
<title>{html.escape(headline)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
h1{{font-size:1.5rem}}</style></head>
<body><h1>{html.escape(headline)}</h1><p>{html.escape(detail)}</p>{eta_line}</body></html>"""
