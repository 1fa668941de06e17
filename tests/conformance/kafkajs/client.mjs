// A Cascade client written from contracts/asyncapi.json alone, in JavaScript (kafkajs): it indexes documents,
// searches (modes bi and rerank), streams several answers, and sends three bad inputs.
//
//   node client.mjs BOOTSTRAP PREFIX COLLECTION
//
// kafkajs reads only in a consumer group, so answers come on `{prefix}results` (requests without reply_to), read
// in a group of its own named `{prefix}client.<anything>`, which it deletes at the end. It prints one JSON object of
// what it saw; tests/test_conformance.py checks it. Exits 1 when a step gets no answer.
import { randomUUID } from "node:crypto";
import { Kafka, Partitioners, logLevel } from "kafkajs";

const [bootstrap, prefix, collection] = process.argv.slice(2);
const topic = (name) => `${prefix}${name}`;
const kafka = new Kafka({ clientId: "conformance-kafkajs", brokers: bootstrap.split(","), logLevel: logLevel.ERROR });
// Records are partitioned by murmur2 of the key, as Java's client does: kafkajs 2 calls that DefaultPartitioner.
const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
const group = `${prefix}client.conformance-${randomUUID()}`;
const consumer = kafka.consumer({ groupId: group });
const admin = kafka.admin();
const run = randomUUID().slice(0, 8); // ids unique to this run, so answers of earlier runs are told apart

const acks = new Map(); // doc_id -> IngestAck
const results = new Map(); // request_id -> SearchResult
const arrivals = []; // request ids, in the order their answers arrived
const waiters = new Set();

function until(done, what, ms = 120_000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (done()) {
        waiters.delete(check);
        clearTimeout(timer);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`no answer within ${ms} ms: ${what}`));
    }, ms);
    waiters.add(check);
    check();
  });
}

async function send(name, records) {
  await producer.send({
    topic: topic(name),
    messages: records.map(([key, value]) => ({
      key,
      value: typeof value === "string" ? value : JSON.stringify(value),
      headers: { "content-type": "application/json" },
    })),
  });
}

const search = (id, query, extra = {}) => [id, { request_id: id, collection, query, k: 3, ...extra }];

async function main() {
  await Promise.all([producer.connect(), consumer.connect(), admin.connect()]);
  await consumer.subscribe({ topics: [topic("documents.acks"), topic("results")], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic: from, message }) => {
      const value = JSON.parse(message.value.toString());
      if (from === topic("documents.acks")) acks.set(value.doc_id, value);
      else if (!results.has(value.request_id)) { // at-least-once: the same answer may come twice
        results.set(value.request_id, value);
        arrivals.push(value.request_id);
      }
      for (const check of [...waiters]) check();
    },
  });

  // Ingest: documents keyed by doc_id; one with an empty text is rejected (bad input 1).
  const documents = [
    ["telephone", "Alexander Graham Bell was granted the first patent for the telephone in 1876."],
    ["bulb", "Thomas Edison developed a practical incandescent light bulb."],
    ["radio", "Guglielmo Marconi sent the first radio signals across the Atlantic."],
    ["engine", "James Watt improved the steam engine with a separate condenser."],
    ["press", "Johannes Gutenberg built the printing press with movable type."],
  ].map(([id, text]) => [`${id}-${run}`, { op: "upsert", collection, doc_id: `${id}-${run}`, text }]);
  const empty = `empty-${run}`;
  await send("documents", [...documents, [empty, { op: "upsert", collection, doc_id: empty, text: " " }]]);
  const docIds = [...documents.map(([id]) => id), empty];
  await until(() => docIds.every((id) => acks.has(id)), "an ack for every document");

  // Search, one request per mode, answered on the results topic.
  const bi = `bi-${run}`;
  const rerank = `rerank-${run}`;
  await send("queries", [search(bi, "who invented the telephone", { mode: "bi" })]);
  await send("queries", [search(rerank, "who invented the telephone", { mode: "rerank" })]);
  await until(() => results.has(bi) && results.has(rerank), "the bi and rerank searches");

  // Streaming: three requests at once, each answer handled as it arrives.
  const streamed = ["light bulb", "radio signals", "printing press"].map((query, i) =>
    search(`stream-${i}-${run}`, query, { mode: i === 1 ? "rerank" : "bi" }));
  await send("queries", streamed);
  await until(() => streamed.every(([id]) => results.has(id)), "the streamed searches");

  // Bad inputs 2 to 4: not JSON (answered under its key), k out of range, an answer topic outside the namespace.
  const notJson = `not-json-${run}`;
  const bigK = `big-k-${run}`;
  const foreign = `foreign-${run}`;
  await send("queries", [
    [notJson, "{this is not json"],
    search(bigK, "telephone", { k: 1000 }),
    search(foreign, "telephone", { mode: "bi", reply_to: topic("documents") }),
  ]);
  await until(() => [notJson, bigK, foreign].every((id) => results.has(id)), "the errors of the bad inputs");

  const hits = (id) => results.get(id).hits.map((hit) => hit.doc_id.replace(`-${run}`, ""));
  const code = (id) => results.get(id).error?.code ?? null;
  const report = {
    acks: Object.fromEntries(docIds.map((id) => [id.replace(`-${run}`, ""), acks.get(id).status])),
    bi: { hits: hits(bi), error: code(bi), total_ms: results.get(bi).timings?.total_ms ?? null },
    rerank: {
      hits: hits(rerank),
      error: code(rerank),
      rerank_scores: results.get(rerank).hits.every((hit) => typeof hit.rerank_score === "number"),
    },
    streamed: streamed.map(([id]) => ({ hits: hits(id).length, error: code(id) })),
    streamed_in_arrival_order: arrivals.filter((id) => id.startsWith("stream-")).length,
    errors: { not_json: code(notJson), k_out_of_range: code(bigK), foreign_reply_to: code(foreign) },
    run,
  };
  await consumer.disconnect();
  await admin.deleteGroups([group]); // a reader in a group of its own leaves nothing behind
  report.group_left = (await admin.listGroups()).groups.some((listed) => listed.groupId === group);
  await Promise.all([producer.disconnect(), admin.disconnect()]);
  return report;
}

main().then(
  (report) => process.stdout.write(`${JSON.stringify(report)}\n`),
  (error) => {
    process.stderr.write(`${error.stack ?? error}\n`);
    process.exit(1);
  },
);
