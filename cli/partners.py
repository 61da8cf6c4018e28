"""`deliveryctl partners|stores|callbacks|pii`: the arguments (light: argparse only); cli/partner_admin.py acts."""

import uuid

DIALECTS = ("native", "doordash", "uber", "olo")


def add_arguments(commands) -> None:
    partners = commands.add_parser("partners", help="register partners and rotate their credentials")
    sub = partners.add_subparsers(dest="partners_command", required=True)
    create = sub.add_parser("create", help="register a partner; prints its credentials once, as JSON")
    create.add_argument("name")
    create.add_argument("--dialect", choices=DIALECTS, default="native",
                        help="the API it speaks (default native)")
    create.add_argument("--webhook-url", help="where status callbacks go")
    create.add_argument("--webhook-authorization",
                        help="doordash (required): the Authorization header value our callbacks carry")
    create.add_argument("--test", action="store_true",
                        help="test-mode credentials: its deliveries are played by a sandbox robot, never a real one")
    update = sub.add_parser("update", help="change a partner's webhook URL or DoorDash webhook authorization")
    update.add_argument("partner", help="partner id or name")
    update.add_argument("--webhook-url", help="where status callbacks go from now on (turns the webhook back on)")
    update.add_argument("--webhook-authorization",
                        help="doordash: the Authorization header value our callbacks carry from now on")
    listing = sub.add_parser("list", help="registered partners")
    listing.add_argument("--json", action="store_true")
    rotate = sub.add_parser("rotate", help="issue new credentials; the old ones work until the overlap ends")
    rotate.add_argument("partner", help="partner id or name")
    rotate.add_argument("--overlap-hours", type=float, default=24, help="how long the old ones stay valid (24)")

    stores = commands.add_parser("stores", help="a partner's pickup locations")
    sub = stores.add_subparsers(dest="stores_command", required=True)
    add = sub.add_parser("add", help="register (or update) a store under the partner's own store id")
    add.add_argument("--partner", required=True, help="partner id or name")
    add.add_argument("--store-id", required=True, help="the partner's id for the store")
    add.add_argument("--name", required=True)
    add.add_argument("--lat", type=float, required=True)
    add.add_argument("--lng", type=float, required=True)
    add.add_argument("--preparation-minutes", type=int, help="how long the store takes to prepare an order "
                                                             "(unset: the market's DELIVERY_PREPARATION_SECONDS)")
    listing = sub.add_parser("list", help="a partner's stores")
    listing.add_argument("--partner", required=True, help="partner id or name")
    listing.add_argument("--json", action="store_true")

    callbacks = commands.add_parser("callbacks", help="status callbacks that ran out of retries")
    sub = callbacks.add_subparsers(dest="callbacks_command", required=True)
    failed = sub.add_parser("failed", help="callbacks that exhausted their retries")
    failed.add_argument("--json", action="store_true")
    replay = sub.add_parser("replay", help="send failed callbacks again, in sequence order")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("--delivery", type=uuid.UUID, help="one delivery's failed callbacks")
    target.add_argument("--all", action="store_true", help="every failed callback")

    pii = commands.add_parser("pii", help="customers' personal data at rest")
    sub = pii.add_subparsers(dest="pii_command", required=True)
    sub.add_parser("rotate-key", help="re-seal every secret and personal field under the current key")
