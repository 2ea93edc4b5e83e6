#!/usr/bin/env bash
# Installs vswitch on this host: the `vswitch` binary, the `vswitch-cni` plugin, the systemd
# unit, an example config, shell completions and man pages. `--uninstall` removes exactly what
# an install put there (listed in $PREFIX/share/vswitch/installed-files) and keeps the config
# and the state.
#
#   scripts/install.sh [--prefix /usr/local] [--cni-bin-dir /opt/cni/bin] [--bin-dir DIR]
#                      [--destdir DIR] [--uninstall]
#
# --bin-dir takes already built binaries (default: `cargo build --release --locked`).
# --destdir installs under DIR (for packaging; no root needed, systemd is left alone).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

args=("$@")
prefix=/usr/local
cni_bin=/opt/cni/bin
bin_dir=
destdir=
uninstall=0
while (($#)); do
    case $1 in
    --prefix) prefix=${2:?--prefix needs a directory}; shift 2 ;;
    --cni-bin-dir) cni_bin=${2:?--cni-bin-dir needs a directory}; shift 2 ;;
    --bin-dir) bin_dir=${2:?--bin-dir needs a directory}; shift 2 ;;
    --destdir) destdir=${2:?--destdir needs a directory}; shift 2 ;;
    --uninstall) uninstall=1; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see scripts/install.sh --help)" ;;
    esac
done
[[ -n $destdir ]] || need_root ${args[@]+"${args[@]}"}

root=$destdir
manifest=$root$prefix/share/vswitch/installed-files
unit=$root/etc/systemd/system/vswitch.service
# systemd is told only on a live install on a host that runs it.
live_systemd() { [[ -z $destdir && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

if ((uninstall)); then
    [[ -f $manifest ]] || die "nothing to uninstall: $manifest does not exist"
    if live_systemd; then
        systemctl disable --now vswitch.service 2>/dev/null || true
    fi
    if [[ -z $destdir && -x $prefix/bin/vswitch ]]; then
        # The ports outlive the daemon; an uninstall removes them (refused while a daemon runs).
        "$prefix/bin/vswitch" daemon --cleanup || warn "ports left in containers: stop the daemon, then run 'vswitch daemon --cleanup'"
    fi
    while IFS= read -r f; do
        rm -f -- "$root$f"
    done <"$manifest"
    rm -f -- "$manifest"
    rmdir --ignore-fail-on-non-empty "$root$prefix/share/vswitch" 2>/dev/null || true
    live_systemd && systemctl daemon-reload
    say "vswitch uninstalled (kept: /etc/vswitch, /var/lib/vswitch)"
    exit 0
fi

if [[ -z $bin_dir ]]; then
    say "building (cargo build --release --locked)"
    cargo build --release --locked
    bin_dir=${CARGO_TARGET_DIR:-target}/release
fi
for b in vswitch vswitch-cni; do
    [[ -x $bin_dir/$b ]] || die "$bin_dir/$b is missing (build it, or point --bin-dir at it)"
done

installed=()
# put MODE SRC DEST — installs one file and records it for --uninstall.
put() {
    install -D -m "$1" "$2" "$root$3"
    installed+=("$3")
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

put 0755 "$bin_dir/vswitch" "$prefix/bin/vswitch"
put 0755 "$bin_dir/vswitch-cni" "$cni_bin/vswitch-cni"
sed "s|@BINDIR@|$prefix/bin|" dist/vswitch.service >"$tmp/vswitch.service"
put 0644 "$tmp/vswitch.service" /etc/systemd/system/vswitch.service
"$bin_dir/vswitch" completions bash >"$tmp/vswitch.bash"
"$bin_dir/vswitch" completions zsh >"$tmp/_vswitch"
"$bin_dir/vswitch" completions fish >"$tmp/vswitch.fish"
put 0644 "$tmp/vswitch.bash" "$prefix/share/bash-completion/completions/vswitch"
put 0644 "$tmp/_vswitch" "$prefix/share/zsh/site-functions/_vswitch"
put 0644 "$tmp/vswitch.fish" "$prefix/share/fish/vendor_completions.d/vswitch.fish"
"$bin_dir/vswitch" man "$tmp/man"
for page in "$tmp"/man/*.1; do
    put 0644 "$page" "$prefix/share/man/man1/$(basename "$page")"
done
# The config is the operator's: installed once, never overwritten or removed.
if [[ ! -e $root/etc/vswitch/vswitch.env ]]; then
    install -D -m 0644 dist/vswitch.env "$root/etc/vswitch/vswitch.env"
fi
install -D -m 0644 /dev/null "$manifest"
printf '%s\n' "${installed[@]}" >"$manifest"

live_systemd && systemctl daemon-reload
say "installed vswitch in $root$prefix, the CNI plugin in $root$cni_bin, the unit $unit"
note "set VSWITCH_DAEMON_ARGS in /etc/vswitch/vswitch.env, then: systemctl enable --now vswitch"
note "a CNI config example: dist/10-vswitch.conflist (into /etc/cni/net.d/)"
