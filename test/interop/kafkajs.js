// Drives Weir with kafkajs: admin, idempotent producer with every codec
// kafkajs ships (none, gzip), and offsets. Prints one JSON line of results.
const { Kafka, CompressionTypes, logLevel } = require('kafkajs')

const broker = process.argv[2]
const topic = process.argv[3]
const kafka = new Kafka({ clientId: 'weir-interop', brokers: [broker], logLevel: logLevel.NOTHING })

async function main() {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const msgs = []
  for (let i = 0; i < 1000; i++) msgs.push({ key: 'k' + i, value: 'v' + i, headers: { seq: String(i) } })
  await producer.send({ topic, messages: msgs.slice(0, 500), compression: CompressionTypes.GZIP, acks: -1 })
  await producer.send({ topic, messages: msgs.slice(500), compression: CompressionTypes.None, acks: -1 })
  await producer.disconnect()
  const offsets = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  const total = offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0)
  console.log(JSON.stringify({ partitions: md.topics[0].partitions.length, total }))
}

main().then(() => process.exit(0)).catch(e => { console.error(String(e.stack || e)); process.exit(1) })
