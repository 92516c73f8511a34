/**
 * Store specs: one string naming an offset store and where it lives, as `sluice offsets --store`
 * and the examples' `OFFSET_STORE` take it.
 *
 * ```
 * postgres://user:pass@host:5432/db[?table=name]     PostgresOffsetStore (postgresql:// too)
 * mysql://user:pass@host:3306/db[?table=name]        MySqlOffsetStore (mariadb:// too)
 * redis://[user:pass@]host:6379[/db][?keyPrefix=p]    RedisOffsetStore (rediss:// too)
 * zookeeper://host:2181[,host:2181...][/root]         ZooKeeperOffsetStore (zk:// too; root default /sluice/offsets)
 * checkpoint:<dir>                                    CheckpointDirectory when <dir>/manifest.json exists (a
 *                                                     stateful pipeline's checkpoint), else CheckpointDirOffsetStore
 *                                                     (<dir>/offsets/<group>.json)
 * kafka://host:9092[,host:9092...]                    KafkaOffsetStore: the group's commits in Kafka (port default 9092)
 * ```
 *
 * `table`, `keyPrefix` and `root` may also be given as options (the CLI's `--table`, `--key-prefix`,
 * `--root`); an option that does not apply to the store is refused. Other query parameters of a
 * postgres, mysql or redis URL go to the driver (e.g. `?sslmode=require`). Secrets — the password of
 * the user info and every query parameter whose name is secret (`password`, `sslpassword`, `token`,
 * `apiKey`, ...: the rule of `src/core/redact.ts`) — never appear in what {@link redactSpec} and
 * {@link describeStoreSpec} return, nor in the errors thrown here.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { CheckpointDirectory } from '../checkpoint/directory.js';
import { CheckpointDirOffsetStore } from '../checkpoint/offset-store.js';
import { InvalidOptionError } from '../core/errors.js';
import type { OffsetStore } from '../core/offsets.js';
import { redactUrl, urlSecrets } from '../core/redact.js';
import { KafkaOffsetStore } from '../kafka/offset-store.js';
import { MySqlOffsetStore } from '../mysql/offset-store.js';
import { PostgresOffsetStore } from '../postgres/offset-store.js';
import { RedisOffsetStore } from '../redis/offset-store.js';
import { DEFAULT_ZOOKEEPER_ROOT, ZooKeeperOffsetStore } from '../zookeeper/offset-store.js';

/** A parsed store spec. URLs keep their password (the store needs it); print {@link redactSpec} instead. */
export type StoreSpec =
  | { readonly kind: 'postgres'; readonly url: string; readonly table?: string }
  | { readonly kind: 'mysql'; readonly url: string; readonly table?: string }
  | { readonly kind: 'redis'; readonly url: string; readonly keyPrefix?: string }
  | { readonly kind: 'zookeeper'; readonly connectString: string; readonly root: string }
  | { readonly kind: 'checkpoint'; readonly dir: string }
  | { readonly kind: 'kafka'; readonly bootstrapServers: string };

export type StoreKind = StoreSpec['kind'];

/** Store options given beside the spec (CLI flags). Each applies to some kinds only. */
export interface StoreSpecOptions {
  /** postgres, mysql: the offsets table (`name` or `schema.name`). */
  readonly table?: string;
  /** redis: prepended to the topic to make the hash key. */
  readonly keyPrefix?: string;
  /** zookeeper: the node under which offsets live. */
  readonly root?: string;
}

/** The spec forms, for error messages and help. */
export const STORE_SPEC_FORMS =
  'postgres://user@host:5432/db, mysql://user@host:3306/db, redis://host:6379, zookeeper://host:2181[/root], checkpoint:<dir> or kafka://host:9092';

/** Which option applies to which kinds, and its CLI flag. */
const OPTION_KINDS: Record<keyof StoreSpecOptions, { flag: string; kinds: readonly StoreKind[] }> = {
  table: { flag: '--table', kinds: ['postgres', 'mysql'] },
  keyPrefix: { flag: '--key-prefix', kinds: ['redis'] },
  root: { flag: '--root', kinds: ['zookeeper'] },
};

