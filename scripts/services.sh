#!/usr/bin/env bash
# Starts and stops the local Redis, Postgres and S3 server that `make demo`,
# `make test` and `make bench` use. Everything listens on loopback only; Redis
# keeps its files under .gantry/redis, Postgres under a fresh folder in /tmp
# (Postgres refuses to run as root and the postgres user may not be able to
# enter the checkout), the S3 server (moto, from PyPI, in .gantry/venv) in
# memory with request signing enforced. Processes are stopped by the PID they
# wrote, never by name.
#
#   scripts/services.sh install          apt-get install what is missing
#   scripts/services.sh start            start Redis, Postgres and S3, write .gantry/env
#   scripts/services.sh stop             stop both
#   scripts/services.sh stop-postgres    stop only Postgres (failure tests)
#   scripts/services.sh start-postgres   start it again with the same data
#   scripts/services.sh restart-redis    SHUTDOWN (AOF kept) and start again
#   scripts/services.sh fresh-bench-db   drop and create the empty database gantry_bench
#   scripts/services.sh status
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE="$ROOT/.gantry"
REDIS_PORT=${GANTRY_REDIS_PORT:-6390}
PG_PORT=${GANTRY_PG_PORT:-5440}
S3_PORT=${GANTRY_S3_PORT:-6391}
PG_BIN=${GANTRY_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
# One Postgres folder per checkout, reachable by the postgres user.
PG_HOME_FILE="$STATE/pg-home"

log() { printf 'services: %s\n' "$*" >&2; }

need_pkgs() {
  local missing=()
  command -v redis-server >/dev/null || missing+=(redis-server)
  [ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
  [ -f /usr/include/postgresql/libpq-fe.h ] || missing+=(libpq-dev)
  [ -f /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -f /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] || missing+=(postgresql)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v git >/dev/null || missing+=(git)          # the scan kind's diff mode
  command -v python3 >/dev/null || missing+=(python3)  # the demo's capturing HTTP server, the S3 server
  python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
  command -v prometheus >/dev/null || missing+=(prometheus)  # the metrics-watch tests run one
  command -v nginx >/dev/null || missing+=(nginx)            # the deploy kind's local target
  printf '%s\n' "${missing[@]}"
}

install() {
  local missing
  missing=$(need_pkgs)
  if [ -z "$missing" ]; then return 0; fi
  log "installing: $(echo $missing)"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
}

# Runs a command as the postgres user when we are root, as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_home() {
  if [ -f "$PG_HOME_FILE" ] && [ -d "$(cat "$PG_HOME_FILE")" ]; then
    cat "$PG_HOME_FILE"
    return
  fi
  local home
  home=$(mktemp -d /tmp/gantry-pg.XXXXXX)
  chmod 755 "$home"
  [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$home"
  echo "$home" >"$PG_HOME_FILE"
  echo "$home"
}

# True when something already listens on 127.0.0.1:PORT.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

secret() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

ensure_env() {
  mkdir -p "$STATE"
  if [ ! -f "$STATE/secrets" ]; then
    umask 077
    {
      echo "REDIS_PASSWORD=$(secret)"
      echo "PG_OWNER_PASSWORD=$(secret)"
      echo "PG_APP_PASSWORD=$(secret)"
      echo "PG_AUDITOR_PASSWORD=$(secret)"
      echo "PG_WORKER_PASSWORD=$(secret)"
    } >"$STATE/secrets"
  fi
  # Secrets files written before the worker role existed get its password added.
  if ! grep -q '^PG_WORKER_PASSWORD=' "$STATE/secrets"; then
    (umask 077; echo "PG_WORKER_PASSWORD=$(secret)" >>"$STATE/secrets")
  fi
  # shellcheck disable=SC1091
  . "$STATE/secrets"
}

start_redis() {
  ensure_env
  mkdir -p "$STATE/redis"
  if redis_running; then
    return 0
  fi
  if port_in_use "$REDIS_PORT"; then
    log "port $REDIS_PORT is taken by another process (another checkout's services? stop them there, or set GANTRY_REDIS_PORT)"
    return 1
  fi
  # ACL: nobody can log in as the default user; Gantry authenticates as "gantry".
  # The default user keeps its permissions all the same: Redis 7.0 replays the
  # append-only file as that user and re-checks ACLs at EXEC, so with no
  # permissions every MULTI … EXEC (each ack with its result event) was dropped
  # on restart (redis/redis#14541).
  cat >"$STATE/redis/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $STATE/redis/redis.pid
logfile $STATE/redis/redis.log
dir $STATE/redis
appendonly yes
appendfsync everysec
save ""
user default off ~* &* +@all
user gantry on >$REDIS_PASSWORD ~* &* +@all
EOF
  redis-server "$STATE/redis/redis.conf"
  for _ in $(seq 1 50); do
    if redis-cli -p "$REDIS_PORT" --user gantry --pass "$REDIS_PASSWORD" --no-auth-warning ping 2>/dev/null | grep -q PONG; then
      # Our own record of the PID, from the server itself: Redis deletes its
      # pidfile on shutdown, which races with a restart.
      redis_cli info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p' >"$STATE/redis.pid"
      log "redis on 127.0.0.1:$REDIS_PORT (pid $(cat "$STATE/redis.pid"))"
      return 0
    fi
    sleep 0.1
  done
  log "redis did not start; see $STATE/redis/redis.log"
  return 1
}

redis_cli() {
  redis-cli -p "$REDIS_PORT" --user gantry --pass "$REDIS_PASSWORD" --no-auth-warning "$@"
}

# True when the PID we recorded is a live redis-server (not a recycled PID).
redis_running() {
  local pid
  [ -f "$STATE/redis.pid" ] || return 1
  pid=$(cat "$STATE/redis.pid")
  [ -n "$pid" ] && grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null
}

stop_redis() {
  redis_running || { rm -f "$STATE/redis.pid"; return 0; }
  local pid
  pid=$(cat "$STATE/redis.pid")
  # SHUTDOWN flushes the append-only file; SIGTERM, then SIGKILL, if it does not answer.
  ensure_env
  redis_cli shutdown >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "redis (pid $pid) did not stop; killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/redis.pid"
}

pg_psql() {
  local home=$1; shift
  as_pg "$PG_BIN/psql" -h "$home" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

start_postgres() {
  ensure_env
  local home
  home=$(pg_home)
  local data="$home/data"
  if [ ! -f "$data/PG_VERSION" ]; then
    as_pg "$PG_BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    cat >>"$data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$home'
# make test runs dozens of dispatchers and workers at once, each with its own connections.
max_connections = 500
shared_buffers = 256MB
synchronous_commit = on
fsync = on
logging_collector = off
EOF
    # Loopback TCP needs a password; the local socket is for the postgres superuser only.
    cat >"$data/pg_hba.conf" <<EOF
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
EOF
  fi
  if [ -f "$data/postmaster.pid" ] && kill -0 "$(head -n 1 "$data/postmaster.pid")" 2>/dev/null; then
    :
  elif port_in_use "$PG_PORT"; then
    log "port $PG_PORT is taken by another process (another checkout's services? stop them there, or set GANTRY_PG_PORT)"
    return 1
  else
    # Data folders made before the limit was raised keep working with the suite of today.
    as_pg sed -i 's/^max_connections = 200$/max_connections = 500/' "$data/postgresql.conf"
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$home/postgres.log" -w -t 60 start >/dev/null
  fi
  # Roles: the owner runs migrations; the app role (dispatchers) writes runs and steps; the
  # worker role records attempts; the auditor reads.
  PGOPTIONS='-c client_min_messages=warning' pg_psql "$home" -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_owner') THEN CREATE ROLE gantry_owner LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry') THEN CREATE ROLE gantry LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_auditor') THEN CREATE ROLE gantry_auditor LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_writer') THEN CREATE ROLE gantry_writer NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_reader') THEN CREATE ROLE gantry_reader NOLOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_worker') THEN CREATE ROLE gantry_worker LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gantry_runner') THEN CREATE ROLE gantry_runner NOLOGIN; END IF;
END \$\$;
GRANT gantry_writer TO gantry;
GRANT gantry_reader TO gantry_auditor;
GRANT gantry_runner TO gantry_worker;
ALTER ROLE gantry_owner PASSWORD '$PG_OWNER_PASSWORD';
ALTER ROLE gantry PASSWORD '$PG_APP_PASSWORD';
ALTER ROLE gantry_auditor PASSWORD '$PG_AUDITOR_PASSWORD';
ALTER ROLE gantry_worker PASSWORD '$PG_WORKER_PASSWORD';
SQL
  if [ -z "$(pg_psql "$home" -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'gantry'")" ]; then
    pg_psql "$home" -d postgres -c "CREATE DATABASE gantry OWNER gantry_owner"
  fi
  log "postgres on 127.0.0.1:$PG_PORT (data $data)"
}

