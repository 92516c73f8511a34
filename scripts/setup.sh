#!/usr/bin/env bash
# Idempotent set-up for `npm test`, `npm start` and `npm run bench` on a Debian 12 machine.
# Does only what is missing and says what it does; prints nothing when everything is in place.
#   1. Debian packages (apt-get update only when something must be installed)
#   2. node_modules (npm ci / npm install with CKJS_LINKING=dynamic, so the Kafka client compiles
#      librdkafka against Debian's libraries) when missing or package.json/package-lock.json changed
#   3. the Kafka jars from Maven Central into .sluice/kafka/lib when missing or scripts/kafka/pom.xml changed
#   4. PostgreSQL, MariaDB and Redis answer (started when they do not; see src/services/databases.ts)
# Kafka and ZooKeeper are started on demand by src/services (scripts/run-tests.mjs, the demo).
# Never prompts (CI=true has no terminal).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
STATE="$ROOT/.sluice"
mkdir -p "$STATE"
# One set-up at a time per checkout (e.g. `npm test` and `npm start` started together); bounded wait.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$STATE/setup.lock"
  flock -w 900 9 || { echo "setup: ERROR: another set-up in $ROOT has held .sluice/setup.lock for 15 min" >&2; exit 1; }
fi
STARTED_AT=$SECONDS
DID_SOMETHING=0

say() {
  DID_SOMETHING=1
  echo "setup: $*"
}
die() {
  echo "setup: ERROR: $*" >&2
  exit 1
}

# ------------------------------------------------------------------ 1. Debian packages
installed() { [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]; }
has() { command -v "$1" >/dev/null 2>&1; }

NEW_PACKAGES=()
if has dpkg-query; then
  # Build dependencies of @confluentinc/kafka-javascript (librdkafka), ZooKeeper + its log binding, kcat.
  # openssl makes the test CA and certificates of the secured broker (scripts/kafka/make-tls.sh).
  for p in libzstd-dev libssl-dev zlib1g-dev liblz4-dev libsasl2-dev zookeeper libslf4j-java kcat openssl; do
    installed "$p" || NEW_PACKAGES+=("$p")
  done
  has java || NEW_PACKAGES+=(openjdk-17-jre-headless)
  has mvn || NEW_PACKAGES+=(maven)
  { has make && has g++; } || NEW_PACKAGES+=(build-essential)
  has python3 || NEW_PACKAGES+=(python3)
  # Database servers only when their binaries are absent (a machine may run its own build of them).
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || NEW_PACKAGES+=(postgresql)
  [ -x /usr/sbin/mariadbd ] || NEW_PACKAGES+=(mariadb-server)
  has redis-server || NEW_PACKAGES+=(redis-server)
  # Their command-line clients (used by tests to check the servers independently).
  has psql || NEW_PACKAGES+=(postgresql-client)
  has mariadb || NEW_PACKAGES+=(mariadb-client)
  has redis-cli || NEW_PACKAGES+=(redis-tools)
else
  echo "setup: not a Debian system (no dpkg-query): skipping system packages" >&2
fi

