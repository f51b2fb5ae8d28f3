"""Hosted checkout: the platform's own payment and cash-out pages for players.

A casino asks for a session (`POST /v1/checkout/sessions`, merchant key) and sends the player to
its `url`; the pages (`/checkout/{token}`, api/routers/checkout.py) take the payment through the
same code as `POST /v1/deposits` and `POST /v1/withdrawals`, so card numbers reach the platform
straight from the player's browser and never pass through the casino.

- `models`, `store`: the session and its funnel events (migration 0140);
- `tokens`: the session token in the URL (only its hash is stored) and the forms' CSRF tokens;
- `offer`: which methods a player is offered now, in which order; `payout`: cash-out
  destinations under the closed-loop rule;
- `i18n`, `errors`, `money`: Kazakh, Russian and English, refusal codes in words, amounts;
- `pages`, `security`: the HTML, the Content-Security-Policy and the rate limits;
- `funnel`: opened -> method chosen -> submitted -> succeeded, for the analytics API.
"""