# A fresh, empty database for the benchmark: figures are only comparable when
# the tables start empty (throughput falls as they grow).
fresh_bench_db() {
  local home
  home=$(pg_home)
  PGOPTIONS='-c client_min_messages=warning' pg_psql "$home" -d postgres -c "DROP DATABASE IF EXISTS gantry_bench WITH (FORCE)"
  pg_psql "$home" -d postgres -c "CREATE DATABASE gantry_bench OWNER gantry_owner"
}

stop_postgres() {
  [ -f "$PG_HOME_FILE" ] || return 0
  local data
  data="$(cat "$PG_HOME_FILE")/data"
  [ -f "$data/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || true
}

# moto's S3 server with authentication on from its fourth request: the first
# three create an IAM user, its policy and its access key; from then on a
# request with a wrong signature is refused with SignatureDoesNotMatch.
start_s3() {
  if [ -f "$STATE/s3.pid" ] && kill -0 "$(cat "$STATE/s3.pid")" 2>/dev/null; then return 0; fi
  if port_in_use "$S3_PORT"; then
    log "port $S3_PORT is taken by another process (set GANTRY_S3_PORT)"
    return 1
  fi
  if [ ! -x "$STATE/venv/bin/moto_server" ]; then
    log "installing moto[server] into .gantry/venv (once)"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q --disable-pip-version-check 'moto[server]>=5,<6'
  fi
  INITIAL_NO_AUTH_ACTION_COUNT=3 "$STATE/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$STATE/s3.log" 2>&1 &
  echo $! >"$STATE/s3.pid"
  for _ in $(seq 1 100); do port_in_use "$S3_PORT" && break; sleep 0.1; done
  (umask 077; "$STATE/venv/bin/python" - "http://127.0.0.1:$S3_PORT" >"$STATE/s3-credentials") <<'PY'
import json, sys, boto3
endpoint = sys.argv[1]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="gantry")
iam.put_user_policy(UserName="gantry", PolicyName="backups", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="gantry")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket="gantry-backups")
print(f"S3_ACCESS_KEY_ID={key['AccessKeyId']}")
print(f"S3_SECRET_ACCESS_KEY={key['SecretAccessKey']}")
PY
  log "s3 (moto) on 127.0.0.1:$S3_PORT, bucket gantry-backups"
}

