"""`python -m demo` (or `make demo`): realistic traffic against a running stack (`make run`).

Honest players, each with their own device, IP, card (in their own name), phone and wallet, pay
by all six methods (card, QR, mobile banking, e-wallet, aggregator, bank transfer: the player's
part at the provider is played through the simulator's payment pages), play, and withdraw back to
an instrument they deposited with (the closed loop). A few cards are declined by the bank, one
large deposit is held for the risk team's review (and approved, as the risk team would), and a
provider has a spell of trouble. Then deliberate fraud the engine must catch: a multi-accounting
ring (three people on one device and one card: held for review, with high alerts) and a
card-testing burst (small attempts with cards the banks decline, until the engine declines the
device). The last lines sum it up: the decline rate of the honest deposits, the approval rate of
all finished deposits (what the dashboard shows), and what the engine caught.

Only the public HTTP API and the simulator's player pages are used, with the dev keys `make run`
keeps in `.data/api-keys.json` (the merchant's, and the operator's for the review).
"""

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from config import get_settings
from domain.cards import luhn_valid
from domain.iban import with_check_digits
from domain.iin import check_digit

DECLINED_CARD = "4000000000000002"
TERMINAL = {"succeeded", "failed", "declined", "expired", "paid", "rejected", "cancelled"}
UNSUCCESSFUL = ("failed", "declined", "expired")
# Names as the player registered them; the card carries the Latin spelling (passport style).
NAMES = [
    ("Aigerim Tulegenova", "AIGERIM TULEGENOVA"),
    ("Нұрлан Әбілқасымов", "NURLAN ABILKASYMOV"),
    ("Dana Sadykova", "DANA SADYKOVA"),
    ("Жақсылықов Арман", "ARMAN ZHAKSYLYKOV"),
    ("Aliya Omarova", "ALIYA OMAROVA"),
    ("Ғалым Өмірбеков", "GALYM OMIRBEKOV"),
    ("Timur Khasanov", "TIMUR KHASANOV"),
    ("Әсел Нұрланқызы", "ASSEL NURLANKYZY"),
]
KZ_BINS = ("440563", "400303", "404932", "517792", "539545", "548601")
# Client addresses in Kazakh carriers' ranges (Kazakhtelecom, Beeline KZ, Kcell): only put in
# request bodies as the player's address, never contacted.
KZ_NETWORKS = ("2.134", "37.150", "92.46", "95.56", "178.89")
METHODS = ("card", "qr", "mobile_banking", "ewallet", "aggregator", "bank_transfer")
# The player's part at the provider: the simulator's page action for each method.
PLAYER_ACTION = {"bank_transfer": "transfer"}


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


def card_number(rng: random.Random, bin_: str | None = None) -> str:
    """A Luhn-valid card of a Kazakh bank, different for every call."""
    stem = (bin_ or rng.choice(KZ_BINS)) + "".join(rng.choice("0123456789") for _ in range(9))
    return next(stem + d for d in "0123456789" if luhn_valid(stem + d))


@dataclass
class Player:
    id: str
    name: str
    card_name: str
    phone: str
    device: str
    ip: str
    card: str
    wallet: str
    fraud: bool = False
    # Succeeded deposits: id -> (method, amount).
    deposits: dict[str, tuple[str, int]] = field(default_factory=dict)
    deposited: int = 0


