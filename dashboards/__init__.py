"""The grpo-diag dashboard: a Dash app over the run store (thin callbacks, a query layer, pure figures)."""
