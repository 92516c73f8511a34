/**
 * The access check at start: before any source is opened, every input and output that can tell
 * which permissions its principal lacks on the system it uses says so, and the context fails with
 * ONE error listing all of them, instead of the job failing on the first refusal, being fixed, and
 * failing again on the next.
 *
 * Core knows no system: a permission is named in the system's own words (a Kafka ACL operation,
 * a database privilege), and the error is made by the adapter whose check found one.
 */
import type { Logger } from './logger.js';

/** One permission the pipeline needs on a system, which the principal it connects as lacks. */
export interface MissingPermission {
  /** The system that refuses, e.g. `kafka`. */
  readonly system: string;
  /** The operation as the system names it, e.g. `Read`, `Write`, `Describe`. */
  readonly operation: string;
  /** The kind of resource, as the system names it, e.g. `topic`, `group`, `transactional-id`. */
  readonly resourceType: string;
  /** The resource's name, e.g. the topic `orders`. */
  readonly resource: string;
  /** Who lacks it, as the system names principals (e.g. `User:bob`), when known. */
  readonly principal?: string;
  /** Which instance of the system, e.g. a Kafka cluster's bootstrap address, when it matters. */
  readonly location?: string;
}

/** What the engine gives an access check. */
export interface AccessCheckContext {
  readonly pipelineId: string;
  /** The stable name of the input or output being checked. */
  readonly name: string;
  readonly logger: Logger;
  /** Aborted when the context stops. */
  readonly signal: AbortSignal;
}

/**
 * What one input's or output's access check (`checkAccess` of a source or sink) found.
 *
 * The check finds, without opening the input or output and without side effects, within its
 * connect bounds, which permissions it needs and its principal lacks; its clients are closed
 * before it returns. It answers `undefined` when it cannot tell, and throws a typed error when it
 * cannot even ask (rejected credentials, an unreachable system): the start then fails with that
 * error. A check finds what can be known up front; a permission the system only checks when it is
 * used is refused later, by the call that needs it.
 */
export interface AccessCheck {
  /** The permissions this input or output needs and does not have (empty: none missing). */
  readonly missing: readonly MissingPermission[];
  /**
   * The error to fail the start with, given every permission the pipeline lacks: this check's and
   * those of the other inputs and outputs (possibly of other systems). The context calls it on the
   * first check, in definition order (inputs, then outputs), that found any.
   */
  toError(all: readonly MissingPermission[]): Error;
}

/** The `checkAccess` hook of a source or sink (see {@link AccessCheck}). */
export type CheckAccess = (ctx: AccessCheckContext) => Promise<AccessCheck | undefined>;

/** `a` and `b` name the same permission. */
export function samePermission(a: MissingPermission, b: MissingPermission): boolean {
  return (
    a.system === b.system &&
    a.operation === b.operation &&
    a.resourceType === b.resourceType &&
    a.resource === b.resource &&
    a.principal === b.principal &&
    a.location === b.location
  );
}

/**
 * Runs the checks (concurrently: each is bounded) and, when any found missing permissions, throws
 * the error of the first that did, given all of them (each once, in check order). A check that
 * throws fails the whole: the first such error, in check order, is thrown.
 */
export async function runAccessChecks(
  checks: readonly { readonly name: string; readonly check: CheckAccess }[],
  base: Omit<AccessCheckContext, 'name'>,
): Promise<void> {
  const results = await Promise.allSettled(checks.map((c) => c.check({ ...base, name: c.name })));
  for (const r of results) if (r.status === 'rejected') throw r.reason;
  const found = results
    .map((r) => (r as PromiseFulfilledResult<AccessCheck | undefined>).value)
    .filter((c): c is AccessCheck => c !== undefined && c.missing.length > 0);
  if (found.length === 0) return;
  const all: MissingPermission[] = [];
  for (const c of found) {
    for (const m of c.missing) if (!all.some((x) => samePermission(x, m))) all.push(m);
  }
  throw found[0]!.toError(all);
}
