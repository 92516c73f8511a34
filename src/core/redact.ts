/**
 * Redaction of secrets in what Sluice prints (plans, logs, errors, CLI output): one rule for names
 * (URL query parameters, client config keys) and one URL scrubber that every adapter and the CLI use.
 *
 * A name is secret ({@link isSecretName}, case-insensitive) when it
 * - contains `pass` (password, passwd, passphrase, sslpassword), `pwd`, `secret`, `token`,
 *   `credential`, `private`, `jaas` (a JAAS config holds a password), `keytab`, `signature`, or
 *   `oauthbearer.config` (librdkafka's OAUTHBEARER settings, with the client secret);
 * - starts a word with `auth` (auth, authorization, x-auth-token; not `oauthbearer`);
 * - is, or ends with, `key` (key, apiKey, api_key, x-api-key, ssl_key, sslkey), or has `key` or
 *   `keystore` as a dot- or underscore-separated word (`ssl.key.pem`, `ssl.keystore.password`):
 *   private keys and where they are. Not `keyPrefix` / `key-prefix` (a Redis key prefix) and not
 *   certificates (public).
 *
 * Over-redacting is the safe side: a name the rule catches needlessly only hides a value from a
 * message, while one it missed would print a secret.
 */

/** What a secret is replaced by in a URL. */
export const REDACTED = '***';

const SECRET_PART = /pass|pwd|secret|token|credential|private|jaas|keytab|signature|oauthbearer\.config/i;
const AUTH_WORD = /(^|[^a-z])auth/i;
const KEY_WORD = /key$|(^|[._])key(store)?[._]/i;

/** True when a parameter or config key of this name holds a secret (the rule in this module's doc). */
export function isSecretName(name: string): boolean {
  return SECRET_PART.test(name) || AUTH_WORD.test(name) || KEY_WORD.test(name);
}

/** `scheme://`, then the user info up to the last `@` before the path, query or fragment. */
const USERINFO = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)@/;
const SCHEME_SLASHES = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * `text` without the secrets of the URL it holds: the password of the user info becomes `***`
 * (`postgres://app:***@db/app`), and so does the value of every query parameter whose name is
 * secret (`?sslpassword=***&table=t`). Works on anything, also text no URL parser takes (host
 * lists such as `zookeeper://a:2181,b:2181`, a password with `/` or `?` in it, `user:pass@host`
 * without a scheme); there, when in doubt, more is hidden. Text without secrets is returned as it is.
 */
export function redactUrl(text: string): string {
  if (!SCHEME_SLASHES.test(text)) return redactLoose(text);
  const u = parsed(text);
  if (!u) return redactLoose(text);
  if (!u.password && !hasSecretParam(u.search)) return text;
  if (u.password) u.password = REDACTED;
  if (u.search) u.search = redactQuery(u.search.slice(1));
  return u.href;
}

/**
 * The secret values in a URL's text (its password, the values of secret query parameters) as
 * written and percent-decoded: what to scrub from any message that might repeat them (a driver's
 * error). Empty when there are none.
 */
export function urlSecrets(text: string): string[] {
  const found = new Set<string>();
  const add = (raw: string) => {
    found.add(raw);
    try {
      found.add(decodeURIComponent(raw.replace(/\+/g, ' ')));
      found.add(decodeURIComponent(raw));
    } catch {
      // not percent-encoded
    }
  };
  const trimmed = text.trim();
  const u = SCHEME_SLASHES.test(trimmed) ? parsed(trimmed) : undefined;
  if (u) {
    if (u.password) add(u.password);
    querySecrets(u.search.slice(1)).forEach(add);
    // As written: the parser percent-encodes some characters of a password.
    const raw = USERINFO.exec(trimmed)?.[2];
    if (u.password && raw?.includes(':')) add(raw.slice(raw.indexOf(':') + 1));
  } else {
    const { userinfo, rest } = splitUserInfo(trimmed);
    const colon = userinfo?.indexOf(':') ?? -1;
    if (userinfo !== undefined && colon >= 0) add(userinfo.slice(colon + 1));
    const q = rest.indexOf('?');
    if (q >= 0) querySecrets(rest.slice(q + 1)).forEach(add);
  }
  return [...found].filter((s) => s.length > 0);
}

/**
 * The URL as the WHATWG parser reads it, or undefined when it cannot, or when it reads a password
 * with an unencoded `?` or `#` (`postgres://u:12?ss@h/db`) as a host and port followed by a query
 * or fragment holding the rest of the password and the `@`: the loose reading is right then.
 */
function parsed(text: string): URL | undefined {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return undefined;
  }
  if (!u.password && (u.search + u.hash).includes('@')) {
    const authority = text.slice(text.indexOf('//') + 2).split(/[?#]/, 1)[0]!;
    if (!authority.includes('/') && authority.includes(':')) return undefined;
  }
  return u;
}

/** The values (as written) of the secret parameters of a query (`a=1&password=x`; `;` separates too). */
function querySecrets(query: string): string[] {
  const values: string[] = [];
  for (const part of query.split(/[&;]/)) {
    const eq = part.indexOf('=');
    if (eq > 0 && isSecretName(decodeName(part.slice(0, eq)))) values.push(part.slice(eq + 1));
  }
  return values;
}

function hasSecretParam(search: string): boolean {
  return querySecrets(search.slice(1)).length > 0;
}

/** `a=1&password=x` → `a=1&password=***`; `;` separates too (some drivers take it). */
function redactQuery(query: string): string {
  return query.replace(/(^|[&;])([^&;=]*)=([^&;]*)/g, (all: string, sep: string, name: string) =>
    isSecretName(decodeName(name)) ? `${sep}${name}=${REDACTED}` : all,
  );
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * The user info of URL-like text, and what follows it. The strict form (no `/?#` in the user info)
 * first; otherwise, when an `@` follows `scheme://` (a password with `/` or `?` in it), everything
 * up to the last `@`; without a scheme, `user:pass@` at the start.
 */
function splitUserInfo(text: string): { prefix: string; userinfo?: string; rest: string } {
  const strict = USERINFO.exec(text);
  if (strict) return { prefix: strict[1]!, userinfo: strict[2]!, rest: text.slice(strict[0].length) };
  const scheme = SCHEME_SLASHES.exec(text)?.[0];
  const at = text.lastIndexOf('@');
  if (scheme && at > scheme.length) {
    return { prefix: scheme, userinfo: text.slice(scheme.length, at), rest: text.slice(at + 1) };
  }
  if (!scheme && /^[^\s/?#@:]*:[^\s]*@/.test(text) && at > 0) {
    return { prefix: '', userinfo: text.slice(0, at), rest: text.slice(at + 1) };
  }
  return { prefix: '', rest: text };
}

function redactLoose(text: string): string {
  const { prefix, userinfo, rest } = splitUserInfo(text);
  let out = rest;
  const q = rest.indexOf('?');
  if (q >= 0) out = `${rest.slice(0, q)}?${redactQuery(rest.slice(q + 1))}`;
  if (userinfo === undefined) return `${prefix}${out}`;
  const colon = userinfo.indexOf(':');
  const info = colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:${REDACTED}`;
  return `${prefix}${info}@${out}`;
}
