#!/usr/bin/env python3
"""Writes deterministic operators.csv and customers.csv in the import format.

usage: gen_csv.py OUT_DIR CUSTOMERS [OPERATORS]
"""
import random
import sys
from datetime import datetime, timedelta, timezone

out, n = sys.argv[1], int(sys.argv[2])
m = int(sys.argv[3]) if len(sys.argv) > 3 else 20
rng = random.Random(42)
first = ["Anna", "Ben", "Chloé", "David", "Elif", "François", "Grace", "Hiroshi", "Inês",
         "Jakub", "Zoë", "Łukasz", "Siobhán", "Søren", "María", "Noah"]
last = ["Smith", "Müller", "O'Brien", "García", "Rossi", "Kowalski", "Nguyen", "Dubois",
        "Jensen", "Novák", "Yılmaz", "Van der Berg", "D'Angelo", "Brown"]
places = [("DE", "Berlin"), ("FR", "Paris"), ("GB", "London"), ("IE", "Dublin"),
          ("ES", "Sevilla"), ("PL", "Kraków"), ("US", "New York"), ("BR", "São Paulo")]
start = datetime(2019, 1, 1, tzinfo=timezone.utc)

def ts():
    return (start + timedelta(seconds=rng.randrange(6 * 365 * 86400))).strftime("%Y-%m-%dT%H:%M:%SZ")

with open(f"{out}/operators.csv", "w", encoding="utf-8", newline="") as f:
    f.write("id,name,country,support_email,created_at\n")
    for i in range(1, m + 1):
        c, _ = rng.choice(places)
        f.write(f"{i},Operator {i},{c},support@op{i}.example.com,{ts()}\n")

with open(f"{out}/customers.csv", "w", encoding="utf-8", newline="") as f:
    f.write("id,operator_id,full_name,email,phone,city,country,plan,status,created_at\n")
    rows = []
    for i in range(1, n + 1):
        fn, ln = rng.choice(first), rng.choice(last)
        c, city = rng.choice(places)
        plan = rng.choices(["basic", "plus", "pro"], [6, 3, 1])[0]
        status = rng.choices(["active", "suspended", "closed"], [8, 1, 1])[0]
        rows.append(f"{i},{rng.randint(1, m)},{fn} {ln},user{i}@example.com,"
                    f"+49 30 {rng.randrange(10**7):07d},{city},{c},{plan},{status},{ts()}\n")
        if len(rows) == 10000:
            f.writelines(rows)
            rows.clear()
    f.writelines(rows)
