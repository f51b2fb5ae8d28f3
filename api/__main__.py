"""`python -m api`: serve the public API on the configured host and port."""

import uvicorn

from api.app import create_app
from config import get_settings
from config.logging import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's records go through configure_logging's JSON handler
    )


if __name__ == "__main__":
    main()
