#!/usr/bin/env bash
# Make a PostgreSQL server available for the tests that prove exactly-once on it, and print
# the URL of a database the tests may create databases from. Installs and starts PostgreSQL
# from Debian's packages when none answers and we are root (CI, a fresh machine).
set -euo pipefail
URL=${STOREFRONT_TEST_POSTGRES_URL:-postgresql://storefront:storefront@127.0.0.1:5432/storefront_test}

answers() { command -v psql >/dev/null && psql "$URL" -qtAc 'select 1' >/dev/null 2>&1; }

if answers; then echo "$URL"; exit 0; fi
if [ "$(id -u)" != 0 ]; then
  echo "No PostgreSQL at $URL; set STOREFRONT_TEST_POSTGRES_URL or run as root to install one." >&2
  exit 1
fi
if ! command -v pg_ctlcluster >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
# Everything below talks on stderr: stdout carries only the URL.
pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 2>/dev/null || true
for _ in $(seq 1 60); do pg_isready -q -h 127.0.0.1 && break; sleep 1; done
su postgres -c "psql -q -v ON_ERROR_STOP=1" >&2 <<'SQL'
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'storefront') THEN
    CREATE ROLE storefront LOGIN PASSWORD 'storefront' CREATEDB;
  END IF;
END $$;
SQL
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname = 'storefront_test'\"" | grep -q 1 \
  || su postgres -c "createdb -O storefront storefront_test" >&2
answers || { echo "PostgreSQL still does not answer at $URL" >&2; exit 1; }
echo "$URL"
