#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, from Go modules only:
# etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with kwok
# faking nodes and kubelets. Binaries are built once per version into a
# cache folder outside the clone.
#
#   scripts/kube-cluster.sh build        # build (cached) the binaries
#   scripts/kube-cluster.sh up DIR       # start a cluster whose state lives in DIR;
#                                        # writes DIR/kubeconfig and DIR/env
#   scripts/kube-cluster.sh down DIR     # stop it
#
# Cache: $DEPLOYWATCH_CACHE (default ~/.cache/deploywatch)/kube-<versions>.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.7.0}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
CACHE_ROOT=${DEPLOYWATCH_CACHE:-$HOME/.cache/deploywatch}
CACHE=$CACHE_ROOT/kube-v$K8S_VERSION-etcd-v$ETCD_VERSION-kwok-v$KWOK_VERSION
BIN=$CACHE/bin
REPO=$(cd "$(dirname "$0")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }

build() {
	if [[ -x $BIN/kube-apiserver && -x $BIN/kube-controller-manager && -x $BIN/kube-scheduler &&
		-x $BIN/kubectl && -x $BIN/etcd && -x $BIN/kwok ]]; then
		log "kubernetes $K8S_VERSION binaries cached in $CACHE"
		kwok_assets
		return
	fi
	mkdir -p "$BIN"
	local tools=$CACHE/tools
	rm -rf "$tools" && mkdir -p "$tools"
	log "building kubernetes $K8S_VERSION (about 12 minutes on 2 cores the first time)"
	# k8s.io/kubernetes requires its staging modules at v0.0.0 and refuses
	# `go install`; a tools module that replaces each with its release builds it.
	local gomod
	gomod=$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
	{
		echo "module deploywatch.local/kubetools"
		echo
		echo "go $(sed -n 's/^go //p' "$gomod")"
		echo
		echo "require k8s.io/kubernetes v$K8S_VERSION"
		echo
		grep -E '^\s+k8s\.io/[a-z0-9-]+ v0\.0\.0$' "$gomod" | awk -v v="v0.${K8S_VERSION#1.}" '{print "replace " $1 " => " $1 " " v}'
	} >"$tools/go.mod"
	cat >"$tools/tools.go" <<-'EOF'
		//go:build tools

		// Package tools pins the commands built from k8s.io/kubernetes.
		package tools

		import (
			_ "k8s.io/kubernetes/cmd/kube-apiserver"
			_ "k8s.io/kubernetes/cmd/kube-controller-manager"
			_ "k8s.io/kubernetes/cmd/kube-scheduler"
			_ "k8s.io/kubernetes/cmd/kubectl"
		)
	EOF
	local minor=${K8S_VERSION#1.}
	minor=${minor%%.*}
	local ldflags="-s -w
		-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION
		-X k8s.io/component-base/version.gitMajor=1
		-X k8s.io/component-base/version.gitMinor=$minor
		-X k8s.io/component-base/version.gitTreeState=clean
		-X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION
		-X k8s.io/client-go/pkg/version.gitMajor=1
		-X k8s.io/client-go/pkg/version.gitMinor=$minor"
	(
		cd "$tools"
		go mod tidy
		CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$BIN/" \
			k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	)
	log "building etcd $ETCD_VERSION and kwok $KWOK_VERSION"
	# etcd's server module has replace directives, so `go install` refuses
	# it; a tools module builds it from the published sibling modules.
	rm -rf "$tools" && mkdir -p "$tools"
	cat >"$tools/go.mod" <<-EOF
		module deploywatch.local/etcdtools

		go 1.26

		require go.etcd.io/etcd/server/v3 v$ETCD_VERSION
	EOF
	cat >"$tools/tools.go" <<-'EOF'
		//go:build tools

		// Package tools pins the etcd server.
		package tools

		import _ "go.etcd.io/etcd/server/v3"
	EOF
	(
		cd "$tools"
		go mod tidy
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
	)
	GOBIN=$BIN CGO_ENABLED=0 go install -trimpath "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
	rm -rf "$tools"
	kwok_assets
	log "built into $BIN"
}

# kwok_assets copies from kwok's module the stage definitions and the CRDs
# of its Logs and ClusterLogs objects, once (a small module download).
kwok_assets() {
	[[ -d $CACHE/stages && -d $CACHE/crds ]] && return
	local kwokdir
	kwokdir=$(go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	rm -rf "$CACHE/stages" "$CACHE/crds" && mkdir -p "$CACHE/stages" "$CACHE/crds"
	cp -r "$kwokdir/kustomize/stage/." "$CACHE/stages/"
	cp "$kwokdir"/kustomize/crd/bases/kwok.x-k8s.io_{logs,clusterlogs}.yaml "$CACHE/crds/"
	chmod -R u+w "$CACHE/stages" "$CACHE/crds"
}

# free_port prints a loopback port nobody listens on, below the kernel's
# ephemeral range: a port from that range can be taken by an outgoing
# connection before the daemon binds it.
free_port() {
	local p lo
	lo=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
	((lo > 21000)) || lo=32768
	while :; do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % (lo - 20000)))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# start NAME LOG CMD...: start a daemon in its own session, so a timeout on
# the test run does not kill it, and remember its pid.
start() {
	local name=$1 logf=$2
	shift 2
	setsid "$@" >"$logf" 2>&1 </dev/null &
	echo $! >"$DIR/pids/$name"
}

# wait_for NAME TRIES CMD...: run CMD every 0.25 s until it succeeds; give
# up early when the daemon NAME has exited.
wait_for() {
	local what=$1 tries=$2
	shift 2
	for ((i = 0; i < tries; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if [[ -f $DIR/pids/$what ]] && ! kill -0 "$(cat "$DIR/pids/$what")" 2>/dev/null; then
			break
		fi
		sleep 0.25
	done
	log "$what did not come up; its log:"
	tail -30 "$DIR/logs/$what.log" >&2 || true
	return 1
}

# port_taken NAME: whether daemon NAME failed because its port was taken
# between free_port and its bind.
port_taken() {
	grep -q "address already in use" "$DIR/logs/$1.log" 2>/dev/null
}

# on_free_ports NAME TRIES START READY: START picks ports with free_port
# and starts daemon NAME; READY succeeds once it serves (polled up to TRIES
# times). When another process took a port between free_port and the
# daemon's bind, it starts again on others, three times at most.
on_free_ports() {
	local name=$1 tries=$2 start=$3 ready=$4 attempt
	for attempt in 1 2 3; do
		"$start"
		if wait_for "$name" "$tries" "$ready"; then return 0; fi
		port_taken "$name" && ((attempt < 3)) || return 1
		log "a port was taken before $name bound it; trying others"
	done
}

start_etcd() {
	etcd_port=$(free_port)
	peer_port=$(free_port)
	rm -rf "$DIR/etcd" && mkdir "$DIR/etcd"
	log "starting etcd on 127.0.0.1:$etcd_port"
	start etcd "$DIR/logs/etcd.log" "$BIN/etcd" --data-dir "$DIR/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
		--initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
}
etcd_ready() { curl -sf "http://127.0.0.1:$etcd_port/health"; }

start_apiserver() {
	api_port=$(free_port)
	log "starting kube-apiserver on 127.0.0.1:$api_port"
	start kube-apiserver "$DIR/logs/kube-apiserver.log" "$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
		--endpoint-reconciler-type none \
		--cert-dir "$DIR/certs/apiserver" \
		--token-auth-file "$DIR/certs/tokens.csv" \
		--authorization-mode RBAC \
		--service-account-key-file "$DIR/certs/sa.pub" \
		--service-account-signing-key-file "$DIR/certs/sa.key" \
		--service-account-issuer https://kubernetes.default.svc \
		--service-cluster-ip-range 10.96.0.0/16 \
		--allow-privileged \
		--kubelet-preferred-address-types InternalIP \
		--enable-priority-and-fairness=false
}
apiserver_ready() { curl -skf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz"; }

# kwok also plays the kubelet's HTTPS server on loopback, so that pod logs
# work: the API server reaches the fake nodes at their InternalIP
# (127.0.0.1) and kwok's port, and does not verify the kubelet's
# certificate (no --kubelet-certificate-authority). Tests describe the logs
# with kwok's Logs and ClusterLogs objects.
start_kwok() {
	kwok_port=$(free_port)
	start kwok "$DIR/logs/kwok.log" "$BIN/kwok" --kubeconfig "$DIR/kubeconfig" \
		--manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
		--config "$DIR/stages.yaml" --cidr 10.244.0.0/16 --node-ip 127.0.0.1 \
		--node-port "$kwok_port" --server-address "127.0.0.1:$kwok_port" \
		--tls-cert-file "$DIR/certs/kwok.crt" --tls-private-key-file "$DIR/certs/kwok.key" \
		--enable-crds Logs,ClusterLogs
}
kwok_ready() { curl -skf "https://127.0.0.1:$kwok_port/healthz"; }

up() {
	DIR=${1:?usage: kube-cluster.sh up DIR}
	build
	mkdir -p "$DIR"/{pids,logs,certs,etcd}
	DIR=$(cd "$DIR" && pwd)
	# A half-started cluster is stopped, not left running.
	trap 'down "$DIR"' ERR
	# Set by the start_* functions (bash scopes locals dynamically).
	local etcd_port peer_port api_port kwok_port token
	token=$(openssl rand -hex 16)
	openssl genrsa -out "$DIR/certs/sa.key" 2048 2>/dev/null
	openssl rsa -in "$DIR/certs/sa.key" -pubout -out "$DIR/certs/sa.pub" 2>/dev/null
	echo "$token,admin,admin,system:masters" >"$DIR/certs/tokens.csv"

	on_free_ports etcd 120 start_etcd etcd_ready

	on_free_ports kube-apiserver 240 start_apiserver apiserver_ready

	# The generated serving certificate file also holds its CA: split it out.
	awk 'BEGIN{n=0} /BEGIN CERTIFICATE/{n++} n==2{print}' "$DIR/certs/apiserver/apiserver.crt" >"$DIR/certs/ca.crt"
	cat >"$DIR/kubeconfig" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: local
		  cluster:
		    server: https://127.0.0.1:$api_port
		    certificate-authority: $DIR/certs/ca.crt
		users:
		- name: admin
		  user:
		    token: $token
		contexts:
		- name: local
		  context:
		    cluster: local
		    user: admin
		    namespace: default
		current-context: local
	EOF

	log "starting kube-controller-manager, kube-scheduler and kwok"
	start kube-controller-manager "$DIR/logs/kube-controller-manager.log" "$BIN/kube-controller-manager" \
		--kubeconfig "$DIR/kubeconfig" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
		--service-account-private-key-file "$DIR/certs/sa.key" --root-ca-file "$DIR/certs/ca.crt" \
		--use-service-account-credentials=false --controllers '*' \
		--concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 \
		--kube-api-qps 300 --kube-api-burst 600
	start kube-scheduler "$DIR/logs/kube-scheduler.log" "$BIN/kube-scheduler" \
		--kubeconfig "$DIR/kubeconfig" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
		--kube-api-qps 300 --kube-api-burst 600
	local stage files=()
	for stage in "$CACHE"/stages/node/fast/*.yaml "$CACHE"/stages/node/heartbeat/*.yaml \
		"$CACHE"/stages/pod/fast/*.yaml "$REPO"/test/kube/stages/*.yaml; do
		[[ $(basename "$stage") == kustomization.yaml ]] || files+=("$stage")
	done
	awk 'FNR==1 && NR!=1 {print "---"} {print}' "${files[@]}" >"$DIR/stages.yaml"
	KUBECONFIG=$DIR/kubeconfig "$BIN/kubectl" apply -f "$CACHE/crds" >/dev/null
	KUBECONFIG=$DIR/kubeconfig "$BIN/kubectl" wait --for=condition=Established crd --all --timeout=30s >/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=kwok -addext subjectAltName=IP:127.0.0.1 \
		-keyout "$DIR/certs/kwok.key" -out "$DIR/certs/kwok.crt" 2>/dev/null
	# kwok must hold its port before the nodes exist: they are told the
	# port once, when kwok initializes them.
	on_free_ports kwok 120 start_kwok kwok_ready
	KUBECONFIG=$DIR/kubeconfig "$BIN/kubectl" apply -f "$REPO/test/kube/nodes.yaml" >/dev/null
	wait_for kwok 60 bash -c "KUBECONFIG='$DIR/kubeconfig' '$BIN/kubectl' wait --for=condition=Ready node --all --timeout=1s"
	wait_for kube-controller-manager 120 env KUBECONFIG="$DIR/kubeconfig" "$BIN/kubectl" get serviceaccount default -n default
	{
		echo "export KUBECONFIG=$DIR/kubeconfig"
		echo "export DEPLOYWATCH_KUBECONFIG=$DIR/kubeconfig"
		echo "export DEPLOYWATCH_KUBECTL=$BIN/kubectl"
	} >"$DIR/env"
	trap - ERR
	log "cluster up: KUBECONFIG=$DIR/kubeconfig"
}

down() {
	DIR=${1:?usage: kube-cluster.sh down DIR}
	# The API server stops before etcd, or it spins on a vanished store.
	for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
		local f=$DIR/pids/$name
		[[ -f $f ]] || continue
		local pid
		pid=$(cat "$f")
		kill "$pid" 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.25
		done
		kill -9 "$pid" 2>/dev/null || true
		rm -f "$f"
	done
}

"$@"
