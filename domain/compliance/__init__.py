"""Kazakhstan's gambling compliance rules, as plain typed code (README, "Compliance").

- `exclusions`: who may not play (under 21, the registers checked by IIN) and the port to the
  exclusion registers;
- `esu`: the port to the unified accounting system (ESU) and what it is told;
- `deadlines`: the payout deadline for winnings (3 calendar days);
- `monitoring`: the financial-monitoring thresholds (single payouts and split series);
- `responsible`: cool-off bounds and the reality-check windows;
- `credit`: deposits funded by credit money.
"""
