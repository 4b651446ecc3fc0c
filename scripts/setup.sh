#!/usr/bin/env bash
# Installs what tend's demo and tests need on a fresh Debian/Ubuntu machine, and nothing
# when it is all there: PostgreSQL server and client programs (initdb, pg_ctl, postgres,
# psql, pg_dump, pg_restore), the unprivileged `postgres` OS user that runs local clusters
# when tend runs as root, openssl (the TLS tests make their own CA with it), and (with --for-tests) promtool, chromium, aiosmtpd and s3s-fs, the
# S3-compatible server over a directory that the backup tests store into (built from crates.io).
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
# The stock age CLI: tests prove a stored backup opens with it.
command -v age >/dev/null || need+=(age)
# promtool, from Debian's prometheus package: the tests check tend serve's /metrics and
# alert rules with it; chromium: they load tend serve's pages in it, headless (only for the
# tests).
if [[ "${1:-}" == "--for-tests" ]]; then
    command -v promtool >/dev/null || need+=(prometheus)
    command -v chromium >/dev/null || need+=(chromium)
fi

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
    # Nor start the services the packages ship (prometheus): only their programs are used.
    made_policy=false
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        made_policy=true
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if $made_policy; then rm -f /usr/sbin/policy-rc.d; fi
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

# aiosmtpd from PyPI: the SMTP server the alert tests send email to (only for the tests).
if [[ "${1:-}" == "--for-tests" ]] && ! python3 -c 'import aiosmtpd' 2>/dev/null; then
    echo "setup: installing aiosmtpd 1.4.6 from PyPI (the alert tests' SMTP server)" >&2
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd==1.4.6 2>/dev/null ||
        python3 -m pip install --quiet --disable-pip-version-check --break-system-packages aiosmtpd==1.4.6
fi

# The backup tests' S3 server, only for the tests (`scripts/setup.sh --for-tests`, which
# scripts/test.sh runs): the demo does not need it. 0.14.1 is the newest s3s-fs that builds
# on rustc 1.95 (0.15 and later need 1.96); `binary` is the feature that builds the program.
cargo_bin="${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"
if [[ "${1:-}" == "--for-tests" ]] && ! command -v s3s-fs >/dev/null && [[ ! -x "$cargo_bin/s3s-fs" ]]; then
    echo "setup: building s3s-fs 0.14.1 from crates.io with cargo install (about 5 minutes on 2 cores)" >&2
    cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet
fi
