"""Write units of one create: as DynamoDB Local reports them, and by AWS's published billing rules.

A create writes the current item (with its index entries) and checks the referenced patient; it writes
no version copy (the update that supersedes a version writes that).

The store does not ask for consumed capacity; the bench's recorder adds
``ReturnConsumedCapacity=INDEXES`` to the create's TransactWriteItems on its way out (a botocore hook,
see ``bench.calls``) and reads the answer. The same transaction is then priced by the published rules:

- Item size: the UTF-8 bytes of every attribute name and string value; a number takes about one byte
  per two significant digits plus one.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
- Transactions: "DynamoDB performs two underlying reads or writes of every item in the transaction:
  one to prepare the transaction and one to commit the transaction", so a transactional write takes
  2 write units per KB (rounded up) of each item.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis.html#transaction-capacity-handling
- ConditionCheck: an item of the transaction like the others, billed as a transactional write of the
  checked item (2 units per KB), not as a read; AWS's page counts "every item in the transaction", and
  measurements against DynamoDB report the check as write units
  (https://github.com/paritysuite/dynamodb-conformance/pull/67).
- Global secondary indexes: a new item that defines an index's key attributes costs "one write
  operation ... to put the item into the index", one unit per KB of the index entry (the table key,
  the index key and the projected attributes); index writes are not doubled by the transaction.
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.ThroughputConsiderations.Writes
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.calls import Call

KB = 1024
TRANSACTIONAL_FACTOR = 2


@dataclass
class Line:
    """One line of a capacity breakdown."""

    what: str
    size_bytes: int | None
    units: float


@dataclass
class Capacity:
    """The write units of one create, measured and by the rules, each with its breakdown."""

    body_bytes: int
    measured: list[Line] = field(default_factory=list)
    by_rules: list[Line] = field(default_factory=list)

    @property
    def measured_total(self) -> float:
        return sum(line.units for line in self.measured)

    @property
    def rules_total(self) -> float:
        return sum(line.units for line in self.by_rules)


def _number_size(text: str) -> int:
    digits = text.lstrip("-").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    """The billed size of one AttributeValue."""
    ((kind, data),) = value.items()
    if kind == "S":
        return len(str(data).encode("utf-8"))
    if kind == "N":
        return _number_size(str(data))
    if kind == "B":
        return len(data)
    if kind == "BOOL" or kind == "NULL":
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: member}) for member in data)
    if kind == "L":
        return 3 + sum(value_size(member) + 1 for member in data)
    if kind == "M":
        return 3 + sum(len(name.encode("utf-8")) + value_size(member) + 1 for name, member in data.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    """The billed size of an item: attribute names and values."""
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def _key_names(schema: list[dict[str, str]]) -> list[str]:
    return [element["AttributeName"] for element in schema]


def _index_entries(item: dict[str, Any], properties: dict[str, Any]) -> list[tuple[str, int]]:
    """(index name, entry size) of every GSI the item appears in."""
    table_key = _key_names(properties["KeySchema"])
    entries = []
    for index in properties.get("GlobalSecondaryIndexes") or []:
        index_key = _key_names(index["KeySchema"])
        if not all(name in item for name in index_key):
            continue  # a sparse index: the item has no entry there, and no write is billed
        projection = index.get("Projection") or {}
        if projection.get("ProjectionType") == "ALL":
            names = list(item)
        else:
            names = list(
                dict.fromkeys(table_key + index_key + list(projection.get("NonKeyAttributes") or []))
            )
        entries.append((index["IndexName"], item_size({name: item[name] for name in names if name in item})))
    return entries


def by_rules(
    transaction: Call, tables: dict[str, dict[str, Any]], checked_items: dict[str, dict[str, Any]]
) -> list[Line]:
    """The write units of ``transaction`` by AWS's billing rules.

    ``tables`` maps table names to their template properties; ``checked_items`` maps the table name of
    each ConditionCheck to the item it checked.
    """
    lines = []
    for action in transaction.params["TransactItems"]:
        ((kind, detail),) = action.items()
        table = detail["TableName"]
        if kind == "Put":
            size = item_size(detail["Item"])
            lines.append(Line(f"Put {table}", size, TRANSACTIONAL_FACTOR * math.ceil(size / KB)))
            for index_name, entry_size in _index_entries(detail["Item"], tables[table]):
                lines.append(Line(f"  index {index_name} entry", entry_size, math.ceil(entry_size / KB)))
        elif kind == "ConditionCheck":
            size = item_size(checked_items[table])
            lines.append(
                Line(f"ConditionCheck {table}", size, TRANSACTIONAL_FACTOR * math.ceil(max(size, 1) / KB))
            )
        else:
            raise ValueError(f"a create does not {kind}")
    return lines


def measured(transaction: Call) -> list[Line]:
    """The write units DynamoDB (Local) reported for ``transaction``, table by table and index by index."""
    lines = []
    for consumed in transaction.consumed:
        table = consumed["TableName"]
        table_units = (consumed.get("Table") or {}).get("CapacityUnits")
        if table_units is None:
            lines.append(Line(f"{table} (no breakdown)", None, float(consumed.get("CapacityUnits", 0))))
            continue
        lines.append(Line(f"{table} table", None, float(table_units)))
        for index_name, index in sorted((consumed.get("GlobalSecondaryIndexes") or {}).items()):
            lines.append(Line(f"  index {index_name}", None, float(index.get("CapacityUnits", 0))))
    return lines