/** Query parameters of a URL spec that are Sluice's (removed before the URL reaches the driver). */
const QUERY_OPTIONS: Record<string, keyof StoreSpecOptions> = {
  table: 'table',
  keyPrefix: 'keyPrefix',
  'key-prefix': 'keyPrefix',
  root: 'root',
};

const SCHEMES: Record<string, StoreKind> = {
  'postgres:': 'postgres',
  'postgresql:': 'postgres',
  'mysql:': 'mysql',
  'mariadb:': 'mysql',
  'redis:': 'redis',
  'rediss:': 'redis',
  'zookeeper:': 'zookeeper',
  'zk:': 'zookeeper',
  'checkpoint:': 'checkpoint',
  'kafka:': 'kafka',
};

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:\d{1,5})?$/;

/**
 * Parses a store spec. Throws {@link InvalidOptionError} (option `store`, or the option's flag) for
 * an unknown scheme, a malformed address, an option that does not apply to the store, an option
 * given twice with different values.
 */
export function parseStoreSpec(spec: unknown, options: StoreSpecOptions = {}): StoreSpec {
  if (typeof spec !== 'string' || spec.trim() === '') {
    // An object is shown by its type only: it could hold a password.
    const received = typeof spec === 'object' && spec !== null ? '(an object)' : spec;
    throw new InvalidOptionError('store', STORE_SPEC_FORMS, received);
  }
  const text = spec.trim();
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*:)/.exec(text)?.[1]?.toLowerCase();
  const kind = scheme ? SCHEMES[scheme] : undefined;
  if (!kind) {
    throw new InvalidOptionError(
      'store',
      `a store spec: ${STORE_SPEC_FORMS}${scheme ? ` (unknown scheme ${scheme})` : ' (no scheme)'}`,
      redactSpec(text),
    );
  }
  if (kind === 'checkpoint') {
    const dir = text.slice(scheme!.length).replace(/^\/\/(?=\/)/, '');
    if (dir.trim() === '' || dir.includes('\0')) {
      throw new InvalidOptionError(
        'store',
        'checkpoint:<dir>, e.g. checkpoint:/var/lib/job/checkpoint',
        text,
      );
    }
    checkApplicable(kind, options, {});
    return { kind, dir };
  }
  // Host lists (zookeeper://a:2181,b:2181) are not WHATWG URLs: those kinds are split by hand.
  const byHand = kind === 'zookeeper' || kind === 'kafka';
  const url = byHand ? undefined : parseUrl(text);
  const fromQuery = takeQueryOptions(url, kind, text);
  const merged = mergeOptions(fromQuery, options, text);
  checkApplicable(kind, merged, fromQuery);
  switch (kind) {
    case 'postgres':
    case 'mysql': {
      if (!url) throw new Error('unreachable');
      requireHost(
        url,
        text,
        kind === 'postgres' ? 'postgres://user@host:5432/db' : 'mysql://user@host:3306/db',
      );
      if (kind === 'mysql' && url.protocol === 'mariadb:')
        url.href = `mysql:${url.href.slice('mariadb:'.length)}`;
      if (merged.table !== undefined) checkNonEmpty(OPTION_KINDS.table.flag, merged.table);
      return { kind, url: url.href, ...(merged.table !== undefined ? { table: merged.table } : {}) };
    }
    case 'redis': {
      if (!url) throw new Error('unreachable');
      requireHost(url, text, 'redis://host:6379[/db]');
      if (url.pathname !== '' && url.pathname !== '/' && !/^\/\d+$/.test(url.pathname)) {
        throw new InvalidOptionError(
          'store',
          'redis://host:port[/db] where db is a number',
          redactSpec(text),
        );
      }
      return {
        kind,
        url: url.href,
        ...(merged.keyPrefix !== undefined ? { keyPrefix: merged.keyPrefix } : {}),
      };
    }
    case 'zookeeper': {
      const hosts = hostList(text, scheme!, 'zookeeper://host:2181[,host:2181...][/root]');
      const pathRoot = hosts.path === '' || hosts.path === '/' ? undefined : hosts.path;
      if (pathRoot !== undefined && merged.root !== undefined && pathRoot !== merged.root) {
        throw new InvalidOptionError(
          OPTION_KINDS.root.flag,
          `the root once: in the spec's path (${pathRoot}) or as ${OPTION_KINDS.root.flag}, not both with different values`,
          merged.root,
        );
      }
      const root = merged.root ?? pathRoot ?? DEFAULT_ZOOKEEPER_ROOT;
      if (!/^\/[^\s]*[^/\s]$/.test(root) || root.includes('//')) {
        throw new InvalidOptionError(
          OPTION_KINDS.root.flag,
          "an absolute ZooKeeper path such as '/sluice/offsets'",
          root,
        );
      }
      return { kind, connectString: hosts.hosts, root };
    }
    case 'kafka': {
      const hosts = hostList(text, scheme!, 'kafka://host:9092[,host:9092...]');
      if (hosts.path !== '' && hosts.path !== '/') {
        throw new InvalidOptionError(
          'store',
          'kafka://host:9092[,host:9092...] without a path',
          redactSpec(text),
        );
      }
      // Kafka clients need the port; 9092 is Kafka's.
      const bootstrapServers = hosts.hosts
        .split(',')
        .map((h) => (/:\d+$/.test(h) ? h : `${h}:9092`))
        .join(',');
      return { kind, bootstrapServers };
    }
  }
}

