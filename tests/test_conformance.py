"""A client in a second language, written from contracts/asyncapi.json alone (kafkajs 2.2.4, installed from the
committed lockfile in tests/conformance/kafkajs), drives the services through ingest, search, streaming and bad
inputs. Where node or npm is missing the test fails: it never skips."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cascade.runtime.process import CascadeProcess
from tests.processes import CLI_HANG_GUARD_S

CLIENT = Path(__file__).parent / "conformance" / "kafkajs"
DOCUMENTS = ["telephone", "bulb", "radio", "engine", "press"]


@pytest.fixture(scope="session")
def kafkajs_client() -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: the conformance test needs Node.js 18 or later")
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, capture_output=True,
                   timeout=600)
    return CLIENT / "client.mjs"


async def test_a_kafkajs_client_written_from_the_contract_alone(all_roles: CascadeProcess,
                                                                kafkajs_client: Path) -> None:
    kafka = all_roles.settings.kafka
    completed = await asyncio.to_thread(
        subprocess.run, ["node", str(kafkajs_client), kafka.bootstrap, kafka.topic_prefix, "conformance"],
        capture_output=True, text=True, timeout=CLI_HANG_GUARD_S)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["acks"] == {**{name: "indexed" for name in DOCUMENTS}, "empty": "rejected"}
    for mode in ("bi", "rerank"):
        answer = report[mode]
        assert answer["error"] is None, mode
        assert len(answer["hits"]) == 3 and set(answer["hits"]) <= set(DOCUMENTS), mode
    assert report["bi"]["total_ms"] is not None
    assert report["rerank"]["rerank_scores"] is True
    assert report["streamed"] == [{"hits": 3, "error": None}] * 3
    assert report["streamed_in_arrival_order"] == 3
    assert report["errors"] == {"not_json": "invalid_request", "k_out_of_range": "invalid_request",
                                "foreign_reply_to": "invalid_reply_to"}
    assert report["group_left"] is False
