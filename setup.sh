#!/usr/bin/env bash
# The one command of pycontainers.
#
#   ./setup.sh            set everything up (idempotent; a second run does no download, no reinstall)
#   ./setup.sh lab [...]  set up, then open JupyterLab on notebooks/00-setup.ipynb (args go to jupyter)
#   ./setup.sh test [...] set up, then run every test: pytest + nbval (args go to pytest)
#
# Environment: PYCONTAINERS_VENV  where the virtual environment lives (default: <repo>/.venv)
set -euo pipefail

# Debian/Ubuntu packages the engine and the course use. Add new ones here (qemu-system-x86, ...).
SYSTEM_PACKAGES=(
    graphviz
    busybox-static
    tini
    skopeo
    umoci
    docker-registry
    mmdebstrap
    fakechroot
    fakeroot
    cpio
    runc
    buildah
    proot
    uidmap
    libseccomp2
    python3-venv
    ca-certificates
    debian-archive-keyring
    qemu-system-x86
    nftables
    iproute2
)
EDITABLE_MODE="editable_mode=compat"
# Interpreters to try, best first; the first one that is >= 3.11 wins.
PYTHON_CANDIDATES=(python3.13 python3.12 python3.11 python3)

SELF="$(readlink -f "$0")"
REPO="$(dirname "$SELF")"
cd "$REPO"
VENV="${PYCONTAINERS_VENV:-$REPO/.venv}"
STAMP="$VENV/.pycontainers-installed"

step() { printf '==> %s\n' "$*"; }
warn() { printf 'pycontainers: %s\n' "$*" >&2; }
die() {
    warn "$*"
    exit 1
}

# a. System packages -----------------------------------------------------------------------------
system_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        warn "not a Debian/Ubuntu system (no dpkg); install the equivalents of: ${SYSTEM_PACKAGES[*]}"
        return 0
    fi
    local -A installed=()
    local name status
    # One dpkg-query for all packages; unknown packages only produce a message on stderr.
    while IFS=$'\t' read -r name status; do
        [[ $status == "install ok installed" ]] && installed[$name]=1
    done < <(dpkg-query -W -f='${Package}\t${Status}\n' "${SYSTEM_PACKAGES[@]}" 2>/dev/null || true)
    local missing=() pkg
    for pkg in "${SYSTEM_PACKAGES[@]}"; do
        [[ -n ${installed[$pkg]:-} ]] || missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0

    if ((EUID != 0)); then
        warn "missing system packages; ask an administrator to run: sudo apt-get install -y ${missing[*]}"
        return 0
    fi
    step "installing system packages: ${missing[*]}"
    apt-get update -qq || warn "apt-get update failed; trying to install from the current package lists"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
        >/dev/null; then
        warn "apt-get install failed; continuing without: ${missing[*]}"
    fi
}

