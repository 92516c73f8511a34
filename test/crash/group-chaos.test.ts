import { test } from 'node:test';
import { formatGroupChaos, runGroupChaos } from './group-chaos.js';

test('scale-out chaos: three instances of the Kafka-transactions ETL, SIGKILLed and restarted, instances added and removed, with lines arriving all the time: every line reaches the output or the dead letters exactly once', async (tc) => {
  const result = await runGroupChaos({ instances: 3, actions: 8, brokerRestart: false });
  tc.diagnostic(formatGroupChaos(result));
});
