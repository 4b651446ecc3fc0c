#!/usr/bin/env bash
# Installs what tend's demo and tests need on a fresh Debian/Ubuntu machine, and nothing
# when it is all there: PostgreSQL server and client programs (initdb, pg_ctl, postgres,
# psql, pg_dump, pg_restore), the unprivileged `postgres` OS user that runs local clusters
# when tend runs as root, and openssl (the TLS tests make their own CA with it).
# Safe to run again; quiet when there is nothing to do.
set -euo pipefail

need=()
have_server=false
for dir in /usr/lib/postgresql/*/bin; do
    if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
        have_server=true
    fi
done
$have_server || need+=(postgresql)
command -v psql >/dev/null && command -v pg_dump >/dev/null || need+=(postgresql-client)
command -v openssl >/dev/null || need+=(openssl)

if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "setup: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    if ! command -v apt-get >/dev/null; then
        echo "setup: missing ${need[*]} and this is not a Debian-like system; install PostgreSQL server and client programs and openssl, then run this again" >&2
        exit 1
    fi
    echo "setup: installing ${need[*]} from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Debian's postgresql package would create and start a cluster of its own; tend needs
    # only the programs, so keep the package from doing that.
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/tend-no-main.conf
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# When run as root, local clusters run as this user (initdb and postgres refuse root).
if [[ $(id -u) -eq 0 ]] && ! id "${TEND_PG_USER:-postgres}" >/dev/null 2>&1; then
    echo "setup: creating the unprivileged OS user ${TEND_PG_USER:-postgres} for local clusters" >&2
    useradd --system --home-dir /var/lib/postgresql --create-home --shell /bin/bash "${TEND_PG_USER:-postgres}"
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo is missing; install the Rust toolchain (rustup) and run this again" >&2
    exit 1
fi
