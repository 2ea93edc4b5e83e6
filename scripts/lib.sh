# shellcheck shell=bash
# Helpers shared by the vswitch scripts (demo, bench-e2e, lab). Source it, then call
# `vs_init PREFIX` once:
#
#     . "$(dirname "$0")/lib.sh"
#     need_root "$@"
#     vs_init "vsd$$"          # unique prefix; registers the cleanup trap
#
# Traffic rule these helpers keep: every namespace and link they create carries the prefix
# (namespaces `PREFIX-...`, links `PREFIX-...`), links are created directly inside the
# namespaces that use them (nothing of ours lives in the root namespace), the underlay is
# 192.0.2.0/24 inside our namespaces, and no namespace gets a default route. `cleanup` (run on
# EXIT, INT and TERM) kills only the PIDs we recorded and deletes only namespaces/links with
# our prefix.

VS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The vswitch binary. A relative VSWITCH is taken relative to the caller's directory.
if [[ -n ${VSWITCH:-} ]]; then
    VS_VSWITCH_FROM_ENV=1
    [[ $VSWITCH == /* ]] || VSWITCH=$PWD/$VSWITCH
else
    VS_VSWITCH_FROM_ENV=0
    VSWITCH=$VS_ROOT/target/release/vswitch
fi
export VSWITCH

VS_PREFIX=
VS_WORK=
# Where track_pid records PIDs; a script may point it at another file under $VS_WORK
# (named pids*) for a group of processes it stops early.
export VS_PIDFILE=
VS_CLEANED=

# ---------------------------------------------------------------------------------------------
# Output

if [[ -t 1 ]]; then
    _vs_b=$'\e[1m' _vs_r=$'\e[31m' _vs_y=$'\e[33m' _vs_0=$'\e[0m'
else
    _vs_b='' _vs_r='' _vs_y='' _vs_0=''
fi

say() { printf '%s==> %s%s\n' "$_vs_b" "$*" "$_vs_0"; }
note() { printf '%s    note: %s%s\n' "$_vs_y" "$*" "$_vs_0"; }
warn() { printf '%swarning: %s%s\n' "$_vs_y" "$*" "$_vs_0" >&2; }
# fail LINE... — a red report on stderr, without exiting.
fail() { printf '%s%s%s\n' "$_vs_r" "$(printf '%s\n' "$@")" "$_vs_0" >&2; }
die() {
    printf '%serror: %s%s\n' "$_vs_r" "$*" "$_vs_0" >&2
    exit 1
}

# Print a command, then run it (for the demo: the user sees what is typed).
show() {
    printf '    $ %s\n' "$*"
    "$@"
}

# ---------------------------------------------------------------------------------------------
# Prerequisites

# need_root "$@" — as root, carry on; otherwise re-run the calling script through sudo when
# sudo exists (keeping VSWITCH, FUZZ_SECONDS and the like), or stop with a clear message.
need_root() {
    [[ $EUID -eq 0 ]] && return 0
    if command -v sudo >/dev/null 2>&1; then
        note "this script creates network namespaces and TAPs: re-running it with sudo"
        exec sudo --preserve-env "$0" "$@"
    fi
    die "this script creates network namespaces and TAPs: run it as root (no sudo here)"
}

# ensure_pkgs PKG[:CMD]... — apt-get install the packages that are missing. With `:CMD`, the
# package counts as present when CMD is on PATH (e.g. python3 from pyenv); otherwise dpkg
# decides. `apt-get update` runs only when something is missing.
ensure_pkgs() {
    local spec pkg cmd missing=()
    for spec in "$@"; do
        pkg=${spec%%:*}
        cmd=
        [[ $spec == *:* ]] && cmd=${spec#*:}
        if [[ -n $cmd ]]; then
            command -v "$cmd" >/dev/null 2>&1 && continue
        elif dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            continue
        fi
        missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages (${missing[*]}) and no apt-get to install them"
    say "installing missing packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update failed (needed to install: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
        die "apt-get install failed for: ${missing[*]}"
}

# ensure_quiet_pkgs SPEC... — ensure_pkgs for packages that ship a service, which must not
# start: a policy-rc.d forbids it while installing (etcd or prometheus would listen on the
# machine's network, dockerd would make a bridge and firewall rules in the root namespace).
# Tests run what they need themselves, in a namespace.
ensure_quiet_pkgs() {
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        ensure_pkgs "$@"
        rm -f /usr/sbin/policy-rc.d
    else
        ensure_pkgs "$@"
    fi
}

# ensure_etcd — Debian's etcd-server, without its own service. Tests and demos run etcd
# themselves, in a namespace, on an address they assigned.
ensure_etcd() {
    command -v etcd >/dev/null 2>&1 && return 0
    ensure_quiet_pkgs etcd-server:etcd
}

# start_etcd NS IP — one etcd member in namespace NS serving clients on IP:2379 (its peer port
# on the namespace's loopback only), data in the work dir; waits until it serves. Sets
# ETCD_PID.
start_etcd() {
    local ns=$1 ip=$2
    spawn "$VS_WORK/etcd.log" "$ns" etcd --name e1 --data-dir "$VS_WORK/etcd" \
        --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster e1=http://127.0.0.1:2380
    ETCD_PID=$SPAWN_PID
    wait_listen "$ns" 2379 30 || {
        dump_log "$VS_WORK/etcd.log"
        return 1
    }
}

# Find cargo even under sudo, where ~/.cargo/bin is often not on PATH.
_vs_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        command -v cargo
    elif [[ -x ${HOME:-/root}/.cargo/bin/cargo ]]; then
        echo "${HOME:-/root}/.cargo/bin/cargo"
    elif [[ -n ${SUDO_USER:-} ]]; then
        local h
        h=$(getent passwd "$SUDO_USER" | cut -d: -f6)
        [[ -x $h/.cargo/bin/cargo ]] && echo "$h/.cargo/bin/cargo"
    fi
}

# build_release — `cargo build --release`, unless the user pointed VSWITCH at a binary.
build_release() {
    if ((VS_VSWITCH_FROM_ENV)); then
        note "VSWITCH=$VSWITCH given; not building"
    else
        local cargo
        cargo=$(_vs_cargo)
        [[ -n $cargo ]] || die "cargo not found; install Rust (https://rustup.rs) or set VSWITCH=/path/to/vswitch"
        say "building vswitch (cargo build --release)"
        (cd "$VS_ROOT" && "$cargo" build --release --bin vswitch) || die "cargo build --release failed"
    fi
    [[ -x $VSWITCH ]] || die "no vswitch binary at $VSWITCH"
}

# ---------------------------------------------------------------------------------------------
# Lifecycle

# vs_init PREFIX — remember the prefix, make a work dir, register the cleanup trap.
vs_init() {
    VS_PREFIX=$1
    [[ $VS_PREFIX =~ ^[a-z]+[0-9]+$ ]] || die "vs_init: prefix must look like vsb1234, got '$VS_PREFIX'"
    # Links are named PREFIX-xxx and Linux allows 15 characters.
    ((${#VS_PREFIX} <= 10)) || die "vs_init: prefix '$VS_PREFIX' too long for interface names"
    VS_WORK=$(mktemp -d "/tmp/$VS_PREFIX.XXXXXX")
    VS_PIDFILE=$VS_WORK/pids
    : >"$VS_PIDFILE"
    trap cleanup EXIT
    trap 'cleanup 130' INT
    trap 'cleanup 143' TERM
}

# Process start time (jiffies since boot), to recognise our PIDs after they may be reused.
# (`read <file`, not `$(<file)`: the latter exits a `set -e` shell when the file is gone.)
_vs_starttime() {
    local stat fields
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    read -ra fields <<<"${stat##*) }"
    echo "${fields[19]}"
}

_vs_alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
}

# track_pid PID — remember a process we started so cleanup can stop it.
track_pid() {
    local st
    st=$(_vs_starttime "$1") || return 0 # already gone
    echo "$1 $st" >>"$VS_PIDFILE"
}

# spawn LOG NS CMD... — run CMD in namespace NS in the background, output to LOG.
# Sets SPAWN_PID.
spawn() {
    local log=$1 ns=$2
    shift 2
    ip netns exec "$ns" "$@" >"$log" 2>&1 &
    SPAWN_PID=$!
    track_pid "$SPAWN_PID"
}

# stop_pid PID — SIGTERM, wait up to 5 s, then SIGKILL. Only PIDs recorded by track_pid, and
# only if the start time still matches (so a reused PID is never touched).
stop_pid() {
    local pid=$1 line st want i
    line=$(grep -h "^$pid " "$VS_WORK"/pids* 2>/dev/null | tail -n1) || true
    [[ -n $line ]] || return 0
    want=${line#* }
    st=$(_vs_starttime "$pid") || return 0
    [[ $st == "$want" ]] || return 0
    _vs_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        _vs_alive "$pid" || break
        sleep 0.1
    done
    if _vs_alive "$pid"; then
        warn "PID $pid ignored SIGTERM for 5 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

# Namespaces whose name starts with PREFIX (default: all of ours).
our_netns() {
    local p=${1:-$VS_PREFIX-}
    ip netns list 2>/dev/null | awk '{print $1}' | while read -r ns; do
        [[ $ns == "$p"* ]] && echo "$ns"
    done
}

# del_netns_prefix PREFIX — delete our namespaces whose names start with PREFIX.
del_netns_prefix() {
    local ns
    for ns in $(our_netns "$1"); do
        ip netns del "$ns" 2>/dev/null || warn "could not delete netns $ns"
    done
}

cleanup() {
    local rc=${1:-$?} pid _ ns link nproc=0 nns=0
    [[ -n $VS_CLEANED ]] && return 0
    VS_CLEANED=1
    trap '' INT TERM
    set +e
    if [[ -n $VS_WORK && -d $VS_WORK ]]; then
        # Newest first: clients before the daemons they talk to.
        while read -r pid _; do
            [[ -n $pid ]] && _vs_alive "$pid" && nproc=$((nproc + 1))
            [[ -n $pid ]] && stop_pid "$pid"
        done < <(cat "$VS_WORK"/pids* 2>/dev/null | tac)
    fi
    if [[ -n $VS_PREFIX ]]; then
        for ns in $(our_netns); do
            ip netns del "$ns" 2>/dev/null || warn "could not delete netns $ns"
            nns=$((nns + 1))
        done
        # Nothing of ours should be in the root namespace, but sweep anyway.
        for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//'); do
            [[ $link == "$VS_PREFIX"-* ]] && ip link del "$link" 2>/dev/null
        done
    fi
    if [[ -n ${VS_KEEP_WORK:-} ]]; then
        note "work dir kept: $VS_WORK"
    elif [[ -n $VS_WORK && $VS_WORK == /tmp/"$VS_PREFIX".* ]]; then
        rm -rf "$VS_WORK"
    fi
    if [[ -n ${VS_CLEANUP_REPORT:-} ]]; then
        echo "     stopped $nproc process(es), deleted $nns namespace(s); left behind:" \
            "$(our_netns | wc -l) namespaces, $(ip -o link show | grep -c "$VS_PREFIX-") links"
    fi
    trap - EXIT INT TERM
    exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# Topology

# mk_ns NAME — a namespace with loopback up.
mk_ns() {
    [[ $1 == "$VS_PREFIX"-* ]] || die "mk_ns: '$1' does not carry the prefix $VS_PREFIX-"
    ip netns add "$1"
    ip -n "$1" link set lo up
}

# mk_host NAME — a simulated host: its own namespace, later with an underlay link.
mk_host() { mk_ns "$1"; }

# mk_container NAME — a container: a namespace with only loopback; vswitch attach or a veth
# gives it eth0.
mk_container() { mk_ns "$1"; }

_vs_check_ifname() {
    [[ $1 == "$VS_PREFIX"-* ]] || die "link name '$1' does not carry the prefix $VS_PREFIX-"
    ((${#1} <= 15)) || die "link name '$1' is longer than 15 characters"
}

# mk_veth NS1 IF1 NS2 IF2 [MTU] — a veth pair with one end in each namespace, both up.
mk_veth() {
    local ns1=$1 if1=$2 ns2=$3 if2=$4 mtu=${5:-1500}
    _vs_check_ifname "$if1"
    _vs_check_ifname "$if2"
    ip link add name "$if1" netns "$ns1" mtu "$mtu" type veth peer name "$if2" netns "$ns2" mtu "$mtu"
    ip -n "$ns1" link set "$if1" up
    ip -n "$ns2" link set "$if2" up
}

# host_ip N — underlay address of the Nth host given to mk_underlay.
host_ip() { echo "192.0.2.$1"; }

# The underlay interface name inside each host namespace.
underlay_if() { echo "$VS_PREFIX-ul"; }

# mk_underlay HOST1 HOST2 [HOST3...] — join hosts on 192.0.2.0/24, MTU 1500 (host N gets
# 192.0.2.N). Two hosts: one veth pair. More: a bridge inside its own namespace
# (`<HOST1>-sw`), each host veth'd to it. No default routes anywhere.
mk_underlay() {
    (($# >= 2)) || die "mk_underlay needs at least two hosts"
    local ul i=1 h sw
    ul=$(underlay_if)
    if (($# == 2)); then
        mk_veth "$1" "$ul" "$2" "$ul" 1500
    else
        sw=$1-sw
        mk_ns "$sw"
        ip -n "$sw" link add "$VS_PREFIX-br" type bridge
        ip -n "$sw" link set "$VS_PREFIX-br" up
        for h in "$@"; do
            mk_veth "$h" "$ul" "$sw" "$VS_PREFIX-p$i" 1500
            ip -n "$sw" link set "$VS_PREFIX-p$i" master "$VS_PREFIX-br"
            i=$((i + 1))
        done
    fi
    i=1
    for h in "$@"; do
        ip -n "$h" addr add "$(host_ip "$i")/24" dev "$ul"
        i=$((i + 1))
    done
}

# ---------------------------------------------------------------------------------------------
# vswitch

# vsctl SOCK ARGS... — the vswitch CLI against one daemon's control socket.
vsctl() {
    local sock=$1
    shift
    "$VSWITCH" --socket "$sock" "$@"
}

# start_daemon HOSTNS SOCK STATEDIR ARGS... — run `vswitch daemon` inside HOSTNS in the
# background, wait (VS_DAEMON_TIMEOUT, default 15 s) for its control socket. On failure print
# the daemon's log and return 1. Sets DAEMON_PID and DAEMON_LOG.
start_daemon() {
    local ns=$1 sock=$2 state=$3 timeout=${VS_DAEMON_TIMEOUT:-15} i
    shift 3
    DAEMON_LOG=$VS_WORK/daemon-$ns.log
    mkdir -p "$state" "$(dirname "$sock")"
    rm -f "$sock"
    RUST_LOG=${RUST_LOG:-info} spawn "$DAEMON_LOG" "$ns" \
        "$VSWITCH" --socket "$sock" daemon --state-dir "$state" "$@"
    DAEMON_PID=$SPAWN_PID
    for ((i = 0; i < timeout * 10; i++)); do
        [[ -S $sock ]] && return 0
        if ! _vs_alive "$DAEMON_PID"; then
            local rc=0
            wait "$DAEMON_PID" 2>/dev/null || rc=$?
            printf 'vswitch daemon in %s exited (status %s) before creating %s\n' "$ns" "$rc" "$sock" >&2
            dump_log "$DAEMON_LOG"
            return 1
        fi
        sleep 0.1
    done
    printf 'vswitch daemon in %s did not create %s within %s s\n' "$ns" "$sock" "$timeout" >&2
    dump_log "$DAEMON_LOG"
    return 1
}

# dump_log FILE [LINES] — the tail of a log, indented, to stderr.
dump_log() {
    local f=$1 n=${2:-40}
    {
        echo "---- last $n lines of $f ----"
        if [[ -s $f ]]; then tail -n "$n" "$f" | sed 's/^/    /'; else echo "    (empty)"; fi
        echo "----"
    } >&2
}

# ---------------------------------------------------------------------------------------------
# Waiting

# wait_ping NS DST [SECONDS] — until one ping from NS to DST succeeds (default 10 s).
wait_ping() {
    local ns=$1 dst=$2 t=${3:-10} end
    end=$((SECONDS + t))
    while ((SECONDS < end)); do
        ip netns exec "$ns" ping -n -c 1 -W 1 "$dst" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# wait_listen NS PORT [SECONDS] — until something listens on TCP PORT in NS (default 5 s).
wait_listen() {
    local ns=$1 port=$2 t=${3:-5} i
    for ((i = 0; i < t * 10; i++)); do
        [[ -n $(ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null) ]] && return 0
        sleep 0.1
    done
    return 1
}