if [ ${#NEW_PACKAGES[@]} -gt 0 ]; then
  say "installing Debian packages: ${NEW_PACKAGES[*]}"
  SUDO=()
  if [ "$(id -u)" -ne 0 ]; then
    if sudo -n true 2>/dev/null; then
      SUDO=(sudo -n)
    else
      die "root is needed to install: ${NEW_PACKAGES[*]} — run: sudo apt-get install ${NEW_PACKAGES[*]}"
    fi
  fi
  APT_LOG="$STATE/apt.log"
  if ! { "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q &&
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${NEW_PACKAGES[@]}"; } >"$APT_LOG" 2>&1; then
    tail -n 30 "$APT_LOG" >&2
    die "apt-get failed (full log: $APT_LOG)"
  fi
fi

# ------------------------------------------------------------------ 2. node_modules
NATIVE=node_modules/@confluentinc/kafka-javascript/build/Release/confluent-kafka-javascript.node
deps_hash() { cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1; }
NPM_STAMP="$STATE/npm.stamp"
if [ ! -d node_modules ] || [ "$(cat "$NPM_STAMP" 2>/dev/null)" != "$(deps_hash)" ]; then
  say "npm install (node_modules missing, or package.json / package-lock.json changed); compiling librdkafka takes ~2 min on 2 cores"
  # npm install, not npm ci: it follows package-lock.json too, and npm ci refuses this lock because
  # npm leaves @duckdb's optional packages for other platforms out of it.
  CKJS_LINKING=dynamic npm install --no-audit --no-fund
  rm -f "$NPM_STAMP" # written below, once the native module is there
fi
if [ ! -f "$NATIVE" ]; then
  say "building the Kafka client's native module (npm rebuild @confluentinc/kafka-javascript)"
  CKJS_LINKING=dynamic npm rebuild @confluentinc/kafka-javascript
  [ -f "$NATIVE" ] || die "the Kafka client's native module was not built ($NATIVE); see npm's output above"
fi
[ -f "$NPM_STAMP" ] || deps_hash >"$NPM_STAMP"

# ------------------------------------------------------------------ 3. Kafka jars
POM=scripts/kafka/pom.xml
LIB="$STATE/kafka/lib"
LIB_STAMP="$STATE/kafka/lib.stamp"
POM_HASH=$(sha256sum "$POM" | cut -d' ' -f1)
if ! compgen -G "$LIB/kafka_2.13-*.jar" >/dev/null || [ "$(cat "$LIB_STAMP" 2>/dev/null)" != "$POM_HASH" ]; then
  say "copying the Kafka jars from Maven Central into .sluice/kafka/lib ($POM changed or jars missing)"
  rm -rf "$LIB" "$LIB_STAMP"
  mkdir -p "$LIB"
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DoutputDirectory="$LIB" \
    -DincludeScope=runtime >"$STATE/kafka/mvn.log" 2>&1; then
    tail -n 30 "$STATE/kafka/mvn.log" >&2
    die "mvn could not copy the Kafka jars (is Maven Central reachable? full log: .sluice/kafka/mvn.log)"
  fi
  java -cp "$LIB/*" kafka.Kafka --version >/dev/null 2>&1 || die "the jars in $LIB do not run kafka.Kafka --version"
  echo "$POM_HASH" >"$LIB_STAMP"
fi

# ------------------------------------------------------------------ 3b. TLS material (secured Kafka broker)
# >>> secured-kafka TLS (owned by src/services/secure-kafka.ts; keep this section self-contained)
# A test CA, the broker's PKCS12 keystore, a truststore and a client certificate, made once with openssl
# and keytool into .sluice/tls for the secured test broker (src/services/secure-kafka.ts, which also makes
# them on demand when missing or expiring). scripts/kafka/make-tls.sh is idempotent and checks expiry.
if [ ! -f "$STATE/tls/VERSION" ]; then
  say "making the test CA and certificates for the secured Kafka broker into .sluice/tls (openssl, keytool)"
  bash scripts/kafka/make-tls.sh "$STATE/tls" >/dev/null || die "scripts/kafka/make-tls.sh failed (see above)"
fi
# <<< secured-kafka TLS

# ------------------------------------------------------------------ 4. databases
# A freshly installed server gets what these machines have: trust auth on localhost for PostgreSQL
# (roles postgres and root, databases test and root), root without password for MariaDB, database test.
just_installed() { [[ " ${NEW_PACKAGES[*]} " == *" $1 "* ]]; }
if just_installed postgresql; then
  for hba in /etc/postgresql/*/main/pg_hba.conf; do
    grep -q '^# sluice: trust localhost' "$hba" && continue
    say "PostgreSQL: trust auth for local connections in $hba"
    sed -i '1i # sluice: trust localhost\nlocal all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  done
  for v in $(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect "$v" main reload >/dev/null 2>&1 || true; done
fi

# Servers given by SLUICE_POSTGRES_URL / SLUICE_MYSQL_URL / SLUICE_REDIS_URL are only checked, never started.
# (--conditions=sluice-dev, as for every repo process: 'sluice' resolves to src/, see scripts/run-tests.mjs)
NODE_OPTIONS="--conditions=sluice-dev ${NODE_OPTIONS:-}" node --import tsx scripts/services.ts up --quiet postgres mariadb redis ||
  die "a database does not answer (see above)"

if just_installed postgresql; then
  say "PostgreSQL: creating role root and databases test, root"
  runuser -u postgres -- psql -q -h 127.0.0.1 -c 'CREATE ROLE root SUPERUSER LOGIN' 2>/dev/null || true
  runuser -u postgres -- createdb -h 127.0.0.1 test 2>/dev/null || true
  runuser -u postgres -- createdb -h 127.0.0.1 -O root root 2>/dev/null || true
fi
if just_installed mariadb-server; then
  say "MariaDB: root without password on localhost, database test"
  mariadb -uroot -e "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket;
    CREATE DATABASE IF NOT EXISTS test;" || die "could not configure MariaDB's root user"
fi

if [ "$DID_SOMETHING" = 1 ]; then
  echo "setup: done in $((SECONDS - STARTED_AT)) s"
fi
