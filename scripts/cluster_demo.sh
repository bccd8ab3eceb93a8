#!/usr/bin/env bash
# Two certbound nodes on one PostgreSQL database behind HAProxy in TCP mode (README: "Running
# several nodes"). TLS, and so mutual TLS, ends at certbound: HAProxy only passes bytes along, and
# checks each node's /readyz over TLS to take a node out when it is not ready.
#
# It creates a database, the dev PKI and a master key in a temporary directory, registers a
# tls_client_auth client, starts node A and node B and HAProxy on free loopback ports, gets
# certificate-bound tokens through HAProxy (and a refusal for another certificate), stops node A
# and gets tokens again (from B alone), then stops everything by PID and drops the database.
#
# Needs: Debian's haproxy (apt-get install -y haproxy), curl, a PostgreSQL it may create databases
# on (default postgresql://postgres@127.0.0.1:5432/test, trust auth; set CERTBOUND_DEMO_POSTGRES),
# and the project's virtualenv (make .venv/.installed-stamp), whose python runs certbound.
#
#     scripts/cluster_demo.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${CERTBOUND_PYTHON:-$ROOT/.venv/bin/python}"
ADMIN_URL="${CERTBOUND_DEMO_POSTGRES:-postgresql://postgres@127.0.0.1:5432/test}"

for tool in haproxy curl; do
    command -v "$tool" >/dev/null || { echo "cluster_demo: $tool is missing (apt-get install -y $tool)" >&2; exit 2; }
done
[ -x "$PYTHON" ] || { echo "cluster_demo: no $PYTHON: run make .venv/.installed-stamp" >&2; exit 2; }

certbound() { "$PYTHON" -m certbound "$@"; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Run SQL on the admin database (no psql needed).
admin_sql() { "$PYTHON" "$ROOT/scripts/postgres_sql.py" "$ADMIN_URL" "$1"; }

WORK="$(mktemp -d)"
DB_NAME="certbound_demo_$$"
DB_URL="${ADMIN_URL%/*}/$DB_NAME"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    admin_sql "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

LB_PORT="$(free_port)"; A_PORT="$(free_port)"; B_PORT="$(free_port)"
ISSUER="https://localhost:$LB_PORT"  # one issuer for all nodes: the address clients use
PKI="$WORK/pki"
KEY="$WORK/master.key"               # every node and every CLI call on the database uses it

echo "== database $DB_NAME, PKI and master key in $WORK"
admin_sql "CREATE DATABASE \"$DB_NAME\""
certbound certs dev --out "$PKI" >/dev/null
DB=(--db "$DB_URL" --master-key-file "$KEY")

echo "== registering a tls_client_auth client (CN=client1,O=certbound dev)"
certbound clients add "${DB[@]}" --client-id demo-mtls --method tls_client_auth \
    --subject-dn "CN=client1,O=certbound dev" --grant-type client_credentials

start_node() {  # name port (the python process itself, not a subshell: its PID is the server's)
    "$PYTHON" -m certbound serve "${DB[@]}" --host 127.0.0.1 --port "$2" --issuer "$ISSUER" \
        --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key" --client-ca "$PKI/client-ca.pem" \
        >"$WORK/$1.out" 2>"$WORK/$1.log" &
    PIDS+=("$!")
    eval "${1}_PID=$!"
}
wait_for() {  # description command...
    local what="$1"; shift
    for _ in $(seq 1 100); do "$@" && return 0; sleep 0.2; done
    echo "cluster_demo: $what did not happen" >&2
    tail -n 5 "$WORK"/*.log "$WORK/states" >&2 2>/dev/null || true
    exit 1
}
echo "== starting node A on :$A_PORT and node B on :$B_PORT"
start_node A "$A_PORT"
start_node B "$B_PORT"
wait_for "node A ready" grep -q "listening on" "$WORK/A.out"
wait_for "node B ready" grep -q "listening on" "$WORK/B.out"

cat >"$WORK/haproxy.cfg" <<EOF
global
    stats socket $WORK/haproxy.sock mode 600 level admin

defaults
    mode tcp
    option redispatch  # a node that refuses the connection: try another
    retries 2
    timeout connect 2s
    timeout client 65s
    timeout server 65s

frontend certbound
    bind 127.0.0.1:$LB_PORT
    default_backend nodes

backend nodes
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    default-server check check-ssl verify required ca-file $PKI/server-ca.pem verifyhost localhost inter 1s fall 2 rise 1
    server a 127.0.0.1:$A_PORT
    server b 127.0.0.1:$B_PORT
EOF
echo "== HAProxy (mode tcp) on :$LB_PORT -> A, B"
haproxy -c -q -f "$WORK/haproxy.cfg"
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=("$!")

# Per-server state and sessions from HAProxy's stats socket: "a UP 3".
haproxy_stats() {
    "$PYTHON" - "$WORK/haproxy.sock" <<'EOF'
import socket, sys
with socket.socket(socket.AF_UNIX) as sock:
    sock.connect(sys.argv[1])
    sock.sendall(b"show stat\n")
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
header, *rows = data.decode().splitlines()
names = header.lstrip("# ").split(",")
for row in rows:
    fields = dict(zip(names, row.split(",")))
    if fields.get("pxname") == "nodes" and fields.get("svname") in ("a", "b"):
        print(fields["svname"], fields["status"], fields["stot"])
EOF
}
both_up() { [ "$(haproxy_stats 2>/dev/null | grep -c ' UP ')" = 2 ]; }
wait_for "HAProxy sees both nodes UP" both_up

# A token request through HAProxy with a client certificate; prints "HTTP-status body".
token() {  # certificate-name
    curl -sS --cacert "$PKI/server-ca.pem" --resolve "localhost:$LB_PORT:127.0.0.1" \
        --cert "$PKI/$1.pem" --key "$PKI/$1.key" -w ' %{http_code}' \
        -d grant_type=client_credentials -d client_id=demo-mtls "$ISSUER/token"
}
# "200 kid=... cnf.x5t#S256=... (matches client1.pem)" from a token response.
describe() {  # response certificate-name
    "$PYTHON" - "$1" "$PKI/$2.pem" <<'EOF'
import base64, hashlib, json, ssl, sys
body, status = sys.argv[1].rsplit(" ", 1)
answer = json.loads(body)
if status != "200":
    print(status, answer["error"], "-", answer.get("error_description", ""))
    sys.exit(0)
segment = answer["access_token"].split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
header = answer["access_token"].split(".")[0]
kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
der = ssl.PEM_cert_to_DER_cert(open(sys.argv[2]).read())
thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
bound = claims["cnf"]["x5t#S256"]
print(status, f"kid={kid[:12]}…", f"cnf.x5t#S256={bound[:12]}…", "(matches the certificate)" if bound == thumbprint else "(MISMATCH)")
EOF
}

echo "== six token requests through HAProxy, each on a new connection (round robin)"
for n in 1 2 3 4 5 6; do echo "token $n: $(describe "$(token client1)" client1)"; done
echo "== the same client_id with another certificate (CN=client2)"
echo "refused: $(describe "$(token client2)" client2)"
echo "== HAProxy: server state sessions"
haproxy_stats

echo "== stopping node A (SIGTERM); HAProxy takes it out, B serves alone"
kill -TERM "$A_PID"
wait "$A_PID" || true
a_down() { haproxy_stats 2>/dev/null | tee -a "$WORK/states" | grep -q '^a DOWN'; }
wait_for "HAProxy marks node A DOWN" a_down
for n in 7 8 9; do echo "token $n: $(describe "$(token client1)" client1)"; done
haproxy_stats
echo "== done"