stop_s3() {
  [ -f "$STATE/s3.pid" ] || return 0
  kill "$(cat "$STATE/s3.pid")" 2>/dev/null || true
  rm -f "$STATE/s3.pid" "$STATE/s3-credentials"
}

write_env() {
  ensure_env
  cat >"$STATE/env" <<EOF
export GANTRY_REDIS_URL='redis://gantry:$REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0'
export GANTRY_DATABASE_URL='postgresql://gantry:$PG_APP_PASSWORD@127.0.0.1:$PG_PORT/gantry'
export GANTRY_ADMIN_DATABASE_URL='postgresql://gantry_owner:$PG_OWNER_PASSWORD@127.0.0.1:$PG_PORT/gantry'
export GANTRY_AUDITOR_DATABASE_URL='postgresql://gantry_auditor:$PG_AUDITOR_PASSWORD@127.0.0.1:$PG_PORT/gantry'
export GANTRY_WORKER_DATABASE_URL='postgresql://gantry_worker:$PG_WORKER_PASSWORD@127.0.0.1:$PG_PORT/gantry'
export GANTRY_TEST_REDIS_URL="\$GANTRY_REDIS_URL"
export GANTRY_TEST_DATABASE_URL="\$GANTRY_DATABASE_URL"
export GANTRY_TEST_ADMIN_DATABASE_URL="\$GANTRY_ADMIN_DATABASE_URL"
export GANTRY_TEST_WORKER_DATABASE_URL="\$GANTRY_WORKER_DATABASE_URL"
export GANTRY_TEST_SERVICES='$ROOT/scripts/services.sh'
EOF
  if [ -f "$STATE/s3-credentials" ]; then
    # shellcheck disable=SC1091
    . "$STATE/s3-credentials"
    cat >>"$STATE/env" <<EOF
export GANTRY_TEST_S3_ENDPOINT='http://127.0.0.1:$S3_PORT'
export GANTRY_TEST_S3_BUCKET='gantry-backups'
export GANTRY_TEST_S3_ACCESS_KEY_ID='$S3_ACCESS_KEY_ID'
export GANTRY_TEST_S3_SECRET_ACCESS_KEY='$S3_SECRET_ACCESS_KEY'
EOF
  fi
  chmod 600 "$STATE/env"
}

case "${1:-}" in
  install) install ;;
  start) install; start_redis; start_postgres; start_s3; write_env ;;
  stop) stop_redis; stop_postgres; stop_s3; log "stopped" ;;
  stop-postgres) stop_postgres ;;
  fresh-bench-db) ensure_env; fresh_bench_db ;;
  start-postgres) start_postgres >/dev/null 2>&1 || start_postgres ;;
  restart-redis)
    ensure_env
    stop_redis
    start_redis ;;
  status)
    redis_running && echo "redis: running" || echo "redis: stopped"
    if [ -f "$PG_HOME_FILE" ] && [ -f "$(cat "$PG_HOME_FILE")/data/postmaster.pid" ]; then echo "postgres: running"; else echo "postgres: stopped"; fi
    if [ -f "$STATE/s3.pid" ] && kill -0 "$(cat "$STATE/s3.pid")" 2>/dev/null; then echo "s3: running"; else echo "s3: stopped"; fi ;;
  *) echo "usage: $0 install|start|stop|stop-postgres|start-postgres|restart-redis|fresh-bench-db|status" >&2; exit 2 ;;
esac
