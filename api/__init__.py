"""The public HTTP API (see ../shared/CONTRACT.md), served by FastAPI."""
