"""DynamoDB persistence: the only module of the API that talks to DynamoDB.

Layout (template.yaml declares the tables):
- one table per resource type, key ``id``: the current version of each resource (its JSON text beside
  the attributes its indexes need) and, for Patient, its search-term items;
- the versions table, key (``resourceKey`` = "Encounter/<id>", ``versionId``): a copy of every version
  that has been superseded. The newest version lives only in the current item, so a create writes no
  copy; the update that replaces version n writes version n's copy. Tables written before this layout
  also hold a copy of the current version: readers take the newest version from the current item and
  only older ones from the copies, so that copy is never read twice.

Every write is one TransactWriteItems: the current item (conditional on the version it replaces), the
copy of the version it replaces, the existence of every referenced resource and the resource's term
items. Either all of it lands or none of it does. ``ClientError`` becomes a domain exception here and
nowhere else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fhir_api import aws_clients, errors
from fhir_api.settings import Settings
from fhir_api.store.budget import ReadBudget
from fhir_api.store.indexes import IndexQuery, index_query, patient_attribute
from fhir_api.store.types import ListedEntry, Listing, StoredResource, Term, Write, tombstone

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
else:
    DynamoDBClient = Any

_client: DynamoDBClient | None = None
_client_lock = threading.Lock()

# DynamoDB answers these when it is overloaded or briefly unavailable: the client may retry later.
TRANSIENT_ERRORS = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        # The spellings DynamoDB uses in a transaction's cancellation reasons.
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)
BATCH_GET_LIMIT = 100
# DynamoDB's limit of actions in one TransactWriteItems.
TRANSACTION_ACTIONS_LIMIT = 100
BATCH_GET_ATTEMPTS = 4
# The attribute that marks a tombstone: the item of a deleted resource's last version, which holds no
# ``resource`` (so no reference check finds it) and no index attributes (so no search lists it).
DELETED = "deleted"


def dynamodb_client(settings: Settings) -> DynamoDBClient:
    """The process's DynamoDB client, created on first use (bounded retries and timeouts)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = aws_clients.client(
                "dynamodb", settings.aws_region, endpoint_url=settings.dynamodb_endpoint, pool_size=32
            )
        return _client


def reset_client() -> None:
    """Forget the cached client (tests swap endpoints and fault injectors)."""
    global _client
    with _client_lock:
        _client = None


