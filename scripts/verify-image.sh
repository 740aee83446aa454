#!/usr/bin/env bash
# Builds the Gatehouse container image with podman (rootful, no Docker engine needed) from the committed Dockerfile,
# on base images made here from Debian's packages, and checks what the image holds and that it serves.
#
# Why local bases: the Dockerfile's defaults (node:24-bookworm-slim, gcr.io/distroless/nodejs24-debian12) come from
# registries a restricted build host may not reach. This script makes stand-ins with the same layout from Debian
# bookworm (debootstrap) and the Node 24 binary the repository pins (the registry's `node` package):
#   - build base: Debian minbase + Node 24 + npm, like node:24-bookworm-slim;
#   - runtime base: no shell, no package manager, Node at /nodejs/bin/node with only the libraries it links, CA
#     certificates, /etc/passwd with `nonroot` (65532), like distroless/nodejs24.
# Then it builds the image from the files git knows (nothing ignored, such as node_modules or .gatehouse, leaks in)
# and checks: the entrypoint runs as 65532, `gatehouse --version`, no dev dependency inside, the CycloneDX SBOM, and
# the demo started from the image's read-only root answering /readyz, then draining on SIGTERM with exit 0.
#
# The container is run by chroot into the read-only image mount (in a private mount namespace), because some hosts
# (this one's sandbox among them) cannot start OCI containers (cgroup and rlimit restrictions) while they can build.
#
# Usage: sudo scripts/verify-image.sh   (needs podman, debootstrap, binutils; about 3-5 minutes; network to Debian's
# mirror and the npm registry). Keeps the Debian root in $VERIFY_IMAGE_CACHE (default ~/.cache/gatehouse-image).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VERIFY_IMAGE_CACHE:-$HOME/.cache/gatehouse-image}
work=$(mktemp -d)
mounted=''
cleanup() {
  [[ -n "$mounted" ]] && podman image unmount localhost/gatehouse:verify >/dev/null 2>&1 || true
  # Each build re-tags the :verify images; the layers they replaced would pile up on every run.
  podman image prune -f >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
build() { podman build --isolation=chroot --quiet "$@"; }

node_bin="$repo/node_modules/node/bin/node"
[[ -x "$node_bin" ]] || fail "no pinned Node 24 at node_modules/node/bin/node (run npm ci first)"
[[ "$("$node_bin" -p 'process.versions.node.split(".")[0]')" == 24 ]] || fail "the pinned Node is not 24"

step "Debian bookworm root (debootstrap --variant=minbase), cached in $cache"
if [[ ! -x "$cache/rootfs/bin/sh" ]]; then
  mkdir -p "$cache"
  rm -rf "$cache/rootfs.partial"
  debootstrap --variant=minbase bookworm "$cache/rootfs.partial" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  mv "$cache/rootfs.partial" "$cache/rootfs"
fi

step "build base: Debian + Node 24 + npm"
mkdir -p "$work/build-base"
tar -C "$cache/rootfs" -cf "$work/build-base/rootfs.tar" .
cp "$node_bin" "$work/build-base/node"
strip "$work/build-base/node"
# npm 11, the major Node 24 bundles.
(cd "$work/build-base" && npm pack --silent npm@11 >/dev/null && mv npm-*.tgz npm.tgz)
cp /etc/ssl/certs/ca-certificates.crt "$work/build-base/"
cat >"$work/build-base/Containerfile" <<'EOF'
FROM scratch
ADD rootfs.tar /
COPY node /usr/local/bin/node
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ADD npm.tgz /usr/local/lib/node_modules/
RUN mv /usr/local/lib/node_modules/package /usr/local/lib/node_modules/npm \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
EOF
build -t localhost/gatehouse-build-base:verify "$work/build-base" >/dev/null

step "runtime base: Node 24 and its libraries only, user nonroot (65532), no shell"
rt="$work/runtime-base/root"
mkdir -p "$rt/nodejs/bin" "$rt/etc/ssl/certs" "$rt/tmp" "$rt/proc" "$rt/lib64" "$rt/lib/x86_64-linux-gnu"
cp "$work/build-base/node" "$rt/nodejs/bin/node"
for lib in $(ldd "$rt/nodejs/bin/node" | awk '/=>/ { print $3 } /ld-linux/ { print $1 }'); do
  cp -L "$lib" "$rt$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$rt/etc/ssl/certs/"
# Mount points a container runtime fills in (here: bind mounts of the host's files).
touch "$rt/etc/hosts" "$rt/etc/resolv.conf"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rt/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rt/etc/group"
chmod 1777 "$rt/tmp"
tar -C "$rt" -cf "$work/runtime-base/root.tar" .
printf 'FROM scratch\nADD root.tar /\n' >"$work/runtime-base/Containerfile"
build -t localhost/gatehouse-runtime-base:verify "$work/runtime-base" >/dev/null

step "the image, from the files git tracks (and new ones it does not ignore)"
mkdir -p "$work/context"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work/context" 2>/dev/null || true)
build --build-arg BUILD_IMAGE=localhost/gatehouse-build-base:verify --build-arg RUNTIME_IMAGE=localhost/gatehouse-runtime-base:verify \
  -t localhost/gatehouse:verify "$work/context" >/dev/null
podman image inspect localhost/gatehouse:verify --format 'size {{.Size}} bytes, user {{.Config.User}}, entrypoint {{.Config.Entrypoint}} {{.Config.Cmd}}'
[[ "$(podman image inspect localhost/gatehouse:verify --format '{{.Config.User}}')" == "65532:65532" ]] || fail "the image does not run as 65532"

step "what is inside"
root=$(podman image mount localhost/gatehouse:verify)
mounted=yes
[[ ! -e "$root/bin/sh" && ! -e "$root/usr/bin/npm" ]] || fail "a shell or npm in the runtime image"
for dev in typescript oxlint playwright-core @types/node autocannon axe-core mcp-remote; do
  [[ ! -e "$root/opt/gatehouse/node_modules/$dev" ]] || fail "dev dependency $dev in the image"
done
[[ ! -e "$root/opt/gatehouse/src" ]] || fail "TypeScript sources in the image (the package ships dist/)"
components=$("$node_bin" -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).components.length' "$root/opt/gatehouse/sbom.cdx.json")
echo "SBOM: $components components (CycloneDX), no dev dependencies, no shell, no npm"
echo "owner of /opt/gatehouse: $(stat -c %u:%g "$root/opt/gatehouse") (read-only for 65532)"

step "run: gatehouse --version and the demo, from the read-only image root as 65532"
# The image's own environment (ENV lines: NODE_ENV, NODE_OPTIONS …), as a container runtime would set it.
IMAGE_ENV=$(podman image inspect localhost/gatehouse:verify --format '{{range .Config.Env}}{{.}} {{end}}')
export IMAGE_ENV
echo "environment: $IMAGE_ENV"
state="$work/state"
mkdir -p "$state"
chown 65532:65532 "$state"
# A tiny launcher in the writable state dir: chroot(1) always starts in /, the demo keeps its state in its cwd.
cat >"$state/launch.mjs" <<'EOF'
process.chdir('/tmp');
process.argv.splice(1, 1, '/opt/gatehouse/bin/gatehouse.js');
await import('/opt/gatehouse/bin/gatehouse.js');
EOF
free_port() { "$node_bin" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
port=$(free_port)
in_image() {
  unshare -m --propagation private bash -c '
    root=$1; state=$2; shift 2
    mount --bind "$state" "$root/tmp"
    mount --bind /etc/hosts "$root/etc/hosts"
    mount --bind /etc/resolv.conf "$root/etc/resolv.conf"
    mount -t proc proc "$root/proc" 2>/dev/null || true
    exec env -i PATH=/nodejs/bin ${IMAGE_ENV:-} HOME=/tmp ${PORTS:-} "$(command -v chroot)" --userspec=65532:65532 "$root" /nodejs/bin/node /tmp/launch.mjs "$@"' _ "$root" "$state" "$@"
}
in_image --version
PORTS="GATEHOUSE_DEMO_IDP_PORT=$(free_port) GATEHOUSE_DEMO_GRAPH_PORT=$(free_port) GATEHOUSE_DEMO_DIRECTORY_PORT=$(free_port)" \
  in_image start --port "$port" --log-level warn >"$work/demo.log" 2>&1 &
demo=$!
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$demo" 2>/dev/null || { cat "$work/demo.log"; fail "the demo exited"; }
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/demo.log"; fail "/readyz"; }
issuer=$(curl -fsS "http://127.0.0.1:$port/.well-known/oauth-authorization-server" | "$node_bin" -p 'JSON.parse(require("fs").readFileSync(0, "utf8")).issuer')
echo "demo from the image: /readyz 200, issuer $issuer"
node_pid=$(pgrep -f "^/nodejs/bin/node /tmp/launch.mjs start --port $port" | head -1)
[[ -n "$node_pid" ]] || fail "no Gatehouse process found"
kill -TERM "$node_pid"
code=0
wait "$demo" || code=$?
[[ "$code" == 0 ]] || { cat "$work/demo.log"; fail "exit code $code after SIGTERM"; }
echo "SIGTERM: drained and exited 0"
printf '\nimage verified: localhost/gatehouse:verify\n'
