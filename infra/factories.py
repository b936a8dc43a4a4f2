"""Pick the object store and event bus implementation the settings ask for (embedded or real services)."""

from __future__ import annotations

from infra.bus import EventBus
from infra.objects import ObjectStore
from infra.settings import Settings


def make_object_store(settings: Settings) -> ObjectStore:
    if settings.uses_s3:
        from infra.objects_s3 import S3ObjectStore

        return S3ObjectStore(
            endpoint=settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            bucket=settings.s3_bucket,
            region=settings.s3_region,
            secure=settings.s3_secure,
            public_url=settings.s3_public_url,
        )
    from infra.objects_local import LocalObjectStore

    return LocalObjectStore(settings.objects_dir, signing_key=settings.secret_key, base_url=settings.base_url)


# The consumer group of the system of record (catalog/consumer.py GROUP): the evidence topics
# (events.KEPT_UNTIL_CONSUMED) are never trimmed before it has acknowledged them.
PROTECTED_GROUP = "catalog"


def make_bus(settings: Settings) -> EventBus:
    if settings.redis_url:
        from infra.bus_redis import RedisBus

        return RedisBus(settings.redis_url, retention=settings.bus_retention, protected_group=PROTECTED_GROUP)
    from infra.bus_memory import MemoryBus

    return MemoryBus(retention=settings.bus_retention, protected_group=PROTECTED_GROUP)
