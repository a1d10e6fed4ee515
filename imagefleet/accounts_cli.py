"""`imagefleet accounts ...` and `imagefleet billing reconcile`: operator commands on Redis."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation

from billing.accounts import Account, AccountError, Accounts
from billing.reconcile import reconcile
from imagefleet.redis_conn import connect
from imagefleet.settings import settings
from jobs.store import JobStore


def dollars(text: str) -> int:
    """ "25.00" -> 25000000 micro-dollars (exact, no float)."""
    try:
        micros = Decimal(text) * 1_000_000
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount like 25.00") from None
    if micros != micros.to_integral_value() or micros < 0:
        raise argparse.ArgumentTypeError("amounts are >= 0 with at most 6 decimals")
    return int(micros)


def _money(micros: int) -> str:
    return f"${Decimal(micros) / 1_000_000:,.6f}".rstrip("0").rstrip(".")


def _line(account: Account) -> str:
    state = "disabled" if account.disabled else "active"
    return (
        f"{account.id:20} {state:8} balance {_money(account.balance_micros):>14}"
        f"  held {_money(account.held_micros):>12}  available"
        f" {_money(account.available_micros):>14}"
    )


def _accounts() -> Accounts:
    return Accounts(connect(settings().redis_url))


def run(args: argparse.Namespace) -> int:
    accounts = _accounts()
    try:
        if args.action == "create":
            account, key = accounts.create(
                args.name, args.credit, args.rate_limit, webhook_url=args.webhook_url
            )
            print(f"created account {account.id} with {_money(account.balance_micros)}")
            print(f"API key (shown once; only its hash is stored): {key}")
            print(f"webhook signing secret: {account.webhook_secret}")
        elif args.action == "list":
            for name in accounts.names():
                print(_line(accounts.require(name)))
        elif args.action == "show":  # an operator's view: the webhook secret too
            account = accounts.require(args.name)
            shown = {**account.public(), "webhook_secret": account.webhook_secret}
            print(json.dumps(shown, indent=2))
        elif args.action == "credit":
            print(_line(accounts.credit(args.name, args.amount)))
        elif args.action == "rotate-key":
            print(
                f"new API key (shown once; the old key stops working now): "
                f"{accounts.rotate_key(args.name)}"
            )
        elif args.action == "set-webhook":
            accounts.set_webhook_url(args.name, args.url or None)
            print(f"account {args.name}: default webhook {args.url or '(none)'}")
        elif args.action == "disable":
            accounts.set_disabled(args.name)
            print(f"account {args.name} disabled: its key gets 401 from now on")
    except AccountError as exc:
        print(f"imagefleet accounts: {exc}")
        return 1
    return 0


def run_reconcile(args: argparse.Namespace) -> int:
    cfg = settings()
    client = connect(cfg.redis_url)
    problems = reconcile(Accounts(client), JobStore(client, cfg.job_ttl_seconds))
    for problem in problems:
        print(f"MISMATCH {problem}")
    print(f"{len(problems)} problem(s)" if problems else "books balance: every account checks")
    return 1 if problems else 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    accounts = sub.add_parser("accounts", help="create and manage accounts and API keys")
    actions = accounts.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a new account; prints its API key once")
    create.add_argument("--name", required=True)
    create.add_argument("--credit", type=dollars, default=0, help="starting credit, e.g. 25.00")
    create.add_argument(
        "--rate-limit",
        type=float,
        default=0,
        help="requests per second for its key (default: FLEET_RATE_LIMIT)",
    )
    create.add_argument("--webhook-url", help="default webhook for jobs that name none")
    actions.add_parser("list", help="every account with its balance")
    hook = actions.add_parser("set-webhook", help="set (or clear, with '') the default webhook")
    hook.add_argument("name")
    hook.add_argument("url")
    for name, text in [
        ("show", "one account as JSON, with its webhook signing secret"),
        ("rotate-key", "issue a new API key"),
        ("disable", "refuse the account's key from now on"),
    ]:
        actions.add_parser(name, help=text).add_argument("name")
    credit = actions.add_parser("credit", help="add credit, e.g. `credit acme 10.00`")
    credit.add_argument("name")
    credit.add_argument("amount", type=dollars)
    accounts.set_defaults(func=run)

    billing = sub.add_parser("billing", help="billing checks")
    checks = billing.add_subparsers(dest="action", required=True)
    checks.add_parser("reconcile", help="verify balances, ledgers and holds; exit 1 on a mismatch")
    billing.set_defaults(func=run_reconcile)
