"""Tenants: each has its own topics and collections, answers stay in the namespace a request came from, and the
services serve a tenant added while they run. Real broker, real Edge store, tiny models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cascade.contracts import IngestAck, SearchRequest, SearchResult, Topic, TopicRegistry, encode
from cascade.contracts.topic_admin import admin_client
from cascade.runtime.process import CascadeProcess
from cascade.runtime.tenants import add_tenant, remove_tenant
from cascade.sdk import SearchClient, SearchFailed
from cascade.services.settings import Settings
from cascade.services.tenancy import COLLECTION_MARK
from tests.conftest import client_for
from tests.kafka_helpers import Collector, produce

DOCUMENTS = {tenant: [{"doc_id": f"{tenant}-{i}", "text": f"{tenant} report number {i} on shipping"}
                      for i in range(6)] for tenant in ("acme", "globex")}


def test_a_tenant_has_a_namespace_of_its_own() -> None:
    topics = TopicRegistry(prefix="cascade.")
    acme = topics.for_tenant("acme")
    assert acme.name(Topic.QUERIES) == "cascade.tenant.acme.queries"
    assert acme.name(Topic.CANDIDATES) == topics.name(Topic.CANDIDATES) == "cascade.candidates"  # the services'
    assert topics.name(Topic.QUERIES) == "cascade.queries"  # the default tenant keeps an install's names
    assert set(acme.tenant_topics()) == {f"cascade.tenant.acme.{value}" for value in (
        "documents", "documents.acks", "queries", "results", "replies", "reindex", "reindex.status")}
    pattern = re.compile(topics.pattern(Topic.QUERIES))
    assert [name for name in ("cascade.queries", "cascade.tenant.acme.queries", "cascade.tenant.a.b.queries",
                              "cascade.tenant.acme.queries.x", "other.queries") if pattern.match(name)] == [
        "cascade.queries", "cascade.tenant.acme.queries"]
    assert [topics.tenant_of(name) for name in ("cascade.documents.acks", "cascade.tenant.acme.replies",
                                                "cascade.candidates", "cascade.tenant.Acme.queries")] == [
        "default", "acme", None, None]
    with pytest.raises(ValueError, match="not a tenant name"):
        topics.for_tenant("a.b")


@pytest.mark.both_stores
async def test_tenants_share_nothing_but_the_services(all_roles: CascadeProcess) -> None:
    kafka = all_roles.settings.kafka
    for tenant in DOCUMENTS:
        added = await add_tenant(kafka, tenant)
        assert added.credentials is None  # an open cluster: no login to make

    def client(tenant: str) -> SearchClient:
        return SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix, tenant=tenant)

    acme, globex = kafka.topics.for_tenant("acme"), kafka.topics.for_tenant("globex")
    async with (client("acme") as alice, client("globex") as bob, client("default") as carol,
                Collector(kafka.bootstrap, globex.name(Topic.ACKS), IngestAck) as globex_acks,
                Collector(kafka.bootstrap, globex.name(Topic.RESULTS), SearchResult) as globex_results,
                Collector(kafka.bootstrap, globex.name(Topic.REPLIES), SearchResult) as globex_replies):
        for who, tenant in ((alice, "acme"), (bob, "globex")):  # the same collection name in both tenants
            acks = await who.index(DOCUMENTS[tenant], collection="reports", timeout_s=120)
            assert {(ack.collection, ack.status) for ack in acks} == {("reports", "indexed")}
        asked: dict[str, list[str]] = {"acme": [], "globex": []}
        for who, tenant in ((alice, "acme"), (bob, "globex")):
            for mode in ("bi", "rerank"):
                result = await who.search("shipping report", collection="reports", k=6, mode=mode, timeout_s=60)
                assert {hit.doc_id.split("-")[0] for hit in result.hits} == {tenant}, (tenant, mode)
                assert result.collection == "reports"
                asked[tenant].append(result.request_id)
        with pytest.raises(SearchFailed) as unknown:  # the default tenant has no collection of that name
            await carol.search("shipping report", collection="reports", mode="bi", timeout_s=60)
        assert unknown.value.code == "unknown_collection"
        # acme asks for its answer on globex's replies topic: refused on acme's own results topic
        stolen = SearchRequest(request_id="stolen", collection="reports", query="shipping", mode="bi",
                               reply_to=globex.name(Topic.REPLIES), reply_partition=0)
        async with Collector(kafka.bootstrap, acme.name(Topic.RESULTS), SearchResult) as acme_results:
            await produce(kafka.bootstrap, acme.name(Topic.QUERIES), [("stolen", encode(stolen))])
            [refused] = await acme_results.wait_for(lambda items: len(items) >= 1, within_s=60)
        assert refused.error is not None and refused.error.code == "invalid_reply_to"
        await bob.search("shipping report", collection="reports", mode="bi", timeout_s=60)  # globex's last answer
        seen_by_globex = ([ack.doc_id for ack in globex_acks.items]
                          + [result.request_id for result in globex_results.items + globex_replies.items])
    assert set(asked["globex"]) <= set(seen_by_globex)  # what globex's topics hold is read here
    assert not [seen for seen in seen_by_globex if seen.startswith("acme-") or seen in {*asked["acme"], "stolen"}]
    assert {ack.doc_id for ack in globex_acks.items} == {doc["doc_id"] for doc in DOCUMENTS["globex"]}

    deleted = await remove_tenant(kafka, "globex")
    assert deleted == sorted(globex.tenant_topics())
    async with admin_client(**kafka.client_options()) as admin:
        left = set(await admin.list_topics())
    assert not left & set(globex.tenant_topics()) and set(acme.tenant_topics()) <= left
    with pytest.raises(ValueError, match="neither added nor removed"):
        await remove_tenant(kafka, "default")


async def test_a_tenant_reindexes_its_own_collection_only(fetched_e5: Path, settings: Settings) -> None:
    """A reindex's copies travel on the tenant's own documents topic, under the name it knows; the default
    tenant's collection of the same name is left as it was."""
    process = CascadeProcess(settings, {"ingest", "query"})
    await process.start()
    try:
        kafka = settings.kafka
        await add_tenant(kafka, "acme")
        async with (SearchClient(kafka.bootstrap, topic_prefix=kafka.topic_prefix, tenant="acme") as alice,
                    client_for(process) as carol):
            await alice.index(DOCUMENTS["acme"], collection="reports", timeout_s=120)
            await carol.index([{"doc_id": "d0", "text": "the default tenant's shipping report"}], collection="reports")
            status = await alice.reindex("reports", model="e5-small", timeout_s=120)
            assert (status.state, status.collection, status.target) == ("switched", "reports", "reports@v2")
            hits = (await alice.search("shipping report", collection="reports", mode="bi", k=10)).hits
            assert {hit.doc_id for hit in hits} == {doc["doc_id"] for doc in DOCUMENTS["acme"]}
            assert [hit.doc_id for hit in (await carol.search("report", collection="reports", mode="bi")).hits] == [
                "d0"]
        assert process.store is not None
        assert await process.store.resolve("reports") == "reports@v1"
        assert await process.store.resolve(f"acme{COLLECTION_MARK}reports") == f"acme{COLLECTION_MARK}reports@v2"
    finally:
        await process.stop()
