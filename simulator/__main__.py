"""`python -m simulator`: serve the provider simulator on the configured port."""

import uvicorn

from config import get_settings
from simulator.app import create_app


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        create_app(settings), host="127.0.0.1", port=settings.simulator_port, log_level="warning"
    )


if __name__ == "__main__":
    main()