class Demo:
    def __init__(
        self,
        api: httpx.Client,
        simulator: httpx.Client,
        rng: random.Random,
        operator: httpx.Client | None = None,
    ) -> None:
        self.api = api
        self.simulator = simulator
        self.operator = operator
        self.rng = rng
        self.tally: Counter[str] = Counter()
        self.outcomes: Counter[tuple[bool, str]] = Counter()  # (fraud?, final status)
        self.caught: dict[str, set[str]] = {"ring": set(), "card testing": set()}
        self.methods: Counter[str] = Counter()  # succeeded deposits by method

    def post(
        self, path: str, body: dict[str, Any], client: httpx.Client | None = None
    ) -> dict[str, Any] | None:
        response = (client or self.api).post(
            path, json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        if response.status_code >= 400:
            code = response.json().get("code", response.status_code)
            self.tally[f"refused {path.split('/')[-1]}: {code}"] += 1
            return None
        result: dict[str, Any] = response.json()
        return result

    def ip(self) -> str:
        return (
            f"{self.rng.choice(KZ_NETWORKS)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"
        )

    def player(self, *, fraud: bool = False, name: tuple[str, str] | None = None) -> Player | None:
        full, on_card = name or self.rng.choice(NAMES)
        phone = f"+7701{self.rng.randint(1000000, 9999999)}"
        body = {
            "external_id": f"demo-{uuid.uuid4().hex[:10]}",
            "iin": iin(self.rng),
            "full_name": full,
            "phone": phone,
        }
        created = self.post("/v1/players", body)
        if not created:
            return None
        return Player(
            id=str(created["id"]),
            name=full,
            card_name=on_card,
            phone=phone,
            device=f"{'fx' if fraud else 'demo'}-{uuid.uuid4().hex[:12]}",
            ip=self.ip(),
            card=card_number(self.rng),
            wallet=phone,  # Freedom Pay's e-wallet: the wallet is the player's phone
            fraud=fraud,
        )

    def deposit(
        self,
        who: Player,
        amount: int,
        method: str = "card",
        *,
        card: str | None = None,
        holder: str | None = None,
        device: str | None = None,
    ) -> dict[str, Any] | None:
        details: dict[str, Any] = {}
        if method == "card":
            details = {
                "card": {
                    "number": card or who.card,
                    "exp_month": 12,
                    "exp_year": 2031,
                    "cvc": "123",
                    **({"holder_name": holder} if holder else {}),
                }
            }
        elif method == "ewallet":
            details = {"wallet_account": who.wallet}
        elif method == "mobile_banking":
            details = {"phone": who.phone}
        elif method == "aggregator":
            details = {"return_url": "https://casino.example/cashier"}
        body = {
            "player_id": who.id,
            "amount": amount,
            "currency": "KZT",
            "method": method,
            "details": details,
            "client": {"ip": who.ip, "device_id": device or who.device},
        }
        created = self.post("/v1/deposits", body)
        if not created:
            return None
        shown = self.settle(created, method, amount)
        status = str(shown["status"])
        self.tally[f"deposit {status}"] += 1
        if status in TERMINAL:
            self.outcomes[(who.fraud, status)] += 1
        if status == "succeeded":
            who.deposits[str(shown["id"])] = (method, amount)
            self.methods[method] += 1
            who.deposited += amount
        return shown

    def settle(self, created: dict[str, Any], method: str, amount: int) -> dict[str, Any]:
        """Wait for the deposit; where the player must act at the provider, act."""
        shown = self.wait("deposits", created["id"])
        if shown["status"] == "requires_action" and shown.get("provider"):
            action = PLAYER_ACTION.get(method, "confirm")
            params = {"amount": amount} if action == "transfer" else None
            try:
                self.simulator.post(
                    f"/pay/{shown['provider']}/{created['id']}/{action}", params=params
                )
            except httpx.HTTPError:
                self.tally["simulator unreachable"] += 1
            shown = self.wait("deposits", created["id"], stop_at_action=False)
        return shown

    def wait(
        self, kind: str, payment_id: str, seconds: float = 30, *, stop_at_action: bool = True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        shown: dict[str, Any] = {"id": payment_id, "status": "pending"}
        while time.monotonic() < deadline:
            shown = self.api.get(f"/v1/{kind}/{payment_id}").json()
            status = shown["status"]
            if status in TERMINAL or status == "in_review":
                return shown
            if stop_at_action and status == "requires_action" and shown.get("provider"):
                return shown
            time.sleep(0.3)
        return shown

    def play(self, who: Player, amount: int) -> None:
        round_id = uuid.uuid4().hex
        for kind in ("bet", "win"):
            self.post(
                f"/v1/players/{who.id}/game-transactions",
                {"type": kind, "amount": amount, "currency": "KZT", "round_id": round_id},
            )

    def withdraw(self, who: Player, share: int = 4) -> None:
        """A part of a deposit back to the instrument that paid it (the closed loop)."""
        destinations: dict[str, dict[str, str]] = {
            "ewallet": {"wallet_account": who.wallet},
            "mobile_banking": {"phone": who.phone},
        }
        returnable = [
            (a, d, m) for d, (m, a) in who.deposits.items() if m in destinations or m == "card"
        ]
        if not returnable:
            self.tally["withdrawal skipped: nothing to return to"] += 1
            return
        paid_in, deposit_id, method = max(returnable)
        amount = max(1_000_00, paid_in // share // 100 * 100)
        body = {
            "player_id": who.id,
            "amount": amount,
            "currency": "KZT",
            "method": method,
            "destination": destinations.get(method, {"deposit_id": deposit_id}),
            "client": {"ip": who.ip, "device_id": who.device},
        }
        if created := self.post("/v1/withdrawals", body):
            self.tally[f"withdrawal {self.wait('withdrawals', created['id'])['status']}"] += 1

    def approve(self, deposit: dict[str, Any], reason: str) -> None:
        """The risk team looks at a held deposit and approves it (operator key)."""
        if self.operator is None or deposit.get("status") != "in_review":
            return
        response = self.operator.post(
            f"/v1/deposits/{deposit['id']}/approve", json={"reason": reason}
        )
        if response.status_code == 200:
            shown = self.wait("deposits", str(deposit["id"]))
            self.tally[f"review approved, deposit {shown['status']}"] += 1
            self.outcomes[(False, str(shown["status"]))] += 1

    def behaviour(self, provider: str, behaviour: dict[str, Any]) -> None:
        try:
            self.simulator.put(f"/admin/providers/{provider}/behaviour", json=behaviour)
        except httpx.HTTPError:
            self.tally["simulator unreachable"] += 1

    # -- the players -------------------------------------------------------------------------

    def honest(self, n: int, players: int) -> None:
        who = self.player()
        if who is None:
            return
        print(f"[{n}/{players}] player {who.id} ({who.name})", flush=True)
        methods = [METHODS[(n - 1 + i) % len(METHODS)] for i in range(self.rng.randint(2, 3))]
        if "card" not in methods:
            methods.insert(0, "card")
        for method in methods:
            amount = self.rng.choice([200_000, 500_000, 1_000_000, 2_500_000])
            self.deposit(who, amount, method, holder=who.card_name if method == "card" else None)
        if self.rng.random() < 0.15:  # the bank declines another card of the player's
            self.deposit(who, 300_000, card=DECLINED_CARD)
        if n == 2:  # a large deposit: held for the risk team, who approve it
            held = self.deposit(who, 1_200_000_00, holder=who.card_name)
            if held is not None:
                self.approve(held, "source of funds checked")
        if n == max(1, players // 2):
            print("  provider trouble: halyk fails twice and is slow", flush=True)
            self.behaviour("halyk", {"fail_next": 2, "latency_ms": 400})
        self.play(who, who.deposited)  # played through once: no cycling
        if who.deposited:
            self.withdraw(who)
        print("  " + ", ".join(f"{k}: {v}" for k, v in sorted(self.tally.items())), flush=True)

    def ring(self) -> None:
        """Three people, one device and one card: multi-accounting. The first passes; the
        others share what another person used and are held for review, with high alerts."""
        print("fraud: a multi-accounting ring (3 accounts, one device, one card)", flush=True)
        device, card = f"ring-{uuid.uuid4().hex[:10]}", card_number(self.rng)
        for member in range(3):
            who = self.player(fraud=True)
            if who is None:
                continue
            shown = self.deposit(who, 500_000, card=card, device=device)
            reasons = set((shown or {}).get("risk", {}).get("reasons", []))
            caught = reasons & {"multi_account_card", "multi_account_device"}
            self.caught["ring"] |= caught
            print(
                f"  ring member {member + 1}: {shown['status'] if shown else 'refused'}"
                + (f", caught: {', '.join(sorted(caught))}" if caught else ""),
                flush=True,
            )

    def card_testing(self) -> None:
        """One device tries small amounts with cards the banks decline, then is stopped."""
        print("fraud: a card-testing burst (small attempts, declined cards)", flush=True)
        who = self.player(fraud=True)
        if who is None:
            return
        for provider in ("halyk", "freedom"):
            self.behaviour(provider, {"decline_rate": 1})
        try:
            for attempt in range(5):
                shown = self.deposit(who, 100_00, card=card_number(self.rng))
                reasons = set((shown or {}).get("risk", {}).get("reasons", []))
                if "card_testing" in reasons:
                    self.caught["card testing"].add("card_testing")
                    print(f"  attempt {attempt + 1}: declined by the engine (card_testing)")
                    break
                print(f"  attempt {attempt + 1}: {shown['status'] if shown else 'refused'}")
        finally:
            for provider in ("halyk", "freedom"):
                self.behaviour(provider, {})

    def summary(self) -> None:
        honest = {s: n for (fraud, s), n in self.outcomes.items() if not fraud}
        finished = sum(n for s, n in honest.items() if s == "succeeded" or s in UNSUCCESSFUL)
        declined = sum(honest.get(s, 0) for s in UNSUCCESSFUL)
        everything = Counter[str]()
        for (_, status), n in self.outcomes.items():
            everything[status] += n
        all_finished = everything["succeeded"] + sum(everything[s] for s in UNSUCCESSFUL)
        if finished:
            print(
                f"decline rate: {100 * declined / finished:.1f}% of {finished} honest deposits "
                f"finished ({declined} declined, failed or expired)"
            )
        if all_finished:
            print(
                f"approval rate: {100 * everything['succeeded'] / all_finished:.1f}% of "
                f"{all_finished} finished deposits, the fraud included"
            )
        print("succeeded by method: " + ", ".join(f"{m} {self.methods[m]}" for m in METHODS))
        for name, caught in self.caught.items():
            print(
                f"fraud {name}: "
                + (f"caught ({', '.join(sorted(caught))})" if caught else "NOT caught")
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--players", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-fraud", action="store_true", help="honest traffic only")
    args = parser.parse_args(argv)
    settings = get_settings()
    keys_file = Path(settings.data_dir) / "api-keys.json"
    if not keys_file.exists():
        print(f"{keys_file} is missing: start the stack with `make run` first", file=sys.stderr)
        return 2
    keys = json.loads(keys_file.read_text())
    rng = random.Random(args.seed)
    with (
        httpx.Client(
            base_url=settings.api_url,
            headers={"Authorization": f"Bearer {keys['merchant']}"},
            timeout=30,
        ) as api,
        httpx.Client(
            base_url=settings.api_url,
            headers={"Authorization": f"Bearer {keys['operator']}"},
            timeout=60,
        ) as operator,
        httpx.Client(base_url=settings.simulator_url, timeout=10) as simulator,
    ):
        try:
            api.get("/healthz").raise_for_status()
        except httpx.HTTPError as exc:
            print(f"the API at {settings.api_url} does not answer ({exc}): `make run` first")
            return 2
        demo = Demo(api, simulator, rng, operator if "operator" in keys else None)
        try:
            for n in range(1, args.players + 1):
                demo.honest(n, args.players)
        finally:
            demo.behaviour("halyk", {})
        if not args.no_fraud:
            demo.ring()
            demo.card_testing()
        demo.summary()
    print(f"done; open {settings.api_url}/dashboard with the operator key from {keys_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