/** Opens (lazily: no connection is made before the first call) the store a spec names. */
export function createOffsetStore(spec: StoreSpec): OffsetStore {
  switch (spec.kind) {
    case 'postgres':
      return new PostgresOffsetStore({ connection: spec.url, ...(spec.table ? { table: spec.table } : {}) });
    case 'mysql':
      return new MySqlOffsetStore({ connection: spec.url, ...(spec.table ? { table: spec.table } : {}) });
    case 'redis':
      return new RedisOffsetStore({
        redis: spec.url,
        ...(spec.keyPrefix !== undefined ? { keyPrefix: spec.keyPrefix } : {}),
      });
    case 'zookeeper':
      return new ZooKeeperOffsetStore({ connectString: spec.connectString, root: spec.root });
    case 'checkpoint':
      // A pipeline's checkpoint (manifest.json) keeps its offsets there; otherwise the offsets-only layout.
      return existsSync(path.join(spec.dir, 'manifest.json'))
        ? new CheckpointDirectory({ dir: spec.dir })
        : new CheckpointDirOffsetStore({ dir: spec.dir });
    case 'kafka':
      return new KafkaOffsetStore({ bootstrapServers: spec.bootstrapServers });
  }
}

/** {@link parseStoreSpec} then {@link createOffsetStore}: what an example does with `OFFSET_STORE`. */
export function offsetStoreFromSpec(spec: unknown, options: StoreSpecOptions = {}): OffsetStore {
  return createOffsetStore(parseStoreSpec(spec, options));
}

/**
 * The spec as text without its secrets: the password of the user info and the values of secret
 * query parameters become `***` (`postgres://app:***@db/app?sslpassword=***&table=t`). Anything,
 * even unparsable text (a host list, a password with `/` in it); a `checkpoint:<dir>` is a path and
 * is left as it is.
 */
export function redactSpec(spec: string): string {
  return isCheckpointSpec(spec) ? spec : redactUrl(spec);
}

/** A one-line description of the store a spec names, without secrets, e.g. `redis redis://127.0.0.1:6379/ key prefix "jobs:"`. */
export function describeStoreSpec(spec: StoreSpec): string {
  switch (spec.kind) {
    case 'postgres':
    case 'mysql':
      return `${spec.kind} ${redactSpec(spec.url)} table ${spec.table ?? 'sluice_offsets'}`;
    case 'redis':
      return `redis ${redactSpec(spec.url)}${spec.keyPrefix ? ` key prefix ${JSON.stringify(spec.keyPrefix)}` : ''}`;
    case 'zookeeper':
      return `zookeeper ${spec.connectString} root ${spec.root}`;
    case 'checkpoint':
      return `checkpoint ${spec.dir}`;
    case 'kafka':
      return `kafka ${spec.bootstrapServers}`;
  }
}

/**
 * The secrets of a spec (its password, the values of its secret query parameters) as written and
 * decoded: what to scrub from anything printed, such as a driver's error message.
 */
export function specSecrets(spec: string): string[] {
  return isCheckpointSpec(spec) ? [] : urlSecrets(spec);
}