class Store:
    """Reads and writes resources, their versions and their index entries."""

    def __init__(self, settings: Settings, client: DynamoDBClient | None = None) -> None:
        self.settings = settings
        self._client = client
        self._tables = {
            "Encounter": settings.encounters_table,
            "Patient": settings.patients_table,
            "Subscription": settings.subscriptions_table,
        }

    @property
    def client(self) -> DynamoDBClient:
        """The DynamoDB client (the shared one unless a test handed its own)."""
        return self._client or dynamodb_client(self.settings)

    def table(self, resource_type: str) -> str:
        """The table that holds ``resource_type``."""
        return self._tables[resource_type]

    # -- reads -----------------------------------------------------------------------------------

    def current(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version of a resource (a strongly consistent read), or None."""
        answer = self._call(
            self.client.get_item,
            TableName=self.table(resource_type),
            Key={"id": {"S": resource_id}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        return _stored(resource_type, item) if item and ("resource" in item or DELETED in item) else None

    def version(self, resource_type: str, resource_id: str, version_id: int) -> StoredResource | None:
        """One version of a resource, or None: the current item if it is that version, else its copy.

        The current item is read first (strongly consistent): a client mostly asks for the version it
        was just given (``Location``, an ETag), the current one, and then that is the only read. An
        older version's copy was committed with the write that superseded it, which that read has
        seen; an eventually consistent read of the copy is tried first, a strongly consistent one if
        it does not find it yet.
        """
        if version_id < 1:
            return None
        current = self.current(resource_type, resource_id)
        if current is None or version_id > current.version_id:
            return None
        if version_id == current.version_id:
            return current
        return self._copy(resource_type, resource_id, version_id, consistent=False) or self._copy(
            resource_type, resource_id, version_id, consistent=True
        )

    def _copy(
        self, resource_type: str, resource_id: str, version_id: int, consistent: bool
    ) -> StoredResource | None:
        answer = self._call(
            self.client.get_item,
            TableName=self.settings.versions_table,
            Key={
                "resourceKey": {"S": f"{resource_type}/{resource_id}"},
                "versionId": {"N": str(version_id)},
            },
            ConsistentRead=consistent,
        )
        item = answer.get("Item")
        if not item:
            return None
        return _stored(resource_type, {**item, "id": {"S": resource_id}})

    def versions(
        self,
        resource_type: str,
        resource_id: str,
        limit: int,
        before: int | None = None,
        budget: ReadBudget | None = None,
    ) -> tuple[list[StoredResource], bool]:
        """Versions newest first, at most ``limit``, older than ``before``; and whether more may remain.

        Without ``before`` the newest version is the current item (None of it: an empty list), and the
        copies follow from below it, so a copy of the current version left by older writers is not
        returned twice. One Query of the copies: DynamoDB ends a page at 1 MB, so large versions come
        back fewer than ``limit`` (with more remaining); the caller pages on from the oldest returned.
        """
        newest: list[StoredResource] = []
        if before is None:
            if budget is not None:
                budget.check(1)
                budget.charge(1)
            current = self.current(resource_type, resource_id)
            if current is None:
                return [], False
            newest, before, limit = [current], current.version_id, limit - 1
            # Versions are numbered from 1 without gaps: below the current one, copies remain.
            if limit < 1 or before <= 1 or (budget is not None and budget.left < 2):
                return newest, before > 1
        if budget is not None:
            limit = max(1, min(limit, budget.left - 1))
            budget.check(limit + 1)
        params: dict[str, Any] = {
            "TableName": self.settings.versions_table,
            "KeyConditionExpression": "resourceKey = :key"
            + (" AND versionId < :before" if before is not None else ""),
            "ExpressionAttributeValues": {
                ":key": {"S": f"{resource_type}/{resource_id}"},
                **({":before": {"N": str(before)}} if before is not None else {}),
            },
            "ScanIndexForward": False,
            "Limit": limit + 1,
            "ConsistentRead": True,
        }
        answer = self._call(self.client.query, **params)
        items = answer.get("Items", [])
        _charge(budget, answer)
        found = [_stored(resource_type, {**item, "id": {"S": resource_id}}) for item in items[:limit]]
        return newest + found, len(items) > limit or "LastEvaluatedKey" in answer

    def many(
        self, resource_type: str, ids: Iterable[str], budget: ReadBudget | None = None
    ) -> dict[str, StoredResource]:
        """The current versions of the resources with these ids (missing ones are left out); each key
        asked for is charged to ``budget``."""
        wanted = list(dict.fromkeys(ids))
        if budget is not None:
            budget.check(len(wanted))
        table = self.table(resource_type)
        found: dict[str, StoredResource] = {}
        for start in range(0, len(wanted), BATCH_GET_LIMIT):
            keys = [{"id": {"S": resource_id}} for resource_id in wanted[start : start + BATCH_GET_LIMIT]]
            request: dict[str, Any] = {table: {"Keys": keys}}
            for attempt in range(BATCH_GET_ATTEMPTS):
                answer = self._call(self.client.batch_get_item, RequestItems=request)
                unprocessed = (answer.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", [])
                if budget is not None:
                    budget.charge(len(request[table]["Keys"]) - len(unprocessed))
                for item in answer.get("Responses", {}).get(table, []):
                    if "resource" in item:
                        stored = _stored(resource_type, item)
                        found[stored.id] = stored
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**attempt)
            else:
                raise errors.ServiceUnavailable("The database is busy; retry the request.")
        return found

    def query_partition(
        self,
        query: IndexQuery,
        position: int,
        start_key: dict[str, Any] | None,
        limit: int,
        budget: ReadBudget | None = None,
    ) -> tuple[list[ListedEntry], dict[str, Any] | None]:
        """One page of index entries of partition ``position`` of ``query``, in sort-key order; and
        where the next page starts. At most ``limit`` entries are read, charged to ``budget``.

        Each entry's ``resume`` is the DynamoDB key to resume after it.
        """
        if budget is not None:
            budget.check(limit)
        names, values, condition = _key_condition(query, position)
        params: dict[str, Any] = {
            "TableName": self.table(query.resource_type),
            "IndexName": query.index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": query.ascending,
            "Limit": limit,
        }
        if start_key:
            params["ExclusiveStartKey"] = start_key
        answer = self._call(self.client.query, **params)
        _charge(budget, answer)
        layout = query.layout
        key_names = ("id", layout.partition_attribute, layout.sort_attribute)
        entries = []
        for item in answer.get("Items", []):
            end = item.get(layout.end_attribute or "", {}).get("S")
            entries.append(
                ListedEntry(
                    owner=item[layout.owner_attribute]["S"],
                    key=query.keys[position],
                    order=item[layout.sort_attribute]["S"],
                    order_end=end,
                    resume={name: item[name] for name in key_names if name in item},
                )
            )
        return entries, answer.get("LastEvaluatedKey")

    def list_owners(self, listing: Listing, budget: ReadBudget) -> tuple[list[str], bool]:
        """The ids of the resources ``listing`` lists, in index order, as many as ``budget`` reads; and
        whether that is all of them."""
        query = index_query(listing, self.settings.index_shards)
        owners: dict[str, None] = {}
        for position in range(len(query.partitions)):
            start: dict[str, Any] | None = None
            while True:
                if budget.left < 1:
                    return list(owners), False
                entries, start = self.query_partition(query, position, start, budget.left, budget)
                owners.update((entry.owner, None) for entry in entries)
                if not start:
                    break
        return list(owners), True

    # -- writes ----------------------------------------------------------------------------------

    def write(self, write: Write) -> None:
        """Land one version atomically, or raise the domain error that says why it cannot."""
        self.write_all([write])

    def write_all(self, writes: list[Write]) -> None:
        """Land several writes (of different resources) in one transaction: all of them or none.

        A reference to a resource written in the same transaction needs no existence check (the write
        is that check, and DynamoDB refuses two actions on one item), and a resource several writes
        reference is checked once. The error raised names the write it concerns in ``write_index``.
        """
        actions, owners = self.transaction_actions(writes)
        if len(actions) > TRANSACTION_ACTIONS_LIMIT:
            what = (
                f"The {writes[0].resource.resource_type} has too many searchable elements"
                if len(writes) == 1
                else f"These {len(writes)} writes need {len(actions)} database actions; the limit is "
                f"{TRANSACTION_ACTIONS_LIMIT}, so they cannot be stored"
            )
            raise errors.BusinessRuleViolation(f"{what} in one write.")
        self._transact(actions, owners, writes)

    def transaction_actions(self, writes: list[Write]) -> tuple[list[dict[str, Any]], list[int]]:
        """The TransactWriteItems actions that land ``writes``, and the index of the write each belongs
        to (what ``write_all`` sends; a caller may measure it against DynamoDB's limits first)."""
        # References needing no check of their own: the resources the transaction writes, then each one
        # an earlier write checks (DynamoDB refuses two actions on one item in a transaction).
        covered = {(write.resource.resource_type, write.resource.id) for write in writes}
        if len(covered) < len(writes):
            raise errors.InvalidRequest("The same resource cannot be written twice in one transaction.")
        actions: list[dict[str, Any]] = []
        owners: list[int] = []
        for position, write in enumerate(writes):
            for action in _actions(self, write, covered):
                actions.append(action)
                owners.append(position)
        return actions, owners

    def _transact(self, actions: list[dict[str, Any]], owners: list[int], writes: list[Write]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(self.client.transact_write_items, TransactItems=actions, _raise=True)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise _translate(exc) from exc
            reasons = [reason.get("Code", "None") for reason in exc.response.get("CancellationReasons", [])]
            types = {table: name for name, table in self._tables.items()}
            raise _cancellation_error(reasons, actions, owners, writes, types) from exc

    # -- plumbing --------------------------------------------------------------------------------

    def _call(self, operation: Any, _raise: bool = False, **params: Any) -> Any:
        """Call DynamoDB; transient failures become ServiceUnavailable (503 with Retry-After)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return operation(**params)
        except ClientError as exc:
            if _raise and exc.response.get("Error", {}).get("Code") == "TransactionCanceledException":
                raise
            raise _translate(exc) from exc
        except BotoCoreError as exc:
            raise errors.ServiceUnavailable("The database could not be reached; retry the request.") from exc


def _charge(budget: ReadBudget | None, answer: dict[str, Any]) -> None:
    """Charge what a Query read: every item it examined (no filter here, so those it returned)."""
    if budget is not None:
        budget.charge(int(answer.get("ScannedCount", len(answer.get("Items", [])))))


def _key_condition(query: IndexQuery, position: int) -> tuple[dict[str, str], dict[str, Any], str]:
    """The KeyConditionExpression of partition ``position``, with its names and values."""
    names = {"#p": query.partition_attribute}
    values: dict[str, Any] = {":p": {"S": query.partitions[position]}}
    condition = "#p = :p"
    if query.prefixes or query.low is not None or query.high is not None:
        names["#s"] = query.sort_attribute
    if query.prefixes:
        condition += " AND begins_with(#s, :prefix)"
        values[":prefix"] = {"S": query.prefixes[position]}
    elif query.low is not None and query.high is not None:
        condition += " AND #s BETWEEN :low AND :high"
        values[":low"] = {"S": query.low}
        values[":high"] = {"S": _predecessor(query.high)}
    elif query.low is not None:
        condition += " AND #s >= :low"
        values[":low"] = {"S": query.low}
    elif query.high is not None:
        condition += " AND #s < :high"
        values[":high"] = {"S": query.high}
    return names, values, condition


def _translate(exc: Any) -> errors.ApiError:
    code = exc.response.get("Error", {}).get("Code", "")
    if code in TRANSIENT_ERRORS:
        return errors.ServiceUnavailable("The database is busy; retry the request.", retry_after_seconds=2)
    if code == "ResourceNotFoundException":
        # A missing table is a deployment fault, not the client's: surface it as unavailable.
        return errors.ServiceUnavailable("The database is not ready.", retry_after_seconds=30)
    if (
        code == "ValidationException"
        and "size" in str(exc.response.get("Error", {}).get("Message", "")).lower()
    ):
        return errors.PayloadTooLarge("The resource is too large to store.")
    # Anything else is a fault of this server: let it surface as a 500 with its trace in the log.
    raise exc


def _actions(store: Store, write: Write, covered: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """The TransactWriteItems actions of one write: its current item (conditional on the version it
    replaces), the copy of that version, its references' existence (in ``write.references`` order)
    and its term items."""
    resource = write.resource
    table = store.table(resource.resource_type)
    current = {
        "id": {"S": resource.id},
        **_content(resource),
        "versionId": {"N": str(resource.version_id)},
        "lastUpdated": {"S": resource.last_updated},
        **{name: {"S": value} for name, value in write.index_attributes.items()},
    }
    put_current: dict[str, Any] = {"TableName": table, "Item": current}
    actions: list[dict[str, Any]] = [{"Put": put_current}]
    superseded = write.superseded
    if superseded is None:
        put_current["ConditionExpression"] = "attribute_not_exists(id)"
    else:
        put_current["ConditionExpression"] = "versionId = :expected"
        put_current["ExpressionAttributeValues"] = {":expected": {"N": str(superseded.version_id)}}
        # No condition of its own: the current item's condition proves that ``superseded`` is still
        # the current version, so every writer of this copy writes the same text, and a copy that
        # older writers left of the then current version is rewritten unchanged.
        actions.append(
            {
                "Put": {
                    "TableName": store.settings.versions_table,
                    "Item": {
                        "resourceKey": {"S": f"{superseded.resource_type}/{superseded.id}"},
                        "versionId": {"N": str(superseded.version_id)},
                        **_content(superseded),
                        "lastUpdated": {"S": superseded.last_updated},
                    },
                }
            }
        )
    for reference in write.references:
        if reference in covered:
            continue
        covered.add(reference)
        reference_type, reference_id = reference
        actions.append(
            {
                "ConditionCheck": {
                    "TableName": store.table(reference_type),
                    "Key": {"id": {"S": reference_id}},
                    # Term items share the Patient table; only a resource item has `resource`.
                    "ConditionExpression": "attribute_exists(#resource)",
                    "ExpressionAttributeNames": {"#resource": "resource"},
                }
            }
        )
    for term in write.terms_added:
        actions.append({"Put": _term_put(table, term, resource.id)})
    for term in write.terms_removed:
        actions.append({"Delete": {"TableName": table, "Key": {"id": {"S": term.key}}}})
    return actions


def _cancellation_error(
    reasons: list[str],
    actions: list[dict[str, Any]],
    owners: list[int],
    writes: list[Write],
    types: dict[str, str],
) -> errors.ApiError:
    """Which condition of the transaction failed, in the domain's words, with the index of its write."""
    for index, reason in enumerate(reasons):
        if reason in TRANSIENT_ERRORS or reason == "TransactionConflict":
            return errors.ServiceUnavailable(
                "Another write to the same resource was in progress; retry the request."
            )
        if reason != "ConditionalCheckFailed":
            continue
        owner = owners[index]
        error = _failed_condition(actions[index], writes[owner], owners.index(owner) == index, types)
        error.write_index = owner
        return error
    return errors.ServiceUnavailable("The write could not be completed; retry the request.")


def _failed_condition(
    action: dict[str, Any], write: Write, first: bool, types: dict[str, str]
) -> errors.ApiError:
    """The error of one failed condition: the write's own item (``first``), a reference, a claim."""
    resource = write.resource
    if first:
        if write.expected_version is None:
            return errors.VersionConflict(f"{resource.resource_type}/{resource.id} already exists.")
        return errors.VersionConflict(
            f"{resource.resource_type}/{resource.id} changed since version {write.expected_version} "
            "was read; read it again and resend the update."
        )
    if "ConditionCheck" in action:
        checked = action["ConditionCheck"]
        reference_type, reference_id = types[checked["TableName"]], checked["Key"]["id"]["S"]
        return errors.BusinessRuleViolation(
            f"The referenced {reference_type}/{reference_id} does not exist.",
            expression=(f"{resource.resource_type}.subject",),
        )
    key = action["Put"]["Item"]["id"]["S"]
    return errors.DuplicateResource(
        f"Another {resource.resource_type} already holds {key.split('|', 1)[-1]!r}.",
        expression=(f"{resource.resource_type}.identifier",),
    )


def _term_put(table: str, term: Term, owner: str) -> dict[str, Any]:
    put: dict[str, Any] = {
        "TableName": table,
        "Item": {
            "id": {"S": term.key},
            "term": {"S": term.term},
            "termValue": {"S": term.value},
            "owner": {"S": owner},
        },
    }
    if term.unique:
        put["ConditionExpression"] = "attribute_not_exists(id) OR #owner = :owner"
        put["ExpressionAttributeNames"] = {"#owner": "owner"}
        put["ExpressionAttributeValues"] = {":owner": {"S": owner}}
    return put


def _content(stored: StoredResource) -> dict[str, Any]:
    """What an item holds of a version: its JSON text, or for a tombstone the mark and its type."""
    if stored.deleted:
        return {DELETED: {"BOOL": True}, "resourceType": {"S": stored.resource_type}}
    return {"resource": {"S": stored.text}}


def _stored(resource_type: str, item: dict[str, Any]) -> StoredResource:
    if DELETED in item:
        return tombstone(
            resource_type, item["id"]["S"], int(item["versionId"]["N"]), item["lastUpdated"]["S"]
        )
    attribute = patient_attribute(resource_type)
    listed = item.get(attribute) if attribute is not None else None
    return StoredResource(
        resource_type=resource_type,
        id=item["id"]["S"],
        version_id=int(item["versionId"]["N"]),
        last_updated=item["lastUpdated"]["S"],
        text=item["resource"]["S"],
        listed_patient=listed.get("S") if listed else None,
    )


def _predecessor(value: str) -> str:
    """The greatest string below ``value`` that a sort key can hold, for an inclusive BETWEEN."""
    if not value:
        return value
    last = value[-1]
    return value[:-1] + chr(ord(last) - 1) + "\U0010ffff" if last > "\x00" else value[:-1]