# b. Python virtual environment -----------------------------------------------------------------
find_python() {
    local candidate
    for candidate in "${PYTHON_CANDIDATES[@]}"; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

python_env() {
    local fresh=0
    if [[ ! -x $VENV/bin/python || ! -e $VENV/bin/pip ]]; then
        local python out existed=0
        [[ -e $VENV ]] && existed=1
        python="$(find_python)" ||
            die "no Python >= 3.11 found (tried ${PYTHON_CANDIDATES[*]}); install python3.11 or newer"
        step "creating virtual environment $VENV ($python)"
        if ! out="$("$python" -m venv "$VENV" 2>&1)"; then
            ((existed)) || rm -rf "$VENV"
            if [[ $out == *ensurepip* ]]; then
                die "$python cannot create a venv (ensurepip is missing): install the apt package python3-venv"
            fi
            printf '%s\n' "$out" >&2
            die "could not create the virtual environment $VENV"
        fi
        fresh=1
    elif ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
        die "the virtual environment $VENV is broken or older than Python 3.11: remove it and run ./setup.sh again"
    fi

    # Byte-code for the package, compiled now: with PYTHONDONTWRITEBYTECODE set (as in some
    # environments) every `pycontainers` command would otherwise recompile every module it imports.
    "$VENV/bin/python" -m compileall -q pycontainers >/dev/null || warn "could not precompile pycontainers"

    local want have=""
    want="$( (cat pyproject.toml; echo "$EDITABLE_MODE") | sha256sum | cut -d' ' -f1)"
    [[ -f $STAMP ]] && have="$(<"$STAMP")"
    [[ $want == "$have" ]] && return 0

    step "installing pycontainers and its Python dependencies into $VENV"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    if ((fresh)); then
        "$VENV/bin/python" -m pip install --quiet --quiet --upgrade pip || warn "could not upgrade pip; continuing"
    fi
    rm -f "$STAMP"
    # compat: a plain .pth path entry instead of an import hook, which costs every command ~20 ms
    "$VENV/bin/python" -m pip install --quiet --quiet -e ".[lab,test]" --config-settings "$EDITABLE_MODE" ||
        die "pip install -e \".[lab,test]\" failed (see the errors above)"
    printf '%s\n' "$want" >"$STAMP"
}

# c. Base images ---------------------------------------------------------------------------------
base_images() {
    step "base images (busybox, debian:bookworm-slim, python:3.11-slim) and the wheels their builds install"
    local log rc=0
    log="$(mktemp)"
    # stdout and stderr still reach the terminal; stderr is also kept to summarise a failure.
    { "$VENV/bin/pycontainers" system bases 2>&1 1>&3 3>&- | tee "$log" >&2; } 3>&1 || rc=$?
    if ((rc != 0)); then
        local last
        last="$(grep -v '^[[:space:]]*$' "$log" | tail -n 1 || true)"
        rm -f "$log"
        die "could not build the base images ('pycontainers system bases' exited $rc)${last:+: $last}"
    fi
    rm -f "$log"
}

# d. Guest kernel --------------------------------------------------------------------------------
# The VM-versus-container notebook boots a real Linux kernel in QEMU. Debian's cloud kernel is small and
# boots fast on a serial console; it is unpacked (dpkg -x), never installed, so no root is needed.
vm_kernel() {
    local cache="${XDG_CACHE_HOME:-$HOME/.cache}/pycontainers/kernel"
    [[ -s $cache/vmlinuz ]] && return 0
    step "guest kernel for the VM notebook (Debian linux-image-cloud-amd64)"
    if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
        warn "no apt-get/dpkg: cannot fetch a guest kernel; set PYCONTAINERS_KERNEL to a bzImage (VM parts skip)"
        return 0
    fi
    local tmp pkg image
    tmp="$(mktemp -d)"
    # The metapackage only depends on the versioned package that holds the kernel: download that one.
    pkg="$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -n 1 || true)"
    if [[ -n $pkg ]] &&
        (cd "$tmp" && apt-get download -qq "$pkg" >/dev/null 2>&1) &&
        dpkg -x "$tmp"/"$pkg"_*.deb "$tmp/root" &&
        image="$(compgen -G "$tmp/root/boot/vmlinuz-*" | head -n 1)" && [[ -n $image ]]; then
        mkdir -p "$cache"
        cp "$image" "$cache/vmlinuz.part" && mv "$cache/vmlinuz.part" "$cache/vmlinuz"
        printf '%s\n' "$(basename "$image")" >"$cache/release"
    else
        warn "could not fetch a guest kernel (${pkg:-linux-image-*-cloud-amd64} via apt-get download); the VM parts will be skipped"
    fi
    rm -rf "$tmp"
}

setup() {
    step "system packages"
    system_packages
    step "python environment"
    python_env
    base_images
    vm_kernel
    step "ready"
}

# Commands ---------------------------------------------------------------------------------------
run_lab() {
    local args=(--notebook-dir="$REPO/notebooks" --ip=127.0.0.1)
    if [[ -z ${DISPLAY:-} && -z ${WAYLAND_DISPLAY:-} && $(uname -s) != Darwin ]]; then
        args+=(--no-browser)
    fi
    ((EUID == 0)) && args+=(--allow-root)
    if [[ -f $REPO/notebooks/00-setup.ipynb ]]; then
        # The URL Jupyter prints (and the browser it opens) then lands on the first notebook.
        args+=(--LabApp.default_url=/lab/tree/00-setup.ipynb)
        step "JupyterLab: open the http://127.0.0.1:<port>/lab/tree/00-setup.ipynb?token=... URL it prints below"
    else
        step "JupyterLab: open the http://127.0.0.1:<port>/lab?token=... URL it prints below"
    fi
    exec "$VENV/bin/jupyter" lab "${args[@]}" "$@"
}

run_tests() {
    if compgen -G "notebooks/*.ipynb" >/dev/null; then
        exec "$VENV/bin/python" -m pytest tests notebooks --nbval --nbval-current-env \
            --nbval-sanitize-with notebooks/sanitize.cfg -p no:cacheprovider "$@"
    fi
    exec "$VENV/bin/python" -m pytest tests -p no:cacheprovider "$@"
}

main() {
    local command="${1:-}"
    case "$command" in
        "") setup ;;
        lab)
            shift
            setup
            run_lab "$@"
            ;;
        test)
            shift
            setup
            run_tests "$@"
            ;;
        -h | --help | help)
            sed -n '2,8s/^# \{0,1\}//p' "$SELF"
            ;;
        *) die "unknown command '$command' (usage: ./setup.sh [lab|test] [args...])" ;;
    esac
}

main "$@"
