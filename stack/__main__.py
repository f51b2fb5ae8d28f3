"""`python -m stack run`: the whole platform on this machine, until Ctrl-C."""

import argparse
import signal
import sys
import threading
import warnings
from types import FrameType

from config import get_settings
from stack.launcher import Stack, StackError


def run(*, encrypted: bool = False) -> int:
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    settings = get_settings()
    if encrypted:
        settings = settings.model_copy(update={"codec_enabled": True})
    stack = Stack(settings)
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"Starting the payment platform (data in {stack.data_dir})", flush=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"\nERROR: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    except KeyboardInterrupt:
        stack.stop()
        return 130
    print(
        "\nThe platform is up:\n"
        f"  API docs        {settings.api_url}/docs\n"
        f"  OpenAPI schema  {settings.api_url}/openapi.json\n"
        f"  Dashboard       {settings.api_url}/dashboard\n"
        f"  Temporal Web UI {settings.temporal_web_url}"
        + ("" if settings.temporal_address else '  (filter: PaymentStatus="processing")')
        + _encryption_lines(stack)
        + f"\n  Simulator       {settings.simulator_url}/docs\n"
        f"  Logs            {stack.log_dir}\n"
        + "".join(f"  API key {role:<8} {key}\n" for role, key in stack.dev_keys.items())
        + "Press Ctrl-C to stop.",
        flush=True,
    )
    code = 0
    while not stop.wait(1.0):
        dead = stack.dead_components()
        if dead:
            for component in dead:
                print(
                    f"\nERROR: {component.name} stopped (exit {component.process.returncode}). "
                    f"Last lines of {component.log_path}:\n{stack.tail(component.name)}",
                    file=sys.stderr,
                )
            code = 1
            break
    print("\nStopping ...", flush=True)
    stack.stop()
    print("Stopped. Data is kept for the next run.", flush=True)
    return code


def _encryption_lines(stack: Stack) -> str:
    if not stack.settings.payload_codec_enabled:
        return ""
    return (
        f"\n  Encryption      on: the Web UI decodes through {stack.codec_endpoint} once you"
        f"\n                  sign in at {stack.settings.api_url}/dashboard with an operator key"
        "\n                  and turn on the UI's codec setting \"Include cross-origin"
        '\n                  credentials" (README, "Encrypted history")'
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stack")
    parser.add_argument("command", choices=["run"], nargs="?", default="run")
    parser.add_argument(
        "--encrypted",
        action="store_true",
        help="encrypt workflow payloads (as production does) and wire the Web UI to /codec; "
        "the same as PAY_CODEC_ENABLED=true",
    )
    arguments = parser.parse_args()
    sys.exit(run(encrypted=arguments.encrypted))


if __name__ == "__main__":
    main()
