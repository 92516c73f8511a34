/**
 * ZooKeeper adapter: {@link ZooKeeperOffsetStore} (a node per topic/group/partition holding the
 * offset as text, atomic compare-and-set with `multi`).
 */
export {
  DEFAULT_ZOOKEEPER_CONNECT,
  DEFAULT_ZOOKEEPER_ROOT,
  ZooKeeperOffsetStore,
  type ZooKeeperOffsetStoreOptions,
} from './offset-store.js';
export { ZooKeeperUnreachableError } from './errors.js';
