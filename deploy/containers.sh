#!/bin/bash
# Container tooling for `make containers`, `make image` and the container tests.
#   bash deploy/containers.sh setup         install podman (+ buildah, runc, podman-compose, debootstrap) and
#                                        kubectl from Debian if missing; write /etc/containers/containers.conf
#                                        if absent
#   bash deploy/containers.sh engine        print the engine to use (podman, else a docker whose daemon answers)
#   bash deploy/containers.sh base          print the base image: BASE if set, else the public python image if it
#                                        is here or can be pulled, else a local Debian one (made by debootstrap)
#   bash deploy/containers.sh redis-image   print a Redis image likewise (public redis:7, else one FROM the base)
#   bash deploy/containers.sh lb-image      print an nginx image likewise (the compose file's load balancer)
#   bash deploy/containers.sh image         build localhost/denseface:latest and :VERSION from Containerfile
# Why the local base, the CA secret and the ulimits: docs/deploying.md ("Machines without a registry").
set -euo pipefail

PUBLIC_BASE=docker.io/library/python:3.11-slim-bookworm
LOCAL_BASE=localhost/debian-python:bookworm
PUBLIC_REDIS=docker.io/library/redis:7
LOCAL_REDIS=localhost/redis:7-bookworm
PUBLIC_LB=docker.io/library/nginx:1.27
LOCAL_LB=localhost/nginx:bookworm
CACERT=${CACERT:-/etc/ssl/certs/ca-certificates.crt}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

say() { echo "containers: $*" >&2; }

engine() {
    if [ -n "${ENGINE:-}" ]; then echo "$ENGINE"; return; fi
    if command -v podman >/dev/null 2>&1; then echo podman; return; fi
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then echo docker; return; fi
    return 1
}

setup() {
    if ! command -v podman >/dev/null 2>&1 || ! command -v podman-compose >/dev/null 2>&1 \
        || ! command -v debootstrap >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
        say "installing Debian podman, buildah, runc, podman-compose, debootstrap"
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
            podman buildah runc podman-compose debootstrap uidmap slirp4netns >/dev/null; } \
            || say "WARNING: could not install podman; the container tests will be skipped"
    fi
    if ! command -v kubectl >/dev/null 2>&1; then  # `kubectl kustomize` renders deploy/kubernetes offline
        if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
        say "installing Debian kubernetes-client (kubectl) for the manifest tests"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kubernetes-client >/dev/null \
            || say "WARNING: could not install kubectl; the Kubernetes manifest tests will be skipped"
    fi
    conf=/etc/containers/containers.conf
    if command -v podman >/dev/null 2>&1 && [ ! -e "$conf" ] && [ "$(id -u)" = 0 ]; then
        # Without CAP_SYS_RESOURCE a container may not raise its limits above the host's hard ones
        # (podman asks for nofile 1048576); crun cannot run on hybrid cgroups, runc can.
        nofile=$(ulimit -Hn); nproc=$(ulimit -Hu)
        [ "$nofile" = unlimited ] && nofile=1048576
        [ "$nproc" = unlimited ] && nproc=32768
        [ "$nproc" -gt 32768 ] && nproc=32768
        mkdir -p /etc/containers
        cat >"$conf" <<CONF
# written by denseface's deploy/containers.sh (the host's hard limits; runc)
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
CONF
        say "wrote $conf"
    fi
}

exists() { $(engine) image inspect "$1" >/dev/null 2>&1; }

pullable() {  # present, or pulled within 60 s
    exists "$1" && return 0
    timeout 60 $(engine) pull -q "$1" >/dev/null 2>&1
}

local_base() {
    exists "$LOCAL_BASE" && return 0
    command -v debootstrap >/dev/null 2>&1 || { say "debootstrap is missing (make containers)"; return 1; }
    say "making $LOCAL_BASE with debootstrap from $MIRROR (about a minute)"
    rootfs=$(mktemp -d /tmp/denseface-rootfs.XXXXXX)
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" \
        >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; rm -rf "$rootfs" "$rootfs.log"; return 1; }
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* "$rootfs"/var/cache/debconf/*-old \
        "$rootfs"/var/log/*.log
    tar -C "$rootfs" -c . | $(engine) import \
        --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV=LANG=C.UTF-8' --change 'CMD=["/bin/bash"]' - "$LOCAL_BASE" >/dev/null 2>&1
    rm -rf "$rootfs" "$rootfs.log"
}

base() {
    if [ -n "${BASE:-}" ]; then echo "$BASE"; return; fi
    if pullable "$PUBLIC_BASE"; then echo "$PUBLIC_BASE"; return; fi
    say "$PUBLIC_BASE cannot be pulled here: using the local base $LOCAL_BASE"
    local_base && echo "$LOCAL_BASE"
}

debian_image() {  # debian_image NAME PACKAGES CMD-JSON: NAME built FROM the base with Debian's PACKAGES
    if ! exists "$1"; then
        from=$(base)
        say "building $1 FROM $from (Debian's $2)"
        printf '%s\n' "FROM $from" \
            "RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $2 >/dev/null && rm -rf /var/lib/apt/lists/* && mkdir -p /data" \
            "CMD $3" | $(engine) build -q -t "$1" -f - "$ROOT/deploy" >/dev/null
    fi
    echo "$1"
}

redis_image() {
    if [ -n "${REDIS_IMAGE:-}" ]; then echo "$REDIS_IMAGE"; return; fi
    if pullable "$PUBLIC_REDIS"; then echo "$PUBLIC_REDIS"; return; fi
    debian_image "$LOCAL_REDIS" redis-server \
        '["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--appendonly", "yes", "--dir", "/data"]'
}

lb_image() {
    if [ -n "${LB_IMAGE:-}" ]; then echo "$LB_IMAGE"; return; fi
    if pullable "$PUBLIC_LB"; then echo "$PUBLIC_LB"; return; fi
    debian_image "$LOCAL_LB" nginx '["nginx", "-g", "daemon off;"]'
}

image() {
    e=$(engine) || { say "neither podman nor docker is available (make containers installs podman)"; exit 1; }
    from=$(base)
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -1)
    set -- --build-arg "BASE=$from" -t localhost/denseface:latest -t "localhost/denseface:$version" -f Containerfile
    [ -f "$CACERT" ] && set -- --secret "id=cacert,src=$CACERT" "$@"
    say "$e build (base $from)"
    cd "$ROOT"
    if [ "$e" = docker ]; then DOCKER_BUILDKIT=1 docker build "$@" .; else podman build --format docker "$@" .; fi
}

case "${1:-}" in
    setup) setup ;;
    engine) engine ;;
    base) base ;;
    redis-image) redis_image ;;
    lb-image) lb_image ;;
    image) image ;;
    *) sed -n '2,11p' "$0" >&2; exit 2 ;;
esac
