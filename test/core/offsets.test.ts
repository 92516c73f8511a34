import { InMemoryOffsetStore } from '../../src/core/offsets.js';
import { offsetStoreConformance } from '../conformance/offset-store.js';

// One shared map behind every instance, so the durability case sees what another instance wrote.
const shared = new InMemoryOffsetStore();
offsetStoreConformance('InMemoryOffsetStore', () => ({
  kind: shared.kind,
  capabilities: shared.capabilities,
  describe: () => shared.describe(),
  read: (g, t) => shared.read(g, t),
  write: (g, r, o) => shared.write(g, r, o),
  set: (g, o) => shared.set(g, o),
  delete: (g, t) => shared.delete(g, t),
  close: async () => {},
}));
