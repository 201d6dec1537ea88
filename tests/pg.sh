#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster in a directory: start|stop|restart|status|env DIR.
# The cluster listens only on a unix socket inside DIR (no TCP), trusts local
# connections, and runs as the unprivileged user 'postgres' when the caller is
# root (initdb refuses root). Used by tests/run.sh and deploy/dev-db.sh.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then
	echo "usage: $0 start|stop|restart|status|env DIR" >&2
	exit 2
fi

PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
	echo "pg.sh: PostgreSQL server binaries not found (run 'make deps')" >&2
	exit 1
fi
port=${FB_PGPORT:-5432}
data="$dir/data"

as_pg() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}
pg_user() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

case "$cmd" in
start)
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chown postgres: "$dir"
		chmod 0755 "$dir"
		if ! runuser -u postgres -- test -w "$dir"; then
			echo "pg.sh: user postgres cannot reach $dir (a parent directory is not searchable by others)" >&2
			exit 1
		fi
	fi
	if [ ! -f "$data/PG_VERSION" ]; then
		as_pg "$PGBIN/initdb" -D "$data" -U "$(pg_user)" --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
		cat >>"$data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$dir'
port = $port
fsync = ${FB_PGFSYNC:-on}
max_connections = 200
shared_buffers = 128MB
log_min_messages = warning
CONF
	fi
	if as_pg "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		echo "pg.sh: already running in $dir"
	else
		as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null ||
			{ tail -n 20 "$dir/postgres.log" >&2; exit 1; }
	fi
	;;
stop)
	if [ -f "$data/PG_VERSION" ]; then
		as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	;;
restart)
	as_pg "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >/dev/null
	as_pg "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 start >/dev/null
	;;
status)
	as_pg "$PGBIN/pg_ctl" -D "$data" status
	;;
env)
	# The libpq connection string of the cluster's 'postgres' database.
	echo "host=$dir port=$port user=$(pg_user) dbname=postgres"
	;;
*)
	echo "usage: $0 start|stop|restart|status|env DIR" >&2
	exit 2
	;;
esac
