// Drives Weir's transactions with kafkajs: one transaction (records and
// group offsets) is committed, one aborted, a third committed after it.
// Prints one JSON line with what it committed and aborted.
const { Kafka, logLevel } = require('kafkajs')

const broker = process.argv[2]
const topic = process.argv[3]
const offsetsTopic = process.argv[4]
const group = process.argv[5]
const kafka = new Kafka({ clientId: 'weir-interop-txn', brokers: [broker], logLevel: logLevel.NOTHING })

function messages(prefix, n) {
  const out = []
  for (let i = 0; i < n; i++) out.push({ key: prefix + i, value: prefix + i })
  return out
}

async function main() {
  const producer = kafka.producer({ transactionalId: 'weir-kafkajs-txn', idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const committed = []
  const aborted = []

  let txn = await producer.transaction()
  const first = messages('c', 100)
  await txn.send({ topic, messages: first })
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: offsetsTopic, partitions: [{ partition: 0, offset: '42' }] }] })
  await txn.commit()
  committed.push(...first.map(m => m.value))

  txn = await producer.transaction()
  const second = messages('a', 100)
  await txn.send({ topic, messages: second })
  await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: offsetsTopic, partitions: [{ partition: 1, offset: '99' }] }] })
  await txn.abort()
  aborted.push(...second.map(m => m.value))

  txn = await producer.transaction()
  const third = messages('d', 50)
  await txn.send({ topic, messages: third })
  await txn.commit()
  committed.push(...third.map(m => m.value))

  await producer.disconnect()
  console.log(JSON.stringify({ committed, aborted }))
}

main().then(() => process.exit(0)).catch(e => { console.error(String(e.stack || e)); process.exit(1) })
