"""`python -m demo` (or `make demo`): realistic traffic against a running stack (`make run`).

Creates players and a mix of card deposits (approved, declined, expired cards, amounts large
enough for a risk review), deposits by other methods, bets and wins, withdrawals (some to new
destinations, which wait for an operator) and a spell of provider trouble in the simulator, so
the dashboard at /dashboard has something real to show. Only the public HTTP API is used, with
the dev keys `make run` keeps in `.data/api-keys.json`.
"""

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from config import get_settings
from domain.iban import with_check_digits
from domain.iin import check_digit

OK_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000002"
EXPIRED_CARD = "4000000000000069"
TERMINAL = {"succeeded", "failed", "declined", "expired", "paid", "rejected", "cancelled"}
NAMES = [
    "Aigerim Tulegenova",
    "Nurlan Abenov",
    "Dana Sadykova",
    "Arman Zhaksylykov",
    "Aliya Omarova",
]


def iin(rng: random.Random) -> str:
    """A valid IIN of an adult born in the 1980s or 1990s."""
    while True:
        birth = f"{rng.randint(80, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        first = f"{birth}{rng.choice('34')}{rng.randint(1000, 9999)}"
        digit = check_digit(first)
        if digit is not None:
            return first + str(digit)


def kz_iban(rng: random.Random) -> str:
    """A KZ IBAN with valid check digits: bank 125 and a 13-character account."""
    return with_check_digits("125" + "".join(rng.choice("0123456789") for _ in range(13)))


class Demo:
    def __init__(self, api: httpx.Client, simulator: httpx.Client, rng: random.Random) -> None:
        self.api = api
        self.simulator = simulator
        self.rng = rng
        self.tally: Counter[str] = Counter()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        response = self.api.post(path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        if response.status_code >= 400:
            code = response.json().get("code", response.status_code)
            self.tally[f"refused {path.split('/')[-1]}: {code}"] += 1
            return None
        result: dict[str, Any] = response.json()
        return result

    def player(self) -> str | None:
        body = {
            "external_id": f"demo-{uuid.uuid4().hex[:10]}",
            "iin": iin(self.rng),
            "full_name": self.rng.choice(NAMES),
            "phone": f"+7701{self.rng.randint(1000000, 9999999)}",
        }
        created = self.post("/v1/players", body)
        return str(created["id"]) if created else None

    def deposit(self, player: str, amount: int, method: str = "card", card: str = OK_CARD) -> None:
        details: dict[str, Any]
        if method == "card":
            details = {"card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
        elif method == "ewallet":
            details = {"wallet_account": f"demo-{self.rng.randint(1000, 9999)}"}
        else:  # mobile_banking (the player's phone), qr, aggregator, bank_transfer
            details = {}
        body = {
            "player_id": player,
            "amount": amount,
            "currency": "KZT",
            "method": method,
            "details": details,
            "client": {"ip": f"10.0.0.{self.rng.randint(1, 250)}", "device_id": "demo"},
        }
        if created := self.post("/v1/deposits", body):
            self.tally[f"deposit {self.wait('deposits', created['id'])}"] += 1

    def wait(self, kind: str, payment_id: str, seconds: float = 20) -> str:
        deadline = time.monotonic() + seconds
        status = "pending"
        while time.monotonic() < deadline:
            status = str(self.api.get(f"/v1/{kind}/{payment_id}").json()["status"])
            if status in TERMINAL or status in ("in_review", "requires_action"):
                return status
            time.sleep(0.3)
        return status

    def play(self, player: str, amount: int) -> None:
        round_id = uuid.uuid4().hex
        for kind in ("bet", "win"):
            self.post(
                f"/v1/players/{player}/game-transactions",
                {"type": kind, "amount": amount, "currency": "KZT", "round_id": round_id},
            )

    def withdraw(self, player: str, amount: int) -> None:
        body = {
            "player_id": player,
            "amount": amount,
            "currency": "KZT",
            "method": "bank_transfer",
            "destination": {"iban": kz_iban(self.rng)},
        }
        if created := self.post("/v1/withdrawals", body):
            self.tally[f"withdrawal {self.wait('withdrawals', created['id'])}"] += 1

    def trouble(self, on: bool) -> None:
        behaviour = {"fail_next": 2, "latency_ms": 400} if on else {}
        try:
            self.simulator.put("/admin/providers/kazcard/behaviour", json=behaviour)
        except httpx.HTTPError:
            self.tally["simulator unreachable"] += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--players", type=int, default=6)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    settings = get_settings()
    keys_file = Path(settings.data_dir) / "api-keys.json"
    if not keys_file.exists():
        print(f"{keys_file} is missing: start the stack with `make run` first", file=sys.stderr)
        return 2
    keys = json.loads(keys_file.read_text())
    rng = random.Random(args.seed)
    headers = {"Authorization": f"Bearer {keys['merchant']}"}
    with (
        httpx.Client(base_url=settings.api_url, headers=headers, timeout=30) as api,
        httpx.Client(base_url=settings.simulator_url, timeout=5) as simulator,
    ):
        try:
            api.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            print(f"the API at {settings.api_url} does not answer ({exc}): `make run` first")
            return 2
        demo = Demo(api, simulator, rng)
        for n in range(1, args.players + 1):
            player = demo.player()
            if player is None:
                continue
            print(f"[{n}/{args.players}] player {player}", flush=True)
            for _ in range(rng.randint(2, 4)):
                demo.deposit(player, rng.choice([200_000, 500_000, 1_000_000, 2_500_000]))
            if rng.random() < 0.5:
                demo.deposit(player, 300_000, card=DECLINED_CARD)
            if rng.random() < 0.2:
                demo.deposit(player, 300_000, card=EXPIRED_CARD)
            if rng.random() < 0.3:
                demo.deposit(player, 4_000_000_00)  # large: a risk review (fraud hit)
            if rng.random() < 0.4:
                demo.deposit(player, 700_000, method=rng.choice(["ewallet", "mobile_banking"]))
            if n == args.players // 2:
                print("  provider trouble: kazcard fails twice and is slow", flush=True)
                demo.trouble(True)
            demo.play(player, 100_000)
            demo.withdraw(player, rng.choice([150_000, 300_000, 600_000]))
            print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(demo.tally.items())), flush=True)
        demo.trouble(False)
    print(f"done; open {settings.api_url}/dashboard with the operator key from {keys_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