function isCheckpointSpec(spec: string): boolean {
  return /^\s*checkpoint:/i.test(spec);
}

function parseUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new InvalidOptionError('store', `a valid URL: ${STORE_SPEC_FORMS}`, redactSpec(text));
  }
}

function requireHost(url: URL, text: string, form: string): void {
  if (url.hostname === '')
    throw new InvalidOptionError('store', `${form} (a host is required)`, redactSpec(text));
}

/** `scheme://h1:p1,h2:p2/path`: a host list WHATWG URLs cannot parse. */
function hostList(text: string, scheme: string, form: string): { hosts: string; path: string } {
  const rest = text.slice(scheme.length);
  if (!rest.startsWith('//')) throw new InvalidOptionError('store', form, redactSpec(text));
  const body = rest.slice(2).replace(/\?.*$/, '');
  const slash = body.indexOf('/');
  const hosts = slash < 0 ? body : body.slice(0, slash);
  const path = slash < 0 ? '' : body.slice(slash);
  if (hosts.includes('@')) {
    throw new InvalidOptionError('store', `${form} (no user or password)`, redactSpec(text));
  }
  if (hosts === '' || !hosts.split(',').every((h) => HOST_PORT.test(h))) {
    throw new InvalidOptionError('store', form, redactSpec(text));
  }
  return { hosts, path };
}

/** Removes Sluice's own query parameters from `url` (or reads them from `text` for host lists) and returns them. */
function takeQueryOptions(url: URL | undefined, kind: StoreKind, text: string): StoreSpecOptions {
  const found: Record<string, string> = {};
  const query = url ? url.searchParams : queryOf(text);
  for (const [param, option] of Object.entries(QUERY_OPTIONS)) {
    const value = query.get(param);
    if (value === null) continue;
    if (found[option] !== undefined && found[option] !== value) {
      throw new InvalidOptionError(option, `${option} once in the spec`, value);
    }
    found[option] = value;
    url?.searchParams.delete(param);
  }
  if (!url) {
    const unknown = [...query.keys()].filter((k) => !(k in QUERY_OPTIONS));
    if (unknown.length) {
      throw new InvalidOptionError(
        'store',
        `a ${kind}:// spec without parameters other than ${Object.keys(QUERY_OPTIONS).join(', ')}`,
        redactSpec(text),
      );
    }
  }
  return found;
}

function queryOf(text: string): URLSearchParams {
  const q = text.indexOf('?');
  return new URLSearchParams(q < 0 ? '' : text.slice(q + 1));
}

function mergeOptions(fromSpec: StoreSpecOptions, given: StoreSpecOptions, text: string): StoreSpecOptions {
  const out: Record<string, string> = { ...(fromSpec as Record<string, string>) };
  for (const key of Object.keys(OPTION_KINDS) as (keyof StoreSpecOptions)[]) {
    const value = given[key];
    if (value === undefined) continue;
    if (typeof value !== 'string') throw new InvalidOptionError(OPTION_KINDS[key].flag, 'a string', value);
    if (out[key] !== undefined && out[key] !== value) {
      throw new InvalidOptionError(
        OPTION_KINDS[key].flag,
        `${key} once: in the spec (${redactSpec(text)}) or as ${OPTION_KINDS[key].flag}, not both with different values`,
        value,
      );
    }
    out[key] = value;
  }
  return out;
}

function checkApplicable(kind: StoreKind, options: StoreSpecOptions, fromSpec: StoreSpecOptions): void {
  for (const key of Object.keys(OPTION_KINDS) as (keyof StoreSpecOptions)[]) {
    if (options[key] === undefined) continue;
    const { flag, kinds } = OPTION_KINDS[key];
    if (!kinds.includes(kind)) {
      throw new InvalidOptionError(
        fromSpec[key] !== undefined ? `store (?${key}=)` : flag,
        `${flag} only with ${kinds.map((k) => `${k}://`).join(' or ')} stores, not with a ${kind} store`,
        options[key],
      );
    }
  }
}

function checkNonEmpty(flag: string, value: string): void {
  if (value.trim() === '') throw new InvalidOptionError(flag, 'a non-empty name', value);
}
