"""A worked adapter: a made-up shop's CSV logs -> raw client log v1 (docs/onboarding.md).

The shop logs one row per thing a visitor did:

    time,visitor,visit,action,item,slot,list,shown
    2019-03-01T09:00:00Z,alice,a1,list,,,L1,101|102|103|104     a list of items was shown (in this order)
    2019-03-01T09:00:02Z,alice,a1,view,101,0,L1,                 an item of it came on screen at a slot
    2019-03-01T09:00:05Z,alice,a1,open,102,1,L1,                 the visitor opened an item
    2019-03-01T09:00:40Z,alice,a1,basket,102,,L1,                ... and put it in the basket (or: buy)

and keeps its catalog as `item,category,brand,price`. The raw zone wants, per UTC day, `events/ds=D/*.jsonl.gz`
(one JSON event per line) and `items/ds=D/items.parquet`:

    list   -> page_request (request_id = the list, candidates ranked in shown order, no cloud score)
    view   -> exposure (position = slot)
    open   -> click, and a page_view of the item, lasting until the visitor's next row
    basket -> the cart action of that page_view; buy -> its buy action

    python examples/shop_csv/adapter.py examples/shop_csv/events.csv examples/shop_csv/items.csv --out raw
    edgerec logs check raw
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from edgerec.contracts.catalog import CATALOG_ARROW_SCHEMA

PRICE_LEVELS = (10.0, 50.0, 200.0)  # price level = how many of these the price reaches


def millis(text: str) -> int:
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def day_of(ts: int) -> str:
    return str(dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date())


def convert_events(rows: list[dict]) -> list[dict]:
    """The shop's rows as raw-log events, in time order per visit."""
    by_visit: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_visit[row["visit"]].append(row)
    events = []
    for visit, visit_rows in by_visit.items():
        visit_rows.sort(key=lambda r: millis(r["time"]))
        open_views: dict[int, dict] = {}  # item -> its latest page_view, for basket and buy rows
        lists = 0
        for n, row in enumerate(visit_rows):
            ts = millis(row["time"])
            base = {"event_id": f"{visit}-{n}", "user_id": row["visitor"], "ts": ts, "session_id": visit}
            action = row["action"]
            if action == "list":
                shown = [int(i) for i in row["shown"].split("|")]
                events.append(base | {"event_type": "page_request", "request_id": row["list"], "page_no": lists,
                                      "candidates": [{"item_id": i, "rank": r} for r, i in enumerate(shown)]})
                lists += 1
                continue
            item = int(row["item"])
            if action == "view":
                events.append(base | {"event_type": "exposure", "item_id": item, "request_id": row["list"],
                                      "position": int(row["slot"])})
            elif action == "open":
                events.append(base | {"event_type": "click", "item_id": item, "request_id": row["list"],
                                      "position": int(row["slot"])})
                later = visit_rows[n + 1] if n + 1 < len(visit_rows) else None
                view = {"event_id": f"{visit}-{n}-view", "user_id": row["visitor"], "ts": ts, "session_id": visit,
                        "event_type": "page_view", "item_id": item, "request_id": row["list"],
                        "ipv_duration_ms": millis(later["time"]) - ts if later else 0,
                        "actions": {"cart": False, "buy": False}}
                events.append(view)
                open_views[item] = view
            elif action in ("basket", "buy") and item in open_views:
                open_views[item]["actions"]["cart" if action == "basket" else "buy"] = True
            else:
                raise ValueError(f"row {n} of visit {visit}: unknown action {action!r} or no open item {item}")
    return sorted(events, key=lambda e: (e["ts"], e["event_id"]))


def convert_items(rows: list[dict]) -> pa.Table:
    """The shop's catalog in the catalog contract; what the shop does not know is 0."""
    columns: dict[str, list] = {f.name: [] for f in CATALOG_ARROW_SCHEMA}
    for row in rows:
        price = float(row["price"])
        record = {"item_id": int(row["item"]), "category": int(row["category"]), "brand": int(row["brand"]),
                  "price_level": sum(price >= p for p in PRICE_LEVELS)}
        for name in columns:
            columns[name].append(record.get(name, 0.0 if name.endswith("_score") else 0))
    return pa.Table.from_pydict(columns, schema=CATALOG_ARROW_SCHEMA)


def write_raw_zone(events: list[dict], items: pa.Table, out: Path) -> dict[str, int]:
    """Each UTC day's events and a catalog snapshot for it; returns the events per day."""
    by_day: dict[str, list[dict]] = defaultdict(list)
    for event in events:
        by_day[day_of(event["ts"])].append(event)
    for ds, day_events in by_day.items():
        folder = out / "events" / f"ds={ds}"
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / "part-00000.jsonl.gz", "wt") as sink:
            sink.writelines(json.dumps(e) + "\n" for e in day_events)
        (out / "items" / f"ds={ds}").mkdir(parents=True, exist_ok=True)
        pq.write_table(items, out / "items" / f"ds={ds}" / "items.parquet")
    return {ds: len(day_events) for ds, day_events in sorted(by_day.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path, help="the shop's event CSV")
    parser.add_argument("items", type=Path, help="the shop's catalog CSV")
    parser.add_argument("--out", type=Path, default=Path("raw"), help="the raw zone to write")
    args = parser.parse_args()
    with args.events.open() as f:
        events = convert_events(list(csv.DictReader(f)))
    with args.items.open() as f:
        items = convert_items(list(csv.DictReader(f)))
    for ds, n in write_raw_zone(events, items, args.out).items():
        print(f"ds={ds}: {n} events -> {args.out / 'events' / f'ds={ds}'}")


if __name__ == "__main__":
    main()
