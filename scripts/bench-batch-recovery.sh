#!/usr/bin/env bash
# How the inbox's writer should survive one refused operation in a batch:
# times a 512-operation batch on a throwaway PostgreSQL cluster (fsync on)
# three ways, with pgbench, one client, 15 s each:
#   multi      64-row INSERTs in one transaction (what the writer does)
#   savepoint  one INSERT per operation between SAVEPOINT and RELEASE
#   onebyone   each operation its own transaction (the writer's recovery
#              after the database refused a batch)
# Prints pgbench's average latency for each. Needs Debian's postgresql.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
as_pg "$bin/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -o "-k $dir -p 5499 -c listen_addresses= -c fsync=on" -l "$dir/log" -w start >/dev/null
psql -h "$dir" -p 5499 -U postgres -qc "CREATE TABLE t (id text PRIMARY KEY, slug text, body text)"
python3 - "$dir" <<'PY'
import sys
d, rows = sys.argv[1], 512
head = "\\set r random(1, 2000000000)\n"
row = lambda tag, i: f"('{tag}-:client_id-:r-{i}','task.succeeded',repeat('x',1000))"
multi = ["BEGIN;"] + [
    "INSERT INTO t VALUES " + ",".join(row("m", 64 * c + i) for i in range(64)) + " ON CONFLICT DO NOTHING;"
    for c in range(rows // 64)
] + ["COMMIT;"]
savepoint = ["BEGIN;"]
for i in range(rows):
    savepoint += ["SAVEPOINT s;", f"INSERT INTO t VALUES {row('s', i)} ON CONFLICT DO NOTHING;", "RELEASE SAVEPOINT s;"]
savepoint += ["COMMIT;"]
onebyone = [f"INSERT INTO t VALUES {row('o', i)} ON CONFLICT DO NOTHING;" for i in range(rows)]
for name, lines in [("multi", multi), ("savepoint", savepoint), ("onebyone", onebyone)]:
    open(f"{d}/{name}.sql", "w").write(head + "\n".join(lines) + "\n")
PY
[ "$(id -u)" = 0 ] && chown postgres "$dir"/*.sql
for name in multi savepoint onebyone; do
    printf '%-10s ' "$name"
    as_pg "$bin/pgbench" -h "$dir" -p 5499 -U postgres -n -f "$dir/$name.sql" -c 1 -T 15 postgres 2>&1 | grep "latency average"
done
