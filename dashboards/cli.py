"""`grpo-diag dashboard`, registered through the grpo_diag.commands entry point."""

from __future__ import annotations

import argparse


def _dashboard(args: argparse.Namespace) -> int:
    from dashboards.app import serve

    serve(args.root, host=args.host, port=args.port, token=args.token)
    return 0


def register(sub) -> None:
    p = sub.add_parser("dashboard", help="live Dash dashboard over a runs directory (binds 127.0.0.1)")
    p.add_argument("--root", default="runs", help="runs directory (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need a token)")
    p.add_argument("--port", type=int, default=8050)
    p.add_argument("--token", help="access token (generated when binding a non-loopback address without one)")
    p.set_defaults(func=_dashboard)
