"""`python -m simulator`: serve the provider simulator on the configured port."""

import uvicorn

from config import get_settings
from config.logging import configure_logging
from simulator.app import create_app


def main() -> None:
    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.simulator_host,
        port=settings.simulator_port,
        log_level="warning",
        log_config=None,
    )


if __name__ == "__main__":
    main()
