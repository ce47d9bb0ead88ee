# Shared helpers of the scripts in this folder (sourced, not run).

ensure_uv() {
    if ! command -v uv >/dev/null 2>&1; then
        export PATH="$HOME/.local/bin:$PATH"
    fi
    if ! command -v uv >/dev/null 2>&1; then
        echo "installing uv (the Python package manager that reads uv.lock)" >&2
        # A user install; Debian's system Python refuses it ("externally managed") unless
        # asked, and a private virtual environment works where pip itself is missing.
        python3 -m pip install --quiet --user uv 2>/dev/null \
            || python3 -m pip install --quiet --user --break-system-packages uv 2>/dev/null \
            || { python3 -m venv "$HOME/.local/share/opencbr-uv" \
                 && "$HOME/.local/share/opencbr-uv/bin/pip" install --quiet uv \
                 && mkdir -p "$HOME/.local/bin" \
                 && ln -sf "$HOME/.local/share/opencbr-uv/bin/uv" "$HOME/.local/bin/uv"; }
    fi
    if ! command -v uv >/dev/null 2>&1; then
        echo "could not install uv: install it (https://docs.astral.sh/uv/) and run again" >&2
        return 1
    fi
}

install_locked() {
    # Exactly the versions in uv.lock (extra arguments go to `uv sync`), compiled ahead of time:
    # where PYTHONDONTWRITEBYTECODE is set, Python caches nothing, and every process would
    # compile each module it imports on every start (about 2 s for the server).
    UV_COMPILE_BYTECODE=1 uv sync --frozen --quiet "$@"
    uv run --frozen --no-sync python -m compileall -q src >/dev/null
}

ensure_postgres() {
    # PostgreSQL on 127.0.0.1:5432 with trust auth; start the local cluster when it is down.
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        echo "PostgreSQL is not installed: apt-get install postgresql" >&2
        return 1
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && return 0
        sleep 1
    done
    echo "PostgreSQL did not become ready" >&2
    return 1
}
