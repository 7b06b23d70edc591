"""The resource types this server serves, and the service of each."""

from __future__ import annotations

from functools import lru_cache

from fhir_api.resources.base import ResourceDefinition
from fhir_api.resources.encounter import EncounterDefinition
from fhir_api.resources.patient import PatientDefinition
from fhir_api.resources.service import ResourceService
from fhir_api.resources.subscription import SubscriptionDefinition
from fhir_api.settings import Settings
from fhir_api.store.dynamo import Store
from fhir_api.store.types import StoredResource

DEFINITIONS: dict[str, ResourceDefinition] = {
    definition.resource_type: definition
    for definition in (EncounterDefinition(), PatientDefinition(), SubscriptionDefinition())
}


def presented(stored: StoredResource) -> StoredResource:
    """A stored resource as the API shows it (``ResourceDefinition.presented``)."""
    return DEFINITIONS[stored.resource_type].presented(stored)


@lru_cache(maxsize=8)
def service_for(resource_type: str, settings: Settings) -> ResourceService:
    """The service of ``resource_type`` (one per process and settings: warm invocations reuse it)."""
    return ResourceService(DEFINITIONS[resource_type], Store(settings), settings)
