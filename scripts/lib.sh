# Shared shell functions for awa's scripts (sourced, not run).
# Everything here works on a fresh Debian 12 machine as root.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_CONFIG=${PG_CONFIG:-$PG_BIN/pg_config}
AWA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\n==> %s\n' "$*"; }

# awa_install_packages [EXTRA_PACKAGE...]: scripts/setup.sh (the package list lives there).
awa_install_packages() { bash "$AWA_ROOT/scripts/setup.sh" "$@"; }

# Build and install the extension into the system PostgreSQL.
awa_build_install() {
	log "building and installing awa"
	make -C "$AWA_ROOT" -s PG_CONFIG="$PG_CONFIG" with_llvm=no
	make -C "$AWA_ROOT" -s PG_CONFIG="$PG_CONFIG" with_llvm=no install >/dev/null
}

# awa_cluster_start DIR PORT [extra postgres -c options...]
# initdb (as postgres) in DIR/data unless it exists, start it on PORT with its socket in DIR.
awa_cluster_start() {
	local dir=$1 port=$2; shift 2
	local opts="-p $port -k $dir -c listen_addresses= -c shared_preload_libraries=awa"
	local o
	for o in "$@"; do opts="$opts -c $o"; done
	mkdir -p "$dir"; chown postgres:postgres "$dir"; chmod 700 "$dir"
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		su postgres -c "$PG_BIN/initdb -D $dir/data -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-instructions" >/dev/null
	fi
	su postgres -c "$PG_BIN/pg_ctl -D $dir/data -l $dir/log -w -t 60 -o '$opts' start" >/dev/null
	export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# awa_cluster_stop DIR
awa_cluster_stop() {
	local dir=$1
	[ -f "$dir/data/postmaster.pid" ] && su postgres -c "$PG_BIN/pg_ctl -D $dir/data -m fast -w stop" >/dev/null || true
}
