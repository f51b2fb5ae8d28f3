"""Tools of the risk team: `python -m risk.backtest` (a candidate rule set against stored
decisions) and `python -m risk.geoip_sample` (the small MaxMind-format country database the
development stack and the tests read)."""
